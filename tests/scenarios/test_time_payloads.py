"""Every time a payload writes is the instant meant, in winter (GMT), in summer (BST) and on the
days the clocks change (issue 27).

The properties draw a maintenance window, or a moment, on ordinary winter and summer days and
on the days the clocks change in London and in New York (the home of a customer whose policy
zone is America/New_York), write the window the ways a change record may (UTC, London offset,
London wall time with `zone`, New York wall time with `zone`), run the real commands against
HTTP fakes of Slack, Teams, the webhook, Jira, Statuspage and PagerDuty (email through the
outbox, which writes the message the SMTP channel sends), then read back every time each
payload states (tests/support/time_reading.py) and check it is an instant the flow meant.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import responses
import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from hie_notify.cli import main
from tests.support.builders import plan, rc, write
from tests.support.integration_fakes import (
    COMPONENT,
    JIRA_ENV,
    PAGE,
    PD_KEY,
    SP_KEY,
    JiraFake,
    PagerdutyFake,
    StatuspageFake,
    integration_policy,
)
from tests.support.slack_fake import TOKEN, FakeSlack
from tests.support.time_reading import adf_text, check_text, html_text, ics_events, iso

UTC = timezone.utc
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
CHANGE_ID = "FFAPP-4458"
TEAMS_URL = "https://prod-42.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=PLANTEDSIG123"
HOOK_URL = "https://status.example.org/hooks/hie?token=PLANTEDHOOKTOKEN"
DB = rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["storage_encrypted"]])

# Ordinary days, and the days the clocks change (London at 01:00 UTC; New York at 07:00 UTC in
# March and 06:00 UTC in November).
WINTER = (date(2026, 1, 13), date(2026, 11, 24), date(2026, 12, 8))
SUMMER = (date(2026, 6, 16), date(2026, 8, 4))
CHANGE_DAYS = (
    date(2026, 3, 29),
    date(2026, 10, 25),
    date(2027, 3, 28),
    date(2027, 10, 31),
    date(2026, 3, 8),
    date(2026, 11, 1),
    date(2026, 4, 1),  # not a change: a month that starts an hour before it does in UTC
)
FORMS = ("utc", "london offset", "london zone", "new york zone")


def _settings(examples: int) -> settings:
    """Each example runs several commands: few examples (the windows across a change are
    always tried, by @example), and no shrinking (the failing example is printed as found)."""
    return settings(
        max_examples=examples,
        deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def _q(quarters: int) -> timedelta:
    return timedelta(minutes=15 * quarters)


@st.composite
def moments(draw: st.DrawFn) -> datetime:
    """A quarter-hour in GMT, in BST, or within hours of a clock change."""
    day = draw(st.sampled_from((*WINTER, *SUMMER, *CHANGE_DAYS)))
    midnight = datetime.combine(day, time(0), UTC)
    if day in CHANGE_DAYS:  # from 21:00 UTC the evening before to 12:00 UTC
        return midnight + _q(draw(st.integers(-12, 48)))
    return midnight + _q(draw(st.integers(0, 95)))


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    form: str

    def record(self) -> dict[str, str]:
        """The change record's `window`, written in this window's form."""
        zone = {"london zone": LONDON, "new york zone": NEW_YORK}.get(self.form)
        if (
            zone is not None
            and _plain_wall_time(self.start, zone)
            and _plain_wall_time(self.end, zone)
        ):
            return {
                "start": self.start.astimezone(zone).replace(tzinfo=None).isoformat(),
                "end": self.end.astimezone(zone).replace(tzinfo=None).isoformat(),
                "zone": str(zone),
            }
        local = LONDON if self.form != "utc" else UTC
        return {
            "start": self.start.astimezone(local).isoformat(),
            "end": self.end.astimezone(local).isoformat(),
        }

    def __repr__(self) -> str:
        return (
            f"Window({self.start.astimezone(UTC):%Y-%m-%dT%H:%MZ} to "
            f"{self.end.astimezone(UTC):%Y-%m-%dT%H:%MZ}, {self.form})"
        )


def _plain_wall_time(when: datetime, zone: ZoneInfo) -> bool:
    """The wall time happens once (not skipped, not repeated): `zone:` can say it."""
    wall = when.astimezone(zone).replace(tzinfo=None)
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    return first.utcoffset() == second.utcoffset() == when.astimezone(zone).utcoffset()


@st.composite
def windows(draw: st.DrawFn) -> Window:
    start = draw(moments())
    return Window(start, start + _q(draw(st.integers(1, 20))), draw(st.sampled_from(FORMS)))


def _w(start: str, end: str, form: str) -> Window:
    return Window(iso(start), iso(end), form)


# The windows that cross a clock change, always tried.
STRADDLES = (
    _w("2026-03-29T00:30:00+00:00", "2026-03-29T02:00:00+00:00", "london zone"),  # GMT -> BST
    _w("2026-10-25T00:30:00+00:00", "2026-10-25T01:30:00+00:00", "london offset"),  # 01:30 twice
    _w("2026-10-25T01:15:00+00:00", "2026-10-25T02:00:00+00:00", "utc"),  # the second 01:15
    _w("2026-11-01T05:30:00+00:00", "2026-11-01T06:30:00+00:00", "new york zone"),  # 01:30 twice
    # Ending in the first hour after the clocks go forward (02:30 BST, 03:30 EDT).
    _w("2026-03-29T00:45:00+00:00", "2026-03-29T01:30:00+00:00", "london zone"),
    _w("2026-03-08T06:30:00+00:00", "2026-03-08T07:30:00+00:00", "new york zone"),
)


# -- the world the commands reach


@dataclass
class World:
    """One pipeline: the change record, its plan, ledger, outbox and register, and the fakes
    of every service a notice goes to."""

    root: Path
    slack: FakeSlack
    rsps: responses.RequestsMock
    jira: JiraFake = field(default_factory=JiraFake)
    page: StatuspageFake = field(default_factory=StatuspageFake)
    pagerduty: PagerdutyFake = field(default_factory=PagerdutyFake)
    teams: list[dict[str, Any]] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    err: str = ""

    def __post_init__(self) -> None:
        self.jira.add(CHANGE_ID)
        self.jira.register(self.rsps)
        self.page.register(self.rsps)
        self.pagerduty.register(self.rsps)
        self.rsps.add_callback("POST", TEAMS_URL, callback=self._keep(self.teams))
        self.rsps.add_callback("POST", HOOK_URL, callback=self._keep(self.hooks))
        self.policy = integration_policy(
            self.root,
            jira={"enabled": True},
            statuspage={"page_id": PAGE, "components": {"EoE": [COMPONENT]}},
            pagerduty={"source": "hie-sde"},
            channels={
                "internal": ["slack", "teams", "webhook", "email"],
                "customer": ["email", "webhook", "teams"],
                "stakeholder": ["email", "webhook"],
            },
            customers={
                "NYC": {
                    "name": "New York partner",
                    "time_zone": "America/New_York",
                    "contacts": [{"name": "NY ops", "email": "ops@ny.example.com"}],
                }
            },
        )
        self.plan = write(self.root / "plan.json", plan(DB))
        self.env = {
            **JIRA_ENV,
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_API_URL": self.slack.url,
            "STATUSPAGE_API_KEY": SP_KEY,
            "PAGERDUTY_ROUTING_KEY": PD_KEY,
            "TEAMS_WEBHOOK_URL": TEAMS_URL,
            "HIE_WEBHOOK_URL": HOOK_URL,
            "HIE_WEBHOOK_SECRET": "whsec-PLANTED-0001",
        }

    @staticmethod
    def _keep(into: list[dict[str, Any]]) -> Any:
        def reply(request: Any) -> tuple[int, dict[str, str], str]:
            into.append(json.loads(request.body))
            return 202, {}, ""

        return reply

    def change(self, window: Window) -> None:
        record = {
            "id": CHANGE_ID,
            "type": "planned_infra_update",
            "purpose": "Encrypt the database",
            "downtime": "30m",
            "rollback": "Restore the snapshot",
            "risk": "low",
            "monitoring": "Grafana dashboard and alerts",
            "approvers": ["Ollie"],
            "on_call": "Leon",
            "customers": ["EoE", "NYC"],
            "window": window.record(),
        }
        (self.root / "change.yaml").write_text(yaml.safe_dump(record))

    def __call__(self, now: datetime, *args: str, register: bool = False) -> Any:
        """`hie-notify --format json ... ARGS` at `now`: what it printed, parsed when JSON (exit 0
        asserted)."""
        base = [
            "--format",
            "json",
            "--now",
            now.astimezone(LONDON).isoformat(),  # as a London runner's clock would say it
            "--policy",
            str(self.policy),
            "--change",
            str(self.root / "change.yaml"),
            "--ledger",
            f"file:{self.root}/ledger.jsonl",
            "--outbox",
            str(self.root / "outbox"),
        ]
        if register:
            base += ["--register", f"sqlite:{self.root}/register.sqlite3"]
        if args[0] == "plan":
            args = (*args, "--plan", str(self.plan), "--terraform-report", str(self.root / "r"))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*base, *args], env=self.env)
        self.err = err.getvalue()
        assert code == 0, f"hie-notify {' '.join(args)} exited {code}:\n{self.err}"
        try:
            return json.loads(out.getvalue())
        except ValueError:  # a command told to write text or iCalendar
            return out.getvalue()

    def emails(self, stage: str) -> list[tuple[str, email.message.EmailMessage]]:
        folder = self.root / "outbox" / CHANGE_ID / stage
        return [
            (p.name, email.message_from_bytes(p.read_bytes(), policy=email.policy.default))
            for p in sorted(folder.glob("*.eml"))
        ]


@contextlib.contextmanager
def world(*, services: bool = True) -> Iterator[World]:
    """A new pipeline; without `services`, every notice goes to the outbox."""
    import tempfile

    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeSlack() as slack,
        responses.RequestsMock(assert_all_requests_are_fired=False) as rsps,
    ):
        w = World(Path(tmp), slack, rsps)
        if not services:
            w.env = {}
        yield w


# -- what each payload says


def check_slack(w: World, meant: list[datetime], also: list[datetime], *, required: bool) -> int:
    posts = [
        r.body
        for r in w.slack.state.requests
        if r.path.endswith(("/chat.postMessage", "/chat.update"))
    ]
    for body in posts:
        where = f"Slack {body.get('channel')} ({body.get('ts', 'new post')})"
        check_text(f"{where} text", body["text"], meant, also, required=False)
        blocks = "\n".join(
            b["text"]["text"] if "text" in b else "\n".join(e["text"] for e in b["elements"])
            for b in body.get("blocks") or []
        )
        check_text(f"{where} blocks", blocks, meant, also, required=required and "ts" not in body)
    return len(posts)


def check_teams(w: World, meant: list[datetime], also: list[datetime], *, required: bool) -> None:
    for doc in w.teams:
        card = doc["attachments"][0]["content"]
        text = "\n".join(block["text"] for block in card["body"])
        check_text("Teams card", text, meant, also, required=required)


def check_webhooks(
    w: World, meant: list[datetime], also: list[datetime], *, required: bool, window: Window
) -> None:
    for body in w.hooks:
        where = f"webhook {body['stage']} to {body['audience']['id']}"
        if body["window"] is not None:
            assert iso(body["window"]["start"]) == window.start, where
            assert iso(body["window"]["end"]) == window.end, where
        check_text(f"{where}: subject", body["subject"], meant, also, required=False)
        check_text(f"{where}: text", body["text"], meant, also, required=required)
        check_text(f"{where}: html", html_text(body["html"]), meant, also, required=required)


def check_emails(
    w: World,
    stage: str,
    meant: list[datetime],
    also: list[datetime],
    *,
    now: datetime,
    required: bool,
    window: Window,
    method: str = "REQUEST",
) -> int:
    mails = w.emails(stage)
    for name, mail in mails:
        where = f"email {stage}/{name}"
        assert parsedate_to_datetime(str(mail["Date"])) == now, f"{where}: Date"
        check_text(f"{where}: Subject", str(mail["Subject"]), meant, also, required=False)
        text = mail.get_body(("plain",))
        markup = mail.get_body(("html",))
        assert text is not None and markup is not None, where
        check_text(f"{where}: text part", text.get_content(), meant, also, required=required)
        check_text(
            f"{where}: HTML part", html_text(markup.get_content()), meant, also, required=required
        )
        invites = [p for p in mail.iter_attachments() if p.get_content_type() == "text/calendar"]
        if stage in ("announce", "cancelled"):
            assert len(invites) == 1, f"{where}: expected one calendar invite"
            [event] = ics_events(invites[0].get_content())
            assert (event.method, event.start, event.end) == (method, window.start, window.end), (
                f"{where}: the invite's window"
            )
            assert event.stamp == now.replace(microsecond=0), f"{where}: DTSTAMP"
            check_text(f"{where}: invite SUMMARY", event.summary, meant, also, required=False)
            check_text(f"{where}: invite DESCRIPTION", event.description, meant, also)
    return len(mails)


def check_jira(w: World, meant: list[datetime], also: list[datetime], *, required: bool) -> int:
    comments = w.jira.issues[CHANGE_ID].comments
    for comment in comments:
        text = adf_text(comment["body"])
        check_text(f"Jira comment {comment['id']}", text, meant, also, required=required)
    return len(comments)


def check_note(w: World, meant: list[datetime], also: list[datetime]) -> None:
    for note in sorted((w.root / "outbox" / CHANGE_ID).glob("merge-request-note*.md")):
        check_text(f"merge request note {note.name}", note.read_text(), meant, also)


# -- the properties


@given(window=windows(), ahead=st.integers(8, 40), into=st.integers(0, 20))
@example(window=STRADDLES[0], ahead=8, into=2)  # the apply starts at 02:00 BST, as they go forward
@example(window=STRADDLES[1], ahead=9, into=3)  # ... at 01:15 GMT, the second 01:15
@example(window=STRADDLES[2], ahead=10, into=0)
@example(window=STRADDLES[3], ahead=11, into=1)
@example(window=STRADDLES[4], ahead=12, into=2)
@example(window=STRADDLES[5], ahead=12, into=2)
@_settings(12)
def test_announcement_and_apply_write_the_window_and_the_moment_meant(
    window: Window, ahead: int, into: int
) -> None:
    announced = window.start - timedelta(days=ahead, minutes=15 * into)
    applying = min(window.start + _q(into), window.end)
    with world() as w:
        w.change(window)
        w(announced, "plan")
        meant = [window.start, window.end]
        also = [announced]

        # Statuspage: the maintenance is scheduled at the window's UTC instants.
        [create] = [b["incident"] for m, _, b in w.page.calls if m == "POST"]
        assert iso(create["scheduled_for"]) == window.start
        assert iso(create["scheduled_until"]) == window.end
        assert create["scheduled_for"].endswith("Z") and create["scheduled_until"].endswith("Z")
        check_text("Statuspage name", create["name"], meant, also, required=False)
        check_text("Statuspage body", create["body"], meant, also)

        assert check_slack(w, meant, also, required=True) == 3
        check_teams(w, meant, also, required=True)
        check_webhooks(w, meant, also, required=True, window=window)
        assert len(w.teams) == len(w.hooks) == 5  # three channels, two customers
        mails = check_emails(
            w, "announce", meant, also, now=announced, required=True, window=window
        )
        assert mails == 5
        assert check_jira(w, meant, also, required=True) == 1
        check_note(w, meant, also)

        # The apply starts: PagerDuty's change event is stamped with that moment, in UTC.
        w.slack.state.requests.clear()
        w.teams.clear()
        w.hooks.clear()
        w(applying, "apply", "--status", "started")
        also = [announced, applying]
        [event] = w.pagerduty.events
        assert iso(event["payload"]["timestamp"]) == applying
        assert event["payload"]["timestamp"].endswith("Z")
        check_text("PagerDuty summary", event["payload"]["summary"], meant, also, required=False)
        assert check_slack(w, meant, also, required=False) > 0
        check_teams(w, meant, also, required=False)
        check_webhooks(w, meant, also, required=False, window=window)
        check_emails(w, "apply_started", meant, also, now=applying, required=False, window=window)
        assert check_jira(w, meant, also, required=False) == 2
        check_note(w, meant, also)


@given(first=windows(), moved=windows(), ahead=st.integers(8, 40))
@example(first=STRADDLES[1], moved=STRADDLES[0], ahead=30)
@example(first=STRADDLES[4], moved=STRADDLES[3], ahead=30)
@_settings(8)
def test_a_moved_then_cancelled_window_is_written_as_the_instants_meant(
    first: Window, moved: Window, ahead: int
) -> None:
    if moved.start == first.start and moved.end == first.end:
        moved = Window(moved.start, moved.end + _q(1), moved.form)
    announced = min(first.start, moved.start) - timedelta(days=ahead)
    again = announced + timedelta(hours=1)
    cancelled = again + timedelta(hours=1)
    with world() as w:
        w.change(first)
        w(announced, "plan")
        w.change(moved)
        w.slack.state.requests.clear()
        w.teams.clear()
        w.hooks.clear()
        w(again, "plan")
        # The new window, and the one it moved from (a rescheduled announcement says both).
        meant, also = [moved.start, moved.end], [announced, again, first.start, first.end]
        # The same maintenance, moved (PATCH) to the new window's UTC instants.
        [patch] = [b["incident"] for m, _, b in w.page.calls if m == "PATCH"]
        assert [iso(patch["scheduled_for"]), iso(patch["scheduled_until"])] == meant
        check_text("Statuspage body (moved)", patch["body"], meant, also)
        [incident] = w.page.incidents.values()
        assert [iso(incident["scheduled_for"]), iso(incident["scheduled_until"])] == meant
        check_slack(w, meant, also, required=True)
        check_teams(w, meant, also, required=True)
        check_webhooks(w, meant, also, required=True, window=moved)
        # ".2.eml": the outbox keeps the first announcement's message beside the second.
        for name, mail in w.emails("announce"):
            invite = next(p for p in mail.iter_attachments())
            [event] = ics_events(invite.get_content())
            sent = moved if ".2." in name else first
            assert (event.start, event.end) == (sent.start, sent.end), name
            assert event.sequence == (1 if ".2." in name else 0), name
        check_jira(w, [], [first.start, first.end, *meant, *also], required=False)

        w.teams.clear()
        w.hooks.clear()
        w(cancelled, "cancel", "--detail", "Postponed")
        also = [announced, again, cancelled]
        check_teams(w, meant, also, required=False)
        check_webhooks(w, meant, also, required=False, window=moved)
        mails = check_emails(
            w,
            "cancelled",
            meant,
            also,
            now=cancelled,
            required=False,
            window=moved,
            method="CANCEL",
        )
        assert mails == 5
        check_note(w, [], [first.start, first.end, *meant, *also])


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


@given(
    window=windows(), ahead=st.integers(8, 40), started=st.integers(0, 6), took=st.integers(1, 8)
)
@example(window=STRADDLES[0], ahead=20, started=1, took=4)  # 00:45 GMT to 02:45 BST: 60 minutes
@example(window=STRADDLES[1], ahead=20, started=1, took=3)  # 01:45 BST to 01:30 GMT: 45 minutes
@example(
    window=_w("2026-03-31T22:30:00+00:00", "2026-04-01T00:00:00+00:00", "utc"),
    ahead=9,
    started=4,
    took=1,
)  # 00:30 to 00:45 BST on 1 April: April's downtime
@_settings(6)
def test_the_register_feed_and_the_report_write_the_instants_meant(
    window: Window, ahead: int, started: int, took: int
) -> None:
    announced = window.start - timedelta(days=ahead)
    apply_at = window.start + _q(started)
    done_at = apply_at + _q(took)
    completed = done_at + timedelta(minutes=5)
    later = completed + timedelta(days=2)
    with world(services=False) as w:
        w.change(window)
        w(announced, "plan", register=True)
        w(apply_at, "apply", "--status", "started", register=True)
        w(done_at, "apply", "--status", "succeeded", register=True)
        w(completed, "complete", "--verified-by", "Ollie", register=True)
        meant = [window.start, window.end]
        day = window.start.astimezone(LONDON).date()
        span = ["--from", str(day - timedelta(days=1)), "--to", str(day + timedelta(days=1))]

        # The calendar: its JSON, its iCalendar feed and its text.
        data = w(later, "calendar", *span, "--format", "json", register=True)
        [change] = data["changes"]
        assert (iso(change["window_start"]), iso(change["window_end"])) == (
            window.start,
            window.end,
        )
        feed = w.root / "changes.ics"
        w(later, "calendar", *span, "--format", "ics", "--output", str(feed), register=True)
        [event] = [e for e in ics_events(feed.read_text()) if e.uid.startswith("change-")]
        assert (event.start, event.end) == (window.start, window.end)
        assert event.stamp == later
        text = w.root / "calendar.txt"
        w(later, "calendar", *span, "--format", "text", "--output", str(text), register=True)
        lines = [line for line in text.read_text().splitlines() if CHANGE_ID in line]
        check_text("calendar text", "\n".join(lines), meant)

        # The compliance report: JSON, CSV and HTML.
        report = w.root / "report.json"
        w(later, "report", *span, "--format", "json", "--output", str(report), register=True)
        data = json.loads(report.read_text())
        [row] = data["tables"]["changes"]
        assert (iso(row["window_start"]), iso(row["window_end"])) == (window.start, window.end)
        # Downtime is real elapsed time, from the apply's start to its success.
        assert row["actual_downtime_minutes"] == (done_at - apply_at).total_seconds() / 60
        notices = data["tables"]["notices"]
        assert {iso(n["given_at"]) for n in notices} == {announced}
        for n in notices:
            if n["unit"] == "hours":  # elapsed hours from the notice to the window
                assert n["given"] == _hours(window.start - announced), n
        # Each month's downtime budget is 1% of its real length in London (743 hours in March,
        # 745 in October), and the downtime falls in the London month(s) it happened in.
        for d in data["tables"]["downtime"]:
            assert d["budget_minutes"] == round(_month_minutes(d["month"]) / 100, 2), d
        for name in ("EoE", "NYC"):
            rows = [d for d in data["tables"]["downtime"] if d["customer"] == name]
            used = {d["month"]: d["actual_minutes"] for d in rows if d["actual_minutes"]}
            assert used == _minutes_by_month(apply_at, done_at), name
            declared = {d["month"]: d["declared_minutes"] for d in rows if d["declared_minutes"]}
            assert declared == {f"{window.start.astimezone(LONDON):%Y-%m}": 30.0}, name
        [pm] = data["tables"]["postmortems"]
        assert iso(pm["opened_at"]) == completed
        csv_path = w.root / "report.csv"
        w(later, "report", *span, "--format", "csv", "--output", str(csv_path), register=True)
        csv_text = csv_path.read_text()
        for when in (window.start, window.end, announced, completed):
            assert when.astimezone(UTC).isoformat() in csv_text
        page = w.root / "report.html"
        w(later, "report", *span, "--format", "html", "--output", str(page), register=True)
        shown = html_text(page.read_text())
        check_text(
            "report HTML",
            shown,
            meant,
            [announced, apply_at, done_at, completed, later, *_range_instants(data)],
            required=True,
        )


def _month_minutes(key: str) -> float:
    year, month = map(int, key.split("-"))
    first = datetime(year, month, 1, tzinfo=LONDON).astimezone(UTC)
    after = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=LONDON).astimezone(UTC)
    return (after - first).total_seconds() / 60


def _minutes_by_month(start: datetime, end: datetime) -> dict[str, float]:
    """Real minutes of [start, end) in each London calendar month."""
    out: dict[str, float] = {}
    while start < end:
        local = start.astimezone(LONDON)
        month = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=LONDON)
        cut = min(end, month.astimezone(UTC))
        out[f"{local:%Y-%m}"] = (cut - start).total_seconds() / 60
        start = cut
    return out


def _range_instants(data: dict[str, Any]) -> list[datetime]:
    out = [iso(data["from"]), iso(data["to"]), iso(data["generated_at"])]
    for pm in data["tables"]["postmortems"]:
        out += [iso(v) for k, v in pm.items() if k in ("ended_at", "due", "closed_at") and v]
    return out


# -- gate and earliest: the instants a notice allows


def _business_days_after(notice: datetime, n: int) -> datetime:
    """DESIGN.md's rule, written out again: N business days after a notice at London wall time
    T on a business day is the N-th following business day at T; from a weekend or bank
    holiday, counted from 00:00 of the next business day."""
    import holidays

    bank = holidays.country_holidays("GB", subdiv="ENG", years=range(2025, 2029))

    def business(d: date) -> bool:
        return d.weekday() < 5 and d not in bank

    local = notice.astimezone(LONDON)
    day, at = local.date(), local.time().replace(tzinfo=None)
    if not business(day):
        day += timedelta(days=1)
        while not business(day):
            day += timedelta(days=1)
        at = time(0)
    for _ in range(n):
        day += timedelta(days=1)
        while not business(day):
            day += timedelta(days=1)
    wall = datetime.combine(day, at)
    # A wall time the spring change skips is read with the offset before the gap.
    return wall.replace(tzinfo=LONDON).astimezone(UTC)


def _allowed(notice: datetime, period: str) -> datetime:
    """The earliest start a notice at `notice` allows: `24h` is real elapsed time, `5bd`
    business days."""
    if period.endswith("bd"):
        return _business_days_after(notice, int(period[:-2]))
    assert period.endswith("h"), period
    return (notice + timedelta(hours=int(period[:-1]))).astimezone(UTC)


@given(now=moments())
@example(now=iso("2026-03-28T01:30:00+00:00"))  # 24 h later it is 02:30 BST, not 01:30
@example(now=iso("2026-10-24T00:30:00+00:00"))  # 24 h later it is 00:30 GMT, not 01:30
@example(now=iso("2026-03-26T01:30:00+00:00"))  # business days that cross the spring change
@example(now=iso("2026-10-23T23:30:00+00:00"))  # ... the autumn one, from 00:30 BST
@_settings(12)
def test_earliest_and_the_gate_write_the_start_the_notice_allows(now: datetime) -> None:
    with world(services=False) as w:
        w.change(Window(now + timedelta(days=30), now + timedelta(days=30, hours=1), "utc"))
        data = w(now, "earliest", "--plan", str(w.plan))
        assert iso(data["now"]) == now
        rows = data["audiences"]
        assert {r["audience"] for r in rows} >= {"slack:#devops", "customer:EoE", "customer:NYC"}
        for r in rows:
            assert iso(r["earliest_start"]) == _allowed(now, r["minimum"]), r
            assert iso(r["recommended_start"]) == _allowed(now, r["recommended"]), r
        earliest = max(iso(r["earliest_start"]) for r in rows)
        recommended = max(iso(r["recommended_start"]) for r in rows)
        assert iso(data["earliest_start"]) == earliest
        assert iso(data["recommended_start"]) == recommended
        for key in ("earliest_start_local", "recommended_start_local"):
            local = iso(data[key])  # the same instant, written at London's offset then
            assert local == iso(data[key.removesuffix("_local")]), key
            assert local.utcoffset() == local.astimezone(LONDON).utcoffset(), key
        text = _text(w, now, "earliest", "--plan", str(w.plan))
        check_text("earliest text", "\n".join(text.splitlines()[:3]), [now, earliest, recommended])
        check_text("earliest text, per audience", text, [], [now, *_all_rows(rows)])

        # Told now of a window that starts an hour before that: the gate blocks, and names
        # the same earliest start.
        early = Window(
            earliest - timedelta(hours=1), earliest + timedelta(hours=2), "london offset"
        )
        w.change(early)
        w(now, "plan")
        code, decision = _gate(w, earliest - timedelta(minutes=59))
        assert code == 1, decision["reasons"]
        required = [
            r for r in decision["required"] if r["audience"] in {a["audience"] for a in rows}
        ]
        for r in required:
            assert iso(r["given_at"]) == now, r
            assert iso(r["earliest_start"]) == _allowed(now, r["minimum"]), r
        assert iso(decision["earliest_start"]) == earliest
        local = iso(decision["earliest_start_local"])
        assert local == earliest and local.utcoffset() == local.astimezone(LONDON).utcoffset()
        check_text(
            "gate reasons",
            "\n".join(decision["reasons"]),
            [earliest],
            [now, early.start, early.end, *_all_rows(required)],
        )
        shown = _text(w, earliest - timedelta(minutes=59), "gate", "--plan", str(w.plan))
        check_text(
            "gate text",
            shown,
            [earliest],
            [now, early.start, early.end, *_all_rows(decision["required"])],
        )

        # The window moved to start at that instant, inside the one announced: allowed.
        w.change(Window(earliest, earliest + timedelta(hours=2), "london zone"))
        code, decision = _gate(w, earliest + timedelta(minutes=1))
        assert code == 0, decision["reasons"]


def _gate(w: World, at: datetime) -> tuple[int, dict[str, Any]]:
    out = w.root / "gate.json"
    code = _run(w, at, ["gate", "--plan", str(w.plan)], out)
    return code, json.loads(out.read_text())


def _all_rows(rows: list[dict[str, Any]]) -> list[datetime]:
    return [iso(r[k]) for r in rows for k in ("earliest_start", "recommended_start") if r.get(k)]


def _run(w: World, now: datetime, args: list[str], out: Path) -> int:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
        code = main(
            [
                "--format",
                "json",
                "--now",
                now.astimezone(LONDON).isoformat(),
                "--policy",
                str(w.policy),
                "--change",
                str(w.root / "change.yaml"),
                "--ledger",
                f"file:{w.root}/ledger.jsonl",
                "--outbox",
                str(w.root / "outbox"),
                *args,
            ],
            env=w.env,
        )
    out.write_text(buffer.getvalue())
    return code


def _text(w: World, now: datetime, *args: str) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        main(
            [
                "--now",
                now.astimezone(LONDON).isoformat(),
                "--policy",
                str(w.policy),
                "--change",
                str(w.root / "change.yaml"),
                "--ledger",
                f"file:{w.root}/ledger.jsonl",
                *args,
            ],
            env=w.env,
        )
    return re.sub(r"\x1b\[[0-9;]*m", "", buffer.getvalue())


@pytest.mark.parametrize(
    ("text", "instants"),
    [
        ("When: Monday 15 June 2026, 03:00 to 04:30 EDT", ["07:00", "08:30"]),
        ("Mon 15 Jun 2026 08:00 BST to 09:30 BST", ["07:00", "08:30"]),
        ("15 Jun 2026 08:00 UTC+01:00 to 15 Jun 2026 09:30 UTC+01:00", ["07:00", "08:30"]),
        ("at 2026-06-15T07:00:00+00:00 and 2026-06-15T08:30Z", ["07:00", "08:30"]),
        ("Mon 15 Jun 2026 08:00 +01:00, until 09:30 +01:00", ["07:00", "08:30"]),
    ],
)
def test_the_reader_takes_each_time_with_the_zone_it_names(text: str, instants: list[str]) -> None:
    from tests.support.time_reading import read_times

    said = read_times(text, iso("2026-06-15T00:00:00+00:00"))
    assert [f"{i.astimezone(UTC):%H:%M}" for i in said.instants] == instants
    assert said.unzoned == []


def test_the_reader_refuses_what_a_person_would_misread() -> None:
    start, end = iso("2026-03-29T00:30:00+00:00"), iso("2026-03-29T02:00:00+00:00")
    with pytest.raises(AssertionError, match="states 2026-03-28 23:30Z"):
        check_text("x", "Sunday 29 March 2026, 00:30 to 03:00 BST", [start, end])
    with pytest.raises(AssertionError, match="a time with no zone"):
        check_text("x", "Sunday 29 March 2026, 00:30 GMT to 03:00", [start, end])
    with pytest.raises(AssertionError, match="does not state 2026-03-29 02:00Z"):
        check_text("x", "Sunday 29 March 2026 00:30 GMT", [start, end])
    check_text("x", "Sunday 29 March 2026 00:30 GMT to 03:00 BST", [start, end])
