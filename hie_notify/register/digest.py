"""`hie-notify digest`: the register's weekly summaries, sent once a week however often the
scheduled job runs.

- the weekly summary (last week's changes with their outcomes, this week's planned ones) to the
  Slack channels `digest.summary_to` names;
- the meeting's agenda (cost optimisation items, significant changes of the week before, upcoming
  service-impacting work), dated for the meeting's next sitting, as the policy's
  `digest.meeting.channel` says (a GitLab issue, a Slack post, ...);
- each stakeholder group's weekly update on the change types whose policy says
  `external_when: digest` (they are told here instead of at each stage);
- the sprint update: each internal channel a change type lists under `internal_digest` (e.g.
  #product for application updates) gets the weekly summary of those changes, as it is not told
  of them at each stage (a channel in `digest.summary_to` already has the whole summary).

Weeks run Monday 00:00 to Monday 00:00 in the policy's time zone. Each digest is keyed by its
kind and week (the agenda by its meeting's date) and recorded in the register under its own
entry (`digest-2026-W50`, `agenda-2026-12-09`: no window, status completed, so the calendar,
the reminders and the report never see it), so a second run sends nothing again.

The selection (`week_of`, `next_meeting`, `summary`, `agenda`, `stakeholder_updates`) is pure:
`now` is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hie_notify import timetext
from hie_notify.audiences import digest_group
from hie_notify.calendar import BusinessCalendar
from hie_notify.channels import Channel, Channels, Delivery, Outgoing
from hie_notify.context import load_policy_for
from hie_notify.durations import NoticePeriod
from hie_notify.errors import HieError, ServiceError
from hie_notify.ledger import idempotency_key
from hie_notify.lifecycle import WAITING, State
from hie_notify.masking import Masker
from hie_notify.notify import StageReport
from hie_notify.options import Options
from hie_notify.policy.model import Meeting, Policy
from hie_notify.records import Audience, Entry
from hie_notify.register.jobs import RegisterLedger
from hie_notify.register.model import Registered
from hie_notify.register.store import Register, register_of
from hie_notify.render import Renderer, service_context, when_text

if TYPE_CHECKING:
    from hie_notify.settings import Settings

SUMMARY, AGENDA, STAKEHOLDERS = "digest_summary", "digest_agenda", "digest_stakeholders"
KIND_OF_STAGE = {SUMMARY: "summary", AGENDA: "agenda", STAKEHOLDERS: "stakeholders"}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
AHEAD = timedelta(days=14)  # the agenda's "upcoming" reaches two weeks past the meeting
BEFORE = timedelta(days=7)  # and its "significant changes" the week before it
# A change's outcome in the digest: its lifecycle state, in the digest's words where they differ.
OUTCOMES = {
    State.ANNOUNCED.value: "planned",
    State.RESCHEDULED.value: "planned (moved)",
    State.SUCCEEDED.value: "applied, not completed yet",
    State.RESOLVED.value: "fixed, not completed yet",
    State.WITHDRAWN.value: "withdrawn (rolled back)",
}
NOT_STARTED = frozenset(s.value for s in WAITING)
# Worth the meeting's time whatever else it was: it failed or did not stay.
WENT_WRONG = frozenset(
    s.value
    for s in (
        State.FAILED,
        State.ROLLBACK_FAILED,
        State.ROLLING_BACK,
        State.ROLLED_BACK,
        State.WITHDRAWN,
    )
)
AGENDA_LABEL = "hie-notify-agenda"
# An agenda's register entry records the significant changes it listed (comma-separated ids).
LISTED = "significant"
UTC = timezone.utc


# -- when (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Week:
    """Monday 00:00 to the next Monday 00:00, local (held in UTC)."""

    start: datetime
    end: datetime
    first_day: date
    zone_name: str = "UTC"

    @property
    def key(self) -> str:
        year, week, _ = self.first_day.isocalendar()
        return f"{year}-W{week:02d}"

    @property
    def label(self) -> str:
        first, last = self.first_day, self.first_day + timedelta(days=6)
        if first.month == last.month:
            return f"{first.day} to {last.day} {last:%B %Y}"
        if first.year == last.year:
            return f"{first.day} {first:%B} to {last.day} {last:%B %Y}"
        return f"{first.day} {first:%B %Y} to {last.day} {last:%B %Y}"

    def before(self) -> Week:
        return week_starting(self.first_day - timedelta(days=7), self.zone_name)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def week_starting(monday: date, zone_name: str) -> Week:
    zone = ZoneInfo(zone_name)
    return Week(
        _midnight(monday, zone), _midnight(monday + timedelta(days=7), zone), monday, zone_name
    )


def week_of(now: datetime, zone_name: str) -> Week:
    """The local week (Monday to Sunday) that `now` falls in."""
    local = now.astimezone(ZoneInfo(zone_name)).date()
    return week_starting(local - timedelta(days=local.weekday()), zone_name)


@dataclass(frozen=True)
class Sitting:
    """The meeting's next sitting: when (UTC), and why it is not on its usual day."""

    at: datetime
    moved_from: date | None = None
    holiday: str = ""

    def local(self, zone_name: str) -> datetime:
        return self.at.astimezone(ZoneInfo(zone_name))


def next_meeting(now: datetime, meeting: Meeting, calendar: BusinessCalendar) -> Sitting:
    """The next sitting at or after `now` (a sitting that has started is past: on the meeting
    day after its time, the agenda is for next week's). A bank holiday on the meeting day moves
    it to the next business day at the same local time."""
    zone = calendar.zone
    local = now.astimezone(zone)
    target = WEEKDAYS.index(meeting.weekday)
    base = local.date() - timedelta(days=(local.weekday() - target) % 7)
    for weeks in range(3):
        day = base + timedelta(days=7 * weeks)
        holiday = calendar.holiday_name(day)
        sits = calendar.next_business_day(day) if holiday else day
        at = datetime.combine(sits, meeting.time, zone).astimezone(UTC)
        if at > now:
            return Sitting(at, day if holiday else None, holiday or "")
    raise AssertionError("a weekly meeting always sits within three weeks")  # pragma: no cover


# -- what (pure) ---------------------------------------------------------------------------


def _overlapping(records: Iterable[Registered], start: datetime, end: datetime) -> list[Registered]:
    return sorted(
        (r for r in records if r.overlaps(start, end)),
        key=lambda r: (r.window_start or start, r.change_id),
    )


def significant(record: Registered) -> bool:
    """Worth the meeting's time: service-impacting, high risk, destroys or replaces
    resources, or it failed or was rolled back."""
    return (
        record.service_impacting
        or str(record.change.get("risk") or "") == "high"
        or bool(record.summary.get("destroy") or record.summary.get("replace"))
        or record.status in WENT_WRONG
    )


@dataclass(frozen=True)
class Summary:
    last_week: list[Registered]
    this_week: list[Registered]


def summary(records: Iterable[Registered], week: Week) -> Summary:
    """Last week's changes (every one, with its outcome) and this week's planned ones (not the
    cancelled)."""
    records = list(records)
    before = week.before()
    coming = [r for r in _overlapping(records, week.start, week.end) if r.status != "cancelled"]
    return Summary(_overlapping(records, before.start, before.end), coming)


@dataclass(frozen=True)
class Agenda:
    sitting: Sitting
    cost: list[Registered]
    significant: list[Registered]
    upcoming: list[Registered]


def agenda(
    records: Iterable[Registered],
    policy: Policy,
    meeting: Meeting,
    sitting: Sitting,
    since: datetime | None = None,
    listed: frozenset[str] | None = None,
) -> Agenda:
    """Cost optimisation items (changes of a type that lists this meeting under `meetings`,
    still open or within the agenda's reach), significant changes of the week before the
    meeting and, before that, since the previous agenda went out (`since`) those it did not
    list (`listed`: its significant changes; None when it did not record them), and
    service-impacting work in the two weeks after the meeting."""
    records = list({r.change_id: r for r in records}.values())
    at = sitting.at
    week = at - BEFORE
    since = min(since or week, week)
    raised = {name for name, ct in policy.change_types.items() if meeting.name in ct.meetings}
    cost = [
        r
        for r in records
        if raised & set(r.categories or (r.change_type,))
        and r.status != "cancelled"
        and (r.overlaps(at - BEFORE, at + AHEAD) or (r.window_start is None and not r.ended))
    ]
    cost.sort(key=lambda r: (r.window_start is None, r.window_start or at, r.change_id))
    recent = [
        r
        for r in _overlapping(records, since, at)
        if significant(r)
        and r.status != "cancelled"
        and (r.overlaps(week, at) or listed is None or r.change_id not in listed)
    ]
    upcoming = [
        r for r in _overlapping(records, at, at + AHEAD) if r.service_impacting and not r.ended
    ]
    return Agenda(sitting, cost, recent, upcoming)


def previous_sitting(sitting: Sitting, meeting: Meeting, calendar: BusinessCalendar) -> Sitting:
    """The sitting before `sitting` (last week's, wherever a bank holiday moved it)."""
    return next_meeting(sitting.at - timedelta(days=8), meeting, calendar)


def agenda_since(
    previous: Sitting, sent: Sequence[Entry], meeting: Meeting
) -> tuple[datetime, bool, frozenset[str] | None]:
    """Where this agenda's "significant changes" start: when the previous sitting's agenda
    went out (`sent`: its deliveries), so that a change made between that agenda and its
    meeting is on this one; when none is recorded, when it was due. With whether it is the
    recorded send time, and the significant changes that agenda listed (None when unknown)."""
    kept = [e for e in sent if not e.dry_run]
    if not kept:
        return previous.at - meeting.agenda_ahead, False, None
    first = min(kept, key=lambda e: e.delivered_at)
    listed = first.extra.get(LISTED)
    ids = frozenset(x for x in listed.split(",") if x) if listed is not None else None
    return first.delivered_at, True, ids


def stakeholder_updates(
    records: Iterable[Registered], policy: Policy, week: Week
) -> dict[str, Summary]:
    """Each stakeholder group's weekly update: the changes of a type whose policy says
    `external_when: digest` for it. A group with nothing to hear of is left out."""
    seen = summary(records, week)
    out: dict[str, Summary] = {}
    for group in ("business", "critical"):

        def told(r: Registered, group: str = group) -> bool:
            return any(
                digest_group(policy, c) == group
                for c in (r.categories or ((r.change_type,) if r.change_type else ()))
                if c in policy.change_types
            )

        update = Summary(
            [r for r in seen.last_week if told(r)], [r for r in seen.this_week if told(r)]
        )
        if update.last_week or update.this_week:
            out[group] = update
    return out


def sprint_updates(records: Iterable[Registered], policy: Policy, week: Week) -> dict[str, Summary]:
    """The sprint update of each internal channel some change type lists under
    `internal_digest`: the changes it heard of in no other way. A channel the weekly summary
    already reaches (`digest.summary_to`), or with nothing to hear of, is left out."""
    seen = summary(records, week)
    channels = [
        c
        for ct in policy.change_types.values()
        for c in ct.internal_digest
        if c not in policy.digest.summary_to
    ]
    out: dict[str, Summary] = {}
    for channel in dict.fromkeys(channels):

        def told(r: Registered, channel: str = channel) -> bool:
            cats = r.categories or ((r.change_type,) if r.change_type else ())
            return channel in policy.internal_digest_channels(cats)

        update = Summary(
            [r for r in seen.last_week if told(r)], [r for r in seen.this_week if told(r)]
        )
        if update.last_week or update.this_week:
            out[channel] = update
    return out


def sprint_titles(policy: Policy, channel: str) -> str:
    """`Application Update`: the change types whose sprint update `channel` gets."""
    titles = [ct.title for ct in policy.change_types.values() if channel in ct.internal_digest]
    return ", ".join(titles)


def item(record: Registered, policy: Policy, zone: str, now: datetime) -> dict[str, Any]:
    """A change as the digest templates show it: plain data, escaped by the template."""
    kind = record.change_type
    title = policy.change_type(kind).title if kind in policy.change_types else "Change"
    outcome = OUTCOMES.get(record.status, record.status)
    if record.status in NOT_STARTED and record.window_end is not None and record.window_end <= now:
        outcome = "no outcome recorded yet"
    urgent = kind in policy.change_types and policy.change_type(kind).notice_overrides_others
    if record.window_start and record.window_end:
        when = when_text(record.window_start, record.window_end, zone)
    elif urgent:  # an emergency has no window: it was made as soon as possible
        when = "no window (an emergency)"
    else:
        when = "not scheduled yet"
    return {
        "id": record.change_id,
        "purpose": record.purpose or "(no purpose given)",
        # What stakeholders read: the change record's customer-facing description, if any.
        "summary": str(record.change.get("customer_summary") or "")
        or record.purpose
        or "(no purpose given)",
        "type": title,
        "status": record.status,
        "outcome": outcome,
        "when": when,
        "service_impacting": record.service_impacting,
        "customers": list(record.customers),
        "jira_url": policy.jira.link(record.change_id),
    }


# -- sending -------------------------------------------------------------------------------


@dataclass
class Sent:
    """One digest: its kind, the register entry that keeps its deliveries, the changes it
    lists, and what happened to each audience."""

    stage: str
    ref: str
    period: str
    changes: dict[str, list[str]]
    report: StageReport
    kind_name: str = ""  # what the JSON calls it, when not its stage's kind ("sprint")

    @property
    def kind(self) -> str:
        return self.kind_name or KIND_OF_STAGE[self.stage]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "period": self.period,
            "changes": self.changes,
        }


@dataclass
class DigestReport:
    week: str
    meeting: str
    time_zone: str = "UTC"  # the policy's: where times are shown to people
    digests: list[Sent] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # digests not due yet, and when they are

    def to_json(self) -> dict[str, Any]:
        def rows(key: str) -> list[dict[str, Any]]:
            out = []
            for d in self.digests:
                for row in d.report.to_json()[key]:
                    out.append({"digest": d.kind, "ref": d.ref, **row})
            return out

        return {
            "week": self.week,
            "meeting": self.meeting,
            "digests": [d.to_json() for d in self.digests],
            "sent": rows("delivered"),
            "already_sent": rows("already_delivered"),
            "dry_run": rows("dry_run"),
            "failed": list(self.failed),
            "pending": list(self.pending),
            "notes": [n for d in self.digests for n in d.report.notes],
        }

    def _local(self, when: datetime) -> datetime:
        return timetext.local(when, self.time_zone)

    def lines(self) -> list[str]:
        meeting = timetext.of_iso(self.meeting, self.time_zone)
        out = [f"hie-notify digest: week {self.week}, next meeting {meeting}"]
        for d in self.digests:
            counts = ", ".join(f"{len(v)} {k.replace('_', ' ')}" for k, v in d.changes.items())
            out.append(f"{d.kind} ({d.ref}): {counts}")
            out += d.report.lines(self._local)
        out += [f"  not yet   {p}" for p in self.pending]
        out += [f"  FAILED    {f}" for f in self.failed]
        return out


def digest(options: Options) -> DigestReport:
    policy = load_policy_for(options).policy
    register = register_of(options, policy, required_by="digest")
    assert register is not None
    now = options.clock()
    zone = policy.calendar.time_zone
    calendar = BusinessCalendar.from_policy(policy)
    renderer = Renderer(policy.templates, Masker.from_env(options.env))
    meeting = policy.digest.meeting
    week = week_of(now, zone)
    sitting = next_meeting(now, meeting, calendar)
    report = DigestReport(week.key, sitting.local(zone).isoformat(), zone)

    before = week.before()
    due_from = sitting.at - meeting.agenda_ahead
    previous = previous_sitting(sitting, meeting, calendar)
    # The previous agenda's entry is read only once this one is due (it says where this one's
    # significant changes start).
    last_agenda = (
        register.get(f"agenda-{previous.local(zone).date().isoformat()}")
        if now >= due_from
        else None
    )
    since, recorded, on_last = agenda_since(
        previous, last_agenda.entries if last_agenda else (), meeting
    )
    since = min(since, sitting.at - BEFORE)
    # One read serves all three: the sitting is after `now`, so its reach (two weeks on) always
    # covers this week, and the previous agenda goes out no later than a week before it.
    ranged = register.between(min(before.start, since), sitting.at + AHEAD)
    plans: list[tuple[str, str, str, list[Audience], dict[str, Any], dict[str, list[str]]]] = []

    def listed(records: Sequence[Registered]) -> list[dict[str, Any]]:
        return [item(r, policy, zone, now) for r in records]

    weekly = summary(ranged, week)
    summary_ctx = {
        "sprint": "",  # the summary of every change (see the sprint updates below)
        "week": {"key": week.key, "label": week.label},
        "last_week": {"label": before.label, "changes": listed(weekly.last_week)},
        "this_week": {"label": week.label, "changes": listed(weekly.this_week)},
    }
    plans.append(
        (
            SUMMARY,
            f"digest-{week.key}",
            week.key,
            [_internal(policy, name) for name in policy.digest.summary_to],
            summary_ctx,
            {
                "last_week": [r.change_id for r in weekly.last_week],
                "this_week": [r.change_id for r in weekly.this_week],
            },
        )
    )

    items = agenda([*ranged, *register.open_changes()], policy, meeting, sitting, since, on_last)
    local = sitting.local(zone)
    meeting_day = timetext.day(local.date())
    agenda_ctx: dict[str, Any] = {
        "meeting": {
            "name": meeting.name,
            "date": meeting_day,
            "time": f"{local:%H:%M} {local.tzname()}",
            "when": timetext.moment(local),
            "moved_from": timetext.day(sitting.moved_from) if sitting.moved_from else "",
            "holiday": sitting.holiday,
        },
        # Significant changes are listed from when the last agenda went out (`since_agenda`),
        # else from when it was due.
        "since": timetext.moment(since, zone),
        "since_agenda": recorded,
        "cost": listed(items.cost),
        "significant": listed(items.significant),
        "upcoming": listed(items.upcoming),
    }
    day = local.date().isoformat()
    if now < due_from:
        report.pending.append(
            f"agenda for {meeting_day}: goes out from "
            f"{timetext.moment(due_from, zone)} (digest.meeting.agenda_ahead)"
        )
    else:
        plans.append(
            (
                AGENDA,
                f"agenda-{day}",
                day,
                [_meeting(policy, meeting)],
                agenda_ctx,
                {
                    "cost": [r.change_id for r in items.cost],
                    "significant": [r.change_id for r in items.significant],
                    "upcoming": [r.change_id for r in items.upcoming],
                },
            )
        )

    for group, update in stakeholder_updates(ranged, policy, week).items():
        ctx = {
            **summary_ctx,
            "last_week": {"label": before.label, "changes": listed(update.last_week)},
            "this_week": {"label": week.label, "changes": listed(update.this_week)},
        }
        plans.append(
            (
                STAKEHOLDERS,
                f"digest-{week.key}",
                week.key,
                [_stakeholders(policy, group)],
                ctx,
                {
                    "last_week": [r.change_id for r in update.last_week],
                    "this_week": [r.change_id for r in update.this_week],
                },
            )
        )

    sprints: list[tuple[str, Summary]] = list(sprint_updates(ranged, policy, week).items())
    for stage, ref, period, audiences, data, changes in plans:
        sent = Sent(stage, ref, period, changes, StageReport(stage))
        report.digests.append(sent)
        try:
            _send(options, policy, register, renderer, sent, audiences, data, now)
        except ServiceError as exc:
            report.failed.append(f"{KIND_OF_STAGE[stage]}: {exc}")
    # The sprint updates: the weekly summary, of the changes each channel hears of only here.
    # Sent as the summary (one per channel and week: its audience is in the idempotency key).
    for channel, update in sprints:
        ctx = {
            **summary_ctx,
            "sprint": sprint_titles(policy, channel),
            "last_week": {"label": before.label, "changes": listed(update.last_week)},
            "this_week": {"label": week.label, "changes": listed(update.this_week)},
        }
        changes = {
            "last_week": [r.change_id for r in update.last_week],
            "this_week": [r.change_id for r in update.this_week],
        }
        sent = Sent(
            SUMMARY, f"digest-{week.key}", week.key, changes, StageReport(SUMMARY), "sprint"
        )
        report.digests.append(sent)
        try:
            _send(options, policy, register, renderer, sent, [_internal(policy, channel)], ctx, now)
        except ServiceError as exc:
            report.failed.append(f"sprint {channel}: {exc}")
    return report


def _home(policy: Policy) -> tuple[str, frozenset[str], NoticePeriod]:
    return policy.calendar.time_zone, frozenset({"pre_deployment"}), NoticePeriod("elapsed")


def _internal(policy: Policy, channel: str) -> Audience:
    home, phases, zero = _home(policy)
    return Audience(f"slack:{channel}", "internal", channel, home, phases, zero, zero, (), channel)


def _meeting(policy: Policy, meeting: Meeting) -> Audience:
    home, phases, zero = _home(policy)
    return Audience(
        f"meeting:{meeting.name}",
        "meeting",
        meeting.name,
        home,
        phases,
        zero,
        zero,
        (),
        meeting.slack_channel,
    )


def _stakeholders(policy: Policy, group: str) -> Audience:
    home, phases, zero = _home(policy)
    found = policy.stakeholders.get(group)  # type: ignore[call-overload]
    emails = tuple(c.email for c in (found.contacts if found else []) if c.email)
    label = found.name if found else f"{group} stakeholders"
    return Audience(
        f"stakeholders:{group}", "stakeholder", label, home, phases, zero, zero, (), None, emails
    )


def _context(
    policy: Policy, audience: Audience, ref: str, data: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "audience": {
            "id": audience.id,
            "kind": audience.kind,
            "label": audience.label,
            "greeting": audience.label,
        },
        "change": {"id": ref, "jira_url": ""},  # the email layout's reference line
        **service_context(policy),
        "digest": dict(data),
    }


def _routes(
    policy: Policy, options: Options, channels: Channels, audience: Audience
) -> list[tuple[str, Channel]]:
    if audience.kind != "meeting":
        return channels.for_audience(audience)
    kind = policy.digest.meeting.channel
    if kind == "gitlab_issue":
        issue = AgendaIssue.from_env(options.env, options.settings)
        if issue is None:
            channels.fallbacks["gitlab_issue"] = (
                "HIE_GITLAB_TOKEN, CI_API_V4_URL or the project (HIE_REGISTER_PROJECT, "
                "CI_PROJECT_ID) is not set"
            )
            return [(kind, channels.outbox)]
        return [(kind, issue)]
    # The meeting's own channel, whatever `channels.meeting` says for per-change agenda items.
    only = policy.model_copy(
        update={"channels": policy.channels.model_copy(update={"meeting": [kind]})}
    )
    own = Channels(only, options.env, options.outbox, channels.outbox.change_id, channels.now)
    routes = own.for_audience(audience)
    channels.fallbacks.update(own.fallbacks)  # said once, with the digest's other notes
    return routes


def _send(
    options: Options,
    policy: Policy,
    register: Register,
    renderer: Renderer,
    sent: Sent,
    audiences: Sequence[Audience],
    data: Mapping[str, Any],
    now: datetime,
) -> None:
    """Deliver one digest to each audience through each of its channels, unless already
    delivered (same digest, period, audience and channel); each delivery is recorded in the
    register as soon as it is made."""
    stage, ref, report = sent.stage, sent.ref, sent.report
    record = register.get(ref) or Registered(
        change_id=ref,
        status=State.COMPLETED.value,
        change_type=None,
        purpose=f"hie-notify {'meeting agenda' if stage == AGENDA else 'weekly digests'} "
        f"({sent.period}): not a change",
        window_start=None,
        window_end=None,
    )
    ledger = RegisterLedger(register, record, now)
    done = {e.idempotency_key: e for e in ledger.read(ref)}
    channels = Channels(policy, options.env, options.outbox, ref, now)
    for audience in audiences:
        message = None
        for kind, channel in _routes(policy, options, channels, audience):
            key = idempotency_key(ref, stage, audience.id, sent.period, kind)
            if key in done:
                report.already.append(done[key])
                continue
            message = message or renderer.render(
                stage, audience, _context(policy, audience, ref, data)
            )
            if options.dry_run:
                via = kind if channel.kind == kind else f"{channel.kind} (for {kind})"
                report.previews.append((message, via))
                continue
            try:
                delivery = channel.send(Outgoing(ref, message, key, kind, ()))
            except HieError as exc:  # a refusal too: the other digests still go out
                report.fail(audience.id, kind, exc)
                continue
            if delivery.note:
                report.notes.append(f"{audience.id}: {delivery.note}")
            entry = Entry(
                change_id=ref,
                stage=stage,
                audience=audience.id,
                channel=delivery.channel,
                recipient=delivery.recipient,
                fingerprint=sent.period,
                change_type=None,
                service_impacting=False,
                resources=(),
                delivered_at=now,
                message_id=delivery.message_id,
                idempotency_key=key,
                receipt=dict(delivery.receipt),
                # What the agenda listed: the next one lists what came after it.
                extra={LISTED: ",".join(sent.changes.get("significant", []))}
                if stage == AGENDA
                else {},
            )
            try:
                report.delivered.extend(ledger.record([entry]))
            except HieError as exc:
                raise ServiceError(
                    f"{audience.id} was delivered ({delivery.message_id}) but could not be "
                    f"recorded in the register ({exc}); a re-run may send it again"
                ) from None
    for kind, why in channels.fallbacks.items():
        done_or_not = "would be written" if options.dry_run else "written"
        report.notes.append(f"{kind}: {why}: {done_or_not} to the outbox instead")
    if report.failed:
        failed = "; ".join(f"{f.audience}: {f.channel}: {f.why}" for f in report.failed)
        raise ServiceError(f"NOT delivered: {failed}")


class AgendaIssue:
    """The agenda as an issue in the register project (HIE_REGISTER_PROJECT, else the CI
    project), due on the meeting day. It looks before it creates: an issue of ours with the
    same title (a run that created it but failed to record it) is the delivery."""

    kind = "gitlab_issue"

    def __init__(self, target: Any) -> None:
        self.target = target

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], settings: Settings | None = None
    ) -> AgendaIssue | None:
        from hie_notify.gitlab_api import GitLabTarget, gitlab_target
        from hie_notify.settings import settings_or_env

        settings = settings_or_env(settings, env)
        token = settings.gitlab_token
        project = env.get("HIE_REGISTER_PROJECT") or env.get("CI_PROJECT_ID")
        if not (token and env.get("CI_API_V4_URL") and project):
            return None
        base = gitlab_target(
            {**env, "CI_PROJECT_ID": project}, "the meeting agenda issue", settings
        )
        return cls(GitLabTarget(base.api_url, project, base.token))

    def send(self, outgoing: Outgoing) -> Delivery:
        from hie_notify.gitlab_api import call, connect

        gl = connect(self.target)
        project = gl.projects.get(self.target.project_id, lazy=True)
        message = outgoing.rendered
        title = message.subject[:255]
        call("identify the notifier's user", gl.auth)
        me = int(gl.user.id)
        found = call(
            "look for the agenda issue",
            lambda: project.issues.list(
                labels=[AGENDA_LABEL],
                search=title,
                state="all",
                get_all=False,
                per_page=20,
                **{"in": "title"},
            ),
        )
        issue = next(
            (
                i
                for i in found
                if i.attributes.get("title") == title
                and int((i.attributes.get("author") or {}).get("id", -1)) == me
            ),
            None,
        )
        if issue is None:
            fields = {
                "title": title,
                "description": message.body("markdown"),
                "labels": AGENDA_LABEL,
            }
            due = _due_of(outgoing.change_id)
            if due:
                fields["due_date"] = due
            issue = call("open the agenda issue", lambda: project.issues.create(fields))
        iid = str(issue.attributes.get("iid"))
        url = str(issue.attributes.get("web_url") or "")
        receipt = {"issue_iid": iid, **({"web_url": url} if url else {})}
        return Delivery(
            "gitlab_issue", f"project {self.target.project_id}", url or iid, "", receipt
        )


def _due_of(ref: str) -> str:
    day = ref.removeprefix("agenda-")
    try:
        return date.fromisoformat(day).isoformat()
    except ValueError:
        return ""
