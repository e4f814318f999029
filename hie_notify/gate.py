"""May the apply go ahead now? Every reason it may not, with what to do and when (pure)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from hie_notify.calendar import UTC, BusinessCalendar
from hie_notify.change import ChangeRecord, Window
from hie_notify.classify import Classification, names
from hie_notify.durations import describe_timedelta, parse_duration
from hie_notify.policy.model import Policy
from hie_notify.records import PLANLESS, Audience, Audiences, Entry

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


@dataclass(frozen=True)
class Approval:
    """Whether someone other than the author approved the merge request (break-glass)."""

    approved: bool
    detail: str


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
class Decision:
    allowed: bool
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    requirements: tuple[Requirement, ...]
    earliest_start: datetime | None
    emergency: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    trial: bool = False

    def to_json(self, calendar: BusinessCalendar) -> dict[str, Any]:
        def iso(when: datetime | None) -> str | None:
            return when.astimezone(UTC).isoformat() if when else None

        return {
            "allowed": self.allowed,
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
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


def decide(
    *,
    policy: Policy,
    calendar: BusinessCalendar,
    result: Classification,
    change: ChangeRecord | None,
    audiences: Audiences,
    entries: Sequence[Entry],
    now: datetime,
    freeze: str | None = None,
    speculative: bool = False,
    approval: Approval | None = None,
    approval_required: bool = False,
    outbox_counts: bool = True,
    trial: bool = False,
    ledger_problems: Sequence[str] = (),
    ledger_warnings: Sequence[str] = (),
) -> Decision:
    """The gate. Blocks (with every reason) unless the policy's notice was given for this plan,
    the window is open now, and nothing else stands in the way. Warnings never block.

    `outbox_counts`: an outbox file is a notice (outside CI, or a trial); else only a real
    channel's delivery with its receipt is. `approval_required`: an emergency whose approval
    could not be checked blocks (in CI). `ledger_problems`: tampering the ledger's seal check
    found; each blocks."""
    reasons: list[str] = [f"the ledger cannot be trusted: {p}" for p in ledger_problems]
    warnings: list[str] = [f"ledger: {w}" for w in ledger_warnings]
    notes: list[str] = [TRIAL_BANNER] if trial else []
    emergency = bool(
        result.change_type and policy.change_type(result.change_type).notice_overrides_others
    )

    when = calendar.moment

    if speculative:
        reasons.append(
            "this HCP Terraform run is speculative (plan-only): it can never be applied; "
            "start a run that can be applied, and announce its plan"
        )
    if freeze:
        reasons.append(
            f"a deploy freeze is active ({freeze}): no production apply until it ends; "
            "wait for the freeze to end, or declare an emergency_fix with a justification "
            "and run it outside this pipeline's freeze rules"
        )
    if change is None:
        reasons.append(
            "no change record: give one with --change / HIE_CHANGE (the policy's Phase 1 needs "
            "the Jira key, purpose, window, downtime estimate and rollback plan)"
        )
        return Decision(False, tuple(reasons), (), (), None, emergency, tuple(notes), trial)
    if not result.has_changes and result.declared_type is None:
        notes.append("the plan has no changes: nothing to announce or guard")
        return Decision(not reasons, tuple(reasons), (), (), None, emergency, tuple(notes), trial)

    for gap in change.phase1_gaps():
        if emergency and not gap.startswith("rollback"):
            warnings.append(f"the change record has no {gap}; allowed for an emergency fix")
            continue
        reasons.append(f"the change record has no {gap}: add it (policy Phase 1)")
    if emergency and not (change.justification or "").strip():
        reasons.append("an emergency fix needs a justification in the change record")
    if emergency and approval is None and approval_required:
        reasons.append(
            "the emergency's approval cannot be checked: GitLab is not configured (set "
            "HIE_GITLAB_TOKEN so the gate can see the merge request's approvals); in GitLab CI "
            "an unchecked emergency does not pass"
        )
    elif emergency and approval is None:
        warnings.append(
            "the emergency's approval was not checked: GitLab is not configured (set "
            "HIE_GITLAB_TOKEN so the gate can see the merge request's approvals)"
        )
    elif emergency and approval is not None and not approval.approved:
        reasons.append(
            "an emergency fix needs an approval on its merge request from someone other than "
            f"its author ({approval.detail})"
        )
    reasons.extend(audiences.problems)

    window = change.window
    if window is not None:
        if now < window.start:
            reasons.append(
                f"the window has not opened: it starts {when(window.start)}; this job may run "
                "from then"
            )
        elif now > window.end:
            reasons.append(
                f"the window closed {when(window.end)}: set a new window in the change record "
                "(the new time needs its own notice)"
            )
        if not calendar.in_working_hours(window.start, window.end) and not change.on_call:
            reasons.append(
                f"the window ({calendar.span(window.start, window.end)}) is outside working "
                "hours and the change record names no on_call engineer: add on_call"
            )

    requirements: list[Requirement] = []
    for audience in audiences.for_phase("pre_deployment"):
        requirements.append(
            _requirement(
                audience,
                entries,
                result,
                policy,
                calendar,
                now,
                window,
                emergency,
                reasons,
                warnings,
                when,
                outbox_counts,
                change.downtime,
            )
        )

    earliest = max((r.earliest_start for r in requirements), default=None)
    if window is not None and earliest is not None and not emergency:
        earliest = max(earliest, window.start) if all(r.met for r in requirements) else earliest
    return Decision(
        allowed=not reasons,
        reasons=tuple(reasons),
        warnings=tuple(warnings),
        requirements=tuple(requirements),
        earliest_start=earliest,
        emergency=emergency,
        notes=tuple(notes),
        trial=trial,
    )


def _requirement(
    audience: Audience,
    entries: Sequence[Entry],
    result: Classification,
    policy: Policy,
    calendar: BusinessCalendar,
    now: datetime,
    window: Window | None,
    emergency: bool,
    reasons: list[str],
    warnings: list[str],
    when: Callable[[datetime], str],
    outbox_counts: bool = True,
    downtime: timedelta | None = None,
) -> Requirement:
    sent = standing(
        [
            e
            for e in entries
            if e.audience == audience.id
            and e.stage == ANNOUNCE
            and not e.dry_run
            and e.delivered_at <= now
        ],
        policy,
    )

    # A meeting's agenda item is written for the meeting, not sent: the outbox is its route.
    outbox_counts = outbox_counts or audience.kind == "meeting"

    def counts(e: Entry) -> bool:
        return outbox_counts if e.channel == "outbox" else has_receipt(e)

    told = sorted((e for e in sent if counts(e)), key=lambda e: e.delivered_at)
    uncounted: list[str] = []
    if not told and sent:
        outbox = [e for e in sent if e.channel == "outbox"]
        bare = [e for e in sent if e.channel != "outbox"]
        if outbox and not outbox_counts:
            uncounted.append(
                f"{audience.label} was only written to the outbox ({outbox[0].message_id}): "
                "where the gate is enforced (GitLab CI, the run task) that tells nobody. Give "
                "the audience a real route in the policy (a Slack channel, email contacts with "
                "SMTP_HOST, Teams or a webhook), then run `hie-notify plan`"
            )
        if bare:
            uncounted.append(
                f"{audience.label}: the {bare[0].channel} delivery recorded "
                f"{when(bare[0].delivered_at)} has no receipt from the service (no proof it "
                "reached anyone): it does not count; run `hie-notify plan`"
            )

    def differences(e: Entry) -> list[str]:
        raised = downtime_raised(e, downtime)
        return [*plan_differences(e, result, policy), *([raised] if raised else [])]

    matching = [e for e in told if not differences(e) and _covers(e, window)]
    minimum, recommended = audience.minimum, audience.recommended
    if not matching:
        if_now = calendar.earliest_start(now, minimum)
        if told and not differences(told[-1]):
            reasons.append(
                f"{audience.label} was told of another window ({_window_of(told[-1], calendar)}): "
                "run `hie-notify plan` to announce the new one; with notice given now the "
                f"earliest start is {when(if_now)}"
            )
        elif told:
            diff = "; ".join(differences(told[-1]))
            reasons.append(
                f"{audience.label} was told about a different plan ({diff}): run "
                f"`hie-notify plan` to announce this one; with notice given now the earliest "
                f"start is {when(if_now)}"
            )
        elif uncounted:
            reasons.extend(uncounted)
        else:
            what = (
                "immediately, before the fix"
                if emergency
                else f"at least {minimum.describe()} ahead"
            )
            reasons.append(
                f"{audience.label} has not been told ({what}): run `hie-notify plan` to announce "
                f"it; with notice given now the earliest start is {when(if_now)}"
            )
        return Requirement(
            audience.id, audience.label, str(minimum), str(recommended), None, if_now, False
        )
    given = matching[0].delivered_at
    # The first counting delivery's receipt on each channel; "outbox only" when no real
    # channel carried it (outside CI, or a trial).
    first: dict[str, Entry] = {}
    for e in matching:
        first.setdefault(e.channel, e)
    outbox_only = set(first) == {"outbox"}
    receipts = tuple(receipt_text(e) for e in first.values())
    needed = calendar.earliest_start(given, minimum)
    met = True
    if window is not None and not emergency:
        if window.start < needed:
            met = False
            reasons.append(
                f"{audience.label} was told {when(given)}, less than the minimum "
                f"{minimum.describe()} before the window starts {when(window.start)}: the "
                f"earliest allowed start is {when(needed)}; move the window in the change record"
            )
        elif window.start < calendar.earliest_start(given, recommended):
            warnings.append(
                f"{audience.label} was told {when(given)}: more than the minimum "
                f"{minimum.describe()}, less than the recommended {recommended.describe()}"
            )
    return Requirement(
        audience.id,
        audience.label,
        str(minimum),
        str(recommended),
        given,
        needed,
        met,
        outbox_only,
        receipts,
    )
