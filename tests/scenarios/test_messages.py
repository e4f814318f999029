"""Messages as their readers see them: the customer email's HTML, the invite read back by an
independent iCalendar reader, the contact line, and the wording of every external stage."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import vobject

from tests.support.builders import rc
from tests.support.cli_flow import Flow
from tests.support.paths import EXAMPLES

DB = rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["storage_encrypted"]])
EXTERNAL_STAGES = [
    ("plan", ()),
    ("apply", ("--status", "started")),
    ("apply", ("--status", "succeeded")),
    ("apply", ("--status", "failed")),
    ("rollback", ("--status", "started")),
    ("rollback", ("--status", "succeeded")),
    ("rollback", ("--status", "failed")),
    ("complete", ()),
    ("cancelled", ()),
]


def _flow(tmp: Path, capsys: pytest.CaptureFixture[str], **change: Any) -> Flow:
    return Flow(tmp, capsys, DB, policy=EXAMPLES / "policy.yaml", **change)


def _eml(path: Path) -> email.message.EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


class _Structure(HTMLParser):
    """Collects what a reader sees: headings, table header cells, links, and any asset that
    would make a mail client fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: dict[str, list[str]] = {"h1": [], "th": [], "td": [], "a": []}
        self.fetches: list[str] = []
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._open.append(tag)
        a = dict(attrs)
        if tag in ("img", "script", "link", "iframe") or (tag == "img" and a.get("src")):
            self.fetches.append(tag)
        if "style" in a and "url(" in (a["style"] or ""):
            self.fetches.append("style url()")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        for tag in ("h1", "th", "td", "a"):
            if tag in self._open and data.strip():
                self.text[tag].append(data.strip())


def test_customer_email_reads_as_a_service_notice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _flow(tmp_path, capsys)
    code, _ = flow("plan", "--plan", str(flow.plan))
    assert code == 0
    msg = _eml(tmp_path / "outbox/FFAPP-4458/announce/customer-EoE.eml")
    html = msg.get_body(("html",)).get_content()
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert "white-space" not in html and "<style" not in html
    page = _Structure()
    page.feed(html)
    assert page.fetches == []
    assert page.text["h1"] == ["Planned change to the HIE Secure Data Environment"]
    assert page.text["th"] == [
        "What we are changing",
        "When",
        "What you may notice",
        "Our reference",
    ]
    assert "Tue 8 Dec 2026 19:00 to 21:00 GMT" in page.text["td"]
    assert "FFAPP-4458" in page.text["td"]
    # the contact appears in the message and again in the footer
    assert page.text["a"].count("hie-sde-devops@fitfile.example") == 2
    # no empty paragraph gaps: every <p> holds text
    assert "<p" in html and '<p style="margin:0 0 14px 0"></p>' not in html


def test_invite_names_its_zone_and_an_independent_reader_agrees_on_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a summer window: 19:00 BST is 18:00 UTC
    flow = _flow(
        tmp_path,
        capsys,
        window={"start": "2027-06-08T18:00:00+00:00", "end": "2027-06-08T20:00:00+00:00"},
    )
    flow("plan", "--plan", str(flow.plan), now="2027-05-01T10:00:00+00:00")
    msg = _eml(tmp_path / "outbox/FFAPP-4458/announce/customer-EoE.eml")
    part = next(p for p in msg.iter_attachments() if p.get_content_type() == "text/calendar")
    ics = part.get_content()
    assert "DTSTART;TZID=Europe/London:20270608T190000" in ics
    assert "BEGIN:VTIMEZONE" in ics and "TZID:Europe/London" in ics
    parsed = vobject.readOne(ics)
    start = parsed.vevent.dtstart.value
    assert start.utcoffset() is not None
    assert start.astimezone(timezone.utc) == datetime(2027, 6, 8, 18, 0, tzinfo=timezone.utc)
    assert parsed.vevent.dtend.value.astimezone(timezone.utc).hour == 20


def _external(flow: Flow, tmp: Path, stage_dir: str) -> str:
    files = sorted((tmp / "outbox/FFAPP-4458" / stage_dir).glob("customer-EoE*.eml"))
    assert files, stage_dir
    return str(_eml(files[-1]).get_body(("plain",)).get_content())


def test_every_external_message_says_whom_to_contact_and_how(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _flow(tmp_path, capsys)
    flow("plan", "--plan", str(flow.plan))
    texts = {"announce": _external(flow, tmp_path, "announce")}
    # Every during stage once, in an order the lifecycle allows.
    order = (1, 2, 4, 6, 3, 5)
    for command, args in (EXTERNAL_STAGES[i] for i in order):
        code, out = flow(command, *args, now="2026-12-08T19:30:00+00:00")
        assert code == 0, flow.err
        texts[out["stage"]] = _external(flow, tmp_path, out["stage"])
    for stage, text in texts.items():
        assert "please contact the HIE SDE DevOps team at hie-sde-devops@fitfile.example" in text, (
            stage
        )
        assert "Our reference: FFAPP-4458" in text, stage
        assert ". ." not in text and ".." not in text.replace("...", ""), stage
    started = texts["apply_started"]
    assert "The planned work on the HIE Secure Data Environment has started." in started
    assert "reminder" not in started


def test_a_rolled_back_change_ends_with_its_own_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _flow(tmp_path, capsys)
    flow("plan", "--plan", str(flow.plan))
    flow("apply", "--status", "failed", now="2026-12-08T19:20:00+00:00")
    flow("rollback", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")
    code, out = flow("complete", now="2026-12-08T20:30:00+00:00")
    assert code == 0 and out["rolled_back"] is True
    text = _external(flow, tmp_path, "complete")
    assert "What we changed" not in text and "is complete" not in text
    assert "has been withdrawn" in text and "running as it was before" in text
    assert "What happens next" in text
    msg = _eml(sorted((tmp_path / "outbox/FFAPP-4458/complete").glob("customer-EoE*.eml"))[-1])
    assert str(msg["Subject"]).startswith("Withdrawn: the planned change")


def test_completion_names_who_checked_the_key_user_flows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _flow(tmp_path, capsys)
    flow("plan", "--plan", str(flow.plan))
    flow("apply", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")
    flow.env["GITLAB_USER_LOGIN"] = "ollie"
    code, out = flow("complete", now="2026-12-08T20:30:00+00:00")
    assert code == 0 and out["verified_by"] == "ollie"
    # who checked is for the team: customers never read an internal name
    assert "ollie" not in _external(flow, tmp_path, "complete")
    devops = (tmp_path / "outbox/FFAPP-4458/complete/slack-devops.json").read_text()
    assert "Key user flows checked by" in devops and "ollie" in devops
    # --verified-by wins over the job's user
    (tmp_path / "b").mkdir()
    other = _flow(tmp_path / "b", capsys)
    other("plan", "--plan", str(other.plan))
    other("apply", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")
    other.env["GITLAB_USER_LOGIN"] = "ci-bot"
    code, out = other("complete", "--verified-by", "Leon", now="2026-12-08T20:30:00+00:00")
    assert out["verified_by"] == "Leon"
    # nobody named: the notice goes, and the job says what is missing
    (tmp_path / "c").mkdir()
    third = _flow(tmp_path / "c", capsys)
    third("plan", "--plan", str(third.plan))
    third("apply", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")
    code, out = third("complete", now="2026-12-08T20:30:00+00:00")
    assert code == 0 and out["verified_by"] is None
    assert "nobody is named as having tested the key user flows" in third.err


def test_the_emergency_announcement_reads_right_to_each_reader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _flow(
        tmp_path, capsys, type="emergency_fix", justification="CVE-2026-0001 exploited in the wild"
    )
    code, out = flow("preview", "plan", "--plan", str(flow.plan))
    assert code == 0
    texts = [m["text"] for m in out["messages"] if m["audience"].startswith("customer:")]
    # no other time is offered for an emergency
    assert texts and all("does not suit you" not in t for t in texts)
    assert all("as soon as we know" in t for t in texts)
    # stakeholders are greeted by their name, customers as a team
    by = {m["audience"]: m for m in out["messages"]}
    assert by["stakeholders:critical"]["text"].startswith("Dear Critical stakeholders,\n")
    assert by["customer:EoE"]["text"].startswith("Dear East of England team,\n")
    # the internal heading says EMERGENCY once
    assert by["slack:#ops"]["slack"].splitlines()[0].startswith("*EMERGENCY: ")
    assert "EMERGENCY Emergency" not in by["slack:#ops"]["slack"]


def test_the_post_mortem_does_not_repeat_its_heading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _flow(tmp_path, capsys)
    flow("plan", "--plan", str(flow.plan))
    flow("apply", "--status", "failed", now="2026-12-08T19:20:00+00:00")
    issue = (tmp_path / "outbox/FFAPP-4458/postmortem-issue.md").read_text()
    assert issue.count("Post-mortem") == 1 + issue.count("Post-mortem owed")
    assert issue.startswith("# Post-mortem: FFAPP-4458")


def test_already_delivered_lines_show_local_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _flow(tmp_path, capsys)
    flow("plan", "--plan", str(flow.plan), now="2026-12-01T10:00:00+00:00")
    flow("plan", "--plan", str(flow.plan), now="2026-12-01T10:05:00+00:00")
    already = [line for line in flow.err.splitlines() if line.startswith("  already")]
    assert already and all("Tue 1 Dec 2026 10:00 GMT (not sent again)" in x for x in already)
    assert "+00:00" not in "\n".join(already)
