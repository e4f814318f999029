"""Escaping that holds: a resource address with newlines and backticks cannot leave its code span
(no live mention, link or image in the merge request note), and bidi override and control
characters are shown, not obeyed, in every format a message is rendered in."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest

from hie_notify.render import Format
from tests.support.builders import rc
from tests.support.cli_flow import Flow

EVIL_KEY = "a`\n\n@all [x](https://evil.example) <img src=x> ``"
RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "txt.exe" shown as "exe.txt"


def _plan_with(address_key: str, tmp: Path, capsys: pytest.CaptureFixture[str]) -> Flow:
    resource = rc(f'aws_s3_bucket.b["{address_key}"]', ["delete"], before={"a": 1}, after=None)
    flow = Flow(tmp, capsys, resource, purpose=f"Rotate {RLO}gpj.exe keys\x1b[31m now")
    assert flow("plan", "--plan", str(flow.plan))[0] == 0, flow.err
    return flow


def test_an_address_cannot_close_its_code_span_in_the_merge_request_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _plan_with(EVIL_KEY, tmp_path, capsys)
    note = (tmp_path / "outbox" / "FFAPP-4458" / "merge-request-note.md").read_text()
    spans = [line for line in note.splitlines() if "```" in line]
    assert spans, note
    for line in spans:
        # the whole address, newlines shown, inside one fence longer than any run inside
        assert '["a`<U+000A><U+000A>@all [x](https://evil.example) <img src=x> ``"]' in line
        assert line.count("```") == 2
    # anywhere else the address is escaped text: no live mention, link or image
    assert "\n@all" not in note
    outside = [line for line in note.splitlines() if "evil.example" in line and "```" not in line]
    assert outside and all("&#64;all" in line and "&lt;img" in line for line in outside)


@pytest.mark.parametrize("fmt", ["text", "slack", "markdown", "html", "teams"])
def test_bidi_and_control_characters_are_shown_in_every_format(fmt: str) -> None:
    f = Format(fmt)
    for value in (f"{RLO}gpj.exe", "a\x1b[31mred", "zero\u200bwidth"):
        out = str(f._e(value)) + str(f.code(value))
        assert RLO not in out and "\x1b" not in out and "\u200b" not in out
    assert "U+202E" in str(f._e(f"{RLO}gpj.exe"))


def test_bidi_characters_are_shown_in_the_messages_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _plan_with("plain", tmp_path, capsys)
    folder = tmp_path / "outbox" / "FFAPP-4458" / "announce"
    slack = json.loads((folder / "slack-devops.json").read_text())
    mail = email.message_from_bytes(
        (folder / "customer-EoE.eml").read_bytes(), policy=email.policy.default
    )
    texts = [json.dumps(slack, ensure_ascii=False)]
    for part in mail.walk():
        if part.get_content_maintype() != "multipart":
            content = part.get_content()
            texts.append(content if isinstance(content, str) else content.decode())
    assert any("<U+202E>gpj.exe" in t or "&lt;U+202E&gt;gpj.exe" in t for t in texts)
    for text in texts:
        assert RLO not in text and "\x1b" not in text
