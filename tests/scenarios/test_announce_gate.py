"""What a plan-less announcement (`hie-notify announce`) covers at the gate, one rule at a time
(tests/test_gate.py's base case: #devops told three days ahead, window open).

A plan-less notice names no resources: it covers any plan no more severe than it announced.
The change type must not be raised, the plan must not be newly service-impacting, and every
audience the plan needs (a customer it affects) must have been told. The marker is the ledger
entry's PLANLESS fingerprint alone, which no plan's fingerprint can equal."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from hie_notify.gate import plan_differences
from hie_notify.policy import Policy
from hie_notify.policy.loader import load_policy
from hie_notify.records import PLANLESS
from hie_notify.terraform.plan import fingerprint_of
from tests.support.gate_records import (
    DB,
    END,
    NODES,
    START,
    Gate,
    audience,
    classification,
    entry,
    gate,
    only,
)

__all__ = ["gate"]  # the fixture, shared with tests/test_gate.py

# What `hie-notify announce` records: no resources, the PLANLESS fingerprint.
PLANLESS_KW = {"resources": (), "fingerprint": PLANLESS}


def test_a_planless_notice_covers_a_plan_of_its_type(gate: Gate, policy: Policy) -> None:
    told = entry(**PLANLESS_KW)
    # Resources nobody named, a replacement among them: the notice announced the change, not them.
    plan = classification([(NODES, "replace"), (DB, "update"), ("aws_s3_bucket.x", "create")])
    assert plan_differences(told, plan, policy) == []
    d = gate(result=plan, entries=[told])
    assert d.allowed and d.requirements[0].given_at == told.delivered_at


def test_rule_planless_change_type_raised(gate: Gate, policy: Policy) -> None:
    told = entry(change_type="application_update", **PLANLESS_KW)
    assert plan_differences(told, classification(), policy) == [
        "change type raised from application_update to planned_infra_update"
    ]
    reason = only(gate(entries=[told]), "notice.other_plan")
    assert reason.startswith("#devops was told about a different plan (change type raised")


def test_a_planless_notice_of_a_stricter_type_covers(gate: Gate, policy: Policy) -> None:
    told = entry(change_type="scheduled_maintenance", **PLANLESS_KW)
    assert plan_differences(told, classification(), policy) == []
    assert gate(entries=[told]).allowed


def test_rule_planless_now_service_impacting(gate: Gate, policy: Policy) -> None:
    told = entry(**PLANLESS_KW)
    impacting = classification(service_impacting=True)
    assert plan_differences(told, impacting, policy) == [
        "now service-impacting (the notice said it was not)"
    ]
    assert "now service-impacting" in only(
        gate(result=impacting, entries=[told]), "notice.other_plan"
    )


def test_a_planless_impacting_notice_covers_an_impacting_plan(policy: Policy) -> None:
    told = entry(service_impacting=True, **PLANLESS_KW)
    assert plan_differences(told, classification(service_impacting=True), policy) == []


def test_rule_planless_customer_not_announced(gate: Gate) -> None:
    """The plan affects CUH; the plan-less announcement told EoE: CUH has no notice at all."""
    eoe = audience("customer:EoE", "24h", "24h", kind="customer", label="East of England")
    cuh = audience("customer:CUH", "24h", "24h", kind="customer", label="CUH")
    told = [
        entry(**PLANLESS_KW),
        entry(audience="customer:EoE", channel="outbox", **PLANLESS_KW),
    ]
    assert gate(audiences=[audience(), eoe], entries=told).allowed
    reason = only(gate(audiences=[audience(), eoe, cuh], entries=told), "notice.missing")
    assert reason.startswith("CUH has not been told")


def test_rule_planless_other_window(gate: Gate) -> None:
    told = entry(window=(START.replace(day=1), END.replace(day=1)), **PLANLESS_KW)
    only(gate(entries=[told]), "notice.other_window")


def test_an_empty_plans_notice_is_not_planless(gate: Gate, policy: Policy) -> None:
    """`plan` with an empty plan (and a declared type) records no resources too, but a real
    fingerprint: it announced nothing, so it covers nothing."""
    told = entry(resources=(), fingerprint=fingerprint_of([]))
    assert plan_differences(told, classification(), policy) == [f"not announced: {NODES}, {DB}"]
    assert "not announced" in only(gate(entries=[told]), "notice.other_plan")


def test_the_marker_is_the_fingerprint_not_a_field_a_writer_adds(policy: Policy) -> None:
    told = entry(
        resources=(), extra={"planless": "true", "fingerprint": PLANLESS}, message_id=PLANLESS
    )
    assert plan_differences(told, classification(), policy)[0].startswith("not announced")


def test_no_plan_fingerprint_equals_the_marker() -> None:
    assert fingerprint_of([]) != PLANLESS and fingerprint_of([]).startswith("sha256:")


_TYPES = [
    "emergency_fix",
    "scheduled_maintenance",
    "planned_infra_update",
    "application_update",
    "iam_permission_change",
    "cost_optimization",
]
_ACTIONS = ["create", "update", "delete", "replace"]
_POLICY = load_policy()
_addresses = st.text(string.ascii_lowercase + "._", min_size=1, max_size=12)


@given(
    announced=st.sampled_from(_TYPES),
    announced_impact=st.booleans(),
    planned=st.sampled_from(_TYPES),
    planned_impact=st.booleans(),
    resources=st.lists(st.tuples(_addresses, st.sampled_from(_ACTIONS)), max_size=8),
)
def test_property_a_planless_notice_covers_exactly_the_plans_no_more_severe(
    announced: str,
    announced_impact: bool,
    planned: str,
    planned_impact: bool,
    resources: list[tuple[str, str]],
) -> None:
    told = entry(change_type=announced, service_impacting=announced_impact, **PLANLESS_KW)
    plan = classification(
        list(dict(resources).items()), change_type=planned, service_impacting=planned_impact
    )
    covered = _POLICY.rank(planned) <= _POLICY.rank(announced) and (
        announced_impact or not planned_impact
    )
    assert (plan_differences(told, plan, _POLICY) == []) is covered
    # The same announcement recorded with a plan's fingerprint covers no resource it lacks.
    if resources:
        real = entry(
            change_type=announced,
            service_impacting=announced_impact,
            resources=(),
            fingerprint=fingerprint_of([]),
        )
        assert plan_differences(real, plan, _POLICY)
