"""Bring a change's record in the register up to date after a stage was sent."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from hie_notify.change import ChangeRecord
from hie_notify.classify import Classification
from hie_notify.lifecycle import PHASE, State
from hie_notify.records import Entry
from hie_notify.register import feed
from hie_notify.register.model import Registered, status_of
from hie_notify.register.store import Register


def record_of(
    change: ChangeRecord,
    result: Classification,
    audiences: Sequence[str],
    environments: Sequence[str],
    entries: Sequence[Entry] = (),
) -> Registered:
    """The register's view of a change (pure): its status is the lifecycle state `entries`
    (its ledger) replay to ("announced" before any is recorded)."""
    window = change.window
    return Registered(
        change_id=change.id,
        status=status_of(entries, State.ANNOUNCED.value),
        change_type=result.change_type,
        purpose=change.purpose,
        window_start=window.start if window else None,
        window_end=window.end if window else None,
        customers=tuple(change.customers),
        environments=tuple(dict.fromkeys(environments)),
        audiences=tuple(audiences),
        categories=tuple(result.categories),
        service_impacting=result.service_impacting,
        summary=dict(result.summary),
        fingerprint=result.fingerprint,
        change=change.model_dump(mode="json", exclude_none=True),
    )


def record_stage(
    register: Register,
    *,
    change: ChangeRecord,
    result: Classification,
    stage: str,
    audiences: Sequence[str],
    environments: Sequence[str],
    entries: Sequence[Entry],
    now: datetime,
    mask: Callable[[str], str] = str,
) -> Registered | None:
    """Store the change's record and the entries not registered yet (`entries`: its ledger, whose
    transitions give the status). What the change record says is masked first: the register is
    as readable as the ledger (entries come masked). An update registers nothing of a change
    that is not registered."""
    if stage not in PHASE and register.get(change.id) is None:
        return None
    record = record_of(change, result, audiences, environments, entries)
    record = replace(
        record,
        purpose=mask(record.purpose),
        change=json.loads(mask(json.dumps(dict(record.change)))),
    )
    return register.put(record, [e for e in entries if not e.dry_run], now)


def conflicts_of(
    register: Register, record: Registered, periods: Sequence[feed.FreezePeriod]
) -> list[feed.Conflict]:
    """The conflicts of one change (as `record` says it now) with the others registered, and
    with the deploy freezes."""
    if record.window_start is None or record.window_end is None or record.status == "cancelled":
        return []
    start, end = record.window_start, record.window_end
    found = register.between(start, end)
    others = [r for r in found if r.change_id != record.change_id]
    if not record.project:  # the gate's view of it: its project is the one registered
        registered = [r.project for r in found if r.change_id == record.change_id]
        record = replace(record, project=registered[0] if registered else "")
    freezes = feed.freezes_between(periods, start, end)
    return feed.conflicts([record, *others], freezes, among=[record.change_id])
