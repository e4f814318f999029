"""Classification of the project's own real-shaped plans (tests/fixtures/plans, examples/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hie_notify.classify import classify
from hie_notify.cli import main
from hie_notify.policy import Policy
from hie_notify.terraform.plan import load_plan, parse_plan
from tests.support.paths import EXAMPLES, FIXTURES

PLANS = FIXTURES / "plans"


def _result(policy: Policy, name: str) -> tuple[str | None, dict[str, tuple[str, bool]], bool]:
    r = classify(load_plan(PLANS / name), policy)
    return (
        r.change_type,
        {x.address: (x.categories[0], x.service_impacting) for x in r.resources},
        r.service_impacting,
    )


def test_iam(policy: Policy) -> None:
    kind, resources, impacting = _result(policy, "iam.json")
    assert kind == "iam_permission_change" and not impacting
    assert set(resources) == {
        "aws_iam_role.tf_deployment",
        "aws_iam_policy.s3_qa_reports",
        "aws_iam_role_policy_attachment.tf_deployment_s3",
        "aws_eks_access_entry.devops_admins",
        "kubernetes_cluster_role_binding.readonly",
    }
    assert {c for c, _ in resources.values()} == {"iam_permission_change"}


def test_helm_and_lambda_code(policy: Policy) -> None:
    _, resources, _ = _result(policy, "helm.json")
    assert resources == {
        # Rolled out in place: an application update, not service-impacting by itself.
        "helm_release.fitfile_app": ("application_update", False),
        "kubernetes_deployment.api": ("application_update", False),
        "aws_lambda_function.qa_report_export": ("application_update", False),
        "aws_lambda_function.log_shipper": ("planned_infra_update", False),
    }
    r = classify(load_plan(PLANS / "helm.json"), policy)
    # Nothing impacts the service: business stakeholders are told of the application update
    # (0bd), customers not at all; the tag-only Lambda change owes no customer notice either.
    assert r.impacting_categories == ()
    assert not r.service_impacting
    assert {n.audience: (n.change_type, str(n.minimum)) for n in r.notice} == {
        "internal": ("planned_infra_update", "24h"),
        "external": ("application_update", "0bd"),
    }


def test_rds_replacement(policy: Policy) -> None:
    kind, resources, impacting = _result(policy, "rds_replace.json")
    assert kind == "planned_infra_update" and impacting
    assert resources["aws_db_instance.main"] == ("planned_infra_update", True)
    r = classify(load_plan(PLANS / "rds_replace.json"), policy)
    assert any(
        "aws_db_instance.main is replaced: storage_encrypted cannot change in place" in x
        for x in r.reasons
    )
    assert {n.audience: str(n.minimum) for n in r.notice} == {"internal": "24h", "external": "3bd"}


def test_security_groups(policy: Policy) -> None:
    _, resources, impacting = _result(policy, "security_group.json")
    assert impacting
    assert resources == {
        "aws_security_group.eks_nodes": ("planned_infra_update", True),
        "aws_vpc_security_group_ingress_rule.https": ("planned_infra_update", False),
        "aws_security_group_rule.legacy_ssh": ("planned_infra_update", True),
    }


def test_s3_policy_is_iam_and_tags_are_harmless(policy: Policy) -> None:
    kind, resources, impacting = _result(policy, "s3.json")
    assert kind == "planned_infra_update" and not impacting
    assert resources["aws_s3_bucket_policy.qa_reports"] == ("iam_permission_change", False)
    assert resources["aws_s3_bucket.qa_reports"] == ("planned_infra_update", False)


def test_mixed(policy: Policy) -> None:
    r = classify(load_plan(PLANS / "mixed.json"), policy)
    assert r.change_type == "planned_infra_update"
    assert r.categories == ("planned_infra_update", "application_update", "iam_permission_change")
    assert {x.address for x in r.resources if x.service_impacting} == {
        "module.vpc.aws_nat_gateway.this[0]",
        "module.vpc.aws_nat_gateway.this[1]",
    }
    assert r.summary["replace"] == 2


@pytest.mark.parametrize("name", ["no_changes.json", "empty.json"])
def test_no_changes(policy: Policy, name: str) -> None:
    r = classify(load_plan(PLANS / name), policy)
    assert r.change_type is None and r.resources == () and not r.has_changes
    assert r.reasons[0].startswith("no changes")


def test_import_move_forget(policy: Policy) -> None:
    r = classify(load_plan(PLANS / "import_move.json"), policy)
    assert {x.address: x.action for x in r.resources} == {
        "aws_route53_record.api": "import",
        'module.network.aws_subnet.private["eu-west-2a"]': "move",
        "aws_ssm_parameter.old_flag": "forget",
        "aws_instance.bastion": "replace",
    }
    assert (r.summary["import"], r.summary["move"], r.summary["forget"]) == (1, 1, 1)


def test_old_format_and_nested_modules(policy: Policy) -> None:
    _, resources, _ = _result(policy, "v0_12.json")
    assert resources["module.app.aws_ecs_task_definition.api"][0] == "application_update"
    _, resources, impacting = _result(policy, "nested_modules.json")
    assert resources['module.platform.module.eks["eoe"].aws_eks_cluster.this'] == (
        "planned_infra_update",
        True,
    )
    assert impacting


def test_example_plan(policy: Policy) -> None:
    r = classify(load_plan(EXAMPLES / "plan.json"), policy)
    assert r.change_type == "planned_infra_update" and r.service_impacting
    assert r.summary == {
        "add": 1,
        "change": 1,
        "destroy": 0,
        "replace": 1,
        "import": 0,
        "move": 0,
        "forget": 0,
        "read": 1,
        "no_op": 1,
    }
    assert [d.address for d in r.drift] == ['module.eks.aws_eks_node_group.workers["general"]']


def test_planted_secret_never_printed(capsys: pytest.CaptureFixture[str]) -> None:
    path = PLANS / "sensitive.json"
    assert "PLANTED-SECRET-9f8e7d6c" in path.read_text()
    for fmt in ("json", "text"):
        assert main(["--format", fmt, "classify", "--plan", str(path)]) == 0
        captured = capsys.readouterr()
        assert "PLANTED-SECRET" not in captured.out + captured.err
    assert main(["--format", "json", "classify", "--plan", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["name"] for o in out["outputs"]] == ["db_password"]


def test_fixtures_are_documented() -> None:
    readme = (PLANS / "README.md").read_text()
    for path in Path(PLANS).glob("*.json"):
        assert path.name in readme


def test_a_state_only_plan_owes_no_notice_unless_the_policy_opts_in(policy: Policy) -> None:
    doc = json.loads((PLANS / "import_move.json").read_text())
    doc["resource_changes"] = [
        r for r in doc["resource_changes"] if r["address"] != "aws_instance.bastion"
    ]
    state_only = parse_plan(doc, "state-only plan")
    r = classify(state_only, policy)
    assert r.change_type is None and not r.has_changes and r.notice == ()
    assert r.reasons[0].startswith("state only: 1 forgotten, 1 imported, 1 moved")
    opted_in = policy.model_copy(
        update={"classification": policy.classification.model_copy(update={"state_only": "notice"})}
    )
    r = classify(state_only, opted_in)
    assert r.change_type == "planned_infra_update" and r.has_changes
    # with a real change beside them, state-only resources are named but owe nothing
    r = classify(load_plan(PLANS / "import_move.json"), policy)
    assert r.has_changes and r.categories == ("planned_infra_update",)
    assert any(x.startswith("state only, owes no notice of its own") for x in r.reasons)
    assert [x.address for x in r.resources if x.categories] == ["aws_instance.bastion"]
