"""A week of `hie-notify remind` (hourly, `--now` stepping through 21-27 December 2026) over both
register backends: three overlapping changes (two touch the same customer), a Christmas deploy
freeze, the bank holidays, an overrun, a cancellation, a moved window, and the job down for more
than a day. Every notice is asserted, none is sent twice, the catch-up sends only the latest
reminder due; then the calendar and its feed show the week as it went."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import icalendar
import pytest
import responses

from tests.support.builders import rc
from tests.support.cli_flow import CHANGE, Flow
from tests.support.register_fake import ENV, RegisterFake

UTC = timezone.utc
NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])
INTERNAL = ["slack:#devops", "slack:#infrastructure", "slack:#product"]
CUSTOMERS = ["customer:CUH", "customer:EoE", "customer:MKUH", "customer:NNUH"]
WEEK_START = datetime(2026, 12, 21, 0, 0, tzinfo=UTC)  # Monday; GMT, so UTC is local time
DOWN = (datetime(2026, 12, 21, 13, tzinfo=UTC), datetime(2026, 12, 22, 18, tzinfo=UTC))


def iso(when: datetime) -> str:
    return when.isoformat()


def window(day: int, start: str, end: str) -> dict[str, str]:
    return {
        "start": f"2026-12-{day:02d}T{start}:00+00:00",
        "end": f"2026-12-{day:02d}T{end}:00+00:00",
    }


CHANGES: dict[str, dict[str, Any]] = {
    "A": {"id": "FFAPP-101", "customers": ["EoE"], "window": window(22, "19:00", "21:00")},
    "B": {"id": "FFAPP-102", "customers": ["EoE"], "window": window(22, "20:00", "22:00")},
    "C": {"id": "FFAPP-103", "customers": ["CUH"], "window": window(22, "20:30", "21:30")},
    "D": {
        "id": "FFAPP-104",
        "type": "scheduled_maintenance",
        "customers": [],
        "window": window(27, "19:00", "21:00"),  # inside the Christmas freeze: moved below
    },
}


@pytest.fixture(params=["sqlite", "gitlab"])
def week(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[tuple[Flow, RegisterFake, str]]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = RegisterFake(rsps).install()
        fake.add_freeze("0 0 24 12 *", "0 0 29 12 *", "Europe/London")  # Christmas freeze
        flow = Flow(tmp_path, capsys, NODES, env=dict(ENV))
        register = f"sqlite:{tmp_path}/register.sqlite3" if request.param == "sqlite" else "gitlab"
        yield flow, fake, register


def _as(flow: Flow, name: str, **extra: Any) -> None:
    flow.fields = {**CHANGE, **CHANGES[name], **extra}
    flow.write_change()


def test_a_week_of_reminders(week: tuple[Flow, RegisterFake, str]) -> None:
    flow, fake, register = week

    def run(*args: str, now: datetime) -> tuple[int, Any]:
        return flow("--register", register, *args, now=iso(now))

    announced = datetime(2026, 12, 14, 10, tzinfo=UTC)
    notes = {}
    for name in "ABCD":
        _as(flow, name)
        code, out = run("plan", "--plan", str(flow.plan), now=announced)
        assert code == 0, flow.err
        notes[name] = [n for n in out["notes"] if "conflict" in n]
    assert notes["B"] == [
        "WARNING: conflict: FFAPP-102 and FFAPP-101: windows overlap, both touch customer EoE"
    ]
    assert notes["C"] == []  # overlaps A and B in time, but touches CUH only
    assert notes["D"] == [
        "WARNING: conflict: FFAPP-104 and GitLab deploy freeze 1 (0 0 24 12 * to 0 0 29 12 * "
        "Europe/London): the window is inside a deploy freeze"
    ]
    # D moves out of the freeze (announced again for the new window), before the week starts.
    _as(flow, "D", window=window(30, "19:00", "21:00"))
    code, out = run("plan", "--plan", str(flow.plan), now=datetime(2026, 12, 20, 12, tzinfo=UTC))
    assert code == 0 and not [n for n in out["notes"] if "conflict" in n]

    events = {
        datetime(2026, 12, 21, 11, 30, tzinfo=UTC): ("C", ["cancel"]),
        datetime(2026, 12, 22, 19, 10, tzinfo=UTC): ("A", ["apply", "--status", "started"]),
        datetime(2026, 12, 22, 20, 30, tzinfo=UTC): ("A", ["apply", "--status", "succeeded"]),
        datetime(2026, 12, 22, 20, 40, tzinfo=UTC): ("A", ["complete"]),
    }
    sent: list[tuple[str, str, str, str, str]] = []
    calls_per_run: list[tuple[int, int]] = []
    now = WEEK_START
    while now < WEEK_START + timedelta(days=7):
        for at, (name, args) in sorted(events.items()):
            if now - timedelta(hours=1) < at <= now:
                _as(flow, name)
                assert run(*args, now=at)[0] == 0, flow.err
        if not DOWN[0] <= now <= DOWN[1]:
            fake.rsps.calls.reset()
            code, out = run("remind", now=now)
            assert code == 0, flow.err
            calls_per_run.append((len(fake.rsps.calls), len(out["sent"])))
            sent += [
                (now.strftime("%a %H:%M"), r["change"], r["stage"], r["tag"], r["audience"])
                for r in out["sent"]
            ]
            # The same hour again (a retried job): nothing more.
            assert flow("--register", register, "remind", now=iso(now))[1]["sent"] == []
        now += timedelta(hours=1)

    def at(when: str, change: str, stage: str, tag: str, audiences: list[str]) -> list[Any]:
        return [(when, change, stage, tag, a) for a in audiences]

    expected = [
        # Back after the outage at 19:00 on Tuesday: A's window is open (no reminder is owed
        # any more); B gets only its 1-hour reminder, not the 24-hour one it missed.
        *at(
            "Tue 19:00",
            "FFAPP-101",
            "window_opens",
            "window_opens@2026-12-22T19:00:00+00:00",
            INTERNAL,
        ),
        *at(
            "Tue 19:00", "FFAPP-102", "reminder", "reminder 60m@2026-12-22T20:00:00+00:00", INTERNAL
        ),
        # A is under way from 19:10 and done at 20:40: nothing more for it. B's window opens.
        *at(
            "Tue 20:00",
            "FFAPP-102",
            "window_opens",
            "window_opens@2026-12-22T20:00:00+00:00",
            INTERNAL,
        ),
        # B's window ends with nothing recorded: the overrun, to the lead's channels only (the
        # work was never recorded as started: nothing overran that EoE would see).
        *at(
            "Tue 22:00",
            "FFAPP-102",
            "overrun",
            "overrun@2026-12-22T22:00:00+00:00",
            INTERNAL,
        ),
        # D (scheduled maintenance, announced for Wednesday 30th on Sunday 20th): the internal
        # channels' weekly reminder (internal_cadence), a week before, with the customers'.
        *at(
            "Wed 19:00",
            "FFAPP-104",
            "reminder",
            "reminder week 1@2026-12-30T19:00:00+00:00",
            INTERNAL,
        ),
        # D (moved to Wednesday 30th): every customer's weekly reminder, a week before.
        *at(
            "Wed 19:00",
            "FFAPP-104",
            "reminder",
            "reminder 10080m@2026-12-30T19:00:00+00:00",
            CUSTOMERS,
        ),
    ]
    assert sorted(sent) == sorted(expected)
    assert len(set(sent)) == len(sent)  # nothing twice
    # C was cancelled before anything was owed: it never appears.
    assert not [s for s in sent if s[1] == "FFAPP-103"]
    if register == "gitlab":
        # Every run: who am I, the open changes near now (a page per month the range touches:
        # a week back to a quarter ahead, for the weekly cadence of scheduled maintenance, at
        # most five; and one of those written before the month labels), the changes that
        # ended lately (overdue post-mortems: the same, three at most), the notes of each change
        # that may owe something (at most three here); then, per delivery, the issue's record
        # and a note. Bounded by what is due, never by the size of the register.
        assert all(calls <= 13 + 2 * sent for calls, sent in calls_per_run), calls_per_run
        assert max(calls for calls, sent in calls_per_run if not sent) <= 13
        lists = [
            c.request.url
            for c in fake.rsps.calls
            if c.request.url.split("?")[0].endswith("/issues")
        ]
        assert all("per_page=100" in u for u in lists)

    code, cal = run("calendar", "--from", "2026-12-21", "--to", "2026-12-31", now=now)
    assert code == 0
    assert [(c["id"], c["status"], c["sequence"]) for c in cal["changes"]] == [
        ("FFAPP-101", "completed", 0),
        ("FFAPP-102", "announced", 0),
        ("FFAPP-103", "cancelled", 1),
        ("FFAPP-104", "rescheduled", 1),  # announced again for a moved window
    ]
    assert cal["changes"][3]["window_start"] == "2026-12-30T19:00:00+00:00"
    assert [h["date"] for h in cal["holidays"]] == ["2026-12-25", "2026-12-26", "2026-12-28"]
    assert [(f["start"], f["end"]) for f in cal["freezes"]] == [
        ("2026-12-24T00:00:00+00:00", "2026-12-29T00:00:00+00:00")
    ]
    assert [(c["change"], c["other"]) for c in cal["conflicts"]] == [("FFAPP-101", "FFAPP-102")]
    ics = flow.tmp / "week.ics"
    code, _ = run(
        "calendar",
        "--from",
        "2026-12-21",
        "--to",
        "2026-12-31",
        "--format",
        "ics",
        "--output",
        str(ics),
        now=now,
    )
    events_ics = {
        str(e["uid"]): e for e in icalendar.Calendar.from_ical(ics.read_text()).walk("VEVENT")
    }
    assert str(events_ics["change-FFAPP-103@hie-notify"]["status"]) == "CANCELLED"
    assert events_ics["change-FFAPP-104@hie-notify"]["sequence"] == 1
    assert "holiday-20261225@hie-notify" in events_ics
    assert "freeze-20261224T000000Z@hie-notify" in events_ics


@pytest.mark.parametrize("labelled", [False, True], ids=["written-before-month-labels", "now"])
def test_remind_on_2000_changes_reads_only_what_may_be_due(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], labelled: bool
) -> None:
    """2,000 registered changes, 20 still open, two of them within a week of their window: the
    open changes of the weeks around now (by their months' labels, and those written before
    the labels), and the notes of those two; nothing per closed change, nor per open change
    whose window is weeks away."""
    from hie_notify.register.gitlab import BY_MONTH, LABEL, encode_record, months
    from hie_notify.register.model import Registered

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = RegisterFake(rsps).install()
        now = datetime(2026, 12, 21, 9, tzinfo=UTC)
        for i in range(2000):
            is_open = i >= 1980
            start = (
                now + timedelta(days=3 * (i - 1980) + 2)
                if is_open
                else now - timedelta(hours=12 * (2000 - i))
            )
            record = Registered(
                change_id=f"FFAPP-{i + 1}",
                status="announced" if is_open else "completed",
                change_type="planned_infra_update",
                purpose="x",
                window_start=start,
                window_end=start + timedelta(hours=2),
                change={"id": f"FFAPP-{i + 1}", "purpose": "x"},
            )
            iid = fake.add_issue(
                f"[FFAPP-{i + 1}] x",
                encode_record(record, []),
                {"id": 901},
                labels=[LABEL, BY_MONTH, *months(start, start + timedelta(hours=2))]
                if labelled
                else [LABEL],
                due_date=start.date().isoformat(),
            )
            if not is_open:
                fake.issues[iid]["state"] = "closed"
        flow = Flow(tmp_path, capsys, NODES, env=dict(ENV))
        fake.rsps.calls.reset()
        code, out = flow("--register", "gitlab", "remind", now=iso(now))
        urls = [c.request.url for c in fake.rsps.calls]
    assert code == 0 and out["checked"] == 2 and out["sent"] == []
    lists = [unquote(u) for u in urls if u.split("?")[0].endswith("/issues")]
    notes = [u for u in urls if "/notes" in u]
    assert all("per_page=100" in u for u in lists)
    # The open changes whose windows are near (a week back for overruns; ahead, the quarter in
    # which the default policy's weekly cadence for scheduled maintenance may fall due): the
    # months from December to March, and those written before the month labels (newest due
    # date first, stopping past the range); 18 open changes weeks away, of a type with no
    # cadence, are not read further.
    for i, month in enumerate(("2026-12", "2027-01", "2027-02", "2027-03")):
        assert f"hie-notify-month:{month}&state=opened" in lists[i]
    assert "state=opened&order_by=due_date&sort=desc" in lists[4]
    assert "not[labels]=hie-notify-by-month" in lists[4]
    # The changes that ended lately, for overdue post-mortems: November's and December's, and
    # the unlabelled ones; none of these owes a post-mortem, so no notes are read for them.
    assert ["month:2026-11" in lists[5], "month:2026-12" in lists[6]] == [True, True]
    assert "order_by=due_date" in lists[7] and "sort=desc" in lists[7]
    assert len(lists) == 8
    assert len(notes) == 2  # FFAPP-1981 (in 2 days) and FFAPP-1982 (in 5 days)
    assert len(urls) == 11  # and who am I
    # Never announced (made up for the count): skipped, and said so.
    assert [s.split(":")[0] for s in out["skipped"]] == ["FFAPP-1981", "FFAPP-1982"]
