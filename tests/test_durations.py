from __future__ import annotations

from datetime import timedelta

import pytest

from hie_notify.durations import format_duration, parse_duration, parse_notice


@pytest.mark.parametrize(
    ("text", "kind", "elapsed", "days"),
    [
        ("24h", "elapsed", timedelta(hours=24), 0),
        ("48h", "elapsed", timedelta(hours=48), 0),
        ("7d", "elapsed", timedelta(days=7), 0),
        ("30m", "elapsed", timedelta(minutes=30), 0),
        ("3bd", "business_days", timedelta(0), 3),
        ("0", "elapsed", timedelta(0), 0),
        (0, "elapsed", timedelta(0), 0),
    ],
)
def test_notice_periods(text: object, kind: str, elapsed: timedelta, days: int) -> None:
    period = parse_notice(text)
    assert (period.kind, period.elapsed, period.business_days) == (kind, elapsed, days)


@pytest.mark.parametrize("bad", ["24 hours", "3 days", "-1h", "h", "", True, 2.5, None, "3bdx"])
def test_bad_notice_periods_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a notice period"):
        parse_notice(bad)


def test_notice_round_trips_and_reads_well() -> None:
    assert str(parse_notice("24h")) == "24h"
    assert str(parse_notice("3bd")) == "3bd"
    assert parse_notice("3bd").describe() == "3 business days"
    assert parse_notice("1bd").describe() == "1 business day"
    assert parse_notice("48h").describe() == "48 hours"
    assert parse_notice("168h").describe() == "7 days"
    assert parse_notice("0").describe() == "none"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(minutes=90)),
        (0, timedelta(0)),
    ],
)
def test_downtime(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("bad", ["30x", "half an hour", "", "-5m", False, 1.5])
def test_bad_downtime_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)
