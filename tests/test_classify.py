"""Every classification rule, over small plans built in the shape `terraform show -json` writes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from hie_notify.change import ChangeRecord
from hie_notify.classify import Classification, classify
from hie_notify.policy import Policy, load_policy
from hie_notify.terraform.plan import parse_plan
from tests.support.builders import plan, rc


def _classify(
    policy: Policy, *changes: dict[str, Any], change: ChangeRecord | None = None, **top: Any
) -> Classification:
    return classify(parse_plan(plan(*changes, **top)), policy, change)


def _change(**kw: Any) -> ChangeRecord:
    return ChangeRecord.model_validate({"id": "FFAPP-1", "purpose": "test", **kw})


def _cats(result: Classification) -> dict[str, tuple[str, ...]]:
    return {r.address: r.categories for r in result.resources}


UPD = {"before": {"name": "a"}, "after": {"name": "b"}}


@pytest.mark.parametrize(
    "rtype",
    [
        "aws_iam_role",
        "aws_iam_policy",
        "aws_iam_role_policy_attachment",
        "aws_ssoadmin_permission_set",
        "aws_eks_access_entry",
        "aws_eks_access_policy_association",
        "kubernetes_cluster_role_binding",
        "kubernetes_role",
        "aws_s3_bucket_policy",
        "aws_lambda_permission",
    ],
)
def test_iam_types(policy: Policy, rtype: str) -> None:
    r = _classify(policy, rc(f"{rtype}.x", ["create"], after={"name": "x"}))
    assert r.change_type == "iam_permission_change"
    assert r.categories == ("iam_permission_change",)


@pytest.mark.parametrize(
    "rtype",
    [
        "helm_release",
        "kubernetes_deployment",
        "kubernetes_deployment_v1",
        "kubernetes_stateful_set",
        "aws_ecs_task_definition",
        "kubernetes_cron_job_v1",
    ],
)
def test_application_types(policy: Policy, rtype: str) -> None:
    r = _classify(policy, rc(f"{rtype}.x", ["update"], **UPD))
    assert r.change_type == "application_update"


@pytest.mark.parametrize(
    "rtype",
    [
        "aws_eks_node_group",
        "aws_db_instance",
        "aws_vpc",
        "aws_s3_bucket",
        "aws_route53_record",
        "google_compute_instance",
    ],
)
def test_everything_else_is_infrastructure(policy: Policy, rtype: str) -> None:
    r = _classify(policy, rc(f"{rtype}.x", ["update"], **UPD))
    assert r.change_type == "planned_infra_update"
    assert any("claimed by no other rule" in reason for reason in r.reasons)


def test_lambda_code_is_an_application_update_but_tags_are_not(policy: Policy) -> None:
    r = _classify(
        policy,
        rc(
            "aws_lambda_function.export",
            ["update"],
            before={"source_code_hash": "a", "s3_object_version": "1"},
            after={"source_code_hash": "b", "s3_object_version": "2"},
        ),
        rc(
            "aws_lambda_function.shipper",
            ["update"],
            before={"tags": {"a": "1"}, "tags_all": {"a": "1"}},
            after={"tags": {"a": "2"}, "tags_all": {"a": "2"}},
        ),
    )
    assert _cats(r) == {
        "aws_lambda_function.export": ("application_update",),
        "aws_lambda_function.shipper": ("planned_infra_update",),
    }


def test_attribute_path_rules_for_access_policies(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_kms_key.logs", ["update"], before={"policy": "{}"}, after={"policy": '{"a":1}'}),
        rc("aws_kms_key.data", ["update"], before={"description": "a"}, after={"description": "b"}),
        rc(
            "aws_eks_cluster.main",
            ["update"],
            before={"access_config": [{"authentication_mode": "CONFIG_MAP"}]},
            after={"access_config": [{"authentication_mode": "API_AND_CONFIG_MAP"}]},
        ),
    )
    assert _cats(r) == {
        "aws_kms_key.logs": ("iam_permission_change",),
        "aws_kms_key.data": ("planned_infra_update",),
        "aws_eks_cluster.main": ("iam_permission_change",),
    }


@pytest.mark.parametrize(
    ("change", "impacting"),
    [
        (
            rc(
                'aws_eks_node_group.w["general"]',
                ["create", "delete"],
                before={"instance_types": ["m5.large"]},
                after={"instance_types": ["m6i.xlarge"]},
                replace_paths=[["instance_types"]],
            ),
            True,
        ),
        (rc("aws_db_instance.main", ["delete", "create"]), True),
        (rc("aws_security_group_rule.ssh", ["delete"], before={"type": "ingress"}), True),
        (
            rc(
                "aws_security_group.nodes",
                ["update"],
                before={"ingress": []},
                after={"ingress": [{"from_port": 443}]},
            ),
            True,
        ),
        (
            rc(
                "aws_eks_node_group.w",
                ["update"],
                before={"scaling_config": [{"desired_size": 3}]},
                after={"scaling_config": [{"desired_size": 4}]},
            ),
            True,
        ),
        (
            rc(
                "aws_db_instance.main",
                ["update"],
                before={"tags": {"a": "1"}, "tags_all": {}},
                after={"tags": {"a": "2"}, "tags_all": {}},
            ),
            False,
        ),
        (rc("aws_db_instance.main", ["create"], after={"engine": "postgres"}), False),
        (rc("aws_cloudwatch_metric_alarm.cpu", ["delete"], before={"name": "x"}), False),
        (rc("aws_iam_role.x", ["update"], **UPD), False),
        (rc("aws_db_instance.main", ["no-op"], importing={"id": "db-1"}), False),
    ],
)
def test_service_impact(policy: Policy, change: dict[str, Any], impacting: bool) -> None:
    r = _classify(policy, change)
    assert r.service_impacting is impacting
    assert r.resources[0].service_impacting is impacting
    if impacting:
        assert any(
            reason.startswith("service-impacting: " + change["address"]) for reason in r.reasons
        )
    elif r.has_changes:
        assert any(reason.startswith("not service-impacting") for reason in r.reasons)
    else:  # an import alone changes only the state: no notice, and said so
        assert r.reasons[0].startswith("state only: 1 imported")


def test_replacement_reason_names_what_cannot_change(policy: Policy) -> None:
    r = _classify(
        policy,
        rc(
            'aws_eks_node_group.w["general"]',
            ["create", "delete"],
            replace_paths=[["instance_types"]],
        ),
    )
    assert (
        'service-impacting: aws_eks_node_group.w["general"] is replaced: instance_types '
        "cannot change in place"
    ) in r.reasons[1]


def test_declared_downtime_is_service_impacting(policy: Policy) -> None:
    r = _classify(
        policy, rc("aws_route53_record.api", ["update"], **UPD), change=_change(downtime="30m")
    )
    assert r.service_impacting
    assert "service-impacting: the change record expects 30 minutes of downtime" in r.reasons


def test_mixed_plan_carries_every_category_and_strictest_notice(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_iam_role_policy.node_ecr", ["update"], **UPD),
        rc("helm_release.ingress", ["update"], **UPD),
        rc("module.vpc.aws_nat_gateway.this[0]", ["delete", "create"]),
    )
    assert r.change_type == "planned_infra_update"
    assert r.categories == ("planned_infra_update", "application_update", "iam_permission_change")
    assert any(
        reason.startswith(
            "mixed plan: planned_infra_update, application_update, iam_permission_change"
        )
        for reason in r.reasons
    )
    notice = {n.audience: (str(n.minimum), str(n.recommended), n.change_type) for n in r.notice}
    assert notice == {
        "internal": ("24h", "48h", "planned_infra_update"),
        "external": ("3bd", "5bd", "planned_infra_update"),
    }


def test_external_notice_only_when_service_impacting_for_infra(policy: Policy) -> None:
    r = _classify(policy, rc("aws_route53_record.api", ["update"], **UPD))
    assert [n.audience for n in r.notice] == ["internal"]


def test_application_update_always_tells_business_stakeholders(policy: Policy) -> None:
    r = _classify(policy, rc("helm_release.app", ["create"], after={"name": "x"}))
    notice = {n.audience: (str(n.minimum), n.change_type) for n in r.notice}
    assert notice == {
        "internal": ("24h", "application_update"),
        "external": ("0bd", "application_update"),
    }


def test_declared_type_can_only_make_it_stricter(policy: Policy) -> None:
    db = rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["storage_encrypted"]])
    looser = _classify(policy, db, change=_change(type="cost_optimization"))
    assert looser.change_type == "planned_infra_update"
    assert looser.service_impacting
    assert "cost_optimization" in looser.categories
    assert any(
        reason.startswith(
            "declared cost_optimization is less strict than planned_infra_update, "
            "which the plan requires (aws_db_instance.main)"
        )
        for reason in looser.reasons
    )
    stricter = _classify(policy, db, change=_change(type="scheduled_maintenance"))
    assert stricter.change_type == "scheduled_maintenance"
    assert (
        "declared scheduled_maintenance is stricter than planned_infra_update: using "
        "scheduled_maintenance" in stricter.reasons
    )
    ext = {n.audience: str(n.minimum) for n in stricter.notice}
    assert ext == {"internal": "48h", "external": "5bd"}


def test_emergency_is_only_declared(policy: Policy) -> None:
    sg = rc("aws_security_group_rule.block", ["create"], after={"type": "ingress"})
    plain = _classify(policy, sg)
    assert plain.change_type == "planned_infra_update"
    assert "emergency_fix" not in plain.categories
    declared = _classify(policy, sg, change=_change(type="emergency_fix", justification="CVE"))
    assert declared.change_type == "emergency_fix"
    assert {n.audience: str(n.minimum) for n in declared.notice}["internal"] == "0h"


def test_no_changes(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_vpc.main", ["no-op"]),
        rc("data.aws_caller_identity.me", ["read"], mode="data"),
    )
    assert r.change_type is None and not r.has_changes and r.resources == ()
    assert r.categories == () and r.notice == ()
    assert r.reasons[0].startswith("no changes: the plan changes no resource (1 unchanged, 1 data")


def test_no_changes_with_a_declared_type(policy: Policy) -> None:
    r = _classify(policy, change=_change(type="scheduled_maintenance"))
    assert r.change_type == "scheduled_maintenance"
    assert "declared scheduled_maintenance: using it" in r.reasons


def test_moves_imports_and_forgets_are_changes(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_route53_record.api", ["no-op"], importing={"id": "Z1"}),
        rc("module.net.aws_subnet.a", ["no-op"], previous_address="aws_subnet.a"),
        rc("aws_ssm_parameter.old", ["forget"]),
    )
    assert [(x.address, x.action) for x in r.resources] == [
        ("aws_route53_record.api", "import"),
        ("module.net.aws_subnet.a", "move"),
        ("aws_ssm_parameter.old", "forget"),
    ]
    assert not r.service_impacting


def test_reasons_name_resources_and_shorten_long_lists(policy: Policy) -> None:
    r = _classify(policy, *[rc(f"aws_iam_role.r{i}", ["create"]) for i in range(8)])
    assert r.reasons[0] == (
        "iam_permission_change: aws_iam_role.r0, aws_iam_role.r1, aws_iam_role.r2, "
        "aws_iam_role.r3, aws_iam_role.r4 and 3 more (rule: AWS IAM and IAM Identity Center)"
    )


def test_drift_and_errored_plans_are_reported(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_vpc.main", ["update"], **UPD),
        resource_drift=[rc("aws_vpc.main", ["update"], **UPD)],
        errored=True,
    )
    assert "drift: aws_vpc.main changed outside Terraform since the last apply" in r.reasons
    assert "the plan errored: Terraform could not finish planning" in r.reasons
    assert [d.address for d in r.drift] == ["aws_vpc.main"]


def test_rules_live_in_the_policy(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        "change_types:\n"
        "  application_update:\n"
        "    match:\n"
        "      - {description: our app DNS, types: [aws_route53_record]}\n"
        "classification:\n"
        "  service_impact: []\n"
    )
    custom = load_policy(f)
    r = _classify(
        custom,
        rc("aws_route53_record.api", ["delete"], before={"name": "a"}),
        rc("helm_release.app", ["delete"], before={"name": "a"}),
    )
    assert _cats(r) == {
        "aws_route53_record.api": ("application_update",),
        "helm_release.app": ("planned_infra_update",),
    }
    assert not r.service_impacting
    assert "application_update: aws_route53_record.api (rule: our app DNS)" in r.reasons


def test_fingerprint_is_the_changing_resources_and_their_actions(policy: Policy) -> None:
    # Computed here from its definition, not from the code's own helper: sha256 over the sorted
    # "address<TAB>action" lines of every resource that changes.
    def expected(*pairs: str) -> str:
        return "sha256:" + hashlib.sha256("\n".join(sorted(pairs)).encode()).hexdigest()

    a = rc("aws_s3_bucket.a", ["create"])
    b = rc("aws_db_instance.b", ["delete", "create"])
    same = rc("aws_vpc.c", ["no-op"])
    r = _classify(policy, a, b, same)
    assert r.fingerprint == expected("aws_db_instance.b\treplace", "aws_s3_bucket.a\tcreate")
    assert r.to_json()["fingerprint"] == r.fingerprint
    # The order of the plan does not matter; unchanged resources do not count.
    assert _classify(policy, b, a).fingerprint == r.fingerprint
    # Another action, another resource or one resource fewer: another fingerprint.
    assert _classify(policy, rc("aws_s3_bucket.a", ["update"], **UPD), b).fingerprint != (
        r.fingerprint
    )
    assert _classify(policy, a).fingerprint == expected("aws_s3_bucket.a\tcreate")
    imported = rc("aws_s3_bucket.i", ["no-op"], importing={"id": "bucket-i"})
    assert _classify(policy, imported).fingerprint == expected("aws_s3_bucket.i\timport")


NODE_TAGS = (
    {"tags": {"team": "a"}, "tags_all": {"team": "a"}},
    {"tags": {"team": "b"}, "tags_all": {"team": "b"}},
)


def test_eks_node_group_tags_only_are_not_service_impacting(policy: Policy) -> None:
    before, after = NODE_TAGS
    r = _classify(policy, rc("aws_eks_node_group.w", ["update"], before=before, after=after))
    assert not r.service_impacting and r.resources[0].service_impacting is False
    assert [n.audience for n in r.notice] == ["internal"]


def test_eks_node_group_tags_and_scaling_stay_service_impacting(policy: Policy) -> None:
    # Ignored attributes are ignored only when *every* changed attribute is one of them.
    before, after = NODE_TAGS
    r = _classify(
        policy,
        rc(
            "aws_eks_node_group.w",
            ["update"],
            before={**before, "scaling_config": [{"desired_size": 3}]},
            after={**after, "scaling_config": [{"desired_size": 4}]},
        ),
    )
    assert r.service_impacting and r.resources[0].service_impacting
    assert r.impacting_categories == ("planned_infra_update",)
    external = next(n for n in r.notice if n.audience == "external")
    assert (str(external.minimum), str(external.recommended)) == ("3bd", "5bd")


# --- the whole classification, as `classify --format json` prints it -----------------------------

MIXED_JSON: dict[str, Any] = {
    "change_type": "planned_infra_update",
    "declared_type": None,
    "categories": ["planned_infra_update", "application_update"],
    "service_impacting": True,
    "impacting_categories": ["planned_infra_update", "application_update"],
    "has_changes": True,
    "summary": {
        "add": 1,
        "change": 2,
        "destroy": 1,
        "replace": 1,
        "import": 0,
        "move": 0,
        "forget": 0,
        "read": 1,
        "no_op": 1,
    },
    "reasons": [
        "planned_infra_update: aws_db_instance.main, aws_eks_node_group.w, "
        "aws_s3_bucket.logs, aws_sqs_queue.old (claimed by no other rule, so planned "
        "infra update)",
        "application_update: helm_release.app (rule: Helm releases and Kubernetes workloads)",
        "service-impacting: aws_db_instance.main is replaced: engine_version, "
        "storage_encrypted cannot change in place (replacing or deleting it interrupts "
        "the service)",
        "service-impacting: aws_eks_node_group.w is updated in place (changing it in place "
        "restarts or reroutes the service)",
        "service-impacting: the change record expects 30 minutes of downtime",
        "mixed plan: planned_infra_update, application_update; the strictest, "
        "planned_infra_update, sets the primary type and every category's audiences and "
        "notice apply",
    ],
    "notice": [
        {
            "audience": "internal",
            "minimum": "24h",
            "recommended": "48h",
            "change_type": "planned_infra_update",
        },
        {
            "audience": "external",
            "minimum": "3bd",
            "recommended": "5bd",
            "change_type": "planned_infra_update",
        },
    ],
    "fingerprint": "sha256:7bc3ce4b819b052aa7727391d489c0c18b6e690830030a21339b579babdc42a3",
    "resources": [
        {
            "address": "aws_db_instance.main",
            "type": "aws_db_instance",
            "action": "replace",
            "actions": ["delete", "create"],
            "categories": ["planned_infra_update"],
            "service_impacting": True,
        },
        {
            "address": "aws_eks_node_group.w",
            "type": "aws_eks_node_group",
            "action": "update",
            "actions": ["update"],
            "categories": ["planned_infra_update"],
            "service_impacting": True,
        },
        {
            "address": "aws_s3_bucket.logs",
            "type": "aws_s3_bucket",
            "action": "create",
            "actions": ["create"],
            "categories": ["planned_infra_update"],
            "service_impacting": False,
        },
        {
            "address": "aws_sqs_queue.old",
            "type": "aws_sqs_queue",
            "action": "delete",
            "actions": ["delete"],
            "categories": ["planned_infra_update"],
            "service_impacting": False,
        },
        {
            "address": "helm_release.app",
            "type": "helm_release",
            "action": "update",
            "actions": ["update"],
            "categories": ["application_update"],
            # A rollout alone is not impacting; the declared downtime makes the change so.
            "service_impacting": False,
        },
    ],
    "drift": [],
    "outputs": [],
    "iam_changes": [],
    "contacts": [],
}


def test_a_mixed_plan_classified_whole(policy: Policy) -> None:
    r = _classify(
        policy,
        rc(
            "aws_db_instance.main",
            ["delete", "create"],
            replace_paths=[["engine_version"], ["storage_encrypted"]],
        ),
        rc(
            "aws_eks_node_group.w",
            ["update"],
            before={"scaling_config": [{"desired_size": 3}]},
            after={"scaling_config": [{"desired_size": 4}]},
        ),
        rc("aws_s3_bucket.logs", ["create"], after={"bucket": "logs"}),
        rc("aws_sqs_queue.old", ["delete"], before={"name": "old"}),
        rc("helm_release.app", ["update"], before={"version": "1"}, after={"version": "2"}),
        rc("aws_vpc.main", ["no-op"]),
        rc("data.aws_ami.x", ["read"], mode="data"),
        change=_change(downtime="30m"),
    )
    assert r.to_json() == MIXED_JSON


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            rc("aws_db_instance.main", ["delete"], before={"name": "a"}),
            "service-impacting: aws_db_instance.main is destroyed (replacing or deleting it "
            "interrupts the service)",
        ),
        (
            rc(
                "aws_db_instance.main",
                ["update"],
                before={"name": "a"},
                after={"name": "b"},
                action_reason="replace_because_tainted",
            ),
            "service-impacting: aws_db_instance.main is updated in place: "
            "replace_because_tainted (changing it in place restarts or reroutes the service)",
        ),
    ],
)
def test_what_happens_to_an_impacting_resource(
    policy: Policy, change: dict[str, Any], reason: str
) -> None:
    assert reason in _classify(policy, change).reasons


def test_no_changes_reason_counts_what_was_unchanged_and_read(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_vpc.main", ["no-op"]),
        rc("aws_vpc.b", ["no-op"]),
        rc("data.aws_ami.x", ["read"], mode="data"),
    )
    assert r.reasons == (
        "no changes: the plan changes no resource (2 unchanged, 1 data sources read); there is "
        "nothing to announce",
    )
