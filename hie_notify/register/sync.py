"""Bring a change's record in the register up to date after a stage was sent."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from hie_notify.change import ChangeRecord
from hie_notify.classify import Classification
from hie_notify.records import Entry
from hie_notify.register import feed
from hie_notify.register.model import STATUS_OF_STAGE, Registered
from hie_notify.register.store import Register


def record_of(
    change: ChangeRecord,
    result: Classification,
    stage: str,
    audiences: Sequence[str],
    environments: Sequence[str],
) -> Registered:
    """The register's view of a change after `stage` (pure)."""
    window = change.window
    return Registered(
        change_id=change.id,
        status=STATUS_OF_STAGE[stage],
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
    """Store the change's record and the deliveries not registered yet. What the change record
    says is masked first: the register is as readable as the ledger (entries come masked)."""
    if stage in STATUS_OF_STAGE:
        record = record_of(change, result, stage, audiences, environments)
    else:  # an update: the change stays as it is; only its deliveries are added
        old = register.get(change.id)
        if old is None:
            return None
        record = replace(
            record_of(change, result, "announce", audiences, environments), status=old.status
        )
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
    others = [
        r
        for r in register.between(record.window_start, record.window_end)
        if r.change_id != record.change_id
    ]
    freezes = feed.freezes_between(periods, record.window_start, record.window_end)
    return feed.conflicts([record, *others], freezes, among=[record.change_id])
