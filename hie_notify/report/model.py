"""The report's rows, defined once: JSON, CSV and the HTML tables all carry these (plain data).

Every value in a row is a scalar (text, number, bool or null) so that a CSV row and a JSON row
say exactly the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class ChangeRow:
    change_id: str
    change_type: str | None
    purpose: str
    status: str
    outcome: str
    window_start: str | None
    window_end: str | None
    service_impacting: bool
    emergency: bool
    customers: str  # "; "-joined names
    declared_downtime_minutes: float | None
    actual_downtime_minutes: float | None
    notices_short: int
    breaches: int
    postmortem: str  # "not owed" | "owed" | "opened" | "closed" | "overdue"
    # The person responsible for the change's communication (its record's `owner`; "" if none).
    owner: str = ""


@dataclass(frozen=True)
class NoticeRow:
    """One audience's pre-deployment notice: required, given and the margin, in the audience's
    unit (business days for customers and stakeholders, elapsed hours internally)."""

    change_id: str
    audience: str
    kind: str
    label: str
    unit: str  # "hours" | "business days"
    # Business days are counted (int); hours are measured (float, to 0.01).
    required: int | float
    recommended: int | float
    given_at: str | None
    given: int | float | None
    margin: int | float | None
    level: str  # "recommended" | "minimum" | "short" | "not given"
    outbox_only: bool


@dataclass(frozen=True)
class BreachRow:
    change_id: str
    audience: str
    label: str
    required: str
    given: str
    let_through_by: str  # "emergency" | "trial" | "manual override"
    detail: str


@dataclass(frozen=True)
class EmergencyRow:
    change_id: str
    purpose: str
    status: str
    window_start: str | None
    justification: str
    approvers: str


@dataclass(frozen=True)
class PostmortemRow:
    change_id: str
    change_type: str | None
    reasons: str
    ended_at: str | None
    due: str | None
    state: str  # "owed" | "opened" | "closed"
    opened_at: str | None
    closed_at: str | None
    overdue: bool
    link: str


@dataclass(frozen=True)
class AckRow:
    """One audience's answers to the latest announcement it was sent: when it acknowledged and
    how long that took, its objections and how each was resolved."""

    change_id: str
    audience: str
    label: str
    required: bool  # the policy's acknowledgements.required_from names it
    announced_at: str | None
    acknowledged_at: str | None
    acknowledged_by: str
    hours_to_acknowledge: float | None
    objections: int
    open_objections: int
    objection_reasons: str  # "; "-joined, each "CONTACT: REASON"
    resolutions: str  # "; "-joined, each "BY: REASON"


@dataclass(frozen=True)
class DowntimeRow:
    customer: str
    month: str  # YYYY-MM in the policy's time zone
    budget_minutes: float
    declared_minutes: float
    actual_minutes: float
    declared_percent: float
    actual_percent: float
    changes: int
    over_budget: bool


@dataclass(frozen=True)
class NoticeKindRow:
    kind: str
    recommended: int
    minimum: int
    short: int
    not_given: int


@dataclass(frozen=True)
class WeekRow:
    week: str  # ISO week, e.g. 2026-W41
    week_start: str  # its Monday
    change_type: str
    outcome: str
    changes: int


@dataclass(frozen=True)
class SummaryRow:
    metric: str
    value: int  # every metric is a count


TABLES: dict[str, type] = {
    "summary": SummaryRow,
    "changes": ChangeRow,
    "notices": NoticeRow,
    "breaches": BreachRow,
    "emergencies": EmergencyRow,
    "postmortems": PostmortemRow,
    "acknowledgements": AckRow,
    "downtime": DowntimeRow,
    "notice_by_kind": NoticeKindRow,
    "changes_by_week": WeekRow,
}


# Columns holding a time (ISO 8601 with offset in JSON and CSV; shown in the policy's zone on the
# page).
TIME_COLUMNS = frozenset(
    {
        "window_start",
        "window_end",
        "given_at",
        "ended_at",
        "due",
        "opened_at",
        "closed_at",
        "announced_at",
        "acknowledged_at",
    }
)
DATE_COLUMNS = frozenset({"week_start"})  # a local date, YYYY-MM-DD


def columns(table: str) -> list[str]:
    return [f.name for f in fields(TABLES[table])]


@dataclass(frozen=True)
class Report:
    organisation: str
    generated_at: str
    range_start: str
    range_end: str
    uptime_percent: float
    warn_at_percent: float
    time_zone: str
    tables: dict[str, list[Any]]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def rows(self, table: str) -> list[dict[str, Scalar]]:
        names = columns(table)
        return [{n: getattr(r, n) for n in names} for r in self.tables.get(table, [])]
