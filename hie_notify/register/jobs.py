"""The scheduled jobs that run from the register (`hie-notify remind`): each change's notices
go through the same channels and delivery record as every stage (notify.run_stage), with the
register as that change's ledger."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from hie_notify import ack_gate, progress, stagerun, timetext
from hie_notify.acks import AckLinks
from hie_notify.audiences import resolve
from hie_notify.calendar import BusinessCalendar
from hie_notify.change import ChangeRecord
from hie_notify.channels import Channels
from hie_notify.channels.alerts import incident_audience
from hie_notify.classify import Classification
from hie_notify.context import load_policy_for
from hie_notify.errors import InputError
from hie_notify.ledger.seal import Verified
from hie_notify.lifecycle import LifecycleError, State, as_it_is
from hie_notify.masking import Masker
from hie_notify.notify import StageReport, run_stage
from hie_notify.options import Options
from hie_notify.policy.model import Policy
from hie_notify.records import Audience, Entry
from hie_notify.register import reminders
from hie_notify.register.model import Registered, lifecycle_of, merge_entries
from hie_notify.register.store import Register, register_of
from hie_notify.render import Renderer
from hie_notify.stages import from_ledger, postmortem_reasons

if TYPE_CHECKING:
    from hie_notify.settings import Settings

# Statuses (lifecycle states) that say the change failed or did not stay: a post-mortem is owed.
_FAILED = frozenset(
    s.value for s in (State.FAILED, State.ROLLBACK_FAILED, State.ROLLED_BACK, State.WITHDRAWN)
)

UPDATE = "update"


class RegisterLedger:
    """One change's entries in the register, seen as a Ledger (read, record, lock)."""

    def __init__(self, register: Register, record: Registered, now: datetime) -> None:
        self.register = register
        self.record_of = record
        self.now = now

    @property
    def description(self) -> str:
        return self.register.description

    def read(self, change_id: str) -> list[Entry]:
        return [e for e in self.record_of.entries if e.change_id == change_id]

    def verified(self, change_id: str) -> Verified:
        # Reminders are never what the gate counts (it reads the change's own ledger), so the
        # register's copy carries no seals to check.
        return Verified(entries=self.read(change_id))

    def record(self, entries: list[Entry]) -> list[Entry]:
        self.register.put(self.record_of, entries, self.now)
        self.record_of = replace(self.record_of, entries=(*self.record_of.entries, *entries))
        return entries

    @contextmanager
    def lock(self) -> Iterator[None]:
        # Each put is one transaction (SQLite) or one note (GitLab); the scheduled job runs in
        # one resource group, so two reminder jobs never overlap.
        yield


@dataclass
class RemindReport:
    checked: int = 0
    reports: list[tuple[str, str, StageReport]] = field(default_factory=list)  # change, tag
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)  # post-mortems found closed
    time_zone: str = "UTC"  # the policy's: where times are shown to people

    def to_json(self) -> dict[str, Any]:
        sent = []
        for change_id, due_tag, report in self.reports:
            data = report.to_json()
            for row in data["delivered"] + data["already_delivered"] + data["dry_run"]:
                sent.append({"change": change_id, "stage": report.stage, "tag": due_tag, **row})
        return {
            "checked": self.checked,
            "sent": sent,
            "failed": list(self.failed),
            "skipped": list(self.skipped),
            "recorded": list(self.recorded),
        }

    def lines(self) -> list[str]:
        out = [f"hie-notify remind: {self.checked} open change(s) checked"]
        for change_id, due_tag, report in self.reports:
            out.append(f"{change_id}: {reminders.describe(due_tag)}")
            out += report.lines(lambda when: timetext.local(when, self.time_zone))
        out += [f"  FAILED    {f}" for f in self.failed]
        out += [f"  skipped   {s}" for s in self.skipped]
        out += [f"  recorded  {r}" for r in self.recorded]
        if not self.reports and not self.failed and not self.recorded:
            out.append("  nothing due")
        return out


# `remind` looks at an unfinished change for this long after its window ended (the overrun is
# sent by the first run after the end): a job down for longer than that does not send it.
OVERRUN_CATCH_UP = reminders.POSTMORTEM_CATCH_UP


# How far ahead of its window a change's cadence reminders (weekly, biweekly) are looked for:
# `remind` reads the register by range, and a cadence has no last offset of its own.
CADENCE_REACH = timedelta(weeks=13)
# How far ahead of its window `remind` looks at a change whose type escalates missing
# acknowledgements.
ESCALATION_REACH = timedelta(days=120)


def horizon(policy: Policy) -> timedelta:
    """The longest reminder offset any change type asks for."""
    offsets = [
        o
        for ct in policy.change_types.values()
        for kind in (ct.reminders.internal, ct.reminders.customer, ct.reminders.stakeholder)
        for o in kind
    ]
    return max(offsets, default=timedelta(0))


def reach(policy: Policy) -> timedelta:
    """How far ahead of now `remind` reads the register: the longest offset, or a quarter
    when some change type has a cadence."""
    if any(ct.reminders.cadence is not None for ct in policy.change_types.values()):
        return max(horizon(policy), CADENCE_REACH)
    return horizon(policy)


def _cadence(policy: Policy, record: Registered) -> timedelta | None:
    """The internal cadence of the change's type (`reminders.internal_cadence`), if any."""
    kind = record.change_type
    if kind is None or kind not in policy.change_types:
        return None
    return policy.change_type(kind).reminders.cadence


def remind(options: Options) -> RemindReport:
    policy = load_policy_for(options).policy
    masker = Masker.from_env(options.env)
    register = register_of(options, policy, required_by="remind")
    assert register is not None
    now = options.clock()
    ahead = horizon(policy)
    if any(ct.acknowledgements.escalation for ct in policy.change_types.values()):
        # Acknowledgements are chased from the announcement on, long before any reminder.
        ahead = max(ahead, ESCALATION_REACH)
    renderer = Renderer(policy.templates, masker)
    report = RemindReport(time_zone=policy.calendar.time_zone)
    progress.step(f"remind: reading the open changes ({register.description})")
    # Only the open changes whose window is near: reminders are due up to `ahead` before it,
    # an overrun up to OVERRUN_CATCH_UP after it (the register is read by that range, not
    # whole: 20,000 changes cost what the weeks around now hold).
    # A change type with a cadence is reminded of weekly from further ahead (CADENCE_REACH):
    # the changes beyond the longest offset are kept only when their type has one.
    open_changes = [
        record
        for record in register.open_changes(
            now - OVERRUN_CATCH_UP, now + max(reach(policy), ahead) + timedelta(seconds=1)
        )
        if record.window_start is None
        or record.window_start <= now + ahead
        or _cadence(policy, record) is not None
    ]
    for record in open_changes:
        report.checked += 1
        progress.count("remind: open changes checked", report.checked, len(open_changes))
        if not reminders.might_owe(record, now, ahead, _cadence(policy, record)):
            continue
        full = register.get(record.change_id)
        if full is None:
            continue
        try:
            _remind_one(options, policy, register, renderer, full, now, report)
        except InputError as exc:
            report.skipped.append(f"{full.change_id}: {'; '.join(exc.problems)}")
    _remind_postmortems(options, policy, register, renderer, now, report)
    return report


def _remind_postmortems(
    options: Options,
    policy: Policy,
    register: Register,
    renderer: Renderer,
    now: datetime,
    report: RemindReport,
) -> None:
    """Overdue post-mortems: changes that ended (their windows within the policy's deadline and
    the catch-up period before now) whose post-mortem is owed, past due and not closed."""
    calendar = BusinessCalendar.from_policy(policy)
    due = policy.postmortems.due
    # How far back a window may have ended and its post-mortem still fall due in the catch-up
    # period: the deadline in calendar days (business days span weekends and holidays).
    reach = calendar.earliest_start(now, due) - now + reminders.POSTMORTEM_CATCH_UP
    for record in register.between(now - reach - timedelta(days=14), now):
        if not (
            reminders.might_be_overdue(record, calendar, due, now)
            and _might_owe_postmortem(policy, record)
        ):
            continue
        full = register.get(record.change_id)
        if full is None:
            continue
        try:
            _remind_postmortem(options, policy, register, renderer, calendar, full, now, report)
        except InputError as exc:
            report.skipped.append(f"{full.change_id}: {'; '.join(exc.problems)}")


def _might_owe_postmortem(policy: Policy, record: Registered) -> bool:
    """What stages.postmortem_reasons would say, from the record alone (no entries read): a
    failure or rollback, a type that always owes one, or a significant change."""
    if record.status in _FAILED:
        return True
    kind = record.change_type
    if kind is None or kind not in policy.change_types:
        return False
    rule = policy.change_type(kind).post_mortem
    if rule == "always":
        return True
    if rule != "significant":
        return False
    summary = record.summary
    return bool(
        record.service_impacting
        or record.change.get("risk") == "high"
        or summary.get("destroy")
        or summary.get("replace")
    )


def _remind_postmortem(
    options: Options,
    policy: Policy,
    register: Register,
    renderer: Renderer,
    calendar: BusinessCalendar,
    record: Registered,
    now: datetime,
    report: RemindReport,
) -> None:
    change = _change_record(record, policy)
    result = from_ledger(record.entries, policy, change.id)
    # The failures and rollbacks its registered transitions record are the reasons.
    reasons = postmortem_reasons(policy, change, result, record.entries, "complete")
    if not reasons:
        return
    due_at = reminders.postmortem_due(record, calendar, policy.postmortems.due)
    audiences = resolve(policy, result, change, record.environments).audiences
    due = reminders.postmortem_overdue(record, audiences, due_at, now)
    if not due or due_at is None:
        return
    upstream = closed_on_gitlab(options.env, record.entries, options.settings)
    if upstream is not None:  # closed on GitLab, not recorded yet: record it, remind nobody
        url, closed_at = upstream
        entry = closing_entry(change.id, result.change_type, now, url, "GitLab", closed_at)
        if not options.dry_run:
            RegisterLedger(register, record, now).record([entry])
        report.recorded.append(f"{change.id}: the post-mortem issue was closed on GitLab: {url}")
        return
    due_tag = due[0].tag
    opened = [e for e in record.entries if e.stage == "postmortem" and e.channel == "gitlab"]
    status: dict[str, Any] = {
        "postmortem": reasons,
        "postmortem_link": opened[0].message_id if opened else "",
        "postmortem_due": calendar.moment(due_at),
        "register_status": record.status,
    }
    ledger = RegisterLedger(register, record, now)
    _send_due(
        lifecycle=as_it_is(lifecycle_of(record.entries), reminders.POSTMORTEM_OVERDUE),
        options=options,
        policy=policy,
        renderer=renderer,
        change=change,
        result=result,
        ledger=ledger,
        stage=reminders.POSTMORTEM_OVERDUE,
        due_tag=due_tag,
        due=due,
        status=status,
        now=now,
        report=report,
    )


def _remind_one(
    options: Options,
    policy: Policy,
    register: Register,
    renderer: Renderer,
    record: Registered,
    now: datetime,
    report: RemindReport,
) -> None:
    change = _change_record(record, policy)
    result = from_ledger(record.entries, policy, change.id)
    if result.change_type is None:
        return
    audiences = resolve(policy, result, change, record.environments).audiences
    rules = policy.change_type(result.change_type).reminders
    offsets = {
        "internal": rules.internal,
        "customer": rules.customer,
        "stakeholder": rules.stakeholder,
    }
    due = reminders.owed(record, audiences, offsets, now, rules.cadence)
    groups: dict[tuple[str, str], list[reminders.Due]] = {}
    for d in due:
        groups.setdefault((d.stage, d.tag), []).append(d)
    ledger = RegisterLedger(register, record, now)
    calendar = BusinessCalendar.from_policy(policy)
    for esc in ack_gate.escalations_due(
        policy=policy,
        calendar=calendar,
        change_type=result.change_type,
        audiences=[a for a in audiences if "pre_deployment" in a.phases],
        entries=record.entries,
        now=now,
    ):
        if esc.to == "contact":  # the reminder again, with its link, to the audience
            groups.setdefault((reminders.REMINDER, esc.tag), []).append(
                reminders.Due(reminders.REMINDER, esc.audience, esc.tag)
            )
        else:
            _escalate(options, policy, change, result, ledger, esc, now, report)
    for (stage, due_tag), items in groups.items():
        start = record.window_start
        status: dict[str, Any] = {
            # The time actually left (the job runs when it runs), not the reminder's offset.
            "starts_in": reminders.time_left(start - now)
            if stage == reminders.REMINDER and start is not None
            else "now",
            "register_status": record.status,
        }
        _send_due(
            lifecycle=as_it_is(lifecycle_of(record.entries), stage),
            options=options,
            policy=policy,
            renderer=renderer,
            change=change,
            result=result,
            ledger=ledger,
            stage=stage,
            due_tag=due_tag,
            due=items,
            status=status,
            now=now,
            report=report,
        )


def _escalate(
    options: Options,
    policy: Policy,
    change: ChangeRecord,
    result: Classification,
    ledger: RegisterLedger,
    esc: ack_gate.Escalation,
    now: datetime,
    report: RemindReport,
) -> None:
    """A rung past the audience itself: the customer's account owner by email, or a PagerDuty
    incident for the change's owner; recorded (stage `escalation`) so it is taken once."""
    from hie_notify.channels import Delivery, Outgoing
    from hie_notify.errors import HieError

    zone = policy.calendar.time_zone
    due = timetext.moment(esc.due_at, zone)
    who = esc.audience.label
    owner = change.owner or "the change's owner"
    summary = (
        f"{change.id}: {who} has not acknowledged the notice of the change; it was due by "
        f"{due}. Owner: {owner}"
    )
    what = reminders.describe(esc.tag)
    if options.dry_run:
        report.skipped.append(f"{change.id}: {what}: dry run, not sent")
        return
    try:
        if esc.to == "pagerduty":
            if policy.pagerduty is None or not options.env.get("PAGERDUTY_ROUTING_KEY"):
                report.skipped.append(
                    f"{change.id}: {what}: PagerDuty is not configured (pagerduty in the policy "
                    "and PAGERDUTY_ROUTING_KEY): no incident opened"
                )
                return
            from hie_notify.channels.pagerduty import BASE, PagerdutyChannel

            channel = PagerdutyChannel(
                options.env["PAGERDUTY_ROUTING_KEY"],
                {"jira": policy.jira.link(change.id)},
                Masker.from_env(options.env),
                now,
                policy.pagerduty.source,
                base=options.env.get("PAGERDUTY_EVENTS_URL") or BASE,
            )
            delivery: Delivery = channel.trigger(
                summary,
                f"hie-notify-{esc.tag}-{change.id}",
                {"change_id": change.id, "audience": esc.audience.id, "owner": owner, "due": due},
            )
        else:
            name = esc.audience.id.split(":", 1)[1]
            customer = policy.customers.get(name)
            contact = customer.account_owner if customer else None
            if contact is None or not contact.email:
                report.skipped.append(
                    f"{change.id}: {what}: {who} has no account_owner with an email in the "
                    "policy: nobody told"
                )
                return
            audience = replace(
                esc.audience,
                id=f"account_owner:{name}",
                kind="internal",
                label=contact.name or contact.email,
                emails=(contact.email,),
            )
            message = ack_gate_message(audience, change.id, summary, Masker.from_env(options.env))
            channels = Channels(policy, options.env, options.outbox, change.id, now)
            kind = "email" if options.env.get("SMTP_HOST") else "outbox"
            sender = channels._channel(kind) or channels.outbox
            outgoing = Outgoing(change.id, message, esc.tag, "email", ())
            delivery = sender.send(outgoing)
    except HieError as exc:
        report.failed.append(f"{change.id}: {what}: {exc}")
        return
    base = next(e for e in reversed(ledger.read(change.id)) if e.audience == esc.audience.id)
    entry = replace(
        base,
        stage=ack_gate.ESCALATION,
        channel=delivery.channel,
        recipient=delivery.recipient,
        message_id=delivery.message_id,
        fingerprint=reminders.variant(result.fingerprint, esc.tag),
        delivered_at=now,
        idempotency_key=f"{esc.tag}-{change.id}",
        receipt=dict(delivery.receipt),
        extra={"to": esc.to, "step": str(esc.step + 1)},
        prev="",
        digest="",
        mac="",
    )
    ledger.record([entry])
    report.recorded.append(f"{change.id}: {what}: {esc.to} told ({delivery.recipient})")


def ack_gate_message(audience: Audience, change_id: str, summary: str, mask: Masker) -> Any:
    """The account owner's email: who has not acknowledged, since when, and what to do."""
    from hie_notify.render import FORMATS, Format, Rendered

    bodies = {}
    for fmt in FORMATS:
        f = Format(fmt, mask)
        bodies[fmt] = "\n\n".join(
            str(x)
            for x in (
                f.p(summary),
                f.p(
                    "Please ask them to acknowledge it with the link in their notice, or to tell "
                    "us the window does not work for them. The gate holds the change until then."
                ),
            )
        )
    bodies["email_html"] = bodies["html"]
    return Rendered("escalation", audience, mask(f"Acknowledgement overdue: {change_id}"), bodies)


def _send_due(
    *,
    options: Options,
    policy: Policy,
    renderer: Renderer,
    change: ChangeRecord,
    result: Classification,
    ledger: RegisterLedger,
    stage: str,
    due_tag: str,
    due: list[reminders.Due],
    status: dict[str, Any],
    now: datetime,
    report: RemindReport,
    lifecycle: Mapping[str, Any],
) -> None:
    """Send one due reminder stage to its audiences; its delivery keys carry the due tag, so it
    goes out once however often `remind` runs. `lifecycle`: the change's state, unchanged."""
    progress.step(f"remind: {change.id}: {reminders.describe(due_tag)}")
    # An overrun pages on-call where the change type's alerts say so (channels.alerts).
    paged = incident_audience(policy, result.change_type, stage, ())
    stage_report = run_stage(
        stage=stage,
        policy=policy,
        change=change,
        result=replace(result, fingerprint=reminders.variant(result.fingerprint, due_tag)),
        audiences=[d.audience for d in due] + paged,
        ledger=ledger,
        channels=Channels(
            policy, options.env, options.outbox, change.id, now, change_type=result.change_type
        ),
        renderer=renderer,
        now=now,
        links={},
        status=status,
        dry_run=options.dry_run,
        lifecycle=lifecycle,
        acks=AckLinks.from_env(options.env, options.ledger),
    )
    report.reports.append((change.id, due_tag, stage_report))
    if stage_report.failed:  # listed with the report; the rest of the run goes on
        what = reminders.describe(due_tag)
        report.failed.append(f"{change.id}: {what}: {stage_report.summary()}")


def _change_record(record: Registered, policy: Policy) -> ChangeRecord:
    try:
        return ChangeRecord.model_validate(
            dict(record.change), context={"customers": set(policy.customers)}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(
            f"the registered change record no longer validates ({where}: {first['msg']})"
        ) from None


def send_update(
    options: Options, args: argparse.Namespace, message: str
) -> tuple[Any, StageReport]:
    """An ad-hoc progress or delay update to the change's "during" audiences. Each distinct
    message goes out once (its text is part of the delivery key); the register records it."""
    text = " ".join(message.split())
    if not text:
        raise InputError("--message: expected the update's text, got nothing")
    run = stagerun.load(options, args)
    now = options.clock()
    # An update is no transition: the state stays as it is, and an ended change has none.
    life = stagerun.lifecycle_now(run)
    if life.ended:
        raise LifecycleError(
            f"`update`: {run.change.id} is {life.state.value}: it has ended, there is nothing "
            "to update anyone on (announce a new change to make it again)"
        )
    audiences = resolve(run.policy, run.result, run.change, run.environments)
    during = audiences.for_phase("during")
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    report = run_stage(
        stage=UPDATE,
        policy=run.policy,
        change=run.change,
        result=replace(run.result, fingerprint=f"{run.result.fingerprint}|update:{digest}"),
        audiences=during,
        ledger=run.ledger,
        channels=Channels(run.policy, options.env, options.outbox, run.change.id, now),
        renderer=run.renderer,
        now=now,
        links=run.links,
        status={"detail": text},
        dry_run=options.dry_run,
        lifecycle=as_it_is(life, UPDATE),
    )
    if not options.dry_run:
        report.notes.extend(
            stagerun.register_stage(run, UPDATE, [a.id for a in audiences.audiences], report)
        )
    return run, report


@dataclass
class PostmortemState:
    change_id: str
    owed: list[str]  # why one is owed; empty when none is
    state: str  # "not owed" | "owed" | "opened" | "closed"
    due: datetime | None
    overdue: bool
    link: str
    closed_at: datetime | None
    recorded: bool  # this run recorded the closing
    notes: list[str] = field(default_factory=list)
    time_zone: str = "UTC"  # the policy's: where `due` is shown to people

    def to_json(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id,
            "owed": list(self.owed),
            "state": self.state,
            "due": self.due.isoformat() if self.due else None,
            "overdue": self.overdue,
            "link": self.link,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "recorded": self.recorded,
            "notes": list(self.notes),
        }


def postmortem(options: Options, *, closed: bool, link: str) -> PostmortemState:
    """The post-mortem of the change record's change: whether one is owed, opened, closed, when
    it is due; with `closed`, record that it was held (in the ledger and the register)."""
    from hie_notify.change import load_change
    from hie_notify.context import require_change
    from hie_notify.ledger import open_ledger

    policy = load_policy_for(options).policy
    change = require_change(load_change(options.change, policy) if options.change else None)
    # Without --closed it only reads: the ledger and the register must exist, and nothing is
    # written (a closing seen on GitLab is shown, and `remind` or --closed records it).
    writes = closed and not options.dry_run
    ledger = open_ledger(
        options.ledger, options.env, signed=policy.ledger.signed, must_exist=not closed
    )
    now = options.clock()
    zone = policy.calendar.time_zone
    mask = Masker.from_env(options.env)
    entries = ledger.read(change.id)
    notes: list[str] = []
    recorded = False
    already = reminders.postmortem_closed(entries)
    if closed and already is not None:
        notes.append(f"already recorded as closed {timetext.moment(already.delivered_at, zone)}")
    elif closed and options.dry_run:
        notes.append("dry run: the closing is not recorded")
    elif closed:
        by = options.env.get("GITLAB_USER_LOGIN") or "hie-notify postmortem"
        entry = closing_entry(change.id, change.type, now, mask(link), mask(by))
        entries = [*entries, *ledger.record([entry])]
        recorded = True
    elif already is None:
        upstream = closed_on_gitlab(options.env, entries, options.settings)
        if upstream is not None:
            url, closed_at = upstream
            entries = [
                *entries,
                closing_entry(change.id, change.type, now, url, "GitLab", closed_at),
            ]
            notes.append(
                "the post-mortem issue was closed on GitLab "
                f"({timetext.of_iso(closed_at, zone)}); not recorded here: "
                "`postmortem --closed --link URL` records it (and `remind` does once it is due)"
            )
    register = register_of(options, policy, only_reads=not closed)
    record = register.get(change.id) if register is not None else None
    if register is None:
        notes.append("no change register: the closing is in the ledger only")
    elif record is None:
        notes.append(f"{change.id} is not in the change register ({register.description})")
    elif writes:
        # The register learns of the post-mortem's issue and its closing (the report and
        # `remind` read them there).
        pm = [e for e in entries if e.stage == "postmortem" and not e.dry_run]
        register.put(record, pm, now)
        record = register.get(change.id) or record
    return _state(policy, change, entries, record, now, recorded, notes)


def closing_entry(
    change_id: str, change_type: str | None, now: datetime, link: str, by: str, closed_at: str = ""
) -> Entry:
    """The ledger entry saying the change's post-mortem was held and closed."""
    from hie_notify.ledger import idempotency_key

    extra = {"state": "closed", "by": by, "link": link}
    if closed_at:
        extra["closed_at"] = closed_at  # as GitLab says it; delivered_at is when it was seen
    return Entry(
        change_id=change_id,
        stage="postmortem",
        audience="postmortem",
        channel="manual" if by != "GitLab" else "gitlab",
        recipient=by,
        fingerprint="postmortem:closed",
        change_type=change_type,
        service_impacting=False,
        resources=(),
        delivered_at=now,
        message_id=link,
        idempotency_key=idempotency_key(change_id, "postmortem", "postmortem", "closed"),
        extra=extra,
    )


def closed_on_gitlab(
    env: Mapping[str, str], entries: Sequence[Entry], settings: Settings | None = None
) -> tuple[str, str] | None:
    """(issue URL, closed_at) when the post-mortem issue hie-notify opened on GitLab is closed;
    None when it is open, there is none, or GitLab is not configured."""
    from hie_notify.settings import settings_or_env

    settings = settings_or_env(settings, env)
    if not (settings.gitlab_token and env.get("CI_API_V4_URL") and env.get("CI_PROJECT_ID")):
        return None
    opened = [
        e
        for e in entries
        if e.stage == "postmortem" and e.channel == "gitlab" and e.extra.get("state") != "closed"
    ]
    if not opened:
        return None
    from hie_notify.channels.gitlab import issue_closed

    url = opened[0].message_id
    closed_at = issue_closed(env, url, settings)
    return (url, closed_at) if closed_at else None


def _state(
    policy: Policy,
    change: ChangeRecord,
    entries: list[Entry],
    record: Registered | None,
    now: datetime,
    recorded: bool,
    notes: list[str],
) -> PostmortemState:
    all_entries = merge_entries(record.entries if record else (), entries)
    zone = policy.calendar.time_zone
    try:
        result = from_ledger(all_entries, policy, change.id)
    except InputError:
        return PostmortemState(
            change.id, [], "not owed", None, False, "", None, recorded, notes, zone
        )
    reasons = postmortem_reasons(policy, change, result, all_entries, "complete")
    pm = [e for e in all_entries if e.stage == "postmortem" and not e.dry_run]
    closed = reminders.postmortem_closed(pm)
    calendar = BusinessCalendar.from_policy(policy)
    base = record or Registered(
        change.id,
        State.ANNOUNCED.value,
        result.change_type,
        change.purpose,
        change.window.start if change.window else None,
        change.window.end if change.window else None,
    )
    due = (
        reminders.postmortem_due(
            replace(base, entries=all_entries), calendar, policy.postmortems.due
        )
        if reasons
        else None
    )
    state = "closed" if closed else ("opened" if pm else ("owed" if reasons else "not owed"))
    link = closed.extra.get("link", "") if closed else (pm[0].message_id if pm else "")
    return PostmortemState(
        change.id,
        reasons,
        state,
        due,
        bool(due and now > due and not closed),
        link,
        closed.delivered_at if closed else None,
        recorded,
        notes,
        zone,
    )
