"""Classifications, audiences, change records, ledger entries and a gate to decide with, for the
gate's rules (moved from tests/test_gate_rules.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from hie_notify.audiences import Audience, Audiences
from hie_notify.calendar import BusinessCalendar
from hie_notify.change import ChangeRecord, Window
from hie_notify.classify import Classification, ResourceResult
from hie_notify.durations import parse_notice
from hie_notify.gate import (
    GateDecision,
    GateFacts,
    Level,
    decide,
)
from hie_notify.ledger import Entry
from hie_notify.policy import Policy

UTC = timezone.utc


START = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)  # Tuesday, inside working hours


END = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


NOW = START + timedelta(minutes=30)


TOLD = START - timedelta(hours=72)


NODES = "aws_eks_node_group.general"


DB = "aws_db_instance.main"


PLAN = ((NODES, "update"), (DB, "update"))


def resource(address: str, action: str) -> ResourceResult:
    rtype = address.split(".")[0]
    return ResourceResult(address, rtype, action, (action,), ("planned_infra_update",), False)


def classification(
    resources: Sequence[tuple[str, str]] = PLAN,
    change_type: str | None = "planned_infra_update",
    service_impacting: bool = False,
    declared_type: str | None = None,
) -> Classification:
    rows = tuple(resource(a, b) for a, b in resources)
    return Classification(
        change_type=change_type,
        declared_type=declared_type,
        categories=(change_type,) if change_type else (),
        service_impacting=service_impacting,
        summary={},
        reasons=(),
        resources=rows,
        drift=(),
        outputs=(),
        fingerprint="sha256:" + "|".join(f"{a}={b}" for a, b in resources),
        has_changes=bool(rows),
        impacting_categories=(),
        notice=(),
    )


def audience(
    aid: str = "slack:#devops", minimum: str = "24h", recommended: str = "48h", **kw: Any
) -> Audience:
    return Audience(
        id=aid,
        kind=kw.pop("kind", "internal"),
        label=kw.pop("label", aid.split(":", 1)[1]),
        time_zone="Europe/London",
        phases=frozenset(kw.pop("phases", ["pre_deployment", "post_deployment"])),
        minimum=parse_notice(minimum),
        recommended=parse_notice(recommended),
        change_types=("planned_infra_update",),
        **kw,
    )


def record(**fields: Any) -> ChangeRecord:
    data: dict[str, Any] = {
        "id": "FFAPP-1",
        "purpose": "Resize nodes",
        "window": Window(start=START, end=END),
        "downtime": "0",
        "rollback": "Revert",
        "risk": "low",
        "monitoring": "Grafana dashboard and alerts",
        "approvers": ["Ollie"],
    }
    data.update(fields)
    return ChangeRecord.model_validate(data)


def entry(
    delivered_at: datetime = TOLD,
    resources: Sequence[tuple[str, str]] = PLAN,
    change_type: str | None = "planned_infra_update",
    service_impacting: bool = False,
    window: tuple[datetime, datetime] | None = (START, END),
    **fields: Any,
) -> Entry:
    data: dict[str, Any] = {
        "change_id": "FFAPP-1",
        "stage": "announce",
        "audience": "slack:#devops",
        "channel": "slack",
        "recipient": "#devops",
        "fingerprint": "sha256:x",
        "change_type": change_type,
        "service_impacting": service_impacting,
        "resources": tuple(resources),
        "delivered_at": delivered_at,
        "message_id": "C0DEVOPS/1.0",
        "idempotency_key": "k",
        # What Slack answered: without a receipt a delivery does not count.
        "receipt": {"channel_id": "C0DEVOPS", "ts": "1764583200.000100"},
        "window_start": window[0].isoformat() if window else "",
        "window_end": window[1].isoformat() if window else "",
    }
    data.update(fields)
    return Entry(**data)


DEFAULT = ChangeRecord.model_construct(id="DEFAULT")  # "the base case's record", a sentinel


@dataclass
class Gate:
    policy: Policy
    calendar: BusinessCalendar

    def __call__(
        self,
        *,
        result: Classification | None = None,
        change: ChangeRecord | None = DEFAULT,
        audiences: Sequence[Audience] | None = None,
        problems: Sequence[str] = (),
        entries: Sequence[Entry] | None = None,
        now: datetime = NOW,
        **kw: Any,
    ) -> GateDecision:
        return decide(
            GateFacts(
                policy=self.policy,
                calendar=self.calendar,
                classification=result if result is not None else classification(),
                change=record() if change is DEFAULT else change,
                audiences=Audiences(
                    tuple(audiences) if audiences is not None else (audience(),), tuple(problems)
                ),
                entries=list(entries) if entries is not None else [entry()],
                now=now,
                **kw,
            )
        )


@pytest.fixture
def gate(policy: Policy) -> Gate:
    return Gate(policy, BusinessCalendar.from_policy(policy))


def only(decision: GateDecision, rule: str) -> str:
    """The text of the one reason the gate gives, which `rule` must have found (the test
    changed one thing: one reason)."""
    assert decision.rules(Level.BLOCK) == (rule,), decision.reasons
    assert decision.allowed is False
    assert isinstance(decision.reasons, tuple) and isinstance(decision.warnings, tuple)
    return decision.reasons[0]


# #devops was told three days ahead of the first plan (NODES only); the plan then grew (PLAN)
# and `plan` recorded, instead of a second identical message, an entry naming the first.
ORIGINAL = entry(
    resources=((NODES, "update"),),
    fingerprint="sha256:first",
    idempotency_key="first",
    extra={"told": "m1", "downtime": "0"},
)
STANDS = entry(
    delivered_at=NOW - timedelta(hours=1),
    fingerprint="sha256:" + "|".join(f"{a}={b}" for a, b in PLAN),
    idempotency_key="second",
    receipt={},
    extra={"told": "m1", "downtime": "0", "same_as": "first"},
)
