"""The change record: one YAML file per change, usually committed with the merge request."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hie_notify import limits
from hie_notify.calendar import LocalTimeError, resolve_local
from hie_notify.durations import format_duration, parse_duration
from hie_notify.errors import InputError
from hie_notify.policy.model import ChangeTypeName, Policy, TimeZoneName
from hie_notify.yamlfile import format_validation_error, read_yaml_mapping

# Matched whole (fullmatch): `$` would accept a key followed by a newline, which then names a
# folder in the outbox.
JIRA_KEY = re.compile(r"[A-Z][A-Z0-9_]{1,30}-[1-9][0-9]{0,9}")

_OWNER_MAX = 120

Downtime = Annotated[timedelta, PlainValidator(parse_duration), PlainSerializer(format_duration)]


def _when(value: object) -> datetime:
    when = _parse_when(value)
    # Checked before any zone arithmetic: year 1 or 9999 leaves Python's dates in it.
    if not limits.EARLIEST.year <= when.year < limits.LATEST.year or (
        when.tzinfo is not None and limits.instant_problem(when)
    ):
        raise ValueError(
            f"expected a time from {limits.EARLIEST.year} to {limits.LATEST.year - 1}, "
            f"got {when.isoformat()}"
        )
    return when


def _parse_when(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and len(value) <= 64:
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    shown = repr(value) if len(repr(value)) <= 64 else f"a {type(value).__name__}"
    raise ValueError(
        f"expected a date and time like 2026-12-01T20:00:00+00:00 (or local, with zone), "
        f"got {shown}"
    )


When = Annotated[datetime, PlainValidator(_when), PlainSerializer(lambda d: d.isoformat())]


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start: When
    end: When
    zone: TimeZoneName | None = None

    @model_validator(mode="after")
    def _resolved(self) -> Window:
        start = _aware(self.start, self.zone, "start")
        end = _aware(self.end, self.zone, "end")
        if end <= start:
            raise ValueError(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        return self


def _aware(value: datetime, zone: str | None, which: str) -> datetime:
    if value.tzinfo is not None:
        return value
    if zone is None:
        raise ValueError(
            f"{which} {value.isoformat()} has no offset: add one (e.g. +00:00) or set window.zone"
        )
    try:
        return resolve_local(value, zone)
    except LocalTimeError as exc:
        raise ValueError(f"{which}: {exc}") from None


class ChangeRecord(BaseModel):
    """What the team declares about a change (the seed's Phase 1 information)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    type: ChangeTypeName | None = None
    purpose: str = Field(min_length=1)
    # What customers and stakeholders are told the change is, in their words (else `purpose`).
    customer_summary: str | None = None
    window: Window | None = None
    downtime: Downtime | None = None
    customers: list[str] = []
    risk: Literal["low", "medium", "high"] | None = None
    rollback: str | None = None
    monitoring: str | None = None
    on_call: str | None = None
    approvers: list[str] = []
    justification: str | None = None
    # The seed's Accountability principle: the person responsible for this change's
    # communication (a name, an email address, or `Name <email>`); messages and the report name
    # them.
    owner: str | None = None

    @field_validator("id")
    @classmethod
    def _jira_key(cls, value: str) -> str:
        if not JIRA_KEY.fullmatch(value):
            shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
            raise ValueError(f"expected a Jira key like FFAPP-4458, got {shown}")
        return value

    @field_validator(
        "purpose", "customer_summary", "rollback", "monitoring", "on_call", "justification"
    )
    @classmethod
    def _visible(cls, value: str | None) -> str | None:
        if value and not _has_visible_text(value):
            raise ValueError(
                "expected text; this holds only spaces or invisible characters (such as a "
                "zero-width space)"
            )
        return value

    @field_validator("owner")
    @classmethod
    def _one_person(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not _has_visible_text(value):
            raise ValueError(
                "expected the name (or email) of the person responsible for this change's "
                "communication; this holds only spaces or invisible characters"
            )
        if len(value) > _OWNER_MAX or any(
            unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value
        ):
            shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
            raise ValueError(
                f"expected one person on one line (a name, an email, or 'Name <email>', at "
                f"most {_OWNER_MAX} characters, no control or invisible characters), got {shown}"
            )
        return value

    @field_validator("customers")
    @classmethod
    def _known_customers(cls, value: list[str], info: ValidationInfo) -> list[str]:
        known = (info.context or {}).get("customers")
        if known is not None:
            unknown = [c for c in value if c not in known]
            if unknown:
                raise ValueError(
                    f"unknown customer {', '.join(map(repr, unknown))} "
                    f"(the policy has: {', '.join(sorted(known))})"
                )
        return value

    @model_validator(mode="after")
    def _emergency_needs_justification(self) -> ChangeRecord:
        # `_visible` has refused text with nothing visible, so strip() is enough here.
        if self.type == "emergency_fix" and not (self.justification or "").strip():
            raise ValueError("an emergency_fix needs a justification")
        return self

    def phase1_gaps(self, requires: Collection[str] | None = None) -> list[str]:
        """What the policy's Phase 1 requires before a deployment and this record lacks: the
        window always; `requires` (a change type's policy `requires`) names the other fields;
        None: the downtime and the rollback plan (what an emergency still owes).
        `on_call_out_of_hours` is the gate's to judge (it depends on the window). Each gap
        starts with the change record's field."""
        wanted = ("downtime", "rollback") if requires is None else tuple(requires)
        gaps = []
        if self.window is None:
            gaps.append("window (precise start and end times)")
        if "downtime" in wanted and self.downtime is None:
            gaps.append("downtime (estimated downtime, 0 if none)")
        if "rollback" in wanted and not (self.rollback or "").strip():
            gaps.append("rollback (the rollback plan)")
        if "risk" in wanted and self.risk is None:
            gaps.append("risk (the risk assessment: low, medium or high)")
        if "monitoring" in wanted and not (self.monitoring or "").strip():
            gaps.append("monitoring (what is watched during and after the change)")
        if "approvers" in wanted and not [a for a in self.approvers if a.strip()]:
            gaps.append("approvers (who reviewed and approved the change)")
        return gaps


def _has_visible_text(value: str) -> bool:
    """Is any character printed? Whitespace, format characters (zero-width space and joiners,
    bidi marks), control characters and unassigned code points are not."""
    return any(
        not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf", "Cn", "Co", "Cs", "Zs")
        for ch in value
    )


def load_change(path: Path, policy: Policy) -> ChangeRecord:
    """Read and validate a change record against the policy (customers must exist there)."""
    data: dict[str, Any] = read_yaml_mapping(path)
    try:
        return ChangeRecord.model_validate(data, context={"customers": set(policy.customers)})
    except ValidationError as exc:
        raise InputError(format_validation_error(str(path), exc, ChangeRecord)) from None
