"""The reasons `classify` gives, whole and word for word, for each path through it.

The reasons are user-facing: `hie-notify classify` prints them and the notices quote them, so
each test pins the full list (order included), not a prefix or a substring. Alongside, the
rules the reasons explain: which category claims a resource, what counts as service-impacting,
which categories owe customers notice and which notice wins.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from hie_notify.change import ChangeRecord
from hie_notify.classify import Classification, ResourceResult, classify, names
from hie_notify.policy import Policy, load_policy
from hie_notify.terraform.plan import Plan, parse_plan
from tests.support.builders import plan, rc

UPD: dict[str, Any] = {"before": {"name": "a"}, "after": {"name": "b"}}
NOT_IMPACTING = (
    "not service-impacting: no change touches a resource the policy marks as impacting, and no "
    "downtime is declared"
)
INFRA = "claimed by no other rule, so planned infra update"
REPLACING = "replacing or deleting it interrupts the service"
IN_PLACE = "changing it in place restarts or reroutes the service"


def _classify(
    policy: Policy,
    *changes: dict[str, Any],
    change: ChangeRecord | None = None,
    destroy: bool = False,
    **top: Any,
) -> Classification:
    return classify(parse_plan(plan(*changes, **top)), policy, change, destroy=destroy)


def _change(**kw: Any) -> ChangeRecord:
    return ChangeRecord.model_validate({"id": "FFAPP-1", "purpose": "test", **kw})


def _policy(tmp_path: Path, text: str) -> Policy:
    f = tmp_path / "policy.yaml"
    f.write_text(text)
    return load_policy(f)


def _notice(r: Classification) -> dict[str, tuple[str, str, str]]:
    return {n.audience: (str(n.minimum), str(n.recommended), n.change_type) for n in r.notice}


# --- state only -----------------------------------------------------------------------------------

IMPORTED: dict[str, Any] = {"importing": {"id": "x"}}


def test_state_only_alone_owes_nothing_and_says_why(policy: Policy) -> None:
    r = _classify(policy, rc("aws_route53_record.api", ["no-op"], **IMPORTED))
    assert r.reasons == (
        "state only: 1 imported; nothing changes in the real infrastructure, so no notice is "
        "owed (policy classification.state_only: none)",
    )
    assert r.change_type is None and r.categories == () and r.notice == ()
    assert not r.has_changes and not r.service_impacting


def test_state_only_beside_a_real_change_is_counted_by_action_name(policy: Policy) -> None:
    # 3 forgotten, 2 imported, 1 moved: listed by the action's name, not by how many.
    r = _classify(
        policy,
        rc("aws_route53_record.a", ["no-op"], **IMPORTED),
        rc("aws_route53_record.b", ["no-op"], **IMPORTED),
        rc("module.net.aws_subnet.a", ["no-op"], previous_address="aws_subnet.a"),
        rc("aws_ssm_parameter.a", ["forget"]),
        rc("aws_ssm_parameter.b", ["forget"]),
        rc("aws_ssm_parameter.c", ["forget"]),
        rc("aws_s3_bucket.logs", ["create"], after={"bucket": "logs"}),
    )
    assert r.reasons == (
        "state only, owes no notice of its own: 3 forgotten, 2 imported, 1 moved",
        f"planned_infra_update: aws_s3_bucket.logs ({INFRA})",
        NOT_IMPACTING,
    )
    assert r.has_changes and r.categories == ("planned_infra_update",)
    assert [(x.address, x.categories) for x in r.resources if x.categories] == [
        ("aws_s3_bucket.logs", ("planned_infra_update",))
    ]


# --- which rule claims a resource, in what order ----------------------------------------------


def test_claims_are_listed_strictest_type_first_then_by_rule(policy: Policy) -> None:
    # The plan lists them loosest first and the RBAC rule before the IAM rule: the reasons
    # follow the types' rank (infra 40, application 30, IAM 20), then the rule's description.
    r = _classify(
        policy,
        rc("kubernetes_role.ro", ["create"], after={"name": "ro"}),
        rc("aws_iam_role.a", ["create"], after={"name": "a"}),
        rc("helm_release.app", ["create"], after={"name": "app"}),
        rc("aws_iam_policy.b", ["create"], after={"name": "b"}),
        rc("aws_sqs_queue.q", ["create"], after={"name": "q"}),
    )
    assert r.reasons == (
        f"planned_infra_update: aws_sqs_queue.q ({INFRA})",
        "application_update: helm_release.app (rule: Helm releases and Kubernetes workloads)",
        "iam_permission_change: aws_iam_role.a, aws_iam_policy.b "
        "(rule: AWS IAM and IAM Identity Center)",
        "iam_permission_change: kubernetes_role.ro (rule: EKS access entries and Kubernetes RBAC)",
        NOT_IMPACTING,
        "mixed plan: planned_infra_update, application_update, iam_permission_change; the "
        "strictest, planned_infra_update, sets the primary type and every category's audiences "
        "and notice apply",
    )


def test_a_rule_without_a_description_is_named_by_its_types(tmp_path: Path) -> None:
    custom = _policy(
        tmp_path,
        "change_types:\n"
        "  application_update:\n"
        "    match:\n"
        "      - {types: [aws_route53_record, aws_route53_zone]}\n",
    )
    r = _classify(custom, rc("aws_route53_record.api", ["create"], after={"name": "a"}))
    assert r.reasons[0] == (
        "application_update: aws_route53_record.api (rule: matches aws_route53_record, "
        "aws_route53_zone)"
    )


def test_names_shortens_only_past_the_limit() -> None:
    five = [f"r{i}" for i in range(5)]
    assert names(five) == "r0, r1, r2, r3, r4"
    assert names([*five, "r5"]) == "r0, r1, r2, r3, r4 and 1 more"
    assert names(["a", "b", "c"], limit=2) == "a, b and 1 more"
    assert names([]) == ""


# --- service impact -------------------------------------------------------------------------------


def test_destroy_run_is_service_impacting_for_every_category(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_iam_role.a", ["delete"], before={"name": "a"}),
        rc("aws_sqs_queue.q", ["delete"], before={"name": "q"}),
        destroy=True,
    )
    assert r.reasons == (
        f"planned_infra_update: aws_sqs_queue.q ({INFRA})",
        "iam_permission_change: aws_iam_role.a (rule: AWS IAM and IAM Identity Center)",
        "service-impacting: this is a destroy run (is-destroy): everything in the workspace is "
        "removed",
        "mixed plan: planned_infra_update, iam_permission_change; the strictest, "
        "planned_infra_update, sets the primary type and every category's audiences and notice "
        "apply",
    )
    assert r.service_impacting
    # No resource is impacting by a rule, yet every category owes its customers notice.
    assert not any(x.service_impacting for x in r.resources)
    assert r.impacting_categories == ("planned_infra_update", "iam_permission_change")
    assert _notice(r) == {
        "internal": ("24h", "48h", "planned_infra_update"),
        "external": ("3bd", "5bd", "planned_infra_update"),
    }


def test_the_same_plan_without_destroy_is_not_impacting(policy: Policy) -> None:
    r = _classify(policy, rc("aws_sqs_queue.q", ["delete"], before={"name": "q"}))
    assert r.reasons == (f"planned_infra_update: aws_sqs_queue.q ({INFRA})", NOT_IMPACTING)
    assert not r.service_impacting and r.impacting_categories == ()
    assert _notice(r) == {"internal": ("24h", "48h", "planned_infra_update")}


def test_impacting_reasons_group_resources_by_rule(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_db_instance.a", ["delete"], before={"name": "a"}),
        rc("aws_security_group.b", ["update"], **UPD),
        rc("aws_instance.c", ["delete", "create"], action_reason="replace_because_tainted"),
        rc("aws_eks_node_group.d", ["update"], **UPD),
    )
    assert r.reasons == (
        "planned_infra_update: aws_db_instance.a, aws_security_group.b, aws_instance.c, "
        f"aws_eks_node_group.d ({INFRA})",
        "service-impacting: aws_db_instance.a is destroyed, aws_instance.c is replaced: "
        f"replace_because_tainted ({REPLACING})",
        "service-impacting: aws_security_group.b is updated in place, aws_eks_node_group.d is "
        f"updated in place ({IN_PLACE})",
    )
    assert [x.service_impacting for x in r.resources] == [True, True, True, True]


def test_replace_paths_win_over_the_action_reason(policy: Policy) -> None:
    r = _classify(
        policy,
        rc(
            "aws_db_instance.a",
            ["delete", "create"],
            replace_paths=[["engine"]],
            action_reason="replace_because_cannot_update",
        ),
    )
    assert r.reasons[1] == (
        f"service-impacting: aws_db_instance.a is replaced: engine cannot change in place "
        f"({REPLACING})"
    )


SERVICE_IMPACT_ON = """\
classification:
  state_only: notice
  service_impact:
    - description: a new one takes traffic
      actions: [create]
      types: [aws_lb_listener]
    - description: it leaves the state
      actions: [forget]
      types: [aws_ssm_parameter]
    - description: its state moves
      actions: [state]
      types: [aws_route53_record]
"""


def test_a_state_move_or_state_change_says_what_happens_in_the_state(tmp_path: Path) -> None:
    custom = _policy(tmp_path, SERVICE_IMPACT_ON)
    r = _classify(
        custom,
        rc("aws_route53_record.www", ["no-op"], previous_address="aws_route53_record.old"),
        rc("aws_route53_record.api", ["no-op"]),  # no change at all: no reason
    )
    assert [x for x in r.reasons if x.startswith("service-impacting")] == [
        "service-impacting: aws_route53_record.www moves in the Terraform state (it was "
        "aws_route53_record.old) (its state moves)",
    ]


def test_what_happens_for_creates_forgets_and_state_changes(tmp_path: Path) -> None:
    custom = _policy(tmp_path, SERVICE_IMPACT_ON)
    r = _classify(
        custom,
        rc("aws_lb_listener.https", ["create"], after={"port": 443}),
        rc("aws_ssm_parameter.flag", ["forget"]),
        rc("aws_route53_record.api", ["no-op"], **IMPORTED),
    )
    assert r.reasons == (
        "planned_infra_update: aws_lb_listener.https, aws_ssm_parameter.flag, "
        f"aws_route53_record.api ({INFRA})",
        "service-impacting: aws_lb_listener.https is created (a new one takes traffic)",
        "service-impacting: aws_ssm_parameter.flag is removed from state (it leaves the state)",
        "service-impacting: aws_route53_record.api is imported into the Terraform state "
        "(its state moves)",
    )
    assert [(x.action, x.service_impacting) for x in r.resources] == [
        ("create", True),
        ("forget", True),
        ("import", True),
    ]


def test_declared_zero_downtime_is_not_downtime(policy: Policy) -> None:
    r = _classify(policy, rc("aws_sqs_queue.q", ["update"], **UPD), change=_change(downtime="0m"))
    assert r.reasons == (f"planned_infra_update: aws_sqs_queue.q ({INFRA})", NOT_IMPACTING)
    assert not r.service_impacting and r.impacting_categories == ()


def test_declared_downtime_makes_every_category_owe_notice(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_sqs_queue.q", ["update"], **UPD),
        rc("aws_iam_role.a", ["update"], **UPD),
        change=_change(downtime="2h"),
    )
    assert r.reasons == (
        f"planned_infra_update: aws_sqs_queue.q ({INFRA})",
        "iam_permission_change: aws_iam_role.a (rule: AWS IAM and IAM Identity Center)",
        "service-impacting: the change record expects 2 hours of downtime",
        "mixed plan: planned_infra_update, iam_permission_change; the strictest, "
        "planned_infra_update, sets the primary type and every category's audiences and notice "
        "apply",
    )
    assert r.impacting_categories == ("planned_infra_update", "iam_permission_change")


# --- declared types -------------------------------------------------------------------------------


def test_a_looser_declared_type_is_refused_in_full(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_sqs_queue.q", ["update"], **UPD),
        rc("aws_sns_topic.t", ["update"], **UPD),
        change=_change(type="cost_optimization"),
    )
    assert r.reasons == (
        f"planned_infra_update: aws_sqs_queue.q, aws_sns_topic.t ({INFRA})",
        NOT_IMPACTING,
        "declared cost_optimization is less strict than planned_infra_update, which the plan "
        "requires (aws_sqs_queue.q, aws_sns_topic.t): keeping planned_infra_update; a declared "
        "type can only make the classification stricter",
    )
    assert r.change_type == "planned_infra_update" and r.declared_type == "cost_optimization"
    assert r.categories == ("planned_infra_update", "cost_optimization")


def test_declaring_the_type_the_plan_has_adds_no_reason(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_sqs_queue.q", ["update"], **UPD),
        change=_change(type="planned_infra_update"),
    )
    assert r.reasons == (f"planned_infra_update: aws_sqs_queue.q ({INFRA})", NOT_IMPACTING)
    assert r.categories == ("planned_infra_update",)


def test_a_stricter_declared_type_is_placed_by_rank(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_iam_role.a", ["update"], **UPD),
        change=_change(type="scheduled_maintenance"),
    )
    assert r.reasons == (
        "iam_permission_change: aws_iam_role.a (rule: AWS IAM and IAM Identity Center)",
        NOT_IMPACTING,
        "declared scheduled_maintenance is stricter than iam_permission_change: using "
        "scheduled_maintenance",
    )
    assert r.categories == ("scheduled_maintenance", "iam_permission_change")


def test_a_declared_type_owes_customers_notice_when_the_plan_impacts(policy: Policy) -> None:
    # The declared cost optimisation claims no resource, but the plan impacts the service: it
    # owes its own external notice too (and the infra update, whose resource impacts, its own).
    r = _classify(
        policy,
        rc("aws_db_instance.a", ["delete"], before={"name": "a"}),
        rc("aws_iam_role.r", ["update"], **UPD),
        change=_change(type="cost_optimization"),
    )
    assert r.impacting_categories == ("planned_infra_update", "cost_optimization")
    assert r.categories == ("planned_infra_update", "iam_permission_change", "cost_optimization")


def test_a_declared_type_owes_nothing_extra_when_nothing_impacts(policy: Policy) -> None:
    r = _classify(
        policy, rc("aws_iam_role.r", ["update"], **UPD), change=_change(type="cost_optimization")
    )
    assert r.impacting_categories == ()


# --- notice ---------------------------------------------------------------------------------------


def test_an_emergency_alone_sets_the_notice(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_db_instance.a", ["delete"], before={"name": "a"}),
        change=_change(type="emergency_fix", justification="CVE-2026-1"),
    )
    assert r.categories == ("emergency_fix", "planned_infra_update")
    assert r.impacting_categories == ("emergency_fix", "planned_infra_update")
    assert _notice(r) == {
        "internal": ("0h", "0h", "emergency_fix"),
        "external": ("0bd", "0bd", "emergency_fix"),
    }
    assert r.reasons[-1] == (
        "declared emergency_fix is stricter than planned_infra_update: using emergency_fix"
    )


def test_equal_minimum_the_longer_recommendation_wins(policy: Policy) -> None:
    # IAM (rank 20) asks 0h/0h internally, cost optimisation (rank 10) 0h/24h: same minimum,
    # so the longer recommendation decides, though its type ranks lower.
    looser = _classify(
        policy, rc("aws_iam_role.r", ["update"], **UPD), change=_change(type="cost_optimization")
    )
    assert _notice(looser) == {"internal": ("0h", "24h", "cost_optimization")}


def test_equal_notice_keeps_the_stricter_type(policy: Policy) -> None:
    # Infra and application updates both ask 24h/48h internally: the first (stricter) stays.
    r = _classify(
        policy, rc("aws_sqs_queue.q", ["update"], **UPD), rc("helm_release.a", ["create"])
    )
    assert _notice(r)["internal"] == ("24h", "48h", "planned_infra_update")


def test_an_impacting_application_update_owes_customers_the_impact_notice(policy: Policy) -> None:
    # Its own external audience (business stakeholders, 0bd) reaches no customer: the policy's
    # customer_impact notice (3bd/5bd) applies to it when it impacts the service.
    # Replaced (uninstalled and installed again), not rolled out in place.
    r = _classify(policy, rc("helm_release.app", ["delete", "create"], **UPD))
    assert r.impacting_categories == ("application_update",)
    assert _notice(r) == {
        "internal": ("24h", "48h", "application_update"),
        "external": ("3bd", "5bd", "application_update"),
    }
    calm = _classify(policy, rc("helm_release.app", ["create"], after={"name": "app"}))
    assert _notice(calm)["external"] == ("0bd", "0bd", "application_update")


# --- the JSON form: drift and outputs ---------------------------------------------------------


def test_json_lists_drift_and_only_the_outputs_that_change(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_sqs_queue.q", ["update"], **UPD),
        resource_drift=[rc("aws_vpc.main", ["update"], **UPD)],
        output_changes={
            "url": {"actions": ["update"], "before": "a", "after": "b"},
            "same": {"actions": ["no-op"], "before": "a", "after": "a"},
            "new": {"actions": ["create"], "before": None, "after": "c"},
        },
    )
    out = r.to_json()
    assert out["drift"] == [{"address": "aws_vpc.main", "type": "aws_vpc", "action": "update"}]
    assert sorted(out["outputs"], key=lambda o: o["name"]) == [
        {"name": "new", "action": "create"},
        {"name": "url", "action": "update"},
    ]
    assert r.reasons[-1] == "drift: aws_vpc.main changed outside Terraform since the last apply"


def test_an_output_that_is_only_read_is_not_listed(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_sqs_queue.q", ["update"], **UPD),
        output_changes={
            "read": {"actions": ["read"], "before": None, "after": "a"},
            "gone": {"actions": ["delete"], "before": "a", "after": None},
        },
    )
    assert [(o.name, o.action) for o in r.outputs] == [("gone", "delete")]


# --- the rules' finer points ------------------------------------------------------------------


def test_state_only_resources_are_listed_with_their_type_and_actions(policy: Policy) -> None:
    r = _classify(
        policy,
        rc("aws_route53_record.api", ["no-op"], **IMPORTED),
        rc("aws_ssm_parameter.old", ["forget"]),
    )
    assert r.resources == (
        ResourceResult(
            "aws_route53_record.api", "aws_route53_record", "import", ("no-op",), (), False
        ),
        ResourceResult(
            "aws_ssm_parameter.old", "aws_ssm_parameter", "forget", ("forget",), (), False
        ),
    )


def test_a_category_rule_limited_to_some_actions(tmp_path: Path) -> None:
    custom = _policy(
        tmp_path,
        "change_types:\n"
        "  application_update:\n"
        "    match:\n"
        "      - {description: DNS deleted, types: [aws_route53_record], actions: [delete]}\n",
    )
    r = _classify(
        custom,
        rc("aws_route53_record.gone", ["delete"], before={"name": "a"}),
        rc("aws_route53_record.kept", ["update"], **UPD),
    )
    assert {x.address: x.categories for x in r.resources} == {
        "aws_route53_record.gone": ("application_update",),
        "aws_route53_record.kept": ("planned_infra_update",),
    }


def test_a_resource_two_types_claim_lists_the_stricter_first(tmp_path: Path) -> None:
    # Application updates ranked under IAM here, and both claim aws_iam_role: the policy lists
    # application_update first, the resource's categories follow the rank.
    custom = _policy(
        tmp_path,
        "change_types:\n"
        "  application_update:\n"
        "    rank: 15\n"
        "    match:\n"
        "      - {description: roles the app assumes, types: [aws_iam_role]}\n",
    )
    r = _classify(custom, rc("aws_iam_role.app", ["create"], after={"name": "app"}))
    assert r.resources[0].categories == ("iam_permission_change", "application_update")
    assert r.categories == ("iam_permission_change", "application_update")
    assert r.change_type == "iam_permission_change"


def test_an_attribute_rule_is_touched_by_a_change_below_it(policy: Policy) -> None:
    # parse_plan records an attribute with its changed sub-keys; a plan built another way may
    # carry only the sub-key, and the rule on the attribute still applies.
    parsed = parse_plan(
        plan(rc("aws_kms_key.k", ["update"], before={"policy": "{}"}, after={"policy": "{1}"}))
    )
    sub_key_only = parsed.resource_changes[0]._replace(
        changed_attributes=frozenset({"policy.Statement"})
    )
    r = classify(replace(parsed, resource_changes=(sub_key_only,)), policy)
    assert r.categories == ("iam_permission_change",)
    near_miss = sub_key_only._replace(changed_attributes=frozenset({"policy_id"}))
    r = classify(replace(parsed, resource_changes=(near_miss,)), policy)
    assert r.categories == ("planned_infra_update",)


def test_replace_paths_are_quoted_only_for_a_replacement(policy: Policy) -> None:
    # Terraform writes replace_paths only for replacements; on an in-place update they would
    # contradict the verb, so they are not quoted.
    r = _classify(
        policy,
        rc("aws_db_instance.a", ["update"], **UPD, replace_paths=[["engine"]]),
    )
    assert r.reasons[1] == f"service-impacting: aws_db_instance.a is updated in place ({IN_PLACE})"


def test_a_plan_built_without_a_summary_counts_nothing(policy: Policy) -> None:
    r = classify(Plan("1.2", None, ()), policy)
    assert r.reasons == (
        "no changes: the plan changes no resource (0 unchanged, 0 data sources read); there is "
        "nothing to announce",
    )


def test_an_external_audience_of_none_owes_no_external_notice(tmp_path: Path) -> None:
    custom = _policy(
        tmp_path, "change_types:\n  application_update:\n    external_audience: none\n"
    )
    r = _classify(custom, rc("helm_release.app", ["create"], after={"name": "app"}))
    assert _notice(r) == {"internal": ("24h", "48h", "application_update")}


# --- external_when: digest ------------------------------------------------------------------------

DIGEST_POLICY = """\
change_types:
  application_update:
    external_when: digest
    external_notice: {minimum: 5bd, recommended: 10bd}
"""
DIGESTED = (
    "application_update: business stakeholders hear of it in the weekly digest (external_when: "
    "digest), not at each stage: no per-change notice to them is owed or checked by the gate"
)


def test_a_digest_type_says_its_audience_hears_of_it_weekly(tmp_path: Path) -> None:
    custom = _policy(tmp_path, DIGEST_POLICY)
    r = _classify(
        custom,
        rc("kubernetes_config_map.app", ["update"], **UPD),
        rc("aws_sqs_queue.q", ["update"], **UPD),
    )
    # Only the digest type is said to be digested; the infra update is not.
    assert r.reasons == (
        f"planned_infra_update: aws_sqs_queue.q ({INFRA})",
        "application_update: kubernetes_config_map.app (rule: Helm releases and Kubernetes "
        "workloads)",
        NOT_IMPACTING,
        "mixed plan: planned_infra_update, application_update; the strictest, "
        "planned_infra_update, sets the primary type and every category's audiences and notice "
        "apply",
        DIGESTED,
    )
    assert _notice(r) == {"internal": ("24h", "48h", "planned_infra_update")}
    # The default policy tells them at each stage, and says nothing of a digest.
    plain = _classify(load_policy(), rc("kubernetes_config_map.app", ["update"], **UPD))
    assert not any("digest" in reason for reason in plain.reasons)
    assert _notice(plain)["external"] == ("0bd", "0bd", "application_update")


def test_an_impacting_digest_type_owes_customers_only_the_impact_notice(tmp_path: Path) -> None:
    # The type's own external notice (5bd here) is for the digested stakeholders: not owed per
    # change. The customers its impact reaches are owed the policy's customer_impact (3bd).
    custom = _policy(tmp_path, DIGEST_POLICY)
    r = _classify(custom, rc("helm_release.app", ["delete", "create"], **UPD))
    assert r.impacting_categories == ("application_update",)
    assert _notice(r) == {
        "internal": ("24h", "48h", "application_update"),
        "external": ("3bd", "5bd", "application_update"),
    }
    assert r.reasons[-1] == DIGESTED
