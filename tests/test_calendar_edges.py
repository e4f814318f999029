"""The calendar's edges: working-hours boundaries, windows across midnight, local times that do
not exist or happen twice on a working Sunday, a machine whose own zone has clock changes."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pytest

from hie_notify.calendar import UTC, BusinessCalendar
from hie_notify.durations import parse_notice
from hie_notify.policy import Policy, load_policy

ENG = BusinessCalendar("Europe/London", "GB", "ENG")
EVERY_DAY = BusinessCalendar(
    "Europe/London", "GB", "ENG", work_days=("mon", "tue", "wed", "thu", "fri", "sat", "sun")
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("start", "end", "inside"),
    [
        (utc(2026, 12, 8, 9, 0), utc(2026, 12, 8, 17, 30), True),  # exactly the working day
        (utc(2026, 12, 8, 8, 59), utc(2026, 12, 8, 12, 0), False),
        (utc(2026, 12, 8, 12, 0), utc(2026, 12, 8, 17, 31), False),
        # Across midnight, even when both ends look like working hours.
        (utc(2026, 12, 8, 16, 0), utc(2026, 12, 9, 10, 0), False),
        # Ending at midnight is ending on the next day.
        (utc(2026, 12, 8, 16, 0), utc(2026, 12, 9, 0, 0), False),
        (utc(2026, 12, 12, 10, 0), utc(2026, 12, 12, 12, 0), False),  # a Saturday
        (utc(2026, 12, 25, 10, 0), utc(2026, 12, 25, 12, 0), False),  # Christmas Day
    ],
)
def test_in_working_hours(start: datetime, end: datetime, inside: bool) -> None:
    assert ENG.in_working_hours(start, end) is inside


def test_working_hours_are_local_time() -> None:
    # 08:30 UTC in July is 09:30 BST: inside.
    assert ENG.in_working_hours(utc(2026, 7, 7, 8, 30), utc(2026, 7, 7, 16, 0))
    assert not ENG.in_working_hours(utc(2026, 12, 8, 8, 30), utc(2026, 12, 8, 16, 0))


def test_holiday_names() -> None:
    assert ENG.holiday_name(date(2026, 12, 25)) == "Christmas Day"
    assert ENG.holiday_name(date(2026, 12, 29)) is None


def test_earliest_start_is_in_utc() -> None:
    for period in ("24h", "3bd"):
        start = ENG.earliest_start(utc(2026, 12, 1, 10, 0), parse_notice(period))
        assert start.tzinfo is UTC, period


def test_a_skipped_local_time_moves_forward_with_the_clock() -> None:
    # A working Sunday: 01:30 on 29 March 2026 does not exist in London (01:00 -> 02:00).
    start = EVERY_DAY.earliest_start(utc(2026, 3, 28, 1, 30), parse_notice("1bd"))
    # It moves forward with the clock: 02:30 BST, 24 real hours after the notice.
    assert start == utc(2026, 3, 29, 1, 30)
    assert EVERY_DAY.local(start).hour == 2


def test_an_ambiguous_local_time_takes_the_first() -> None:
    # 01:30 on 25 October 2026 happens twice (BST, then GMT): the first is 00:30 UTC.
    start = EVERY_DAY.earliest_start(utc(2026, 10, 24, 0, 30), parse_notice("1bd"))
    assert start == utc(2026, 10, 25, 0, 30)


def test_from_policy_takes_every_calendar_setting(tmp_path: object) -> None:
    policy: Policy = load_policy()
    custom = policy.model_copy(
        update={
            "calendar": policy.calendar.model_copy(
                update={
                    "time_zone": "Europe/Dublin",
                    "holidays": policy.calendar.holidays.model_copy(
                        update={"country": "IE", "subdivision": None}
                    ),
                    "working_hours": policy.calendar.working_hours.model_copy(
                        update={"start": time(8, 0), "end": time(16, 0), "days": ["mon", "tue"]}
                    ),
                }
            )
        }
    )
    cal = BusinessCalendar.from_policy(custom)
    assert cal.zone_name == "Europe/Dublin"
    assert cal.holiday_name(date(2026, 3, 17)) == "Saint Patrick's Day"
    assert cal.is_business_day(date(2026, 12, 8)) and not cal.is_business_day(date(2026, 12, 9))
    assert cal.in_working_hours(utc(2026, 12, 8, 8, 0), utc(2026, 12, 8, 16, 0))
    assert not cal.in_working_hours(utc(2026, 12, 8, 8, 0), utc(2026, 12, 8, 16, 1))


@pytest.mark.usefixtures("machine_in_london")
def test_hour_notice_is_real_time_whatever_the_machine_zone() -> None:
    # 24 h from 12:00 Saturday before the spring change is 13:00 Sunday local time.
    start = ENG.earliest_start(utc(2026, 3, 28, 12, 0), parse_notice("24h"))
    assert start == utc(2026, 3, 28, 12, 0) + timedelta(hours=24)
    assert ENG.local(start).hour == 13


def test_zero_business_days_only_ask_the_notice_to_come_first() -> None:
    # Given on a Saturday, 0 business days allow a start at once, not from Monday 00:00.
    saturday = utc(2026, 12, 12, 15, 0)
    assert ENG.earliest_start(saturday, parse_notice("0bd")) == saturday
