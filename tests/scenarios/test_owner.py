"""Accountability (issue 25, item 9): the change record names an `owner`, the person
responsible for its communication; announcements name them and the report lists them."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hie_notify.change import ChangeRecord
from tests.support.builders import rc
from tests.support.cli_flow import Flow
from tests.support.paths import EXAMPLES

NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])


def _record(**kw: Any) -> ChangeRecord:
    return ChangeRecord.model_validate({"id": "FFAPP-1", "purpose": "x", **kw})


def _files(flow: Flow, stage: str) -> dict[str, Path]:
    folder = flow.tmp / "outbox" / str(flow.fields["id"]) / stage
    return {p.name: p for p in folder.iterdir()}


def _plain(path: Path) -> str:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def _html(path: Path) -> str:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


@pytest.mark.parametrize(
    "owner", ["Ollie Rushton", "ollie@fitfile.example", "Ollie Rushton <ollie@fitfile.example>"]
)
def test_an_owner_is_one_person_on_one_line(owner: str) -> None:
    assert _record(owner=f"  {owner} ").owner == owner
    assert _record().owner is None


@pytest.mark.parametrize(
    "owner",
    ["", "   ", "\u200b", "Ollie\nRushton", "Ollie\u202eRushton", "x" * 121, "a\x00b"],
    ids=["empty", "spaces", "zero-width", "newline", "bidi", "too-long", "nul"],
)
def test_a_bad_owner_is_refused(owner: str) -> None:
    with pytest.raises(ValidationError, match="owner"):
        _record(owner=owner)


@given(st.text(max_size=200))
def test_an_accepted_owner_is_always_one_printable_line(text: str) -> None:
    try:
        owner = _record(owner=text).owner
    except ValidationError:
        return
    assert owner is not None and owner.strip() == owner
    assert 0 < len(owner) <= 120
    assert "\n" not in owner and "\r" not in owner and "\u2028" not in owner


def test_validate_names_the_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, NODES, owner="Ollie\nRushton")
    code, _ = flow("validate")
    assert code == 2
    assert str(flow.change) in flow.err and "owner" in flow.err
    assert "one person on one line" in flow.err
    flow.write_change(owner="Ollie Rushton")
    assert flow("validate")[0] == 0
    assert "owner (responsible for its communication): Ollie Rushton" in flow.err


def test_announcements_name_the_owner_escaped_per_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Fails on main: the change record had no owner (extra keys are refused).
    owner = "Ollie <ollie@fitfile.example> & *team* <!channel>"
    flow = Flow(tmp_path, capsys, NODES, owner=owner, policy=EXAMPLES / "policy.yaml")
    code, _ = flow("plan", "--plan", str(flow.plan))
    assert code == 0, flow.err
    files = _files(flow, "announce")
    slack = json.loads(files["slack-devops.json"].read_text())
    text = json.dumps(slack)
    # Slack: <, > and & escaped, so no mention or link is made from the owner's text.
    assert "Ollie &lt;ollie@fitfile.example&gt; &amp;" in text
    assert "<!channel>" not in text
    assert "Contact" in text
    eml = files["customer-EoE.eml"]
    assert f"Contact: {owner}" in _plain(eml)
    html = _html(eml)
    assert "Ollie &lt;ollie@fitfile.example&gt; &amp; *team* &lt;!channel&gt;" in html
    assert "<!channel>" not in html


def test_without_an_owner_no_contact_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, NODES, policy=EXAMPLES / "policy.yaml")
    assert flow("plan", "--plan", str(flow.plan))[0] == 0
    files = _files(flow, "announce")
    assert "Contact:" not in _plain(files["customer-EoE.eml"])
    assert "Contact" not in files["slack-devops.json"].read_text()


def test_the_report_lists_the_owner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = Flow(tmp_path, capsys, NODES, owner="Priya <priya@fitfile.example>")
    assert flow("plan", "--plan", str(flow.plan))[0] == 0
    code, out = flow("report", "--from", "2026-12-01", "--to", "2026-12-31")
    assert code == 0, flow.err
    (row,) = out["tables"]["changes"]
    assert row["owner"] == "Priya <priya@fitfile.example>"
    page = tmp_path / "report.html"
    code, _ = flow(
        "report",
        "--from",
        "2026-12-01",
        "--to",
        "2026-12-31",
        "--format",
        "html",
        "--output",
        str(page),
    )
    assert code == 0, flow.err
    html = page.read_text()
    assert '<th scope="col">owner</th>' in html
    assert "Priya &lt;priya@fitfile.example&gt;" in html
