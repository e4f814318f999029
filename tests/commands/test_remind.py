"""`hie-notify remind` edge cases: no register, a dry run, a customer's reminders, a change
announced too late for a reminder."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from hie_notify.durations import NoticePeriod
from hie_notify.records import Audience
from hie_notify.register import reminders
from hie_notify.register.model import Registered
from tests.support.builders import rc
from tests.support.cli_flow import Flow
from tests.support.register_records import at, entry, record

NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])
ZERO = NoticePeriod("elapsed")


def test_remind_without_a_register_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, NODES)
    code, _ = flow("--register", "none", "remind")
    assert code == 2 and "remind needs the change register: give --register" in flow.err


def test_a_dry_run_sends_and_records_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, NODES)
    flow("plan", "--plan", str(flow.plan))
    code, out = flow("--dry-run", "remind", now="2026-12-07T19:00:00+00:00")
    assert code == 0 and {r["audience"] for r in out["sent"]} >= {"slack:#devops"}
    assert flow.outbox("reminder") == []
    code, out = flow("remind", now="2026-12-07T19:00:00+00:00")
    assert code == 0 and len(out["sent"]) == 3 and len(flow.outbox("reminder")) == 3


def _audience(kind: str = "internal") -> Audience:
    return Audience(
        "slack:#devops",
        kind,
        "#devops",
        "Europe/London",
        frozenset({"pre_deployment"}),
        ZERO,
        ZERO,
        (),
    )


def _told(rec: Registered, when_hours_before: int) -> Registered:
    told = entry(rec.change_id)
    assert rec.window_start is not None
    at_time = rec.window_start - timedelta(hours=when_hours_before)
    from dataclasses import replace

    return replace(rec, entries=(replace(told, audience="slack:#devops", delivered_at=at_time),))


OFFSETS = {"internal": [timedelta(hours=24), timedelta(hours=1)]}


def test_no_reminder_older_than_the_announcement() -> None:
    rec = _told(record(day=8), when_hours_before=5)  # told at 14:00 for 19:00
    assert reminders.owed(rec, [_audience()], OFFSETS, at(8, 10)) == []
    assert reminders.owed(rec, [_audience()], OFFSETS, at(8, 17)) == []
    (due,) = reminders.owed(rec, [_audience()], OFFSETS, at(8, 18))
    assert due.offset == timedelta(hours=1)


def test_catch_up_sends_the_latest_and_never_an_older_one_after_it() -> None:
    rec = _told(record(day=8), when_hours_before=72)
    (due,) = reminders.owed(
        rec,
        [_audience()],
        OFFSETS,
        at(
            8,
            18,
        )
        + timedelta(minutes=30),
    )
    assert due.offset == timedelta(hours=1)  # the 24-hour one was missed: not sent late


def test_nothing_for_an_ended_or_unscheduled_change() -> None:
    from dataclasses import replace

    done = replace(_told(record(day=8), 72), status="completed")
    assert reminders.owed(done, [_audience()], OFFSETS, at(8, 18)) == []
    unscheduled = replace(done, status="announced", window_start=None, window_end=None)
    assert reminders.owed(unscheduled, [_audience()], OFFSETS, at(8, 18)) == []
    overrun = replace(_told(record(day=8), 72), status="in progress")
    (due,) = reminders.owed(overrun, [_audience()], OFFSETS, at(8, 22))
    assert due.stage == "overrun"


def test_describe() -> None:
    assert reminders.describe("reminder 1440m@x") == "reminder, 1 day before the window"
    assert reminders.describe("reminder 60m@x") == "reminder, 1 hour before the window"
    assert reminders.describe("overrun@x") == "overrun"


def test_a_reminder_says_the_time_left_and_none_is_older_than_the_news_of_the_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The late move: announced on 23 Dec for 7 Jan, moved on 4 Jan to 9 Jan 08:00.
    from tests.support.paths import EXAMPLES

    flow = Flow(tmp_path, capsys, NODES, policy=EXAMPLES / "policy.yaml")
    flow.write_change(type="scheduled_maintenance")
    flow.window("2027-01-07T08:00:00+00:00", "2027-01-07T10:00:00+00:00")
    assert flow("plan", "--plan", str(flow.plan), now="2026-12-23T10:00:00+00:00")[0] == 0
    flow.window("2027-01-09T08:00:00+00:00", "2027-01-09T10:00:00+00:00")
    assert flow("plan", "--plan", str(flow.plan), now="2027-01-04T10:05:00+00:00")[0] == 0
    # the 7-day reminder's time had passed when customers heard of this window: none
    code, out = flow("remind", now="2027-01-04T11:00:00+00:00")
    assert code == 0 and out["sent"] == [], out["sent"]
    assert flow.outbox("reminder") == []
    # the 1-day reminder, sent by a job that runs 90 minutes after its time: what is left
    code, out = flow("remind", now="2027-01-08T09:30:00+00:00")
    assert code == 0 and {r["audience"] for r in out["sent"]} >= {"customer:EoE"}
    mail = next((tmp_path / "outbox/FFAPP-4458/reminder").glob("customer-EoE*.eml")).read_text()
    assert "starts in 22 hours and 30 minutes" in mail and "in 1 day" not in mail
    assert "in 7 days" not in mail


def test_time_left() -> None:
    assert reminders.time_left(timedelta(hours=2)) == "in 2 hours"
    assert reminders.time_left(timedelta(days=4, hours=21, minutes=55)) == "in 4 days and 21 hours"
    assert reminders.time_left(timedelta(hours=1, minutes=55)) == "in 1 hour and 55 minutes"
    assert reminders.time_left(timedelta(minutes=45, seconds=59)) == "in 45 minutes"
    assert reminders.time_left(timedelta(days=1, minutes=5)) == "in 1 day"
    assert reminders.time_left(timedelta(seconds=-5)) == "now"


def test_only_the_news_of_the_current_window_counts() -> None:
    from dataclasses import replace

    rec = record(day=8)  # 8 Dec 19:00; told of 5 Dec 19:00 three days before, moved on 8 Dec
    assert rec.window_start is not None and rec.window_end is not None
    old = replace(
        entry(rec.change_id),
        audience="slack:#devops",
        delivered_at=at(2, 10),
        window_start=at(5).isoformat(),
        window_end=at(5, 21).isoformat(),
    )
    moved = replace(
        old,
        delivered_at=at(8, 10),
        window_start=rec.window_start.isoformat(),
        window_end=rec.window_end.isoformat(),
        idempotency_key="moved",
    )
    rec = replace(rec, entries=(old, moved))
    # the 24-hour reminder's time (7 Dec 19:00) passed before it heard of this window
    assert reminders.owed(rec, [_audience()], OFFSETS, at(8, 12)) == []
    (due,) = reminders.owed(rec, [_audience()], OFFSETS, at(8, 18))
    assert due.offset == timedelta(hours=1)
    # told only of the old window: nothing to remind it of
    assert reminders.owed(replace(rec, entries=(old,)), [_audience()], OFFSETS, at(8, 18)) == []


def test_an_overrun_reaches_customers_only_when_the_work_was_recorded_as_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 24: a window that ended with no apply recorded did not overrun anything a customer
    # sees: the lead is told (that the work was never recorded as started), nobody outside.
    from tests.support.paths import EXAMPLES

    (tmp_path / "never").mkdir()
    (tmp_path / "started").mkdir()
    never = Flow(tmp_path / "never", capsys, NODES, policy=EXAMPLES / "policy.yaml")
    assert never("plan", "--plan", str(never.plan))[0] == 0
    code, out = never("remind", now="2026-12-08T21:30:00+00:00")
    assert code == 0, never.err
    told = {r["audience"] for r in out["sent"] if r["stage"] == "overrun"}
    assert told and all(a.startswith("slack:") for a in told), told
    assert not [n for n in never.outbox("overrun") if n.startswith("customer")]
    text = "".join(p.read_text() for p in (tmp_path / "never/outbox/FFAPP-4458/overrun").iterdir())
    assert "has not been recorded as started" in text
    assert "no completion recorded" not in text

    started = Flow(tmp_path / "started", capsys, NODES, policy=EXAMPLES / "policy.yaml")
    assert started("plan", "--plan", str(started.plan))[0] == 0
    assert started("apply", "--status", "started", now="2026-12-08T19:05:00+00:00")[0] == 0
    code, out = started("remind", now="2026-12-08T21:30:00+00:00")
    assert code == 0, started.err
    assert "customer:EoE" in {r["audience"] for r in out["sent"] if r["stage"] == "overrun"}
    mail = next((tmp_path / "started/outbox/FFAPP-4458/overrun").glob("customer-EoE*.eml"))
    assert "has not finished within its window" in mail.read_text()
    internal = [
        p.read_text()
        for p in (tmp_path / "started/outbox/FFAPP-4458/overrun").iterdir()
        if not p.name.startswith("customer")
    ]
    assert internal and all("no completion recorded" in t for t in internal)
