"""The downtime budget's arithmetic, unit by unit (report/uptime.py): London months at their
edges and across the clock changes, the budget for any promise, the split of an outage, and the
gate's findings word for word (the mutation bench's `uptime` target)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from hie_notify.lifecycle import Lifecycle
from hie_notify.report import uptime

UTC = timezone.utc
LONDON = ZoneInfo("Europe/London")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("when", "key"),
    [
        ("2026-06-30T23:30:00+00:00", "2026-07"),  # 00:30 BST on 1 July
        ("2026-06-30T22:59:59+00:00", "2026-06"),
        ("2026-03-31T23:00:00+00:00", "2026-04"),
        ("2026-10-31T23:30:00+00:00", "2026-10"),  # GMT again: still 31 October
        ("2026-12-31T23:59:00+00:00", "2026-12"),
        ("2027-01-01T00:00:00+00:00", "2027-01"),
    ],
)
def test_the_month_is_londons_calendar_month(when: str, key: str) -> None:
    month = uptime.month_of(at(when), LONDON)
    assert month.key == key
    assert month.start.astimezone(UTC) <= at(when) < month.end.astimezone(UTC)


def test_a_months_bounds_are_local_midnights() -> None:
    july = uptime.month_of(at("2026-07-15T12:00:00+00:00"), LONDON)
    assert (july.year, july.month) == (2026, 7)
    assert july.start.astimezone(UTC) == at("2026-06-30T23:00:00+00:00")
    assert july.end.astimezone(UTC) == at("2026-07-31T23:00:00+00:00")
    december = uptime.month_of(at("2026-12-15T12:00:00+00:00"), LONDON)
    assert december.end.astimezone(UTC) == at("2027-01-01T00:00:00+00:00")
    assert december.length == timedelta(days=31)
    assert uptime.month_of(at("2026-03-15T12:00:00+00:00"), LONDON).length == timedelta(hours=743)


def test_months_between_are_those_the_interval_touches() -> None:
    def keys(start: str, end: str) -> list[str]:
        return [m.key for m in uptime.months_between(at(start), at(end), LONDON)]

    assert keys("2026-06-10T00:00:00+00:00", "2026-06-11T00:00:00+00:00") == ["2026-06"]
    # Ending at the month's end (exclusive): that month only.
    assert keys("2026-06-10T00:00:00+00:00", "2026-06-30T23:00:00+00:00") == ["2026-06"]
    assert keys("2026-06-10T00:00:00+00:00", "2026-06-30T23:00:01+00:00") == [
        "2026-06",
        "2026-07",
    ]
    assert keys("2026-11-20T00:00:00+00:00", "2027-02-02T00:00:00+00:00") == [
        "2026-11",
        "2026-12",
        "2027-01",
        "2027-02",
    ]


@pytest.mark.parametrize(
    ("percent", "minutes"), [(99.0, 446.4), (99.9, 44.64), (99.95, 22.32), (100.0, 0.0)]
)
def test_the_budget_is_what_the_promise_leaves_of_the_month(percent: float, minutes: float) -> None:
    december = uptime.month_of(at("2026-12-15T12:00:00+00:00"), LONDON)
    assert round(uptime.budget(december, percent).total_seconds() / 60, 6) == minutes


def test_an_outage_is_split_by_london_month_in_real_time() -> None:
    parts = uptime.split_by_month(
        (at("2026-06-30T22:30:00+00:00"), at("2026-06-30T23:45:00+00:00")), LONDON
    )
    assert [(m.key, d) for m, d in parts] == [
        ("2026-06", timedelta(minutes=30)),
        ("2026-07", timedelta(minutes=45)),
    ]
    # Given at a London offset, the same instants, the same split.
    parts = uptime.split_by_month(
        (at("2026-06-30T23:30:00+01:00"), at("2026-07-01T00:45:00+01:00")), LONDON
    )
    assert [(m.key, d) for m, d in parts] == [
        ("2026-06", timedelta(minutes=30)),
        ("2026-07", timedelta(minutes=45)),
    ]
    # The night the clocks go back: 90 minutes of wall clock, two real hours.
    parts = uptime.split_by_month(
        (at("2026-10-25T00:30:00+01:00"), at("2026-10-25T01:30:00+00:00")), LONDON
    )
    assert [(m.key, d) for m, d in parts] == [("2026-10", timedelta(hours=2))]
    assert uptime.split_by_month((at("2026-06-10T00:00:00+00:00"),) * 2, LONDON) == []


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0 min"),
        (timedelta(minutes=45), "45 min"),
        (timedelta(minutes=59, seconds=31), "1 h 0 min"),
        (timedelta(minutes=446.4), "7 h 26 min"),
        (timedelta(hours=2, minutes=5), "2 h 5 min"),
    ],
)
def test_minutes_are_shown_as_hours_and_minutes(delta: timedelta, text: str) -> None:
    assert uptime._minutes(delta) == text


def _findings(
    declared: int,
    used: list[uptime.Used] | None = None,
    *,
    emergency: bool = False,
    percent: float = 99.0,
    customers: tuple[str, ...] = ("EoE",),
) -> tuple[list[str], list[str]]:
    return uptime.budget_findings(
        customers=customers,
        month=NOVEMBER,
        declared=timedelta(minutes=declared),
        used=used or [],
        uptime_percent=percent,
        warn_at_percent=80.0,
        emergency=emergency,
    )


NOVEMBER = uptime.month_of(at("2026-11-15T12:00:00+00:00"), LONDON)  # 7 h 12 min at 99%
OF = "of the 7 h 12 min that 99% uptime allows"


def test_the_findings_say_each_customers_figures() -> None:
    assert _findings(300) == ([], [])
    assert _findings(345) == ([], [])  # 79.9%
    assert _findings(346) == (
        [],
        [
            f"uptime budget at 80% (warning from 80%): EoE in 2026-11: 0 min used + 5 h 46 min "
            f"declared = 5 h 46 min {OF} (80%)"
        ],
    )
    used = [
        uptime.Used("EoE", NOVEMBER, timedelta(minutes=400), ("CHG-1", "CHG-2")),
        uptime.Used("NYC", NOVEMBER, timedelta(minutes=10), ()),
    ]
    reasons, warnings = _findings(32, used, customers=("EoE", "NYC", "Acme"))
    assert reasons == []
    assert warnings == [
        f"uptime budget at 100% (warning from 80%): EoE in 2026-11: 6 h 40 min used by CHG-1, "
        f"CHG-2 + 32 min declared = 7 h 12 min {OF} (100%)"
    ]
    reasons, warnings = _findings(33, used, customers=("EoE", "NYC"))
    assert reasons == [
        f"uptime budget exceeded: EoE in 2026-11: 6 h 40 min used by CHG-1, CHG-2 + 33 min "
        f"declared = 7 h 13 min {OF} (100%); move the window to another month, shorten the "
        "declared downtime, or declare an emergency_fix"
    ]
    assert warnings == []
    reasons, warnings = _findings(33, used, customers=("NYC", "EoE"), emergency=True)
    assert reasons == []
    assert warnings == [
        f"uptime budget exceeded (allowed for an emergency): EoE in 2026-11: 6 h 40 min used by "
        f"CHG-1, CHG-2 + 33 min declared = 7 h 13 min {OF} (100%)"
    ]
    # Used with no change named: no "by".
    reasons, _ = _findings(430, used, customers=("NYC",))
    assert reasons[0].startswith("uptime budget exceeded: NYC in 2026-11: 10 min used + 7 h 10")


def test_a_promise_of_full_uptime_allows_no_downtime() -> None:
    reasons, warnings = _findings(1, percent=100.0)
    assert warnings == []
    assert reasons == [
        "uptime budget exceeded: EoE in 2026-11: 0 min used + 1 min declared = 1 min of the "
        "0 min that 100% uptime allows (inf%); move the window to another month, shorten the "
        "declared downtime, or declare an emergency_fix"
    ]


def _life(*steps: tuple[int, str]) -> Lifecycle:
    life = Lifecycle()
    for minutes, transition in steps:
        life = life.after(life.step(transition), T + timedelta(minutes=minutes))
    return life


T = datetime(2026, 12, 3, 20, tzinfo=UTC)
WINDOW_END = T + timedelta(hours=2)


def test_a_recovery_at_the_instant_the_apply_started_ends_the_outage_then() -> None:
    done = _life((0, "announce"), (60, "apply_started"), (60, "apply_succeeded"))
    at = T + timedelta(hours=1)
    assert uptime.outage(done, WINDOW_END, T + timedelta(days=1)) == (at, at)
    rolled = _life(
        (0, "announce"),
        (60, "apply_started"),
        (60, "apply_failed"),
        (60, "rollback_started"),
        (60, "rollback_succeeded"),
    )
    assert uptime.outage(rolled, WINDOW_END, T + timedelta(days=1)) == (at, at)


def test_a_usage_of_exactly_the_warning_share_warns() -> None:
    reasons, warnings = _findings(0, percent=99.0)
    assert (reasons, warnings) == ([], [])
    exactly = uptime.budget_findings(
        customers=["EoE"],
        month=NOVEMBER,
        declared=timedelta(minutes=345.6),  # 80% of 7 h 12 min
        used=[],
        uptime_percent=99.0,
        warn_at_percent=80.0,
        emergency=False,
    )
    assert exactly[0] == [] and len(exactly[1]) == 1
    assert exactly[1][0].startswith("uptime budget at 80% (warning from 80%)")
