"""The README's worked example is what the tool prints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hie_notify.cli import main
from tests.conftest import EXAMPLES, ROOT


def test_worked_example_output_is_in_the_readme(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (ROOT / "README.md").read_text()
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
    assert (
        main(
            [*common, "--now", "2026-12-02T10:00:00+00:00", "plan", "--plan", "examples/plan.json"],
            env={},
        )
        == 0
    )
    announced = capsys.readouterr().out
    assert (
        main(
            [*common, "--now", "2026-12-08T19:05:00+00:00", "gate", "--plan", "examples/plan.json"],
            env={},
        )
        == 1
    )
    blocked = capsys.readouterr().out
    for line in (announced + blocked).splitlines():
        assert line in readme, line
    eml = (tmp_path / "worked-example/FFAPP-4458/announce/customer-EoE.eml").read_bytes()
    import email
    import email.policy

    text = email.message_from_bytes(eml, policy=email.policy.default).get_body(("plain",))
    for line in text.get_content().splitlines():
        assert line in readme, line
