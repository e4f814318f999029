"""Who must hear: channels, customers (named or mapped from the environment), stakeholders."""

from __future__ import annotations

from typing import Any

from hie_notify.audiences import resolve
from hie_notify.change import ChangeRecord
from hie_notify.classify import classify
from hie_notify.policy import Policy, load_policy
from hie_notify.terraform.plan import parse_plan
from tests.support.builders import plan, rc
from tests.support.paths import EXAMPLES

DB = rc("aws_db_instance.main", ["delete", "create"])
DNS = rc("aws_route53_record.api", ["update"], before={"ttl": 1}, after={"ttl": 2})


def _aud(policy: Policy, *changes: dict[str, Any], env: tuple[str, ...] = (), **kw: Any) -> Any:
    change = ChangeRecord.model_validate(
        {"id": "FFAPP-1", "purpose": "x", **kw}, context={"customers": set(policy.customers)}
    )
    result = classify(parse_plan(plan(*changes)), policy, change)
    return resolve(policy, result, change, env)


def test_customers_from_the_environment() -> None:
    policy = load_policy(EXAMPLES / "policy.yaml")
    got = _aud(policy, DB, env=("cuh-prod",))
    assert [a.id for a in got.audiences if a.kind == "customer"] == ["customer:CUH"]
    cuh = next(a for a in got.audiences if a.id == "customer:CUH")
    assert cuh.emails == ("digital@cuh.example.org",)
    assert str(cuh.minimum) == "5bd" and cuh.phases == {
        "pre_deployment",
        "during",
        "post_deployment",
    }
    named = _aud(policy, DB, env=("cuh-prod",), customers=["EoE"])
    assert [a.id for a in named.audiences if a.kind == "customer"] == [
        "customer:EoE",
        "customer:CUH",
    ]


def test_unknown_affected_customers_is_a_problem(policy: Policy) -> None:
    got = _aud(policy, DB)
    assert got.problems and "none is known" in got.problems[0]
    assert not _aud(policy, DNS).problems  # not impacting: no customer notice owed


def test_scheduled_maintenance_tells_all_customers(policy: Policy) -> None:
    got = _aud(policy, DNS, type="scheduled_maintenance")
    customers = [a for a in got.audiences if a.kind == "customer"]
    assert [a.id for a in customers] == [f"customer:{c}" for c in ("EoE", "CUH", "MKUH", "NNUH")]
    assert all(str(a.minimum) == "5bd" for a in customers)


def test_emergency_tells_critical_contacts_immediately() -> None:
    policy = load_policy(EXAMPLES / "policy.yaml")
    got = _aud(policy, DB, type="emergency_fix", justification="outage", customers=["EoE", "CUH"])
    ids = {a.id for a in got.audiences}
    assert {
        "slack:#ops",
        "slack:#devops",
        "slack:#infrastructure",
        "slack:#product",
        "stakeholders:critical",
        "customer:EoE",
        "customer:CUH",
    } <= ids
    assert all(a.minimum.is_zero() for a in got.audiences)
    cuh = next(a for a in got.audiences if a.id == "customer:CUH")
    assert cuh.emails == ("digital@cuh.example.org",)  # infra category still tells CUH's team
    eoe = next(a for a in got.audiences if a.id == "customer:EoE")
    assert eoe.emails == ("service-desk@eoe.example.org",)


def test_application_update_tells_business_stakeholders(policy: Policy) -> None:
    got = _aud(policy, rc("helm_release.app", ["update"], before={"v": 1}, after={"v": 2}))
    biz = next(a for a in got.audiences if a.id == "stakeholders:business")
    assert biz.kind == "stakeholder" and biz.minimum.is_zero()
    assert [a.id for a in got.audiences if a.kind == "internal"] == [
        "slack:#devops",
        "slack:#product",
    ]


def test_cost_optimisation_goes_to_the_wednesday_meeting(policy: Policy) -> None:
    got = _aud(policy, DNS, type="cost_optimization")
    meeting = next(a for a in got.audiences if a.kind == "meeting")
    assert meeting.id == "meeting:Wednesday meeting"
    assert meeting.phases == {"pre_deployment"}


def test_iam_change_goes_to_cloud_security(policy: Policy) -> None:
    got = _aud(policy, rc("aws_iam_role.x", ["update"], before={"a": 1}, after={"a": 2}))
    assert [a.id for a in got.audiences] == ["slack:#devops", "slack:#cloud-security"]
    assert all(a.phases == {"pre_deployment", "post_deployment"} for a in got.audiences)


def test_customers_hear_during_only_when_impacted(policy: Policy) -> None:
    got = _aud(policy, DNS, type="scheduled_maintenance", customers=["EoE"])
    eoe = next(a for a in got.audiences if a.id == "customer:EoE")
    assert "during" not in eoe.phases
