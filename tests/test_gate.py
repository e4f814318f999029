"""Each rule of the gate, one at a time, on hand-built inputs (no plan file, no CLI).

`_base()` is a change the gate allows with no warning: #devops (24 h minimum, 48 h recommended)
was told three days ahead about exactly this plan and window, the window is open and inside
working hours. Every test changes one thing and names the rule that must then decide; removing
any rule from gate.py fails the test named after it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hie_notify.calendar import BusinessCalendar
from hie_notify.change import Window
from hie_notify.classify import Classification
from hie_notify.durations import NoticePeriod
from hie_notify.gate import (
    RULES,
    TRIAL_BANNER,
    Approval,
    Budget,
    Conflicts,
    Finding,
    JiraTicket,
    Level,
    Requirement,
    budget_month,
    plan_differences,
    planning_findings,
)
from hie_notify.ledger import Entry
from hie_notify.policy import Policy
from hie_notify.report import uptime
from tests.support.gate_records import (
    DB,
    END,
    NODES,
    NOW,
    PLAN,
    START,
    TOLD,
    UTC,
    Gate,
    audience,
    classification,
    entry,
    gate,
    only,
    record,
)

_ = gate  # the `gate` fixture


# --- the base case -----------------------------------------------------------------------------


def test_base_case_is_allowed_without_warning(gate: Gate) -> None:
    d = gate()
    assert d.allowed and d.reasons == () and d.warnings == () and d.notes == ()
    (req,) = d.requirements
    assert req == Requirement(
        "slack:#devops",
        "#devops",
        "24h",
        "48h",
        TOLD,
        TOLD + timedelta(hours=24),
        True,
        receipts=("slack C0DEVOPS 1764583200.000100",),
    )
    # All met: the earliest start is the later of what the notice allows and the window start.
    assert d.earliest_start == START
    assert not d.emergency


# --- announced is applied: plan_differences ------------------------------------------------------


def test_same_plan_has_no_differences(policy: Policy) -> None:
    assert plan_differences(entry(), classification(), policy) == []


def test_plan_that_only_shrinks_keeps_its_notice(gate: Gate, policy: Policy) -> None:
    smaller = classification([(NODES, "update")])
    assert plan_differences(entry(), smaller, policy) == []
    assert gate(result=smaller).allowed


def test_rule_not_announced_resource(gate: Gate, policy: Policy) -> None:
    bigger = classification([*PLAN, ("aws_s3_bucket.logs", "create")])
    assert plan_differences(entry(), bigger, policy) == ["not announced: aws_s3_bucket.logs"]
    assert "not announced: aws_s3_bucket.logs" in only(gate(result=bigger), "notice.other_plan")


def test_rule_action_changed_create_to_update_voids_the_notice(gate: Gate, policy: Policy) -> None:
    told = entry(resources=[(NODES, "create"), (DB, "update")])
    assert plan_differences(told, classification(), policy) == [
        f"action changed: {NODES} (create -> update)"
    ]
    reason = only(gate(entries=[told]), "notice.other_plan")
    assert reason.startswith("#devops was told about a different plan (action changed: ")
    assert f"{NODES} (create -> update)" in reason


def test_rule_action_changed_between_destructive_actions(policy: Policy) -> None:
    # delete -> replace is a change of action, not a new destruction.
    told = entry(resources=[(NODES, "delete"), (DB, "update")])
    now = classification([(NODES, "replace"), (DB, "update")])
    assert plan_differences(told, now, policy) == [f"action changed: {NODES} (delete -> replace)"]
    told = entry(resources=[(NODES, "replace"), (DB, "update")])
    now = classification([(NODES, "delete"), (DB, "update")])
    assert plan_differences(told, now, policy) == [f"action changed: {NODES} (replace -> delete)"]


@pytest.mark.parametrize("new", ["delete", "replace"])
def test_rule_now_destroyed_or_replaced(gate: Gate, policy: Policy, new: str) -> None:
    now = classification([(NODES, new), (DB, "update")])
    assert plan_differences(entry(), now, policy) == [
        f"now destroyed or replaced: {NODES} (update -> {new})"
    ]
    assert "now destroyed or replaced" in only(gate(result=now), "notice.other_plan")


def test_rule_change_type_raised(gate: Gate, policy: Policy) -> None:
    told = entry(change_type="application_update")
    assert plan_differences(told, classification(), policy) == [
        "change type raised from application_update to planned_infra_update"
    ]
    assert "change type raised" in only(gate(entries=[told]), "notice.other_plan")


def test_rule_change_type_raised_from_none(policy: Policy) -> None:
    told = entry(change_type=None)
    assert plan_differences(told, classification(), policy) == [
        "change type raised from None to planned_infra_update"
    ]


def test_a_lower_change_type_keeps_the_notice(gate: Gate, policy: Policy) -> None:
    told = entry(change_type="scheduled_maintenance")
    assert plan_differences(told, classification(), policy) == []
    assert gate(entries=[told]).allowed


def test_a_different_type_of_the_same_rank_keeps_the_notice(policy: Policy) -> None:
    types = dict(policy.change_types)
    types["cost_optimization"] = types["cost_optimization"].model_copy(
        update={"rank": types["planned_infra_update"].rank}
    )
    same_rank = policy.model_copy(update={"change_types": types})
    assert (
        plan_differences(entry(change_type="cost_optimization"), classification(), same_rank) == []
    )


def test_no_change_type_now_keeps_the_notice(policy: Policy) -> None:
    assert plan_differences(entry(), classification(change_type=None), policy) == []


def test_rule_now_service_impacting(gate: Gate, policy: Policy) -> None:
    impacting = classification(service_impacting=True)
    assert plan_differences(entry(), impacting, policy) == [
        "now service-impacting (the notice said it was not)"
    ]
    assert "now service-impacting" in only(gate(result=impacting), "notice.other_plan")


def test_no_longer_service_impacting_keeps_the_notice(gate: Gate, policy: Policy) -> None:
    told = entry(service_impacting=True)
    assert plan_differences(told, classification(), policy) == []
    assert gate(entries=[told]).allowed


def test_every_difference_is_listed(policy: Policy) -> None:
    told = entry(resources=[(NODES, "create"), (DB, "update")], change_type="cost_optimization")
    now = classification(
        [(NODES, "update"), (DB, "replace"), ("aws_vpc.main", "create")], service_impacting=True
    )
    assert plan_differences(told, now, policy) == [
        "not announced: aws_vpc.main",
        f"now destroyed or replaced: {DB} (update -> replace)",
        f"action changed: {NODES} (create -> update)",
        "change type raised from cost_optimization to planned_infra_update",
        "now service-impacting (the notice said it was not)",
    ]


# --- which ledger entries count ------------------------------------------------------------------


def test_rule_delivered_after_now_does_not_count(gate: Gate) -> None:
    reason = only(gate(entries=[entry(delivered_at=NOW + timedelta(seconds=1))]), "notice.missing")
    assert reason.startswith("#devops has not been told (at least 24 hours ahead)")


def test_delivered_exactly_at_now_counts(gate: Gate) -> None:
    # A zero-notice audience told at the very moment of the gate, at the window's start.
    zero = audience("meeting:Wednesday", "0h", "0h", kind="meeting", label="Wednesday")
    told = entry(delivered_at=START, audience="meeting:Wednesday")
    d = gate(audiences=[zero], entries=[told], now=START)
    assert d.allowed, d.reasons
    assert d.requirements[0].given_at == START


def test_rule_dry_run_entries_do_not_count(gate: Gate) -> None:
    only(gate(entries=[entry(dry_run=True)]), "notice.missing")


def test_only_announcements_count(gate: Gate) -> None:
    only(gate(entries=[entry(stage="apply_started")]), "notice.missing")


def test_only_this_audiences_entries_count(gate: Gate) -> None:
    only(gate(entries=[entry(audience="slack:#product")]), "notice.missing")


def test_the_earliest_matching_notice_counts(gate: Gate) -> None:
    late = entry(delivered_at=START - timedelta(hours=1), message_id="late")
    d = gate(entries=[late, entry()])  # order in the ledger does not matter
    assert d.allowed and d.warnings == ()
    assert d.requirements[0].given_at == TOLD


def test_a_notice_about_another_plan_does_not_count_even_when_earlier(gate: Gate) -> None:
    other = entry(delivered_at=TOLD - timedelta(days=1), resources=[(NODES, "create")])
    d = gate(entries=[other, entry()])
    assert d.allowed and d.requirements[0].given_at == TOLD


def test_every_difference_is_in_the_reason(gate: Gate) -> None:
    told = entry(resources=[(NODES, "create"), (DB, "update")], change_type="cost_optimization")
    assert only(gate(entries=[told]), "notice.other_plan").startswith(
        f"#devops was told about a different plan (action changed: {NODES} (create -> update); "
        "change type raised from cost_optimization to planned_infra_update): run `hie-notify plan`"
    )


def test_the_latest_notice_explains_a_mismatch(gate: Gate) -> None:
    # Two non-matching notices: the reason speaks of the newest one.
    old = entry(delivered_at=TOLD - timedelta(days=1), resources=[(NODES, "create")])
    new = entry(change_type="application_update")
    reason = only(gate(entries=[new, old]), "notice.other_plan")
    assert "change type raised from application_update" in reason
    assert "action changed" not in reason


# --- window coverage -----------------------------------------------------------------------------


def test_rule_window_coverage_other_window(gate: Gate) -> None:
    elsewhere = entry(window=(START + timedelta(days=1), END + timedelta(days=1)))
    reason = only(gate(entries=[elsewhere]), "notice.other_window")
    assert reason.startswith(
        "#devops was told of another window (Wed 9 Dec 2026 10:00 to 12:00 GMT): run "
        "`hie-notify plan`"
    )


@pytest.mark.parametrize(
    ("start", "end", "covered"),
    [
        (START, END, True),  # the same window
        (START - timedelta(hours=1), END + timedelta(hours=1), True),  # a wider one
        (START + timedelta(minutes=1), END, False),  # starts later than announced
        (START, END - timedelta(minutes=1), False),  # ends later than announced
    ],
)
def test_window_coverage_boundaries(
    gate: Gate, start: datetime, end: datetime, covered: bool
) -> None:
    d = gate(entries=[entry(window=(start, end))])
    assert d.allowed is covered, d.reasons


def test_a_notice_without_a_window_does_not_cover_a_window(gate: Gate) -> None:
    assert only(gate(entries=[entry(window=None)]), "notice.other_window").startswith(
        "#devops was told of another window (no window: not scheduled yet)"
    )


# --- how much notice -----------------------------------------------------------------------------


def test_rule_below_the_minimum_blocks(gate: Gate) -> None:
    told = START - timedelta(hours=23)
    d = gate(entries=[entry(delivered_at=told)])
    reason = only(d, "notice.short")
    assert reason.startswith(
        "#devops was told Mon 7 Dec 2026 11:00 GMT, less than the minimum "
        "24 hours before the window starts Tue 8 Dec 2026 10:00 GMT: the "
        "earliest allowed start is Tue 8 Dec 2026 11:00 GMT"
    )
    assert reason.endswith("; move the window in the change record")
    (req,) = d.requirements
    assert not req.met and req.given_at == told and req.earliest_start == told + timedelta(hours=24)
    # Not met: the earliest start is what the notice allows, not the window's start.
    assert d.earliest_start == told + timedelta(hours=24)


def test_exactly_the_minimum_is_enough(gate: Gate) -> None:
    d = gate(entries=[entry(delivered_at=START - timedelta(hours=24))])
    assert d.allowed and d.requirements[0].met
    assert d.warnings == (
        "#devops was told Mon 7 Dec 2026 10:00 GMT: more than the minimum "
        "24 hours, less than the recommended 48 hours",
    )


def test_rule_between_minimum_and_recommended_warns(gate: Gate) -> None:
    d = gate(entries=[entry(delivered_at=START - timedelta(hours=30))])
    assert d.allowed and d.reasons == ()
    assert d.rules() == ("notice.below_recommended",)
    assert "less than the recommended 48 hours" in d.warnings[0]


def test_exactly_the_recommended_notice_does_not_warn(gate: Gate) -> None:
    d = gate(entries=[entry(delivered_at=START - timedelta(hours=48))])
    assert d.allowed and d.warnings == ()


def test_business_day_notice(gate: Gate) -> None:
    customer = audience("customer:EoE", "3bd", "5bd", kind="customer", label="East of England")
    # Thursday 3 December 10:00 + 3 business days = Tuesday 8 December 10:00: just enough.
    told = entry(audience="customer:EoE", delivered_at=datetime(2026, 12, 3, 10, tzinfo=UTC))
    d = gate(audiences=[customer], entries=[told])
    assert d.allowed and d.rules() == ("notice.below_recommended",)
    assert "less than the recommended 5 business days" in d.warnings[0]
    later = replace(told, delivered_at=datetime(2026, 12, 3, 10, 1, tzinfo=UTC))
    assert "less than the minimum 3 business days" in only(
        gate(audiences=[customer], entries=[later]), "notice.short"
    )


def test_not_told_says_when_the_window_could_start(gate: Gate) -> None:
    d = gate(entries=[])
    assert only(d, "notice.missing") == (
        "#devops has not been told (at least 24 hours ahead): run `hie-notify plan` to announce "
        "it; with notice given now the earliest start is Wed 9 Dec 2026 10:30 GMT"
    )
    (req,) = d.requirements
    assert req == Requirement(
        "slack:#devops", "#devops", "24h", "48h", None, NOW + timedelta(hours=24), False
    )
    assert d.earliest_start == NOW + timedelta(hours=24)


def test_not_told_long_before_the_window_gives_the_earliest_notice_time(gate: Gate) -> None:
    # Not met: the earliest start is what notice given now allows, even before the window.
    early = START - timedelta(days=3)
    d = gate(entries=[], now=early)
    assert d.earliest_start == early + timedelta(hours=24) < START


def test_no_audience_no_earliest_start(gate: Gate) -> None:
    d = gate(audiences=[], entries=[])
    assert d.allowed and d.requirements == () and d.earliest_start is None


def test_only_pre_deployment_audiences_are_required(gate: Gate) -> None:
    later = audience("slack:#ops", phases=["post_deployment"])
    d = gate(audiences=[audience(), later])
    assert d.allowed and [r.audience for r in d.requirements] == ["slack:#devops"]


def test_earliest_start_is_the_latest_over_audiences(gate: Gate) -> None:
    product = audience("slack:#product")
    told = entry(audience="slack:#product", delivered_at=START - timedelta(hours=10))
    d = gate(audiences=[audience(), product], entries=[entry(), told])
    assert d.earliest_start == told.delivered_at + timedelta(hours=24)
    assert [r.met for r in d.requirements] == [True, False]


# --- what else stands in the way -----------------------------------------------------------------


def test_rule_speculative_run(gate: Gate) -> None:
    assert only(gate(speculative=True), "run.speculative") == (
        "this HCP Terraform run is speculative (plan-only): it can never be applied; start a "
        "run that can be applied, and announce its plan"
    )


def test_rule_freeze(gate: Gate) -> None:
    assert only(gate(freeze="Christmas change freeze until 4 Jan"), "freeze.active") == (
        "a deploy freeze is active (Christmas change freeze until 4 Jan): no production apply "
        "until it ends; wait for the freeze to end, or declare an emergency_fix with a "
        "justification and run it outside this pipeline's freeze rules"
    )


def test_rule_no_change_record(gate: Gate) -> None:
    d = gate(change=None)
    assert only(d, "change.missing") == (
        "no change record: give one with --change / HIE_CHANGE (the policy's Phase 1 needs the "
        "Jira key, purpose, window, downtime estimate and rollback plan)"
    )
    assert d.requirements == () and d.earliest_start is None
    assert d.warnings == () and d.emergency is False and d.notes == ()
    assert gate(change=None, result=emergency()).emergency is True


def test_no_change_record_keeps_the_earlier_reasons(gate: Gate) -> None:
    d = gate(change=None, freeze="freeze", speculative=True)
    assert d.rules() == ("run.speculative", "freeze.active", "change.missing")


def test_a_plan_without_changes_has_nothing_to_guard(gate: Gate) -> None:
    d = gate(result=classification([]), entries=[])
    assert d.allowed is True and d.requirements == () and d.earliest_start is None
    assert d.reasons == () and d.warnings == () and d.emergency is False
    assert d.notes == ("the plan has no changes: nothing to announce or guard",)
    frozen = gate(result=classification([]), entries=[], freeze="freeze")
    assert frozen.allowed is False and frozen.notes == d.notes
    assert frozen.rules(Level.BLOCK) == ("freeze.active",)


def test_a_declared_type_without_changes_is_still_guarded(gate: Gate) -> None:
    declared = classification([], declared_type="scheduled_maintenance")
    d = gate(result=declared, entries=[])
    assert not d.allowed and d.notes == ()
    assert d.rules(Level.BLOCK) == ("notice.missing",)


@pytest.mark.parametrize(
    ("missing", "gap"),
    [
        ({"window": None}, "window (precise start and end times)"),
        ({"downtime": None}, "downtime (estimated downtime, 0 if none)"),
        ({"rollback": None}, "rollback (the rollback plan)"),
    ],
)
def test_rule_phase1_gaps(gate: Gate, missing: dict[str, Any], gap: str) -> None:
    assert only(gate(change=record(**missing)), "change.gap") == (
        f"the change record has no {gap}: add it (policy Phase 1)"
    )


# --- emergencies ---------------------------------------------------------------------------------


def emergency(**kw: Any) -> Classification:
    return classification(change_type="emergency_fix", **kw)


def test_emergency_needs_no_lead_time(gate: Gate) -> None:
    told = entry(delivered_at=NOW - timedelta(minutes=5), change_type="emergency_fix")
    d = gate(
        result=emergency(),
        change=record(justification="outage"),
        entries=[told],
        approval=Approval(True, "approved by ollie"),
    )
    assert d.allowed and d.emergency and d.warnings == (), d.reasons
    assert d.requirements[0].met
    # No window start is added to the earliest start for an emergency.
    assert d.earliest_start == told.delivered_at + timedelta(hours=24)
    early = entry(delivered_at=START - timedelta(hours=30), change_type="emergency_fix")
    d = gate(
        result=emergency(),
        change=record(justification="outage"),
        entries=[early],
        approval=Approval(True, "approved by ollie"),
    )
    assert d.earliest_start == early.delivered_at + timedelta(hours=24) < START


def test_emergency_not_told_says_before_the_fix(gate: Gate) -> None:
    d = gate(result=emergency(), change=record(justification="outage"), entries=[])
    assert any("has not been told (immediately, before the fix)" in r for r in d.reasons)


def test_rule_emergency_needs_a_justification(gate: Gate) -> None:
    told = entry(change_type="emergency_fix")
    ok = Approval(True, "approved by ollie")
    for missing in (None, ""):
        d = gate(
            result=emergency(), change=record(justification=missing), entries=[told], approval=ok
        )
        assert (
            only(d, "emergency.justification")
            == "an emergency fix needs a justification in the change record"
        )


def test_rule_emergency_approval_refused(gate: Gate) -> None:
    told = entry(change_type="emergency_fix")
    d = gate(
        result=emergency(),
        change=record(justification="outage"),
        entries=[told],
        approval=Approval(False, "author mallory; no other approver yet"),
    )
    assert only(d, "emergency.not_approved") == (
        "an emergency fix needs an approval on its merge request from someone other than its "
        "author (author mallory; no other approver yet)"
    )


def test_rule_emergency_approval_unchecked_warns(gate: Gate) -> None:
    told = entry(change_type="emergency_fix")
    d = gate(result=emergency(), change=record(justification="outage"), entries=[told])
    assert d.rules() == ("emergency.approval_unchecked",)
    assert d.allowed and d.warnings == (
        "the emergency's approval was not checked: GitLab is not configured (set "
        "HIE_GITLAB_TOKEN so the gate can see the merge request's approvals)",
    )


def test_approval_is_ignored_when_not_an_emergency(gate: Gate) -> None:
    assert gate(approval=Approval(False, "nobody")).allowed


@pytest.mark.parametrize(
    ("missing", "gap"),
    [
        ({"window": None}, "window (precise start and end times)"),
        ({"downtime": None}, "downtime (estimated downtime, 0 if none)"),
    ],
)
def test_emergency_phase1_gaps_only_warn(gate: Gate, missing: dict[str, Any], gap: str) -> None:
    told = entry(change_type="emergency_fix")
    d = gate(
        result=emergency(),
        change=record(justification="outage", **missing),
        entries=[told],
        approval=Approval(True, "ok"),
    )
    assert d.allowed, d.reasons
    assert d.rules() == ("change.gap",)
    assert d.warnings == (f"the change record has no {gap}; allowed for an emergency fix",)


def test_emergency_with_several_gaps_warns_of_each(gate: Gate) -> None:
    told = entry(change_type="emergency_fix", window=None)
    d = gate(
        result=emergency(),
        change=record(justification="outage", window=None, downtime=None),
        entries=[told],
        approval=Approval(True, "ok"),
    )
    assert d.allowed and d.rules(Level.WARN) == ("change.gap", "change.gap"), d.warnings


def test_emergency_still_needs_a_rollback_plan(gate: Gate) -> None:
    told = entry(change_type="emergency_fix")
    d = gate(
        result=emergency(),
        change=record(justification="outage", rollback=""),
        entries=[told],
        approval=Approval(True, "ok"),
    )
    assert only(d, "change.gap") == (
        "the change record has no rollback (the rollback plan): add it (policy Phase 1)"
    )


# --- the window ----------------------------------------------------------------------------------


def test_rule_window_not_open(gate: Gate) -> None:
    assert only(gate(now=START - timedelta(minutes=1)), "window.not_open") == (
        "the window has not opened: it starts Tue 8 Dec 2026 10:00 GMT; this job may run from then"
    )


def test_rule_window_closed(gate: Gate) -> None:
    assert only(gate(now=END + timedelta(minutes=1)), "window.closed") == (
        "the window closed Tue 8 Dec 2026 12:00 GMT: set a new window in "
        "the change record (the new time needs its own notice)"
    )


@pytest.mark.usefixtures("machine_in_london")
def test_times_in_reasons_are_in_the_policy_zone_whatever_the_machine_zone(gate: Gate) -> None:
    # In summer London is UTC+1: a reason says the local time and names BST, also on a machine
    # whose own zone is London (one format: no second, UTC copy of the time).
    start, end = datetime(2026, 7, 7, 9, tzinfo=UTC), datetime(2026, 7, 7, 11, tzinfo=UTC)
    summer = record(window=Window(start=start, end=end))
    told = entry(delivered_at=start - timedelta(days=3), window=(start, end))
    reason = only(
        gate(change=summer, entries=[told], now=end + timedelta(minutes=1)), "window.closed"
    )
    assert reason.startswith("the window closed Tue 7 Jul 2026 12:00 BST: set a new window")


@pytest.mark.parametrize("now", [START, END])
def test_the_window_includes_its_start_and_end(gate: Gate, now: datetime) -> None:
    assert gate(now=now).allowed


def test_rule_out_of_hours_needs_on_call(gate: Gate) -> None:
    start, end = datetime(2026, 12, 8, 19, tzinfo=UTC), datetime(2026, 12, 8, 21, tzinfo=UTC)
    evening = record(window=Window(start=start, end=end))
    told = entry(window=(start, end))
    assert only(gate(change=evening, entries=[told], now=start), "window.no_on_call").endswith(
        "is outside working hours and the change record names no on_call engineer: add on_call"
    )
    staffed = record(window=Window(start=start, end=end), on_call="Leon")
    assert gate(change=staffed, entries=[told], now=start).allowed


# --- audiences -----------------------------------------------------------------------------------


def test_audience_problems_block(gate: Gate) -> None:
    problem = "planned_infra_update must tell the affected customers, but none is known"
    assert only(gate(problems=[problem]), "audiences.problem") == problem


def test_period_kind_is_respected() -> None:
    # Guard for the fixtures above: a notice period parsed from text is what the audience holds.
    assert audience().minimum == NoticePeriod("elapsed", elapsed=timedelta(hours=24))


# --- the JSON the gate prints ---------------------------------------------------------------------


def test_decision_json(gate: Gate) -> None:
    d = gate(entries=[entry(delivered_at=START - timedelta(hours=30))])
    assert d.to_json(gate.calendar) == {
        "allowed": True,
        "reasons": [],
        "warnings": [
            "#devops was told Mon 7 Dec 2026 04:00 GMT: more than the "
            "minimum 24 hours, less than the recommended 48 hours"
        ],
        # Every finding, typed: the rule that fired, its level, and whether `plan` could
        # decide it before the window (the notice clock it cannot).
        "findings": [
            {
                "level": "warn",
                "rule": "notice.below_recommended",
                "text": "#devops was told Mon 7 Dec 2026 04:00 GMT: more than the "
                "minimum 24 hours, less than the recommended 48 hours",
                "at_plan": False,
            }
        ],
        "emergency": False,
        "trial": False,
        "nobody_told": "",
        "required": [
            {
                "audience": "slack:#devops",
                "label": "#devops",
                "minimum": "24h",
                "recommended": "48h",
                "given_at": "2026-12-07T04:00:00+00:00",
                "earliest_start": "2026-12-08T04:00:00+00:00",
                "met": True,
                "outbox_only": False,
                "receipts": ["slack C0DEVOPS 1764583200.000100"],
            }
        ],
        "earliest_start": "2026-12-08T10:00:00+00:00",
        "earliest_start_local": "2026-12-08T10:00:00+00:00",
    }


@pytest.mark.usefixtures("machine_in_london")  # UTC in the JSON, whatever the machine's zone
def test_decision_json_without_notice_or_start(gate: Gate) -> None:
    summer = datetime(2026, 7, 7, 9, tzinfo=UTC)
    d = gate(
        change=record(window=Window(start=summer, end=summer + timedelta(hours=2))),
        entries=[],
        now=summer - timedelta(days=3),
    )
    data = d.to_json(gate.calendar)
    assert data["allowed"] is False and data["required"][0]["given_at"] is None
    assert data["required"][0]["met"] is False
    # UTC in earliest_start, the policy's zone (BST in July) in earliest_start_local.
    assert data["earliest_start"] == "2026-07-05T09:00:00+00:00"
    assert data["earliest_start_local"] == "2026-07-05T10:00:00+01:00"
    none = gate(change=None).to_json(gate.calendar)
    assert none["earliest_start"] is None and none["earliest_start_local"] is None
    assert none["required"] == [] and none["reasons"] == list(gate(change=None).reasons)


# --- what counts as told (issue 12): outbox, receipts, trial, an unchecked emergency -------------

OUTBOX_REASON = (
    "#devops was only written to the outbox (outbox/FFAPP-1/announce/slack-devops.json): where "
    "the gate is enforced (GitLab CI, the run task) that tells nobody. Give the audience a real "
    "route in the policy (a Slack channel, email contacts with SMTP_HOST, Teams or a webhook), "
    "then run `hie-notify plan`"
)


def outboxed(**kw: Any) -> Entry:
    return entry(
        channel="outbox",
        message_id="outbox/FFAPP-1/announce/slack-devops.json",
        receipt={"path": "outbox/FFAPP-1/announce/slack-devops.json"},
        **kw,
    )


def test_rule_an_outbox_notice_tells_nobody_where_the_gate_is_enforced(gate: Gate) -> None:
    laptop = gate(entries=[outboxed()])  # on a laptop, trying it out: it counts, and says so
    assert laptop.allowed and laptop.requirements[0].outbox_only is True
    assert gate().requirements[0].outbox_only is False
    # told through Slack as well as the outbox: not "outbox only"
    both = gate(entries=[outboxed(delivered_at=TOLD - timedelta(hours=1)), entry()])
    assert both.requirements[0].outbox_only is False
    d = gate(entries=[outboxed()], outbox_counts=False)
    assert only(d, "notice.outbox_only") == OUTBOX_REASON
    assert d.requirements[0].met is False and d.requirements[0].given_at is None
    # a real delivery beside it still counts
    assert gate(entries=[outboxed(), entry()], outbox_counts=False).allowed


def test_rule_a_meetings_agenda_item_is_its_route(gate: Gate) -> None:
    meeting = audience("meeting:Wednesday meeting", "0h", "0h", kind="meeting")
    item = outboxed(audience="meeting:Wednesday meeting")
    assert gate(audiences=[meeting], entries=[item], outbox_counts=False).allowed


def test_rule_a_real_delivery_counts_only_with_its_receipt(gate: Gate) -> None:
    for receipt in ({}, {"channel_id": "C0DEVOPS"}, {"channel_id": "C0DEVOPS", "ts": ""}):
        d = gate(entries=[entry(receipt=receipt)])
        assert only(d, "notice.no_receipt") == (
            "#devops: the slack delivery recorded Sat 5 Dec 2026 10:00 GMT "
            "has no receipt from the service (no proof it reached anyone): it does not count; "
            "run `hie-notify plan`"
        )
    # a channel the gate knows no receipt for never counts
    assert not gate(entries=[entry(channel="carrier-pigeon")]).allowed


def test_rule_a_trial_says_nobody_was_told(gate: Gate, policy: Policy) -> None:
    d = gate(entries=[outboxed()], outbox_counts=True, trial=True)
    assert d.allowed and d.notes == (TRIAL_BANNER,) and d.trial is True
    data = d.to_json(BusinessCalendar.from_policy(policy))
    assert data["trial"] is True and data["nobody_told"] == TRIAL_BANNER
    plain = gate().to_json(BusinessCalendar.from_policy(policy))
    assert plain["trial"] is False and plain["nobody_told"] == ""
    # the banner also stands on a decision that stops early (no change record)
    early = gate(change=None, trial=True)
    assert early.notes == (TRIAL_BANNER,) and early.trial is True


def test_a_trial_with_nothing_to_guard_still_says_nobody_was_told(
    gate: Gate, policy: Policy
) -> None:
    # A plan without changes stops early too; the decision it returns is still a trial's.
    d = gate(result=classification([]), entries=[], trial=True)
    assert d.allowed and d.trial is True
    assert d.notes == (TRIAL_BANNER, "the plan has no changes: nothing to announce or guard")
    assert d.to_json(BusinessCalendar.from_policy(policy))["nobody_told"] == TRIAL_BANNER
    assert gate(result=classification([]), entries=[]).trial is False


def test_rule_no_receipt_where_the_gate_is_enforced(gate: Gate) -> None:
    # In CI (outbox_counts=False) a Slack delivery without its receipt, and no outbox file:
    # the reason is the missing receipt alone, not an outbox it was never written to.
    bare = entry(receipt={})
    no_receipt = (
        "#devops: the slack delivery recorded Sat 5 Dec 2026 10:00 GMT "
        "has no receipt from the service (no proof it reached anyone): it does not count; "
        "run `hie-notify plan`"
    )
    d = gate(entries=[bare], outbox_counts=False)
    assert only(d, "notice.no_receipt") == no_receipt
    assert d.requirements[0].met is False and d.requirements[0].given_at is None
    # written to the outbox as well: both are said, the outbox first
    both = gate(entries=[outboxed(), bare], outbox_counts=False)
    assert both.reasons == (OUTBOX_REASON, no_receipt) and not both.allowed
    assert both.rules() == ("notice.outbox_only", "notice.no_receipt")


def test_rule_an_unchecked_emergency_blocks_where_the_gate_is_enforced(gate: Gate) -> None:
    told = entry(change_type="emergency_fix")
    d = gate(
        result=emergency(),
        change=record(justification="outage"),
        entries=[told],
        approval_required=True,
    )
    assert only(d, "emergency.approval_unchecked") == (
        "the emergency's approval cannot be checked: GitLab is not configured (set "
        "HIE_GITLAB_TOKEN so the gate can see the merge request's approvals); in GitLab CI an "
        "unchecked emergency does not pass"
    )
    # with the approval checked, being required changes nothing
    ok = gate(
        result=emergency(),
        change=record(justification="outage"),
        entries=[told],
        approval=Approval(True, "approved by ollie"),
        approval_required=True,
    )
    assert ok.allowed


# --- facts orchestration gathers: Jira, the register, the uptime budget (issue 26) ---------------
# `decide` makes every finding from GateFacts alone: nothing amends its decision afterwards.


def test_rule_jira_ticket_missing_or_not_ready(gate: Gate, policy: Policy) -> None:
    assert only(gate(jira=JiraTicket("FFAPP-1", None)), "jira.missing") == (
        "Phase 1: Jira ticket FFAPP-1 does not exist (or the Jira user may not browse it): the "
        "change needs a detailed Jira ticket before it is applied"
    )
    # without ready statuses in the policy, any status of an existing ticket does
    assert gate(jira=JiraTicket("FFAPP-1", "In Review")).allowed
    jira = policy.jira.model_copy(update={"ready_statuses": ["Approved", "Scheduled"]})
    ready = Gate(policy.model_copy(update={"jira": jira}), gate.calendar)
    assert only(ready(jira=JiraTicket("FFAPP-1", "In Review")), "jira.not_ready") == (
        "Jira ticket FFAPP-1 is 'In Review': the policy lets a change go ahead only from "
        "'Approved', 'Scheduled' (jira.ready_statuses)"
    )
    assert ready(jira=JiraTicket("FFAPP-1", "scheduled")).allowed  # without case


def test_rule_jira_unchecked_blocks_in_ci_and_warns_elsewhere(gate: Gate) -> None:
    ticket = JiraTicket("FFAPP-1", unchecked="JIRA_URL is not set")
    line = "Jira ticket FFAPP-1 cannot be checked: JIRA_URL is not set (jira.enabled is on)"
    assert only(gate(jira=ticket, in_gitlab_ci=True), "jira.unchecked") == line
    laptop = gate(jira=ticket)
    assert laptop.allowed and laptop.rules() == ("jira.unchecked",)
    assert laptop.warnings == (f"{line}; in GitLab CI this blocks",)


@pytest.mark.parametrize(("mode", "level"), [("warn", Level.WARN), ("block", Level.BLOCK)])
def test_rule_register_conflicts_as_the_policy_says(
    policy: Policy, gate: Gate, mode: str, level: Level
) -> None:
    under = Gate(policy.model_copy(update={"conflicts": mode}), gate.calendar)
    text = "FFAPP-9 and FFAPP-1: windows overlap, both touch customer EoE"
    d = under(conflicts=Conflicts((text,)))
    assert d.findings == (Finding(level, "register.conflict", f"conflict: {text}"),)
    assert d.allowed is (mode == "warn")
    broken = under(conflicts=Conflicts(unreadable="database disk image is malformed"))
    assert broken.findings == (
        Finding(
            level,
            "register.unreadable",
            "the change register could not be checked for conflicts: database disk image is "
            "malformed",
        ),
    )
    assert under(conflicts=Conflicts()).findings == ()  # read, and nothing in the way


def _budget(used_minutes: int, **kw: Any) -> Budget:
    december = uptime.month_of(START, ZoneInfo("Europe/London"))
    used = (uptime.Used("EoE", december, timedelta(minutes=used_minutes), ("CHG-1",)),)
    return Budget(("EoE",), december, used, **kw)


def test_rule_uptime_budget(gate: Gate) -> None:
    hour = record(downtime="1h")
    assert gate(change=hour, budget=_budget(60)).findings == ()
    over = gate(change=hour, budget=_budget(420))  # 7 h 0 min + 1 h of 7 h 26 min
    assert only(over, "uptime.budget").startswith("uptime budget exceeded: EoE in 2026-12")
    near = gate(change=hour, budget=_budget(320))
    assert near.allowed and near.rules(Level.WARN) == ("uptime.budget",)
    assert near.warnings[0].startswith("uptime budget at 85% (warning from 80%): EoE in 2026-12")
    # an emergency may exceed it, with a warning
    told = entry(change_type="emergency_fix")
    fix = gate(
        result=emergency(),
        change=record(downtime="1h", justification="outage"),
        entries=[told],
        approval=Approval(True, "ok"),
        budget=_budget(420),
    )
    assert fix.allowed and fix.rules() == ("uptime.budget",)
    # no declared downtime charges none, whatever the month used
    assert gate(budget=_budget(600)).findings == ()


def test_rule_uptime_register_unreadable_or_missing(gate: Gate) -> None:
    hour = record(downtime="1h")
    broken = gate(change=hour, budget=_budget(0, unreadable="not a database"))
    assert only(broken, "uptime.unreadable") == (
        "the uptime budget could not be checked (the register): not a database"
    )
    alone = gate(change=hour, budget=Budget(("EoE",), _budget(0).month, registered=False))
    assert alone.allowed and alone.rules() == ("uptime.no_register",)
    assert alone.warnings == (
        "uptime budget: no change register, so only this change's declared downtime was "
        "counted (give --register to count the month's other changes)",
    )


def test_the_budget_month_is_the_policy_zones(gate: Gate) -> None:
    # 23:30 UTC on 30 June is 00:30 on 1 July in London: July's budget, whatever the machine.
    start = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)
    summer = record(window=Window(start=start, end=start + timedelta(hours=1)), downtime="1h")
    month = budget_month(summer, gate.calendar)
    assert month is not None and month.key == "2026-07"
    assert budget_month(record(), gate.calendar) is None  # no declared downtime


def test_rule_ledger_problems_block_and_warnings_are_said(gate: Gate) -> None:
    d = gate(ledger_problems=["entry 2 was edited"], ledger_warnings=["entry 1 is unsigned"])
    assert only(d, "ledger.untrusted") == "the ledger cannot be trusted: entry 2 was edited"
    assert d.warnings == ("ledger: entry 1 is unsigned",) and d.rules(Level.WARN) == (
        "ledger.warning",
    )


def test_an_unchanged_notice_that_cannot_stand_tells_nobody(gate: Gate) -> None:
    # Recorded without a delivery, naming one of a lower change type: it cannot stand on it
    # (still_told), so only the delivery counts, and that announced another type.
    delivered = entry(change_type="application_update", idempotency_key="k0")
    same = entry(idempotency_key="k1", extra={"same_as": "k0"})
    reason = only(gate(entries=[delivered, same]), "notice.other_plan")
    assert "change type raised from application_update to planned_infra_update" in reason


def test_rule_a_higher_declared_downtime_voids_the_notice(gate: Gate) -> None:
    told = entry(extra={"downtime": "30m"})
    assert gate(entries=[told], change=record(downtime="30m")).allowed
    reason = only(gate(entries=[told], change=record(downtime="4h")), "notice.other_plan")
    assert reason.startswith(
        "#devops was told about a different plan (downtime raised from 30 minutes to 4 hours)"
    )


def test_the_facts_outside_the_ledger_are_said_after_the_notice(gate: Gate) -> None:
    # One decision, in the order people read it: the change and its notices first.
    d = gate(
        change=record(downtime="1h"),
        entries=[],
        jira=JiraTicket("FFAPP-1", None),
        conflicts=Conflicts(unreadable="locked"),
        budget=_budget(420),
    )
    assert d.rules(Level.BLOCK) == ("notice.missing", "jira.missing", "uptime.budget")
    assert d.rules(Level.WARN) == ("register.unreadable",)


# --- typed findings: one spelling per level, a stable rule, decidable at `plan` or not -----------


def test_every_finding_names_a_known_rule() -> None:
    with pytest.raises(ValueError, match=r"unknown gate rule 'notice\.too_short'"):
        Finding(Level.BLOCK, "notice.too_short", "x")
    assert {level.value for level in Level} == {"block", "warn", "info"}


def test_planning_findings_are_those_decidable_before_the_window(gate: Gate) -> None:
    d = gate(
        change=record(rollback=None, downtime="1h"),
        entries=[],
        now=START - timedelta(days=2),
        jira=JiraTicket("FFAPP-1", None),
        budget=_budget(420),
    )
    assert d.rules(Level.BLOCK) == (
        "change.gap",
        "window.not_open",
        "notice.missing",
        "jira.missing",
        "uptime.budget",
    )
    # the window being now and the notice clock are left to the gate at the window
    assert [f.rule for f in planning_findings(d)] == ["change.gap", "jira.missing", "uptime.budget"]
    assert {f.rule: f.at_plan for f in d.findings}["window.not_open"] is False


FACTS = st.fixed_dictionaries(
    {
        "freeze": st.sampled_from([None, "", "Christmas"]),
        "speculative": st.booleans(),
        "trial": st.booleans(),
        "outbox_counts": st.booleans(),
        "approval_required": st.booleans(),
        "in_gitlab_ci": st.booleans(),
        "ledger_problems": st.lists(st.sampled_from(["entry 2 was edited"]), max_size=2),
        "ledger_warnings": st.lists(st.sampled_from(["entry 1 is unsigned"]), max_size=2),
        "jira": st.sampled_from(
            [
                None,
                JiraTicket("FFAPP-1", None),
                JiraTicket("FFAPP-1", "Open"),
                JiraTicket("FFAPP-1", unchecked="JIRA_URL is not set"),
            ]
        ),
        "conflicts": st.sampled_from(
            [None, Conflicts(), Conflicts(("a",)), Conflicts(unreadable="locked")]
        ),
    }
)


@settings(max_examples=150, deadline=None)
@given(
    facts=FACTS,
    told_hours=st.integers(min_value=-2, max_value=100),
    now_minutes=st.integers(min_value=-600, max_value=600),
    kind=st.sampled_from(["planned_infra_update", "emergency_fix"]),
    change=st.sampled_from(["full", "none", "gaps"]),
)
def test_the_decision_is_its_findings(
    policy: Policy,
    facts: dict[str, Any],
    told_hours: int,
    now_minutes: int,
    kind: str,
    change: str,
) -> None:
    gate = Gate(policy, BusinessCalendar.from_policy(policy))
    records = {"full": record(justification="x"), "none": None, "gaps": record(rollback=None)}
    d = gate(
        result=classification(change_type=kind),
        change=records[change],
        entries=[entry(delivered_at=START - timedelta(hours=told_hours), change_type=kind)],
        now=START + timedelta(minutes=now_minutes),
        **facts,
    )
    blocks = [f for f in d.findings if f.level is Level.BLOCK]
    assert d.allowed is (not blocks)
    assert d.reasons == tuple(f.text for f in blocks)
    assert d.warnings == tuple(f.text for f in d.findings if f.level is Level.WARN)
    assert d.notes == tuple(f.text for f in d.findings if f.level is Level.INFO)
    assert set(planning_findings(d)) <= set(blocks)
    data = d.to_json(gate.calendar)
    assert data["reasons"] == [f["text"] for f in data["findings"] if f["level"] == "block"]
    assert all(f["rule"] in RULES and isinstance(f["at_plan"], bool) for f in data["findings"])
    # what orchestration could not read never lets the apply through
    if facts["conflicts"] == Conflicts(unreadable="locked") and change != "none":
        assert "register.unreadable" in d.rules()
    if facts["ledger_problems"]:
        assert not d.allowed


def test_the_docs_list_every_rule() -> None:
    """The gate's page (docs/gate.md; README.md before the docs site) names each rule once."""
    from pathlib import Path

    root = Path(__file__).parent.parent
    pages = [root / "docs" / "gate.md", root / "README.md"]
    text = "".join(p.read_text(encoding="utf-8") for p in pages if p.exists())
    listed = text[text.index("The rules: ") :].split(".\n", 1)[0].replace("\n", " ")
    assert sorted(listed.count(f"`{r}`") for r in RULES) == [1] * len(RULES)
