"""Registered changes and ledger entries to fill a register with
(moved from tests/test_register.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from hie_notify.lifecycle import Lifecycle, transition_entry
from hie_notify.records import Entry
from hie_notify.register.model import Registered

UTC = timezone.utc


NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def at(day: int, hour: int = 19) -> datetime:
    return datetime(2026, 12, day, hour, 0, tzinfo=UTC)


def record(change_id: str = "FFAPP-1", day: int = 8, **kw: Any) -> Registered:
    fields: dict[str, Any] = {
        "change_id": change_id,
        "status": "announced",
        "change_type": "planned_infra_update",
        "purpose": f"Resize nodes for {change_id}",
        "window_start": at(day),
        "window_end": at(day, 21),
        "customers": ("EoE",),
        "environments": ("eoe-prod",),
        "audiences": ("slack:#devops", "customer:EoE"),
        "categories": ("planned_infra_update",),
        "service_impacting": True,
        "summary": {"add": 1, "change": 0},
        "fingerprint": "sha256:abc",
        "change": {"id": change_id, "purpose": "Resize"},
    }
    fields.update(kw)
    return Registered(**fields)


def entry(change_id: str = "FFAPP-1", stage: str = "announce", n: int = 0) -> Entry:
    return Entry(
        change_id=change_id,
        stage=stage,
        audience=f"slack:#devops{n}",
        channel="outbox",
        recipient="#devops",
        fingerprint="sha256:abc",
        change_type="planned_infra_update",
        service_impacting=True,
        resources=(("aws_instance.a", "replace"),),
        delivered_at=NOW + timedelta(minutes=n),
        message_id=f"m{n}",
        idempotency_key=f"{change_id}-{stage}-{n}",
    )


def steps(*transitions: str, change_id: str = "FFAPP-1", day: int = 8) -> list[Entry]:
    """The transition entries the stage commands record for `transitions` (in order)."""
    life, out = Lifecycle(), []
    window = (at(day), at(day, 21))
    for i, transition in enumerate(transitions):
        when = NOW + timedelta(hours=i)
        step = life.step(transition, window=window, fingerprint="sha256:abc")
        life = life.after(step, when, window=window, fingerprint="sha256:abc")
        base = replace(
            entry(change_id, "x", 100 + i),
            delivered_at=when,
            idempotency_key=f"{change_id}-step-{i}-{transition}",
            window_start=window[0].isoformat(),
            window_end=window[1].isoformat(),
        )
        out.append(transition_entry(base, step, life))
    return out


DONE = ("announce", "apply_started", "apply_succeeded", "complete")
