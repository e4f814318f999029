"""Which audiences hear each stage, what a stage knows without a plan, and who owes a post-mortem
(pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from hie_notify import timetext
from hie_notify.change import ChangeRecord
from hie_notify.classify import (
    Classification,
    ResourceResult,
    classify,
    contacts_from_entries,
    required_notice,
)
from hie_notify.errors import InputError
from hie_notify.lifecycle import LIFECYCLE, PHASE, Lifecycle, replay
from hie_notify.policy.model import Policy
from hie_notify.records import PLANLESS, Audience, Audiences, Entry
from hie_notify.terraform.plan import SUMMARY_KEYS, Plan

ANNOUNCE = "announce"
FAILURES = ("apply_failed", "rollback_started", "rollback_succeeded", "rollback_failed")
_SUMMARY_OF_ACTION = {
    "create": "add",
    "update": "change",
    "delete": "destroy",
    "replace": "replace",
    "import": "import",
    "move": "move",
    "forget": "forget",
}


def audiences_for(
    stage: str, audiences: Audiences, entries: Sequence[Entry] = ()
) -> list[Audience]:
    """The audiences that hear `stage`.

    Failures and rollbacks are critical events: every internal audience hears them, whatever
    phases its change type lists; customers hear them only when they hear real-time updates.
    A cancellation goes to everyone who was told.
    """
    if stage == "cancelled":
        told = {e.audience for e in entries if e.stage == ANNOUNCE}
        return [a for a in audiences.audiences if a.id in told]
    phase = PHASE[stage]
    chosen = audiences.for_phase(phase)
    if stage in FAILURES:
        chosen += [a for a in audiences.audiences if a.kind == "internal" and a not in chosen]
    return chosen


def from_ledger(entries: Sequence[Entry], policy: Policy, change_id: str) -> Classification:
    """The classification of the plan last announced, for stages that run without a plan (an
    announcement's own transition entry says it too, where nobody was owed a notice)."""
    announced = [
        e
        for e in entries
        if (e.stage == ANNOUNCE or (e.stage == LIFECYCLE and e.extra.get("transition") == ANNOUNCE))
        and not e.dry_run
    ]
    if not announced:
        raise InputError(
            f"no announcement of {change_id} is recorded in the ledger: run `hie-notify plan` "
            "first, or give --plan"
        )
    last = max(announced, key=lambda e: e.delivered_at)
    impacting = set(last.impacting_categories)
    resources = tuple(
        # The ledger keeps (address, action) only: enough for every stage message and for the
        # plan's fingerprint; types and per-resource categories are not needed after the plan.
        ResourceResult(address, "", action, (action,), (), False)
        for address, action in last.resources
    )
    counts = Counter(_SUMMARY_OF_ACTION.get(r.action, "no_op") for r in resources)
    categories = last.categories or ((last.change_type,) if last.change_type else ())
    return Classification(
        change_type=last.change_type,
        declared_type=None,
        categories=categories,
        service_impacting=last.service_impacting,
        summary={k: counts.get(k, 0) for k in SUMMARY_KEYS},
        reasons=(
            f"as announced {timetext.moment(last.delivered_at, policy.calendar.time_zone)} "
            + (
                "(without a plan)"
                if last.fingerprint == PLANLESS
                else f"(plan {last.fingerprint[:19]})"
            ),
        ),
        resources=resources,
        drift=(),
        outputs=(),
        fingerprint=last.fingerprint,
        has_changes=bool(resources) or last.fingerprint == PLANLESS,
        impacting_categories=tuple(c for c in categories if c in impacting),
        notice=required_notice(policy, categories, tuple(impacting)),
        # The direct contacts that announcement told, of the resources it told them of.
        contacts=contacts_from_entries(
            policy, [e for e in announced if e.fingerprint == last.fingerprint], categories
        ),
    )


def postmortem_reasons(
    policy: Policy,
    change: ChangeRecord,
    result: Classification,
    entries: Sequence[Entry],
    stage: str,
    *,
    life: Lifecycle | None = None,
) -> list[str]:
    """Why this change owes a post-mortem (empty when it does not): from the transitions its
    ledger records (`stage` is the one being made; `life`, when given, is their replay)."""
    reasons = []
    life = replay(entries) if life is None else life
    stages = {r.transition for r in life.records} | {stage}
    if stages & {"apply_failed", "rollback_failed"}:
        reasons.append("the deployment failed")
    if stages & {"rollback_started", "rollback_succeeded"}:
        reasons.append("the change was rolled back")
    ct = policy.change_type(result.change_type) if result.change_type else None
    if ct is not None:
        if ct.post_mortem == "always":
            reasons.append(f"the policy asks one for every {ct.title.lower()}")
        elif ct.post_mortem == "significant":
            significant = []
            if result.service_impacting:
                significant.append("service-impacting")
            if change.risk == "high":
                significant.append("high risk")
            if result.summary.get("destroy") or result.summary.get("replace"):
                significant.append("destroys or replaces resources")
            if significant:
                reasons.append(f"a significant change ({', '.join(significant)})")
    return reasons


def window_problems(
    policy: Policy, change: ChangeRecord, result: Classification, now: datetime
) -> list[str]:
    """Why a change's window cannot be announced now: a window that has ended is not a plan,
    and one already under way can only be an emergency's ("as soon as identified")."""
    window = change.window
    if window is None:
        return []
    zone = policy.calendar.time_zone
    if window.end <= now:
        return [
            f"window.end: the window ended {timetext.moment(window.end, zone)}, before now "
            f"({timetext.moment(now, zone)}): a window in the past cannot be announced; set the "
            "new window"
        ]
    kind = result.change_type
    emergency = bool(kind and policy.change_type(kind).notice_overrides_others)
    if window.start <= now and not emergency:
        return [
            f"window.start: the window started {timetext.moment(window.start, zone)}, before now "
            f"({timetext.moment(now, zone)}): only an emergency_fix may be announced once its "
            "window is under way; move the window, or declare the emergency with a justification"
        ]
    return []


def planless(policy: Policy, change: ChangeRecord) -> Classification:
    """The classification of a change announced without a plan (`hie-notify announce`): the
    change record's declared type, service-impacting when it declares downtime, and the
    PLANLESS fingerprint, so the gate holds a plan attached later to what was announced."""
    if change.type is None:
        raise InputError(
            "type: expected a declared change type (one of "
            f"{', '.join(policy.change_types)}): without a plan nothing else can say what "
            "kind of change this is"
        )
    empty = Plan("1.2", None, (), summary={k: 0 for k in SUMMARY_KEYS})
    result = classify(empty, policy, change)
    reasons = [r for r in result.reasons if not r.startswith("no changes:")]
    reasons.append(
        "announced without a plan: a plan attached later keeps this notice only while its "
        "change type is no stricter and it is not newly service-impacting"
    )
    return replace(result, fingerprint=PLANLESS, has_changes=True, reasons=tuple(reasons))
