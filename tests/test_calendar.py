"""Business days, bank holidays and notice arithmetic, checked against published dates."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hie_notify.calendar import UTC, BusinessCalendar, LocalTimeError, elapsed, resolve_local
from hie_notify.durations import parse_notice

DATA = json.loads((Path(__file__).parent / "data" / "uk_bank_holidays.json").read_text())
LONDON = ZoneInfo("Europe/London")
REGIONS = {"england-and-wales": ["ENG", "WLS"], "scotland": ["SCT"], "northern-ireland": ["NIR"]}


@pytest.mark.parametrize(
    ("region", "subdivision"),
    [(r, s) for r, subs in REGIONS.items() for s in subs],
)
def test_bank_holidays_2024_to_2028_match_gov_uk(region: str, subdivision: str) -> None:
    """Every published bank holiday (substitute days included) is not a business day, and every
    other weekday from 2024 to 2028 is."""
    cal = BusinessCalendar("Europe/London", "GB", subdivision)
    published = {date.fromisoformat(h["date"]) for h in DATA[region]}
    assert len(published) >= 40
    day = date(2024, 1, 1)
    wrong = []
    while day <= date(2028, 12, 31):
        if day.weekday() < 5:
            expected = day not in published
            if cal.is_business_day(day) != expected:
                wrong.append((day.isoformat(), "holiday" if not expected else "working day"))
        else:
            assert not cal.is_business_day(day)
        day += timedelta(days=1)
    assert wrong == []


def test_regions_differ_where_they_should() -> None:
    eng, sct, nir = (BusinessCalendar("Europe/London", "GB", s) for s in ("ENG", "SCT", "NIR"))
    easter_monday_2027 = date(2027, 3, 29)
    assert not eng.is_business_day(easter_monday_2027)
    assert sct.is_business_day(easter_monday_2027)
    assert not sct.is_business_day(date(2027, 1, 4))  # 2 January substitute
    assert eng.is_business_day(date(2027, 1, 4))
    assert not sct.is_business_day(date(2026, 6, 15))  # one-off World Cup day
    assert eng.is_business_day(date(2026, 6, 15))
    assert not nir.is_business_day(date(2026, 7, 13))  # Battle of the Boyne, substitute day
    assert not sct.is_business_day(date(2026, 11, 30))  # St Andrew's Day
    assert not eng.is_business_day(date(2026, 12, 28))  # Boxing Day substitute


@pytest.mark.parametrize("change", DATA["clock_changes"]["Europe/London"])
def test_clock_changes_2026_2027(change: dict[str, str]) -> None:
    at = datetime.fromisoformat(change["utc"].replace("Z", "+00:00"))
    before = (at - timedelta(minutes=1)).astimezone(LONDON)
    after = at.astimezone(LONDON)
    shift = after.utcoffset() - before.utcoffset()  # type: ignore[operator]
    assert shift == (
        timedelta(hours=1) if change["direction"] == "forward" else -timedelta(hours=1)
    )


def test_hour_notice_is_real_time_across_the_spring_change() -> None:
    cal = BusinessCalendar("Europe/London")
    notice = datetime(2026, 3, 28, 12, 0, tzinfo=LONDON)
    start = datetime(2026, 3, 29, 12, 0, tzinfo=LONDON)
    assert elapsed(notice, start) == timedelta(hours=23)
    assert not cal.notice_given(notice, start, parse_notice("24h"))
    assert cal.earliest_start(notice, parse_notice("24h")) == datetime(2026, 3, 29, 12, tzinfo=UTC)
    autumn = datetime(2026, 10, 24, 12, 0, tzinfo=LONDON)
    assert elapsed(autumn, datetime(2026, 10, 25, 12, 0, tzinfo=LONDON)) == timedelta(hours=25)
    assert cal.notice_given(
        autumn, datetime(2026, 10, 25, 11, 0, tzinfo=LONDON), parse_notice("24h")
    )


@pytest.mark.parametrize(
    ("notice", "subdivision", "days", "expected_local"),
    [
        # DESIGN.md's example: 24 December 2026 10:00, three business days -> 31 December 10:00
        ("2026-12-24T10:00", "ENG", 3, "2026-12-31T10:00"),
        # Scotland also takes 1 and 4 January 2027 off
        ("2026-12-24T10:00", "SCT", 3, "2026-12-31T10:00"),
        ("2026-12-24T10:00", "ENG", 5, "2027-01-05T10:00"),
        ("2026-12-24T10:00", "SCT", 5, "2027-01-06T10:00"),
        # Easter 2027: Good Friday 26 March everywhere, Easter Monday 29 March not in Scotland
        ("2027-03-25T15:00", "ENG", 3, "2027-04-01T15:00"),
        ("2027-03-25T15:00", "SCT", 3, "2027-03-31T15:00"),
        # given on a Saturday: counts from 00:00 on Monday
        ("2026-11-28T11:00", "ENG", 3, "2026-12-03T00:00"),
        # given on a bank holiday (Christmas Day): from 00:00 on the next business day (29 Dec)
        ("2026-12-25T09:00", "ENG", 1, "2026-12-30T00:00"),
    ],
)
def test_business_day_notice(notice: str, subdivision: str, days: int, expected_local: str) -> None:
    cal = BusinessCalendar("Europe/London", "GB", subdivision)
    given = datetime.fromisoformat(notice).replace(tzinfo=LONDON)
    earliest = cal.earliest_start(given, parse_notice(f"{days}bd"))
    assert earliest.astimezone(LONDON).replace(tzinfo=None) == datetime.fromisoformat(
        expected_local
    )


def test_business_day_notice_keeps_local_time_across_clock_change() -> None:
    cal = BusinessCalendar("Europe/London")
    given = datetime(2026, 3, 26, 10, 0, tzinfo=LONDON)  # Thursday, GMT
    earliest = cal.earliest_start(given, parse_notice("2bd"))
    assert earliest.astimezone(LONDON) == datetime(2026, 3, 30, 10, 0, tzinfo=LONDON)  # BST
    assert earliest == datetime(2026, 3, 30, 9, 0, tzinfo=timezone.utc)


def test_working_hours() -> None:
    cal = BusinessCalendar("Europe/London", work_start=time(9), work_end=time(17, 30))
    day = datetime(2026, 12, 8, tzinfo=LONDON)
    assert cal.in_working_hours(day.replace(hour=10), day.replace(hour=12))
    assert not cal.in_working_hours(day.replace(hour=17), day.replace(hour=18))
    assert not cal.in_working_hours(day.replace(hour=19), day.replace(hour=21))
    sat = datetime(2026, 12, 12, 10, tzinfo=LONDON)
    assert not cal.in_working_hours(sat, sat + timedelta(hours=1))
    boxing_sub = datetime(2026, 12, 28, 10, tzinfo=LONDON)
    assert not cal.in_working_hours(boxing_sub, boxing_sub + timedelta(hours=1))


def test_non_existent_and_ambiguous_local_times() -> None:
    with pytest.raises(LocalTimeError, match="does not exist"):
        resolve_local(datetime(2027, 3, 28, 1, 30), "Europe/London")
    with pytest.raises(LocalTimeError, match="happens twice"):
        resolve_local(datetime(2027, 10, 31, 1, 30), "Europe/London")
    ok = resolve_local(datetime(2027, 7, 1, 12, 0), "Europe/London")
    assert ok.utcoffset() == timedelta(hours=1)
