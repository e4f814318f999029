"""The gate's acknowledgement rule, on its own so the gate can take it in as one finding (pure).

Per change type the policy may require acknowledgements (`acknowledgements: {required_from:
[critical], by: 2bd}`). For each audience it requires that was told of the change, the apply
may not go ahead until a contact of it has acknowledged the audience's latest announcement, nor
while an objection from it is open (not resolved by someone other than the change's author).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hie_notify import acks
from hie_notify.calendar import BusinessCalendar
from hie_notify.policy.model import Policy
from hie_notify.records import Audience, Entry

TOLD = "told"  # the announcement's digest of what it told (notify.py, gate.py)


@dataclass(frozen=True)
class AckFindings:
    reasons: tuple[str, ...]  # why the gate blocks
    audiences: tuple[dict[str, Any], ...]  # per audience: required, who acknowledged, objections

    def to_json(self) -> list[dict[str, Any]]:
        return list(self.audiences)


def required(policy: Policy, change_type: str | None, audience: Audience) -> bool:
    """Does the policy require this audience's acknowledgement for this change type?"""
    if not change_type:
        return False
    wanted = policy.change_type(change_type).acknowledgements.required_from
    kind, _, name = audience.id.partition(":")
    for selector in wanted:
        if selector == audience.id:
            return True
        if selector == "customers" and kind == "customer":
            return True
        if selector == "stakeholders" and kind == "stakeholders":
            return True
        if selector == "critical":
            if audience.id == "stakeholders:critical":
                return True
            customer = policy.customers.get(name) if kind == "customer" else None
            if customer is not None and any(c.critical for c in customer.contacts):
                return True
    return False


def findings(
    *,
    policy: Policy,
    calendar: BusinessCalendar,
    change_type: str | None,
    audiences: Sequence[Audience],
    entries: Sequence[Entry],
    now: datetime,
    when: Callable[[datetime], str],
) -> AckFindings:
    """What the ledger says each external audience answered, and what blocks the gate."""
    by = policy.change_type(change_type).acknowledgements.by if change_type else None
    state = acks.by_audience(entries)
    reasons: list[str] = []
    rows: list[dict[str, Any]] = []
    for audience in audiences:
        answered = state.get(audience.id)
        if not audience.external and answered is None:
            continue  # an internal channel shows up once someone in it acknowledged
        told = [
            e
            for e in entries
            if e.stage == "announce" and e.audience == audience.id and not e.dry_run
        ]
        needed = required(policy, change_type, audience)
        if not told and answered is None and not needed:
            continue
        latest = str(told[-1].extra.get(TOLD) or "") if told else ""
        acknowledged = [
            a for a in (answered.acknowledged if answered else ()) if a.announcement == latest
        ]
        objections = list(answered.objections) if answered else []
        deadline = calendar.earliest_start(told[0].delivered_at, by) if told and by else None
        rows.append(
            {
                "audience": audience.id,
                "label": audience.label,
                "required": needed,
                "due_by": deadline.isoformat() if deadline and needed else None,
                "acknowledged": [a.to_json() for a in acknowledged],
                "open_objections": [a.to_json() for a in objections],
                "resolved": [a.to_json() for a in (answered.resolved if answered else ())],
            }
        )
        for o in objections:
            reasons.append(
                f"{audience.label}: {o.contact} objected {when(o.at)} that the window does not "
                f"work for them ({o.reason!r}): agree a way forward with them, then someone "
                "other than the change's author runs `hie-notify ack --resolve --reason TEXT`"
            )
        if needed and told and not acknowledged and not objections:
            contact = acks.contact_of(audience.emails, audience.label)
            due = "it is required"
            if deadline is not None:
                late = now >= deadline
                due = f"it {'was' if late else 'is'} due by {when(deadline)}"
            sent = when(told[-1].delivered_at)
            reasons.append(
                f"{audience.label} has not acknowledged the notice of {sent} (the policy "
                f"requires it: acknowledgements.required_from; contact {contact}); {due}: ask "
                "them to use the link in their notice"
            )
    return AckFindings(tuple(reasons), tuple(rows))


ESCALATION = "escalation"  # the ledger stage of an escalation to the account owner or PagerDuty


@dataclass(frozen=True)
class Escalation:
    audience: Audience
    step: int
    to: str  # contact | account_owner | pagerduty
    due_at: datetime
    tag: str  # recorded in the delivery's fingerprint, so each rung is taken once


def escalations_due(
    *,
    policy: Policy,
    calendar: BusinessCalendar,
    change_type: str | None,
    audiences: Sequence[Audience],
    entries: Sequence[Entry],
    now: datetime,
) -> list[Escalation]:
    """The rungs of the policy's ladder due now for each required audience that has not
    answered its latest announcement: every rung whose time has come and that was not taken
    (a job that did not run for days takes each missed rung once); none once it answered."""
    from hie_notify.register.reminders import sent_tags

    if not change_type:
        return []
    rule = policy.change_type(change_type).acknowledgements
    if not rule.escalation:
        return []
    state = acks.by_audience(entries)
    out = []
    for audience in audiences:
        if not audience.external or not required(policy, change_type, audience):
            continue
        told = [
            e
            for e in entries
            if e.stage == "announce" and e.audience == audience.id and not e.dry_run
        ]
        if not told:
            continue
        latest = str(told[-1].extra.get(TOLD) or "")
        answered = state.get(audience.id)
        if answered is not None and (
            answered.objections or any(a.announcement == latest for a in answered.acknowledged)
        ):
            continue  # answered: the ladder stops
        since = min(e.delivered_at for e in told if str(e.extra.get(TOLD) or "") == latest)
        sent = sent_tags(entries, audience.id)
        for number, step in enumerate(rule.escalation):
            due = calendar.earliest_start(since, step.after)
            tag = f"ack-escalation-{latest[:12]}-{number}"
            if now >= due and tag not in sent:
                out.append(Escalation(audience, number, step.to, due, tag))
    return out
