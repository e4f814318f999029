"""Application updates as the seed's communication matrix says (issue 25, item 2).

The matrix sends an application update to `#devops` and `#product` and to product/business
stakeholders; customers hear only of service-impacting work. A rollout (in-place update of a
Helm release or a Kubernetes workload) is not service-impacting by itself in the built-in
default policy; replacing or destroying one, declared downtime, or a protected policy rule makes
it so, and nothing a branch controls can lower it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from hie_notify.audiences import resolve
from hie_notify.change import ChangeRecord
from hie_notify.classify import classify
from hie_notify.cli import main
from hie_notify.policy import Policy
from hie_notify.policy.loader import default_policy_data
from hie_notify.policy.protected import weakenings
from hie_notify.terraform.plan import parse_plan
from tests.support.builders import plan, rc, write

UPD = {"before": {"version": "1.4.0"}, "after": {"version": "1.5.0"}}
ROLLOUTS = [
    rc("helm_release.portal", ["update"], **UPD),
    rc("kubernetes_deployment.api", ["update"], **UPD),
    rc("kubernetes_deployment_v1.api", ["update"], **UPD),
    rc("kubernetes_stateful_set.worker", ["update"], **UPD),
    rc("kubernetes_daemon_set.agent", ["update"], **UPD),
]


def _change(policy: Policy, **kw: Any) -> ChangeRecord:
    return ChangeRecord.model_validate(
        {"id": "FFAPP-77", "purpose": "Portal 1.5", **kw},
        context={"customers": set(policy.customers)},
    )


def _classified(policy: Policy, *changes: dict[str, Any], **kw: Any) -> Any:
    change = _change(policy, **kw)
    result = classify(parse_plan(plan(*changes)), policy, change)
    return result, resolve(policy, result, change)


@pytest.mark.parametrize("rollout", ROLLOUTS, ids=lambda r: r["address"])
def test_a_rollout_goes_to_devops_product_and_business_not_customers(
    policy: Policy, rollout: dict[str, Any]
) -> None:
    # Fails on main: there every helm_release / workload update was service-impacting, owed
    # customers 3 business days and, with no customer named, the gate blocked.
    result, audiences = _classified(policy, rollout, downtime="0")
    assert result.change_type == "application_update"
    assert not result.service_impacting and result.impacting_categories == ()
    assert [a.id for a in audiences.audiences] == [
        "slack:#devops",
        "slack:#product",
        "stakeholders:business",
    ]
    assert audiences.problems == ()
    assert {n.audience: str(n.minimum) for n in result.notice} == {
        "internal": "24h",
        "external": "0bd",
    }
    assert "not service-impacting" in result.reasons[-1]


@pytest.mark.parametrize(
    "resource",
    [
        rc("helm_release.portal", ["delete", "create"], **UPD),
        rc("helm_release.portal", ["delete"], before=UPD["before"]),
        rc("kubernetes_stateful_set.db", ["create", "delete"], **UPD),
        rc("kubernetes_persistent_volume_claim.data", ["delete"], before={"size": "10Gi"}),
    ],
    ids=lambda r: f"{r['address']}:{'+'.join(r['change']['actions'])}",
)
def test_replacing_or_destroying_is_service_impacting(
    policy: Policy, resource: dict[str, Any]
) -> None:
    result, audiences = _classified(policy, resource, downtime="0", customers=["EoE"])
    assert result.service_impacting
    assert [a.id for a in audiences.audiences if a.kind == "customer"] == ["customer:EoE"]
    eoe = next(a for a in audiences.audiences if a.id == "customer:EoE")
    assert str(eoe.minimum) == "3bd"
    # Declared no downtime: a record can only raise impact, never lower it.
    assert any(r.startswith("service-impacting: ") for r in result.reasons)


def test_declared_downtime_raises_a_rollout_to_service_impacting(policy: Policy) -> None:
    result, audiences = _classified(policy, ROLLOUTS[0], downtime="15m", customers=["CUH"])
    assert result.impacting_categories == ("application_update",)
    assert "customer:CUH" in [a.id for a in audiences.audiences]
    assert "service-impacting: the change record expects 15 minutes of downtime" in (result.reasons)


def test_a_protected_rule_can_make_rollouts_impacting(tmp_path: Path) -> None:
    data = default_policy_data()
    data["classification"]["service_impact"].append(
        {"description": "our portal restarts on rollout", "types": ["helm_release"]}
    )
    policy = Policy.model_validate(data)
    result, audiences = _classified(policy, ROLLOUTS[0], downtime="0", customers=["EoE"])
    assert result.service_impacting
    assert (
        "service-impacting: helm_release.portal is updated in place (our portal restarts on "
        "rollout)" in result.reasons
    )
    assert "customer:EoE" in [a.id for a in audiences.audiences]


def test_a_change_record_cannot_declare_itself_not_impacting(policy: Policy) -> None:
    with pytest.raises(ValidationError, match="service_impacting"):
        _change(policy, service_impacting=False)
    # Negative downtime is no downtime at all, and does not lower anything.
    with pytest.raises(ValidationError):
        _change(policy, downtime="-1h")


@pytest.mark.parametrize(
    "branch",
    [
        # Drop the rule that makes replacing a release impacting.
        {"classification": {"service_impact": []}},
        # Send everything no rule claims to the application update (no customer notice).
        {"classification": {"fallback": "application_update"}},
        # Count replacements as state-only moves.
        {"classification": {"state_only": "notice"}},
    ],
    ids=["drop-rules", "fallback", "state-only"],
)
def test_a_branch_cannot_change_what_is_impacting_even_if_overridable(
    branch: dict[str, Any],
) -> None:
    # Fails on main for a protected policy that (carelessly) lists classification.* as
    # overridable: the protected policy alone decides which resource types are impacting.
    protected = default_policy_data()
    problems = list(weakenings(branch, protected, ["classification.*", "classification"]))
    assert problems and all("can only be set in the protected policy" in p for p in problems)


def test_classify_shows_the_rollout_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan_file = write(tmp_path / "plan.json", plan(ROLLOUTS[0]))
    change = tmp_path / "change.yaml"
    change.write_text(yaml.safe_dump({"id": "FFAPP-77", "purpose": "Portal 1.5", "downtime": "0"}))
    code = main(
        ["--format", "json", "--change", str(change), "classify", "--plan", str(plan_file)],
        env={},
    )
    assert code == 0

    out = json.loads(capsys.readouterr().out)
    assert out["service_impacting"] is False
    assert [n["audience"] for n in out["notice"]] == ["internal", "external"]
    assert out["notice"][1]["minimum"] == "0bd"
