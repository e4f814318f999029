"""The uptime promise as a monthly downtime budget, and what a change uses of it (pure).

A month is a calendar month in the policy's time zone, measured in real elapsed time: October
2026 in Europe/London is 745 hours (the clocks go back), so 99% leaves 447 minutes; a 30-day
month leaves 432 (7 h 12 min) and a 31-day one 446.4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from hie_notify.lifecycle import (
    APPLY_STARTED,
    APPLY_SUCCEEDED,
    COMPLETE,
    ROLLBACK_SUCCEEDED,
    WAITING,
    Lifecycle,
    State,
)

UTC = ZoneInfo("UTC")
STARTED = APPLY_STARTED
# The first of these after the start ends the outage: a rollback that succeeded ends it when one
# was started (the apply's own success then did not restore the service), else the apply's
# success, else the completion.
RECOVERED = (APPLY_SUCCEEDED, COMPLETE)
ROLLED_BACK = ROLLBACK_SUCCEEDED
# The work is still going: an outage with no recovery recorded counts to now.
_GOING = frozenset({*WAITING, State.IN_PROGRESS, State.MITIGATING, State.ROLLING_BACK})


@dataclass(frozen=True)
class Month:
    year: int
    month: int
    start: datetime  # aware, local midnight of the 1st
    end: datetime  # aware, local midnight of the next month's 1st

    @property
    def key(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def length(self) -> timedelta:
        return self.end.astimezone(UTC) - self.start.astimezone(UTC)


def month_of(when: datetime, zone: ZoneInfo) -> Month:
    local = when.astimezone(zone)
    return _month(local.year, local.month, zone)


@lru_cache(maxsize=1024)
def _month(year: int, month: int, zone: ZoneInfo) -> Month:
    nxt = (year + 1, 1) if month == 12 else (year, month + 1)
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(nxt[0], nxt[1], 1, tzinfo=zone)
    return Month(year, month, start, end)


def months_between(start: datetime, end: datetime, zone: ZoneInfo) -> list[Month]:
    """Every month that [start, end) touches, in order."""
    out = [month_of(start, zone)]
    while out[-1].end < end:
        out.append(_month(out[-1].end.year, out[-1].end.month, zone))
    return out


def budget(month: Month, uptime_percent: float) -> timedelta:
    """The downtime the promise allows in `month`."""
    return month.length * (100.0 - uptime_percent) / 100.0


def first_at(life: Lifecycle, transition: str) -> datetime | None:
    return min((r.at for r in life.records if r.transition == transition), default=None)


def outage(
    life: Lifecycle, window_end: datetime | None, now: datetime
) -> tuple[datetime, datetime] | None:
    """When the service was down, from the times of the change's transitions (its lifecycle,
    replayed from its ledger): the apply's start to its recovery (see RECOVERED and
    ROLLED_BACK). No recovery recorded: a change still under way counts to `now`, one that
    stopped counts to its window's end. None when no apply start was recorded."""
    start = first_at(life, STARTED)
    if start is None:
        return None
    rolled = first_at(life, ROLLED_BACK)
    if rolled is not None and rolled >= start:
        return start, rolled
    ends = [t for t in (first_at(life, s) for s in RECOVERED) if t is not None and t >= start]
    if ends:
        return start, min(ends)
    if life.state in _GOING:
        return start, max(start, now)
    return start, max(start, window_end or start)


def split_by_month(
    interval: tuple[datetime, datetime], zone: ZoneInfo
) -> list[tuple[Month, timedelta]]:
    """The part of an interval that falls in each calendar month (exactly, in real time)."""
    start, end = interval
    out = []
    for month in months_between(start, end, zone):
        lo, hi = max(start, month.start), min(end, month.end)
        if hi > lo:
            out.append((month, hi.astimezone(UTC) - lo.astimezone(UTC)))
    return out


@dataclass(frozen=True)
class Used:
    """Downtime already used by other changes in one customer's month."""

    customer: str
    month: Month
    used: timedelta
    changes: tuple[str, ...]


def budget_findings(
    *,
    customers: Sequence[str],
    month: Month,
    declared: timedelta,
    used: Sequence[Used],
    uptime_percent: float,
    warn_at_percent: float,
    emergency: bool,
) -> tuple[list[str], list[str]]:
    """The gate's uptime check: (reasons that block, warnings). For each customer, the downtime
    used this month plus this change's declared downtime against the budget: a warning from
    `warn_at_percent`, a block beyond 100% (a warning for an emergency)."""
    reasons: list[str] = []
    warnings: list[str] = []
    allowed = budget(month, uptime_percent)
    by_customer = {u.customer: u for u in used}
    for customer in customers:
        u = by_customer.get(customer)
        already = u.used if u else timedelta(0)
        total = already + declared
        percent = 100.0 * total / allowed if allowed > timedelta(0) else float("inf")
        figures = (
            f"{customer} in {month.key}: {_minutes(already)} used"
            + (f" by {', '.join(u.changes)}" if u and u.changes else "")
            + f" + {_minutes(declared)} declared = {_minutes(total)} of the "
            f"{_minutes(allowed)} that {uptime_percent:g}% uptime allows ({percent:.0f}%)"
        )
        if percent > 100.0:
            if emergency:
                warnings.append(f"uptime budget exceeded (allowed for an emergency): {figures}")
            else:
                reasons.append(
                    f"uptime budget exceeded: {figures}; move the window to another month, "
                    "shorten the declared downtime, or declare an emergency_fix"
                )
        elif percent >= warn_at_percent:
            warnings.append(
                f"uptime budget at {percent:.0f}% (warning from {warn_at_percent:g}%): {figures}"
            )
    return reasons, warnings


def _minutes(delta: timedelta) -> str:
    """`7 h 26 min`, `45 min`."""
    hours, rest = divmod(round(delta.total_seconds() / 60), 60)
    return f"{rest} min" if hours == 0 else f"{hours} h {rest} min"
