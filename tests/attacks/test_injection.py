"""Escaping that holds: a resource address with newlines and backticks cannot leave its code span
(no live mention, link or image in the merge request note), and bidi override and control
characters are shown, not obeyed, in every format a message is rendered in.

Hardening: text from the merge request or the plan is escaped for every channel, so it can
mention no one, open no link, and inject no markup.
"""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hie_notify.cli import main
from hie_notify.render import Format
from tests.support.builders import plan, rc, write
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


INJECT = "<!channel> <@U0ADMIN> @all [click](https://evil.example) <script>x()</script> *bold*"
KEY = "<!here>|[x](https://evil.example)"
# INJECT as each format must show it: escaped, not dropped (written out, not computed by the
# code under test).
IN_SLACK = (
    "&lt;!channel&gt; &lt;@U0ADMIN&gt; @all [click](https://evil.example) "
    "&lt;script&gt;x()&lt;/script&gt; *bold*"
)
IN_HTML = IN_SLACK
IN_MARKDOWN = (
    r"&lt;\!channel&gt; &lt;&#64;U0ADMIN&gt; &#64;all \[click\](https://evil.example) "
    r"&lt;script&gt;x()&lt;/script&gt; \*bold\*"
)
IN_TEAMS = (
    r"<\!channel> <@U0ADMIN> @all \[click\](https://evil.example) <script>x()</script> \*bold\*"
)


@pytest.fixture
def outbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    change = tmp_path / "change.yaml"
    change.write_text(
        yaml.safe_dump(
            {
                "id": "FFAPP-66",
                "type": "cost_optimization",
                "purpose": f"Save money {INJECT}",
                "customer_summary": f"Cheaper storage {INJECT}",
                "rollback": f"Undo {INJECT}",
                "risk": "low",
                "monitoring": INJECT,
                "on_call": INJECT,
                "approvers": [INJECT],
                "downtime": "15m",
                "customers": ["EoE"],
                "window": {
                    "start": "2026-12-08T10:00:00+00:00",
                    "end": "2026-12-08T12:00:00+00:00",
                },
            }
        )
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "customers": {
                    "EoE": {
                        "contacts": [{"email": "desk@eoe.example.org"}],
                        "channels": ["email", "teams", "webhook"],
                    }
                },
                "channels": {"internal": ["slack", "teams", "webhook"]},
                "support": {"email": "devops@example.org"},
            }
        )
    )
    plan_file = write(
        tmp_path / "plan.json", plan(rc(f'aws_db_instance.db["{KEY}"]', ["delete", "create"]))
    )
    base = [
        "--policy",
        str(policy),
        "--change",
        str(change),
        "--ledger",
        f"file:{tmp_path}/l.jsonl",
        "--outbox",
        str(tmp_path / "outbox"),
    ]
    assert (
        main(
            [
                *base,
                "--now",
                "2026-12-01T10:00:00+00:00",
                "plan",
                "--plan",
                str(plan_file),
                "--terraform-report",
                str(tmp_path / "r.json"),
            ],
            env={},
        )
        == 0
    )
    # Applied first (a change with a plan completes once applied); its notices, which do not
    # repeat the purpose, go to an outbox of their own.
    applied = [*base[:-2], "--outbox", str(tmp_path / "outbox-apply")]
    now = ["--now", "2026-12-08T10:40:00+00:00"]
    assert main([*applied, *now, "apply", "--status", "succeeded"], env={}) == 0
    assert main([*base, "--now", "2026-12-08T11:00:00+00:00", "complete"], env={}) == 0
    capsys.readouterr()
    return tmp_path / "outbox" / "FFAPP-66"


def _files(outbox: Path, pattern: str) -> list[Path]:
    found = sorted(outbox.rglob(pattern))
    assert found, pattern
    return found


def _slack_texts(payload: dict[str, Any]) -> list[str]:
    texts = [payload["text"]]
    for block in payload["blocks"]:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts += [e["text"] for e in block.get("elements", [])]
    return texts


def test_slack(outbox: Path) -> None:
    files = [p for p in _files(outbox, "slack-*.json") if p.name.count(".") == 1]
    for path in files:
        texts = _slack_texts(json.loads(path.read_text()))
        for text in texts:
            assert "<!channel>" not in text and "<@U0ADMIN>" not in text
            assert "<!here>" not in text and "<https://evil" not in text
            assert "<script>" not in text
        if path.parent.name == "announce":
            assert f"Save money {IN_SLACK}" in "\n".join(texts), path


def test_email_html_and_text(outbox: Path) -> None:
    for path in _files(outbox, "customer-EoE.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "<script>" not in html and 'href="https://evil' not in html
        text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        # customers read the customer summary, escaped like all else
        assert f"Cheaper storage {IN_HTML}" in html
        assert f"Cheaper storage {INJECT}" in text  # plain text is plain
        assert "\n" not in str(msg["Subject"]).strip("\n")


def test_markdown(outbox: Path) -> None:
    files = _files(outbox, "*.md")
    for path in files:
        text = path.read_text()
        assert "[click](https://evil.example)" not in text
        assert "@all" not in text and "<script>" not in text
    assert any(f"Save money {IN_MARKDOWN}" in p.read_text() for p in files)


def test_teams(outbox: Path) -> None:
    files = _files(outbox, "*.teams.json")
    for path in files:
        card = json.loads(path.read_text())["attachments"][0]["content"]
        texts = [block["text"] for block in card["body"]]
        assert not any("[click](https://evil.example)" in t for t in texts)
        if path.parent.name == "announce":
            assert any(f"Save money {IN_TEAMS}" in t for t in texts), path


def test_webhook_is_valid_json_with_escaped_html(outbox: Path) -> None:
    for path in _files(outbox, "*.webhook.json"):
        body = json.loads(path.read_text())
        assert "<script>" not in body["html"]
        assert INJECT in body["text"]  # plain text is plain: the receiver renders it
        if path.parent.name == "announce":
            assert f"Save money {IN_HTML}" in body["html"]


def test_resource_address_from_the_plan(outbox: Path) -> None:
    devops = json.loads((outbox / "announce" / "slack-devops.json").read_text())
    joined = "\n".join(_slack_texts(devops))
    assert 'aws_db_instance.db["&lt;!here&gt;|[x](https://evil.example)"]' in joined
