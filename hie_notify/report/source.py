"""Read what the report and the gate's uptime check need from the change register."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from hie_notify.audiences import downtime_customers
from hie_notify.calendar import BusinessCalendar
from hie_notify.durations import parse_duration
from hie_notify.policy.model import Policy
from hie_notify.register.model import Registered
from hie_notify.register.store import Register
from hie_notify.report import uptime
from hie_notify.report.compute import actual_by_month


def whole_months(
    register: Register, start: datetime, end: datetime, calendar: BusinessCalendar
) -> list[Registered]:
    """Every change whose window touches a month that [start, end) touches, with its entries
    (downtime is counted per whole month)."""
    months = uptime.months_between(start, end, calendar.zone)
    return register.between_with_entries(months[0].start, months[-1].end)


def used_this_month(
    register: Register,
    *,
    policy: Policy,
    change_id: str,
    customers: Sequence[str],
    month: uptime.Month,
    calendar: BusinessCalendar,
    now: datetime,
) -> list[uptime.Used]:
    """The real downtime other changes have used of each customer's month so far (from their
    stage times; a change that ran with none recorded counts its declared downtime)."""
    used: dict[str, timedelta] = {c: timedelta(0) for c in customers}
    by: dict[str, list[str]] = {c: [] for c in customers}
    # An outage can run into the month from a window that started before it.
    for brief in register.between(month.start - timedelta(days=1), month.end):
        if brief.change_id == change_id or brief.status == "cancelled":
            continue
        touched = [c for c in customers if c in affected(brief, policy)]
        if not touched:
            continue
        full = register.get(brief.change_id) or brief
        declared = _declared(full)
        if not full.service_impacting and not declared:
            continue
        for m, part in actual_by_month(full, declared, now, calendar):
            if m.key != month.key or part <= timedelta(0):
                continue
            for c in touched:
                used[c] += part
                by[c].append(full.change_id)
    return [uptime.Used(c, month, used[c], tuple(dict.fromkeys(by[c]))) for c in customers]


def affected(record: Registered, policy: Policy) -> set[str]:
    """The customers a registered change's downtime is charged to: named in it, or served by
    the environments it touches (not every customer told of it; see `downtime_customers`)."""
    return set(downtime_customers(policy, record.customers, record.environments, record.audiences))


def _declared(record: Registered) -> timedelta | None:
    raw = record.change.get("downtime")
    if raw is None:
        return None
    try:
        return parse_duration(raw)
    except ValueError:
        return None
