"""The README's worked example is what the tool prints, block by block, line for line."""

from __future__ import annotations

import email
import email.policy
import os
import re
from pathlib import Path

import pytest

from hie_notify.cli import main
from tests.conftest import EXAMPLES, ROOT

FENCE = re.compile(r"^```[a-z]*\n(.*?)^```$", re.S | re.M)


def _blocks() -> list[list[str]]:
    return [
        m.group(1).rstrip("\n").split("\n")
        for m in FENCE.finditer(ROOT.joinpath("README.md").read_text())
    ]


def _block(first_line: re.Pattern[str]) -> list[str]:
    found = [b for b in _blocks() if first_line.search(b[0])]
    assert len(found) == 1, f"expected one README block starting with {first_line.pattern}"
    return found[0]


def test_worked_example_output_is_in_the_readme(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    os.symlink(EXAMPLES, tmp_path / "examples")
    common = [
        "--policy",
        "examples/policy.yaml",
        "--change",
        "examples/change.yaml",
        "--ledger",
        "file:.hie-notify/worked-example.jsonl",
        "--outbox",
        "worked-example",
    ]
    plan_args = [
        *common,
        "--now",
        "2026-12-02T10:00:00+00:00",
        "plan",
        "--plan",
        "examples/plan.json",
    ]
    gate_args = [
        *common,
        "--now",
        "2026-12-08T19:05:00+00:00",
        "gate",
        "--plan",
        "examples/plan.json",
    ]

    plan_block = _block(re.compile(r"^\$ hie-notify .* plan --plan"))
    assert plan_block[0] == "$ hie-notify " + " ".join(plan_args)
    assert main(plan_args, env={}) == 0
    assert capsys.readouterr().out.rstrip("\n").split("\n") == plan_block[1:]

    gate_block = _block(re.compile(r"^\$ hie-notify .* gate --plan"))
    assert gate_block[0] == "$ hie-notify " + " ".join(gate_args)
    assert main(gate_args, env={}) == 1
    assert capsys.readouterr().out.rstrip("\n").split("\n") == gate_block[1:]

    eml = (tmp_path / "worked-example/FFAPP-4458/announce/customer-EoE.eml").read_bytes()
    message = email.message_from_bytes(eml, policy=email.policy.default)
    text = message.get_body(("plain",))
    assert text is not None
    mail_block = _block(re.compile(r"^Subject: "))
    assert mail_block[:3] == [f"Subject: {message['Subject']}", f"To: {message['To']}", ""]
    assert text.get_content().rstrip("\n").split("\n") == mail_block[3:]
