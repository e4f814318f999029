"""Which HCP Terraform notification is an old run's (service/notifications.py `stale`): the
run HCP was last allowed to apply, and the change's latest announcement, decide (the mutation
bench's `notifications` target)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from hie_notify.receiver import Event
from hie_notify.records import Entry
from hie_notify.service.notifications import stale
from hie_notify.service.runtask import DECISION
from tests.support.ledger_entries import entry

T0 = datetime(2026, 6, 15, 9, 0, tzinfo=timezone.utc)
LONDON = ZoneInfo("Europe/London")


def event(run_id: str | None = "run-new", updated: str | None = None) -> Event:
    return Event(
        trigger="run:applying",
        stage="apply_started",
        run_id=run_id,
        run_status="applying",
        workspace_name="eoe-prod",
        workspace_id="ws-1",
        organization_name="hie",
        run_url=None,
        run_message="FFAPP-1 encrypt",
        message=None,
        run_updated_at=updated,
        run_updated_by=None,
        payload_version=1,
    )


def decision(run_id: str, at: datetime, **extra: str) -> Entry:
    values = {"hcp_stage": "pre_apply", "status": "passed", "run_id": run_id, **extra}
    return replace(entry(1), stage=DECISION, delivered_at=at, extra=values)


def announce(at: datetime, *, dry_run: bool = False) -> Entry:
    return replace(entry(2), delivered_at=at, dry_run=dry_run)


def test_with_no_run_allowed_and_nothing_announced_any_event_is_the_changes() -> None:
    assert stale(event(), []) is None
    assert stale(event(None), []) is None
    assert stale(event(updated="2020-01-01T00:00:00Z"), []) is None


def test_the_latest_allowed_run_is_the_current_one_whatever_the_ledger_order() -> None:
    old, new = decision("run-old", T0), decision("run-new", T0 + timedelta(hours=1))
    for entries in ([old, new], [new, old]):
        assert stale(event("run-new"), entries) is None
        assert stale(event("run-old"), entries) == (
            "run run-old is not the run HCP Terraform was last allowed to apply for FFAPP-1 "
            "(run-new): an old run's event"
        )
    assert stale(event(None), [old, new]) is not None


@pytest.mark.parametrize(
    "extra",
    [
        {"hcp_stage": "post_plan"},  # a post-plan check allows no apply
        {"status": "failed"},  # refused
        {"hcp_stage": "PRE_APPLY"},
        {"status": "Passed"},
    ],
)
def test_only_a_passed_pre_apply_decision_names_the_run_allowed(extra: dict[str, str]) -> None:
    allowed = decision("run-old", T0)
    later = decision("run-new", T0 + timedelta(hours=1), **extra)
    assert stale(event("run-old"), [allowed, later]) is None
    assert stale(event("run-new"), [allowed, later]) is not None
    # Alone, it allows nothing: no run is named, and any run's event is the change's.
    assert stale(event("run-new"), [later]) is None
    assert stale(event("anything"), [later]) is None


def test_a_decision_must_be_a_run_task_entry() -> None:
    allowed = decision("run-old", T0)
    other = replace(decision("run-new", T0 + timedelta(hours=1)), stage="announce")
    assert stale(event("run-old"), [allowed, other]) is None


def test_an_event_from_before_the_latest_real_announcement_is_an_earlier_attempts() -> None:
    first, second = announce(T0), announce(T0 + timedelta(days=2))
    before = "2026-06-16T09:00:00Z"  # after the first, before the second
    for entries in ([first, second], [second, first]):
        assert stale(event(updated=before), entries) == (
            "the event (Tue 16 Jun 2026 09:00 UTC) is older than the change's latest "
            "announcement (Wed 17 Jun 2026 09:00 UTC): an earlier attempt's"
        )
    # Both times in UTC, whatever offset each was written with (the log is in UTC).
    summer = [replace(e, delivered_at=e.delivered_at.astimezone(LONDON)) for e in (first, second)]
    assert stale(event(updated="2026-06-16T10:00:00+01:00"), summer) == (
        "the event (Tue 16 Jun 2026 09:00 UTC) is older than the change's latest "
        "announcement (Wed 17 Jun 2026 09:00 UTC): an earlier attempt's"
    )
    assert stale(event(updated="2026-06-17T09:00:00Z"), [first, second]) is None  # same instant
    assert stale(event(updated="2026-06-17T10:00:00+01:00"), [first, second]) is None
    assert stale(event(updated="2026-06-17T09:59:00+01:00"), [first, second]) is not None
    assert stale(event(updated="2026-06-17T09:00:01Z"), [first, second]) is None
    # A dry run told nobody: it is no announcement.
    dry = announce(T0 + timedelta(days=3), dry_run=True)
    assert stale(event(updated="2026-06-17T09:00:01Z"), [first, second, dry]) is None
    # Only announcements count: a later run-task decision is not one.
    assert stale(event("run-x", updated=before), [first, decision("run-x", T0)]) is None


@pytest.mark.parametrize("updated", [None, "", "yesterday", "2026-06-16T09:00:00"])
def test_an_event_time_that_cannot_be_read_as_an_instant_is_not_held_against_it(
    updated: str | None,
) -> None:
    assert stale(event(updated=updated), [announce(T0 + timedelta(days=2))]) is None


def test_the_allowed_run_is_checked_before_the_announcement() -> None:
    entries = [decision("run-new", T0), announce(T0 + timedelta(days=2))]
    said = stale(event("run-old", updated="2026-06-16T09:00:00Z"), entries)
    assert said is not None and said.startswith("run run-old is not the run")
    said = stale(event("run-new", updated="2026-06-16T09:00:00Z"), entries)
    assert said is not None and said.startswith("the event (")
