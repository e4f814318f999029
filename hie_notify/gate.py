"""May the apply go ahead now? Every reason it may not, with what to do and when (pure)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from hie_notify.calendar import UTC, BusinessCalendar
from hie_notify.change import ChangeRecord, Window
from hie_notify.classify import Classification, names
from hie_notify.durations import describe_timedelta, parse_duration
from hie_notify.policy.model import PHASE1_FIELDS, Policy
from hie_notify.records import PLANLESS, Audience, Audiences, Entry
from hie_notify.report import uptime
from hie_notify.report.uptime import Month, Used

ANNOUNCE = "announce"
TRIAL_BANNER = (
    "TRIAL: NOBODY WAS TOLD. The protected policy sets trial: true, so outbox files count as "
    "notices; no person received them."
)
# What each real channel's receipt must hold for its delivery to count.
RECEIPT_KEYS = {
    "slack": ("channel_id", "ts"),
    "email": ("message_id", "smtp_reply"),
    "teams": ("status",),
    "webhook": ("status",),
    "gitlab": ("issue",),
}


def has_receipt(entry: Entry) -> bool:
    """A delivery over a real channel counts only with what the service answered."""
    keys = RECEIPT_KEYS.get(entry.channel)
    return keys is not None and all(entry.receipt.get(k) for k in keys)


def receipt_text(entry: Entry) -> str:
    """`slack C0DEVOPS 1764583200.000100 https://...` for people to check."""
    parts = [entry.channel, *(v for k, v in sorted(entry.receipt.items()) if v)]
    return " ".join(parts)


class Level(str, Enum):
    """How much a finding weighs: `block` stops the apply, `warn` is said and passes, `info`
    is a note."""

    BLOCK = "block"
    WARN = "warn"
    INFO = "info"


# The gate's rules, each with whether it can be decided before the window (at `plan`, issue 25):
# every rule but those about now (the window being open, a deploy freeze, the run being
# appliable, an emergency's approval) and the notice clock (who was told when, and the ledger
# that records it).
RULES: dict[str, bool] = {
    "ledger.untrusted": False,  # the ledger's seal check found tampering
    "ledger.warning": False,  # something about the ledger worth saying
    "run.speculative": False,  # an HCP Terraform plan-only run: never appliable
    "freeze.active": False,  # a GitLab deploy freeze is on (CI_DEPLOY_FREEZE)
    "change.missing": True,  # no change record
    "change.gap": True,  # the change record lacks something Phase 1 needs
    "plan.no_changes": True,  # nothing to announce or guard
    "trial.nobody_told": True,  # the protected policy declares a trial
    "emergency.justification": True,  # an emergency without a justification
    "emergency.approval_unchecked": False,  # GitLab is not configured: no approval seen
    "emergency.not_approved": False,  # nobody but the author approved the merge request
    "audiences.problem": True,  # who must be told cannot be worked out (no customers known)
    "window.not_open": False,
    "window.closed": False,
    "window.no_on_call": True,  # out of working hours with no on_call engineer
    "notice.missing": False,  # an audience was not told
    "notice.other_window": False,  # told of another window
    "notice.other_plan": False,  # told of a different plan (resources, type, impact, downtime)
    "notice.outbox_only": False,  # only written to the outbox where that tells nobody
    "notice.no_receipt": False,  # a delivery without the service's receipt
    "notice.short": False,  # told less than the minimum notice before the window
    "notice.below_recommended": False,  # between the minimum and the recommended notice
    "jira.unchecked": True,  # Jira is on in the policy but not reachable
    "jira.missing": True,  # the change's Jira ticket does not exist
    "jira.not_ready": True,  # the ticket is not in one of the policy's ready statuses
    "register.conflict": True,  # another change or a freeze in the window (the register)
    # A register that cannot be read is a tool's outage, not a gap in the change: it holds back
    # no announcement (that would only shorten the notice), and the gate still blocks on it.
    "register.unreadable": False,  # the register could not be read for conflicts
    "uptime.budget": True,  # the month's downtime budget (sla)
    "uptime.unreadable": False,  # the register could not be read for the month's downtime
    "uptime.no_register": True,  # only this change's declared downtime was counted
    "ack.missing": False,  # a required acknowledgement not given (or an objection open)
    # The policy's checklists: the merge request description's task list (read from GitLab,
    # never from the branch) is ticked after review, so not at `plan`.
    "checklist.unticked": False,  # a required item is not ticked (`- [x] item`)
    "checklist.unchecked": False,  # GitLab is not configured: the task list was not read
}


@dataclass(frozen=True)
class Finding:
    """One thing the gate found: how much it weighs, which rule (a stable identifier from
    RULES, for tests, JSON and tools) and what it says to people."""

    level: Level
    rule: str
    text: str

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown gate rule {self.rule!r}")

    @property
    def at_plan(self) -> bool:
        """Can this be decided before the window (at `plan`)?"""
        return RULES[self.rule]

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.level.value,
            "rule": self.rule,
            "text": self.text,
            "at_plan": self.at_plan,
        }


def block(rule: str, text: str) -> Finding:
    return Finding(Level.BLOCK, rule, text)


def warn(rule: str, text: str) -> Finding:
    return Finding(Level.WARN, rule, text)


def info(rule: str, text: str) -> Finding:
    return Finding(Level.INFO, rule, text)


@dataclass(frozen=True)
class Approval:
    """Whether someone other than the author approved the merge request (break-glass)."""

    approved: bool
    detail: str


@dataclass(frozen=True)
class JiraTicket:
    """What Jira said of the change's ticket (policy Phase 1)."""

    key: str
    status: str | None = None  # None: it does not exist (or the Jira user may not browse it)
    unchecked: str = ""  # why Jira could not be asked (not configured); "" when it was


@dataclass(frozen=True)
class Conflicts:
    """What the change register says of the change's window."""

    found: tuple[str, ...] = ()  # each conflict with another change or a deploy freeze, said
    unreadable: str = ""  # why the register could not be read; "" when it was


@dataclass(frozen=True)
class Budget:
    """The month's uptime budget of the customers the change's downtime is charged to."""

    customers: tuple[str, ...]
    month: Month
    used: tuple[Used, ...] = ()  # what other changes used this month (the register)
    registered: bool = True  # False: no register, so only this change's downtime counts
    unreadable: str = ""  # why the register could not be read; "" when it was


@dataclass(frozen=True)
class TaskList:
    """The merge request description's GitLab task list, as GitLab's API returned it."""

    ticked: frozenset[str] = frozenset()  # each ticked item (`- [x] item`), normalised
    unchecked: str = ""  # why it could not be read (GitLab not configured); "" when it was


TASK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\[([ xX~])\]\s+(.+?)\s*$")


def task_key(text: str) -> str:
    """An item as compared: case and runs of spaces do not matter."""
    return " ".join(text.split()).casefold()


def ticked_items(description: str) -> frozenset[str]:
    """The items a GitLab task list ticks (`- [x] item`, `* [X] item`, `1. [x] item`);
    `[ ]` and `[~]` (inapplicable) are not ticked."""
    out = set()
    for line in description.splitlines():
        m = TASK.match(line)
        if m and m.group(1) in "xX":
            out.add(task_key(m.group(2)))
    return frozenset(out)


@dataclass(frozen=True)
class GateFacts:
    """Everything the gate decides from, gathered by orchestration (`stagerun.gate_facts`) in
    one place; `decide` reads nothing else.

    `outbox_counts`: an outbox file is a notice (outside CI, or a trial); else only a real
    channel's delivery with its receipt is. `approval_required`: an emergency whose approval
    could not be checked blocks (an enforcement point). `in_gitlab_ci`: a Jira ticket that
    cannot be checked blocks. `ledger_problems`: tampering the ledger's seal check found.
    `jira`, `conflicts`, `budget`: None when there is nothing to check (Jira off, no register,
    no downtime charged to anyone)."""

    policy: Policy
    calendar: BusinessCalendar
    classification: Classification
    change: ChangeRecord | None
    audiences: Audiences
    entries: Sequence[Entry]
    now: datetime
    freeze: str | None = None
    speculative: bool = False
    approval: Approval | None = None
    approval_required: bool = False
    outbox_counts: bool = True
    trial: bool = False
    in_gitlab_ci: bool = False
    ledger_problems: Sequence[str] = ()
    ledger_warnings: Sequence[str] = ()
    jira: JiraTicket | None = None
    conflicts: Conflicts | None = None
    budget: Budget | None = None
    # What the acknowledgements the policy requires still lack (ack_gate.findings' reasons).
    acks: Sequence[str] = ()
    tasks: TaskList | None = None  # None: no checklist names items for this change type


@dataclass(frozen=True)
class Requirement:
    audience: str
    label: str
    minimum: str
    recommended: str
    given_at: datetime | None
    earliest_start: datetime
    met: bool
    outbox_only: bool = False  # the notice that counts was only written to the outbox
    receipts: tuple[str, ...] = ()


@dataclass(frozen=True)
class GateDecision:
    """Every finding of the gate, with each audience's notice; blocked by any `block`."""

    findings: tuple[Finding, ...]
    requirements: tuple[Requirement, ...]
    earliest_start: datetime | None
    emergency: bool = False
    trial: bool = False

    def _texts(self, level: Level) -> tuple[str, ...]:
        return tuple(f.text for f in self.findings if f.level is level)

    @property
    def allowed(self) -> bool:
        return not any(f.level is Level.BLOCK for f in self.findings)

    @property
    def reasons(self) -> tuple[str, ...]:
        """What blocks the apply."""
        return self._texts(Level.BLOCK)

    @property
    def warnings(self) -> tuple[str, ...]:
        return self._texts(Level.WARN)

    @property
    def notes(self) -> tuple[str, ...]:
        return self._texts(Level.INFO)

    def rules(self, level: Level | None = None) -> tuple[str, ...]:
        """The rules that fired (at `level`, or at any), in order."""
        return tuple(f.rule for f in self.findings if level is None or f.level is level)

    def to_json(self, calendar: BusinessCalendar) -> dict[str, Any]:
        def iso(when: datetime | None) -> str | None:
            return when.astimezone(UTC).isoformat() if when else None

        return {
            "allowed": self.allowed,
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
            "findings": [f.to_json() for f in self.findings],
            "emergency": self.emergency,
            "trial": self.trial,
            "nobody_told": TRIAL_BANNER if self.trial else "",
            "required": [
                {
                    "audience": r.audience,
                    "label": r.label,
                    "minimum": r.minimum,
                    "recommended": r.recommended,
                    "given_at": iso(r.given_at),
                    "earliest_start": iso(r.earliest_start),
                    "met": r.met,
                    "outbox_only": r.outbox_only,
                    "receipts": list(r.receipts),
                }
                for r in self.requirements
            ],
            "earliest_start": iso(self.earliest_start),
            "earliest_start_local": calendar.local(self.earliest_start).isoformat()
            if self.earliest_start
            else None,
        }


def planning_findings(decision: GateDecision) -> tuple[Finding, ...]:
    """The blocking findings that could be decided before the window (at `plan`)."""
    return tuple(f for f in decision.findings if f.level is Level.BLOCK and f.at_plan)


def is_emergency(policy: Policy, classification: Classification) -> bool:
    """Does the change type override notice periods (an emergency fix)?"""
    kind = classification.change_type
    return bool(kind and policy.change_type(kind).notice_overrides_others)


def budget_month(change: ChangeRecord, calendar: BusinessCalendar) -> Month | None:
    """The month whose uptime budget the change's declared downtime is charged to; None when
    it charges none (no window: that already blocks; no declared downtime uses none)."""
    declared = change.downtime or timedelta(0)
    if change.window is None or declared <= timedelta(0):
        return None
    return uptime.month_of(change.window.start, calendar.zone)


def plan_differences(entry: Entry, result: Classification, policy: Policy) -> list[str]:
    """Why an earlier notice no longer covers this plan; empty when it still does.

    A plan that only shrinks (a subset of what was announced) keeps its notice. New resources,
    new deletes or replacements, any other change of action, a stricter change type or a new
    service impact all void it. A plan-less notice (fingerprint PLANLESS) covers any resources
    of a plan no more severe than it announced: type not raised, not newly service-impacting
    (the customers it covers are its audiences: one not told has no notice at all).
    """
    announced = dict(entry.resources)
    added, destructive, changed = [], [], []
    # A notice given without a plan (`hie-notify announce`) named no resources: it covers the
    # change type, service impact and window it announced, so only those rules apply to it.
    for r in () if entry.fingerprint == PLANLESS else result.resources:
        before = announced.get(r.address)
        if before is None:
            added.append(r.address)
        elif before != r.action:
            if r.action in ("delete", "replace") and before not in ("delete", "replace"):
                destructive.append(f"{r.address} ({before} -> {r.action})")
            else:
                changed.append(f"{r.address} ({before} -> {r.action})")
    out = []
    if added:
        out.append(f"not announced: {names(added)}")
    if destructive:
        out.append(f"now destroyed or replaced: {names(destructive)}")
    if changed:
        out.append(f"action changed: {names(changed)}")
    if (
        result.change_type
        and entry.change_type != result.change_type
        and (
            entry.change_type is None
            or policy.rank(result.change_type) > policy.rank(entry.change_type)
        )
    ):
        out.append(f"change type raised from {entry.change_type} to {result.change_type}")
    if result.service_impacting and not entry.service_impacting:
        out.append("now service-impacting (the notice said it was not)")
    return out


# An announcement recorded instead of a delivery, because its audience would have been told
# exactly what it was told before: `extra[SAME_AS]` names that earlier delivery (its
# idempotency key), `extra[TOLD]` is the digest of the message, `extra[DOWNTIME]` the downtime
# the change record declared (`format_duration`, or NOT_KNOWN).
SAME_AS, TOLD, DOWNTIME, NOT_KNOWN = "same_as", "told", "downtime", "not known"


def still_told(original: Entry, entry: Entry, policy: Policy) -> list[str]:
    """Why `entry` (an announcement recorded without a delivery: `extra[SAME_AS]`) cannot stand
    on the earlier delivery `original`; empty when it can.

    It stands only on a delivery of the same announcement to the same audience through the
    same channel, made before it, of the same message (`TOLD`), for the same window and
    declared downtime, with a change type no stricter and a service impact no newer. The gate
    then counts `original`'s time for it; nothing a branch controls (its change record, plan,
    templates) can make a changed message, window, downtime, impact or type keep a notice."""
    out = []
    if original.stage != ANNOUNCE or entry.stage != ANNOUNCE or original.dry_run:
        out.append("not an announcement")
    if original.extra.get(SAME_AS):
        out.append("it names an entry that was not delivered either")
    if (original.audience, original.channel) != (entry.audience, entry.channel):
        out.append("another audience or channel")
    if original.delivered_at > entry.delivered_at:
        out.append("recorded before the delivery it names")
    if not original.extra.get(TOLD) or original.extra.get(TOLD) != entry.extra.get(TOLD):
        out.append("the message differs")
    if _window_tuple(original) != _window_tuple(entry):
        out.append("the window differs")
    downtime = original.extra.get(DOWNTIME)
    if not downtime or downtime != entry.extra.get(DOWNTIME):
        out.append("the declared downtime differs")
    raised = entry.change_type != original.change_type and (
        original.change_type is None
        or (
            entry.change_type and policy.rank(entry.change_type) > policy.rank(original.change_type)
        )
    )
    if entry.change_type and raised:
        out.append(f"change type raised from {original.change_type} to {entry.change_type}")
    if entry.service_impacting and not original.service_impacting:
        out.append("now service-impacting")
    return out


def downtime_raised(entry: Entry, downtime: timedelta | None) -> str:
    """Why `entry` no longer covers the downtime the change record declares ("" when it does,
    or when the entry recorded none: a notice from before downtimes were recorded)."""
    recorded = entry.extra.get(DOWNTIME)
    if not recorded or downtime is None or downtime <= timedelta(0):
        return ""
    now = describe_timedelta(downtime)
    if recorded == NOT_KNOWN:
        return f"it said the downtime was not known; the change record now declares {now}"
    try:
        told = parse_duration(recorded)
    except ValueError:
        return f"the downtime it told cannot be read; the change record declares {now}"
    if downtime > told:
        return f"downtime raised from {describe_timedelta(told) or 'none'} to {now}"
    return ""


def _window_tuple(entry: Entry) -> tuple[datetime, datetime] | None:
    if not entry.window_start:
        return None
    return datetime.fromisoformat(entry.window_start), datetime.fromisoformat(entry.window_end)


def standing(sent: Sequence[Entry], policy: Policy) -> list[Entry]:
    """`sent` (one audience's announcements) with each one recorded without a delivery
    replaced by the delivery it stands on, as to when and how it was told (time, channel,
    receipt), and as to what it announced by its own (plan, type, impact, window); one that
    cannot stand (`still_told`) is dropped: it tells nobody."""
    delivered = {e.idempotency_key: e for e in sent if not e.extra.get(SAME_AS)}
    out = []
    for entry in sent:
        ref = entry.extra.get(SAME_AS)
        if not ref:
            out.append(entry)
            continue
        original = delivered.get(ref)
        if original is None or still_told(original, entry, policy):
            continue
        out.append(
            replace(
                entry,
                delivered_at=original.delivered_at,
                receipt=original.receipt,
                message_id=original.message_id,
            )
        )
    return out


def _covers(entry: Entry, window: Window | None) -> bool:
    """Did this notice announce a window that contains the one about to be used? A notice
    without a window ("not scheduled yet") covers no window."""
    if window is None:
        return True
    if not entry.window_start:
        return False
    start = datetime.fromisoformat(entry.window_start)
    end = datetime.fromisoformat(entry.window_end)
    return bool(start <= window.start and window.end <= end)


def _window_of(entry: Entry, calendar: BusinessCalendar) -> str:
    if not entry.window_start:
        return "no window: not scheduled yet"
    start = datetime.fromisoformat(entry.window_start)
    end = datetime.fromisoformat(entry.window_end)
    return calendar.span(start, end)


def decide(facts: GateFacts) -> GateDecision:
    """The gate. Blocks (with every reason) unless the policy's notice was given for this plan,
    the window is open now, and nothing else stands in the way. Warnings never block. Every
    finding is made here, from `facts` alone, in the order people read them."""
    emergency = is_emergency(facts.policy, facts.classification)
    head = [
        *([info("trial.nobody_told", TRIAL_BANNER)] if facts.trial else []),
        *(
            block("ledger.untrusted", f"the ledger cannot be trusted: {p}")
            for p in facts.ledger_problems
        ),
        *_now(facts),
    ]
    change = facts.change
    if change is None:
        missing = block(
            "change.missing",
            "no change record: give one with --change / HIE_CHANGE (the policy's Phase 1 needs "
            "the Jira key, purpose, window, downtime estimate and rollback plan)",
        )
        return GateDecision((*head, missing), (), None, emergency, facts.trial)
    requirements: tuple[Requirement, ...] = ()
    if not facts.classification.has_changes and facts.classification.declared_type is None:
        # Nothing to guard: nothing said of the change record, the window or the notices.
        body = [info("plan.no_changes", "the plan has no changes: nothing to announce or guard")]
    else:
        body = [
            *(warn("ledger.warning", f"ledger: {w}") for w in facts.ledger_warnings),
            *_record(change, emergency, _requires(facts.policy, facts.classification)),
            *_emergency(facts, change, emergency),
            *(block("audiences.problem", p) for p in facts.audiences.problems),
            *_window(facts, change, emergency),
        ]
        notices = [
            _notice(facts, audience, emergency)
            for audience in facts.audiences.for_phase("pre_deployment")
        ]
        requirements = tuple(r for r, _ in notices)
        body += [f for _, found in notices for f in found]
    tail = [
        *_jira(facts),
        *_conflicts(facts),
        *_budget(facts, change, emergency),
        *(block("ack.missing", reason) for reason in facts.acks),
        *_checklists(facts),
    ]
    return GateDecision(
        findings=(*head, *body, *tail),
        requirements=requirements,
        earliest_start=_earliest(requirements, change.window, emergency),
        emergency=emergency,
        trial=facts.trial,
    )


def _now(facts: GateFacts) -> list[Finding]:
    """What stands in the way at this moment, whatever the change: the run, a freeze."""
    out = []
    if facts.speculative:
        out.append(
            block(
                "run.speculative",
                "this HCP Terraform run is speculative (plan-only): it can never be applied; "
                "start a run that can be applied, and announce its plan",
            )
        )
    if facts.freeze:
        out.append(
            block(
                "freeze.active",
                f"a deploy freeze is active ({facts.freeze}): no production apply until it "
                "ends; wait for the freeze to end, or declare an emergency_fix with a "
                "justification and run it outside this pipeline's freeze rules",
            )
        )
    return out


def _requires(policy: Policy, classification: Classification) -> tuple[str, ...]:
    """What the change type's policy `requires` of the change record (Phase 1)."""
    kind = classification.change_type
    return tuple(policy.change_type(kind).requires) if kind else PHASE1_FIELDS


def _record(change: ChangeRecord, emergency: bool, requires: Sequence[str]) -> list[Finding]:
    """What Phase 1 needs of the change record: what the change type's policy `requires` (an
    emergency keeps its own rules: it may lack all but its rollback plan)."""
    out = []
    for gap in change.phase1_gaps(None if emergency else requires):
        if emergency and not gap.startswith("rollback"):
            out.append(
                warn("change.gap", f"the change record has no {gap}; allowed for an emergency fix")
            )
        else:
            out.append(
                block("change.gap", f"the change record has no {gap}: add it (policy Phase 1)")
            )
    return out


def _emergency(facts: GateFacts, change: ChangeRecord, emergency: bool) -> list[Finding]:
    """Break-glass: a justification, and an approval by someone other than the author."""
    if not emergency:
        return []
    out = []
    if not (change.justification or "").strip():
        out.append(
            block(
                "emergency.justification",
                "an emergency fix needs a justification in the change record",
            )
        )
    gitlab = (
        "GitLab is not configured (set HIE_GITLAB_TOKEN so the gate can see the merge "
        "request's approvals)"
    )
    if facts.approval is None and facts.approval_required:
        out.append(
            block(
                "emergency.approval_unchecked",
                f"the emergency's approval cannot be checked: {gitlab}; in GitLab CI an "
                "unchecked emergency does not pass",
            )
        )
    elif facts.approval is None:
        text = f"the emergency's approval was not checked: {gitlab}"
        out.append(warn("emergency.approval_unchecked", text))
    elif not facts.approval.approved:
        out.append(
            block(
                "emergency.not_approved",
                "an emergency fix needs an approval on its merge request from someone other "
                f"than its author ({facts.approval.detail})",
            )
        )
    return out


def _window(facts: GateFacts, change: ChangeRecord, emergency: bool) -> list[Finding]:
    """The window is open now; out of working hours someone is on call (where the change
    type's policy `requires` it: `on_call_out_of_hours`; always for an emergency)."""
    window, calendar, when = change.window, facts.calendar, facts.calendar.moment
    if window is None:
        return []  # a Phase 1 gap already
    out = []
    if facts.now < window.start:
        out.append(
            block(
                "window.not_open",
                f"the window has not opened: it starts {when(window.start)}; this job may run "
                "from then",
            )
        )
    elif facts.now > window.end:
        out.append(
            block(
                "window.closed",
                f"the window closed {when(window.end)}: set a new window in the change record "
                "(the new time needs its own notice)",
            )
        )
    on_call = emergency or "on_call_out_of_hours" in _requires(facts.policy, facts.classification)
    if on_call and not calendar.in_working_hours(window.start, window.end) and not change.on_call:
        out.append(
            block(
                "window.no_on_call",
                f"the window ({calendar.span(window.start, window.end)}) is outside working "
                "hours and the change record names no on_call engineer: add on_call",
            )
        )
    return out


def _earliest(
    requirements: Sequence[Requirement], window: Window | None, emergency: bool
) -> datetime | None:
    """The latest of what each audience's notice allows; the window's start as well when every
    notice was given in time (not for an emergency, which waits for no window)."""
    earliest = max((r.earliest_start for r in requirements), default=None)
    if window is None or earliest is None or emergency:
        return earliest
    return max(earliest, window.start) if all(r.met for r in requirements) else earliest


def _told(facts: GateFacts, audience: Audience) -> tuple[list[Entry], list[Finding]]:
    """The announcements to `audience` that count as telling it (earliest first), and why the
    others do not (an outbox file where that tells nobody; a delivery without a receipt)."""
    sent = standing(
        [
            e
            for e in facts.entries
            if e.audience == audience.id
            and e.stage == ANNOUNCE
            and not e.dry_run
            and e.delivered_at <= facts.now
        ],
        facts.policy,
    )
    # A meeting's agenda item is written for the meeting, not sent: the outbox is its route.
    outbox_counts = facts.outbox_counts or audience.kind == "meeting"

    def counts(e: Entry) -> bool:
        return outbox_counts if e.channel == "outbox" else has_receipt(e)

    told = sorted((e for e in sent if counts(e)), key=lambda e: e.delivered_at)
    if told or not sent:
        return told, []
    uncounted = []
    outbox = [e for e in sent if e.channel == "outbox"]
    bare = [e for e in sent if e.channel != "outbox"]
    if outbox and not outbox_counts:
        uncounted.append(
            block(
                "notice.outbox_only",
                f"{audience.label} was only written to the outbox ({outbox[0].message_id}): "
                "where the gate is enforced (GitLab CI, the run task) that tells nobody. Give "
                "the audience a real route in the policy (a Slack channel, email contacts with "
                "SMTP_HOST, Teams or a webhook), then run `hie-notify plan`",
            )
        )
    if bare:
        uncounted.append(
            block(
                "notice.no_receipt",
                f"{audience.label}: the {bare[0].channel} delivery recorded "
                f"{facts.calendar.moment(bare[0].delivered_at)} has no receipt from the service "
                "(no proof it reached anyone): it does not count; run `hie-notify plan`",
            )
        )
    return told, uncounted


def _differences(facts: GateFacts, entry: Entry) -> list[str]:
    """Why the notice `entry` gave does not cover this plan (empty when it does)."""
    change = facts.change
    raised = downtime_raised(entry, change.downtime if change else None)
    return [
        *plan_differences(entry, facts.classification, facts.policy),
        *([raised] if raised else []),
    ]


def _notice(
    facts: GateFacts, audience: Audience, emergency: bool
) -> tuple[Requirement, list[Finding]]:
    """The notice `audience` is owed and was given, with what the gate finds of it."""
    window = facts.change.window if facts.change else None
    told, uncounted = _told(facts, audience)
    matching = [e for e in told if not _differences(facts, e) and _covers(e, window)]
    if not matching:
        return _not_told(facts, audience, emergency, told, uncounted)
    given = matching[0].delivered_at
    # The first counting delivery's receipt on each channel; "outbox only" when no real
    # channel carried it (outside CI, or a trial).
    first: dict[str, Entry] = {}
    for e in matching:
        first.setdefault(e.channel, e)
    minimum, recommended = audience.minimum, audience.recommended
    needed = facts.calendar.earliest_start(given, minimum)
    found = [] if window is None or emergency else _how_long(facts, audience, given, window)
    requirement = Requirement(
        audience.id,
        audience.label,
        str(minimum),
        str(recommended),
        given,
        needed,
        not any(f.level is Level.BLOCK for f in found),
        set(first) == {"outbox"},
        tuple(receipt_text(e) for e in first.values()),
    )
    return requirement, found


def _how_long(
    facts: GateFacts, audience: Audience, given: datetime, window: Window
) -> list[Finding]:
    """Was `audience`, told at `given`, told long enough before the window starts?"""
    when, calendar = facts.calendar.moment, facts.calendar
    minimum, recommended = audience.minimum, audience.recommended
    needed = calendar.earliest_start(given, minimum)
    if window.start < needed:
        return [
            block(
                "notice.short",
                f"{audience.label} was told {when(given)}, less than the minimum "
                f"{minimum.describe()} before the window starts {when(window.start)}: the "
                f"earliest allowed start is {when(needed)}; move the window in the change "
                "record",
            )
        ]
    if window.start < calendar.earliest_start(given, recommended):
        return [
            warn(
                "notice.below_recommended",
                f"{audience.label} was told {when(given)}: more than the minimum "
                f"{minimum.describe()}, less than the recommended {recommended.describe()}",
            )
        ]
    return []


def _not_told(
    facts: GateFacts,
    audience: Audience,
    emergency: bool,
    told: Sequence[Entry],
    uncounted: Sequence[Finding],
) -> tuple[Requirement, list[Finding]]:
    """No counting notice covers this plan and window: why, and when the window could start
    with notice given now."""
    when = facts.calendar.moment
    minimum = audience.minimum
    if_now = facts.calendar.earliest_start(facts.now, minimum)
    then = f"with notice given now the earliest start is {when(if_now)}"
    found: list[Finding]
    if told and not _differences(facts, told[-1]):
        found = [
            block(
                "notice.other_window",
                f"{audience.label} was told of another window "
                f"({_window_of(told[-1], facts.calendar)}): run `hie-notify plan` to announce "
                f"the new one; {then}",
            )
        ]
    elif told:
        diff = "; ".join(_differences(facts, told[-1]))
        found = [
            block(
                "notice.other_plan",
                f"{audience.label} was told about a different plan ({diff}): run "
                f"`hie-notify plan` to announce this one; {then}",
            )
        ]
    elif uncounted:
        found = list(uncounted)
    else:
        what = (
            "immediately, before the fix" if emergency else f"at least {minimum.describe()} ahead"
        )
        found = [
            block(
                "notice.missing",
                f"{audience.label} has not been told ({what}): run `hie-notify plan` to "
                f"announce it; {then}",
            )
        ]
    requirement = Requirement(
        audience.id, audience.label, str(minimum), str(audience.recommended), None, if_now, False
    )
    return requirement, found


def _jira(facts: GateFacts) -> list[Finding]:
    """Phase 1: the change's Jira ticket exists, and is ready where the policy lists ready
    statuses. One that cannot be checked blocks in GitLab CI; on a laptop it is a warning."""
    ticket = facts.jira
    if ticket is None:
        return []
    if ticket.unchecked:
        line = (
            f"Jira ticket {ticket.key} cannot be checked: {ticket.unchecked} (jira.enabled is on)"
        )
        if facts.in_gitlab_ci:
            return [block("jira.unchecked", line)]
        return [warn("jira.unchecked", f"{line}; in GitLab CI this blocks")]
    if ticket.status is None:
        return [
            block(
                "jira.missing",
                f"Phase 1: Jira ticket {ticket.key} does not exist (or the Jira user may not "
                "browse it): the change needs a detailed Jira ticket before it is applied",
            )
        ]
    ready = facts.policy.jira.ready_statuses
    if ready and ticket.status.casefold() not in {s.casefold() for s in ready}:
        return [
            block(
                "jira.not_ready",
                f"Jira ticket {ticket.key} is {ticket.status!r}: the policy lets a change go "
                f"ahead only from {', '.join(repr(s) for s in ready)} (jira.ready_statuses)",
            )
        ]
    return []


def _conflicts(facts: GateFacts) -> list[Finding]:
    """The change register's conflicts: they block under the policy's `conflicts: block` (a
    register that cannot be read then blocks too); else they are warnings."""
    register = facts.conflicts
    if register is None:
        return []
    level = Level.BLOCK if facts.policy.conflicts == "block" else Level.WARN
    if register.unreadable:
        text = f"the change register could not be checked for conflicts: {register.unreadable}"
        return [Finding(level, "register.unreadable", text)]
    return [Finding(level, "register.conflict", f"conflict: {c}") for c in register.found]


def _budget(facts: GateFacts, change: ChangeRecord, emergency: bool) -> list[Finding]:
    """The uptime budget (issue 18): for each customer the change's downtime is charged to,
    the downtime other changes used this month plus this change's declared downtime; a warning
    from `sla.warn_at_percent`, a block beyond 100% unless an emergency. A register that
    cannot be read blocks: the gate cannot tell."""
    budget = facts.budget
    if budget is None or not budget.customers or budget_month(change, facts.calendar) is None:
        return []
    if budget.unreadable:
        return [
            block(
                "uptime.unreadable",
                f"the uptime budget could not be checked (the register): {budget.unreadable}",
            )
        ]
    sla = facts.policy.sla
    reasons, warnings = uptime.budget_findings(
        customers=budget.customers,
        month=budget.month,
        declared=change.downtime or timedelta(0),
        used=budget.used,
        uptime_percent=sla.uptime_percent,
        warn_at_percent=sla.warn_at_percent,
        emergency=emergency,
    )
    out = [block("uptime.budget", r) for r in reasons]
    out += [warn("uptime.budget", w) for w in warnings]
    if not budget.registered:
        out.append(
            warn(
                "uptime.no_register",
                "uptime budget: no change register, so only this change's declared downtime "
                "was counted (give --register to count the month's other changes)",
            )
        )
    return out


def required_items(policy: Policy, change_type: str | None) -> list[tuple[str, str, str]]:
    """(checklist title, link, item) for each item the policy's checklists require of a
    change type."""
    if not change_type:
        return []
    return [
        (c.title, c.link, item)
        for c in policy.checklists
        for item in c.items.get(change_type, [])  # type: ignore[call-overload]
    ]


def _checklists(facts: GateFacts) -> list[Finding]:
    """The policy's checklists: each required item ticked in the merge request description's
    task list (read from GitLab's API). Unread: blocks where the gate is enforced (GitLab CI),
    a warning elsewhere."""
    required = required_items(facts.policy, facts.classification.change_type)
    if not required or (
        not facts.classification.has_changes and not facts.classification.declared_type
    ):
        return []
    tasks = facts.tasks
    if tasks is None or tasks.unchecked:
        why = tasks.unchecked if tasks else "the merge request was not read"
        titles = ", ".join(dict.fromkeys(t for t, _, _ in required))
        line = f"the checklists ({titles}) cannot be checked: {why}"
        if facts.approval_required:
            return [block("checklist.unchecked", f"{line}; where the gate is enforced this blocks")]
        return [warn("checklist.unchecked", f"{line}; in GitLab CI this blocks")]
    out = []
    for title, link, item in required:
        if task_key(item) not in tasks.ticked:
            where = f"{title} ({link})" if link else title
            out.append(
                block(
                    "checklist.unticked",
                    f"{where}: {item!r} is not ticked in the merge request description's task "
                    f"list: tick it there (`- [x] {item}`) once done",
                )
            )
    return out
