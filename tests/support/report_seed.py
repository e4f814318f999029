"""Twelve weeks of changes seeded into a register, the report's test data
(moved from tests/test_report_seed.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hie_notify.records import Entry
from hie_notify.register.model import Registered
from hie_notify.register.sqlite import SqliteRegister

UTC = timezone.utc


FIRST_MONDAY = datetime(2026, 10, 5, tzinfo=UTC)


NOW = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)  # everything ended, every post-mortem due


INTERNAL = {
    "planned_infra_update": ("#devops", "#infrastructure", "#product"),
    "emergency_fix": ("#ops", "#devops"),
    "scheduled_maintenance": ("#devops", "#infrastructure"),
    "application_update": ("#devops", "#product"),
    "cost_optimization": ("#devops", "#product"),
}


ALL_CUSTOMERS = ("EoE", "CUH", "MKUH", "NNUH")


@dataclass
class Seed:
    """One change to register: when each stage was recorded, and to whom the notice went."""

    change_id: str
    change_type: str
    start: datetime
    end: datetime
    told: datetime
    status: str
    impacting: bool = False
    customers: tuple[str, ...] = ()
    downtime: str = "0"
    risk: str = "low"
    stages: dict[str, datetime] = field(default_factory=dict)
    external: tuple[str, ...] = ()  # audience ids told besides the internal channels
    channel: str = "slack"
    postmortem: str = ""  # "", "opened" or "closed"

    def record(self) -> Registered:
        change: dict[str, Any] = {
            "id": self.change_id,
            "type": self.change_type,
            "purpose": f"Work {self.change_id}",
            "window": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "downtime": self.downtime,
            "customers": list(self.customers),
            "risk": self.risk,
            "rollback": "Revert and re-apply",
            "monitoring": "Grafana dashboard and alerts",
            "on_call": "Leon",
            "approvers": ["Ollie"],
        }
        if self.change_type == "emergency_fix":
            change["justification"] = f"Patch an exploited flaw ({self.change_id})"
        audiences = [f"slack:{c}" for c in INTERNAL[self.change_type]] + list(self.external)
        return Registered(
            change_id=self.change_id,
            status=self.status,
            change_type=self.change_type,
            purpose=f"Work {self.change_id}",
            window_start=self.start,
            window_end=self.end,
            customers=self.customers,
            audiences=tuple(audiences),
            categories=(self.change_type,),
            service_impacting=self.impacting,
            fingerprint="sha256:" + self.change_id,
            change=change,
        )

    def entries(self) -> list[Entry]:
        out = []
        internal = [f"slack:{c}" for c in INTERNAL[self.change_type]]
        for audience in (*internal, *self.external):
            out.append(self._entry("announce", audience, self.told))
        for stage, at in self.stages.items():
            for audience in internal:
                out.append(self._entry(stage, audience, at))
        if self.postmortem:
            at = self.end + timedelta(days=1)
            out.append(self._entry("postmortem", "postmortem", at, channel="gitlab"))
            if self.postmortem == "closed":
                out.append(
                    self._entry(
                        "postmortem",
                        "postmortem",
                        at + timedelta(days=2),
                        channel="gitlab",
                        extra={"state": "closed"},
                        key="closed",
                    )
                )
        return out

    def _entry(
        self,
        stage: str,
        audience: str,
        at: datetime,
        *,
        channel: str | None = None,
        extra: dict[str, str] | None = None,
        key: str = "",
    ) -> Entry:
        kind = channel or (self.channel if audience.startswith("slack:") else "email")
        if self.channel == "outbox":
            kind = "outbox"
        return Entry(
            change_id=self.change_id,
            stage=stage,
            audience=audience,
            channel=kind,
            recipient=audience,
            fingerprint="sha256:" + self.change_id,
            change_type=self.change_type,
            service_impacting=self.impacting,
            resources=(("aws_instance.web", "update"),),
            delivered_at=at,
            message_id=f"{self.change_id}/{stage}/{audience}/{key}",
            idempotency_key=f"{self.change_id}|{stage}|{audience}|{key}",
            emergency=self.change_type == "emergency_fix",
            categories=(self.change_type,),
            impacting_categories=(self.change_type,) if self.impacting else (),
            window_start=self.start.isoformat(),
            window_end=self.end.isoformat(),
            extra=extra or {},
        )


def _h(day: datetime, hours: float) -> datetime:
    return day + timedelta(hours=hours)


def week(k: int, monday: datetime, prefix: str = "CHG") -> Iterator[Seed]:
    mon, tue, wed, thu = monday, monday + timedelta(1), monday + timedelta(2), monday + timedelta(3)
    fri, sat = monday + timedelta(4), monday + timedelta(5)
    n = iter(range(1, 100))

    def cid() -> str:
        return f"{prefix}-{k * 100 + next(n)}"

    for _ in range(5):
        yield Seed(
            cid(),
            "planned_infra_update",
            _h(thu, 10),
            _h(thu, 11),
            _h(mon, 10),
            "done",
            stages={
                "apply_started": _h(thu, 10.1),
                "apply_succeeded": _h(thu, 10.3),
                "complete": _h(thu, 10.5),
            },
        )
    for i in range(4):
        yield Seed(
            cid(),
            "planned_infra_update",
            _h(thu, 20),
            _h(thu, 22),
            _h(mon, 10),
            "done",
            impacting=True,
            customers=("EoE",),
            downtime="15m",
            external=("customer:EoE",),
            stages={
                "apply_started": thu + timedelta(hours=20, minutes=10),
                "apply_succeeded": thu + timedelta(hours=20, minutes=20),
                "complete": _h(thu, 21),
            },
            postmortem={0: "closed", 1: "opened"}.get(i, ""),
        )
    for _ in range(2):
        yield Seed(
            cid(),
            "planned_infra_update",
            _h(thu, 20),
            _h(thu, 22),
            _h(wed, 10),
            "done",
            impacting=True,
            customers=("CUH",),
            downtime="30m",
            external=("customer:CUH",),
            stages={
                "apply_started": _h(thu, 20),
                "apply_succeeded": thu + timedelta(hours=20, minutes=20),
                "complete": _h(thu, 21),
            },
        )
    yield Seed(
        cid(),
        "emergency_fix",
        _h(tue, 14),
        _h(tue, 15),
        tue + timedelta(hours=13, minutes=50),
        "rolled back",
        impacting=True,
        customers=("MKUH",),
        downtime="20m",
        external=("stakeholders:critical", "customer:MKUH"),
        stages={
            "apply_started": _h(tue, 14),
            "apply_failed": tue + timedelta(hours=14, minutes=10),
            "rollback_started": tue + timedelta(hours=14, minutes=12),
            "rollback_succeeded": tue + timedelta(hours=14, minutes=40),
        },
        postmortem="closed",
    )
    for _ in range(2):
        yield Seed(
            cid(),
            "scheduled_maintenance",
            _h(sat, 8),
            _h(sat, 10),
            _h(mon - timedelta(7), 10),
            "done",
            impacting=True,
            downtime="20m",
            external=tuple(f"customer:{c}" for c in ALL_CUSTOMERS),
            stages={
                "apply_started": _h(sat, 8),
                "apply_succeeded": sat + timedelta(hours=8, minutes=15),
                "complete": _h(sat, 9),
            },
        )
    for i in range(2):
        yield Seed(
            cid(),
            "application_update",
            _h(thu, 12),
            _h(thu, 13),
            _h(tue, 10),
            "done" if i == 0 else "cancelled",
            external=("stakeholders:business",),
            stages={
                "apply_started": _h(thu, 12),
                "apply_succeeded": _h(thu, 12.5),
                "complete": _h(thu, 12.6),
            }
            if i == 0
            else {"cancelled": _h(wed, 10)},
        )
    yield Seed(
        cid(),
        "cost_optimization",
        _h(fri, 11),
        _h(fri, 12),
        _h(thu, 11),
        "failed",
        external=("meeting:Wednesday meeting",),
        channel="outbox",
        stages={"apply_started": _h(fri, 11), "apply_failed": _h(fri, 11.5)},
    )


def one_offs() -> list[Seed]:
    h1_start = datetime(2026, 11, 17, 22, 0, tzinfo=UTC)
    h2_start = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    return [
        Seed(
            "CHG-9001",
            "planned_infra_update",
            h1_start,
            h1_start + timedelta(hours=6),
            datetime(2026, 11, 10, 10, 0, tzinfo=UTC),
            "rolled back",
            impacting=True,
            customers=("NNUH",),
            downtime="2h",
            risk="high",
            external=("customer:NNUH",),
            stages={
                "apply_started": h1_start,
                "apply_failed": _h(h1_start, 1),
                "rollback_started": h1_start + timedelta(hours=1, minutes=5),
                "rollback_succeeded": _h(h1_start, 5.5),
            },
            postmortem="opened",
        ),
        Seed(
            "CHG-9002",
            "planned_infra_update",
            h2_start,
            _h(h2_start, 3),
            datetime(2026, 10, 19, 10, 0, tzinfo=UTC),
            "done",
            impacting=True,
            customers=("NNUH",),
            downtime="1h",
            external=("customer:NNUH",),
            stages={
                "apply_started": _h(h2_start, 0.5),
                "apply_succeeded": _h(h2_start, 1.5),
                "complete": _h(h2_start, 2),
            },
            postmortem="closed",
        ),
    ]


def seeds(weeks: int = 12, first: datetime = FIRST_MONDAY) -> list[Seed]:
    out = [s for k in range(weeks) for s in week(k, first + timedelta(weeks=k))]
    return out + one_offs() if first == FIRST_MONDAY else out


def seed_register(path: Path, items: list[Seed]) -> SqliteRegister:
    register = SqliteRegister(path)
    register._db().execute("PRAGMA synchronous = OFF")  # a test file: no need to reach the disk
    for s in items:
        register.put(s.record(), s.entries(), s.told)
    return register
