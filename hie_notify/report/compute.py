"""The compliance report from registered changes and their ledgers (pure: `now` is passed in).

Notices follow the gate's arithmetic (`BusinessCalendar.earliest_start`): business days for
customers and stakeholders, elapsed hours internally; the notice that counts is the earliest
announcement delivered to that audience whose window contains the registered one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from pydantic import ValidationError

from hie_notify import ack_gate, acks
from hie_notify.audiences import downtime_customers, resolve
from hie_notify.calendar import UTC, BusinessCalendar
from hie_notify.change import ChangeRecord
from hie_notify.classify import Classification, contacts_from_entries
from hie_notify.durations import NoticePeriod, parse_notice
from hie_notify.lifecycle import ACTIVE, ANNOUNCE, LIFECYCLE, Lifecycle, Record, State
from hie_notify.policy.model import Policy
from hie_notify.records import Audience, Entry
from hie_notify.register import reminders
from hie_notify.register.model import Registered, lifecycle_of
from hie_notify.report import uptime
from hie_notify.report.model import (
    AckRow,
    BreachRow,
    ChangeRow,
    DowntimeRow,
    EmergencyRow,
    NoticeKindRow,
    NoticeRow,
    PostmortemRow,
    Report,
    SummaryRow,
    WeekRow,
)
from hie_notify.stages import postmortem_reasons

# Statuses (lifecycle states) of a change that went ahead: started, or completed (a change
# announced without a plan completes without an apply).
WENT_AHEAD = reminders.WENT_AHEAD | frozenset(s.value for s in ACTIVE)
KINDS = ("internal", "customer", "stakeholder", "meeting")
# What a change's announcement records of the policy in force (its transition entry's `extra`):
# the policy's digest, and each audience's required notice as "minimum|recommended|kind".
POLICY_DIGEST = "policy"
NOTICE_PREFIX = "notice:"


def _bd(n: int) -> NoticePeriod:
    return NoticePeriod("business_days", business_days=n)


def iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat()


def _minutes(delta: timedelta) -> float:
    return round(delta.total_seconds() / 60, 2)


class _Days:
    """Business-day counting with the calendar's own rule, memoised (the report asks often)."""

    def __init__(self, calendar: BusinessCalendar) -> None:
        self.calendar = calendar
        self._known: dict[date, bool] = {}
        self._given: dict[tuple[datetime, datetime], int] = {}

    def business(self, day: date) -> bool:
        known = self._known.get(day)
        if known is None:
            known = self._known[day] = self.calendar.is_business_day(day)
        return known

    def allows(self, notice_at: datetime, start: datetime, period: NoticePeriod) -> bool:
        """`BusinessCalendar.notice_given`, from the count of business days where it can be."""
        if period.kind == "elapsed":
            return notice_at + period.elapsed <= start
        if period.business_days == 0:  # the weekend rule applies even to 0 business days
            return self.calendar.notice_given(notice_at, start, period)
        return self.given(notice_at, start) >= period.business_days

    def given(self, notice_at: datetime, start: datetime) -> int:
        """The most business days n for which a notice at `notice_at` allows `start` (the
        inverse of `earliest_start`): negative when the notice came after the start."""
        key = (notice_at, start)
        known = self._given.get(key)
        if known is None:
            known = self._given[key] = self._count(notice_at, start)
        return known

    def _count(self, notice_at: datetime, start: datetime) -> int:
        if notice_at > start:
            return -1
        local = self.calendar.local(notice_at)
        day, at = local.date(), local.time().replace(tzinfo=None)
        if not self.business(day):
            day, at = day + timedelta(days=1), time(0)
            while not self.business(day):
                day += timedelta(days=1)
        s = self.calendar.local(start)
        s_day, s_time = s.date(), s.time().replace(tzinfo=None)
        count, d = 0, day + timedelta(days=1)
        while d <= s_day:
            count += self.business(d)
            d += timedelta(days=1)
        if s_day > day and self.business(s_day) and s_time < at:
            count -= 1
        # Exact by the gate's own arithmetic where a clock change moves the wall time.
        if local.utcoffset() != s.utcoffset():
            while count > 0 and self.calendar.earliest_start(notice_at, _bd(count)) > start:
                count -= 1
        return max(count, 0)


@dataclass
class _Change:
    record: Registered  # its status is the lifecycle state its entries replay to
    life: Lifecycle
    change: ChangeRecord
    result: Classification
    audiences: tuple[Audience, ...]  # those owed notice, as the policy said when announced
    affected: tuple[str, ...]  # the customers its downtime is charged to
    emergency: bool
    went_ahead: bool
    # When the service was down, from the stage times (`uptime.outage`), if it went ahead.
    span: tuple[datetime, datetime] | None
    # Announcements that count (not dry runs, covering the window) by audience, oldest first.
    told: dict[str, list[Entry]]


def build(
    *,
    policy: Policy,
    calendar: BusinessCalendar,
    records: Sequence[Registered],
    start: datetime,
    end: datetime,
    now: datetime,
) -> Report:
    """The report for changes whose window overlaps [start, end); downtime for every month that
    range touches, from every record given (pass whole months for whole figures)."""
    notes: list[str] = []
    days = _Days(calendar)
    changes: list[_Change] = []
    cache: dict[tuple[object, ...], tuple[Audience, ...]] = {}
    for record in records:
        try:
            changes.append(_prepare(record, policy, cache))
        except (ValueError, KeyError) as exc:
            notes.append(f"{record.change_id}: left out ({_why(exc)})")
    in_range = [c for c in changes if c.record.overlaps(start, end)]

    notice_rows: list[NoticeRow] = []
    breach_rows: list[BreachRow] = []
    emergency_rows: list[EmergencyRow] = []
    pm_rows: list[PostmortemRow] = []
    ack_rows: list[AckRow] = []
    change_rows: list[ChangeRow] = []
    actual_of: dict[str, timedelta | None] = {}
    for c in changes:
        if c.went_ahead:
            c.span = uptime.outage(c.life, c.record.window_end, now)
        actual_of[c.record.change_id] = _actual(c)
    for c in in_range:
        rows = _notices(c, days, calendar)
        notice_rows += rows
        breaches = _breaches(c, rows)
        breach_rows += breaches
        if c.emergency:
            emergency_rows.append(
                EmergencyRow(
                    c.record.change_id,
                    c.record.purpose,
                    c.record.status,
                    iso(c.record.window_start),
                    (c.change.justification or "").strip(),
                    "; ".join(c.change.approvers),
                )
            )
        ack_rows += _acknowledgements(c, policy)
        pm = _postmortem(c, policy, calendar, now)
        if pm is not None:
            pm_rows.append(pm)
        actual = actual_of[c.record.change_id]
        change_rows.append(
            ChangeRow(
                change_id=c.record.change_id,
                change_type=c.record.change_type,
                purpose=c.record.purpose,
                status=c.record.status,
                outcome=outcome(c.record, c.life, now),
                window_start=iso(c.record.window_start),
                window_end=iso(c.record.window_end),
                service_impacting=c.record.service_impacting,
                emergency=c.emergency,
                customers="; ".join(c.affected),
                declared_downtime_minutes=None
                if c.change.downtime is None
                else _minutes(c.change.downtime),
                actual_downtime_minutes=None if actual is None else _minutes(actual),
                notices_short=sum(r.level in ("short", "not given") for r in rows),
                breaches=len(breaches),
                postmortem="not owed" if pm is None else ("overdue" if pm.overdue else pm.state),
                owner=c.change.owner or "",
            )
        )

    downtime_rows = _downtime(changes, policy, calendar, start, end)
    kind_rows = _by_kind(notice_rows)
    week_rows = _by_week(in_range, calendar, now)
    summary = {
        "changes": len(change_rows),
        "went_ahead": sum(c.went_ahead for c in in_range),
        "emergencies": len(emergency_rows),
        "notices": len(notice_rows),
        "notices_short": sum(r.level == "short" for r in notice_rows),
        "notices_not_given": sum(r.level == "not given" for r in notice_rows),
        "breaches": len(breach_rows),
        "postmortems_owed": len(pm_rows),
        "postmortems_opened": sum(r.state in ("opened", "closed") for r in pm_rows),
        "postmortems_closed": sum(r.state == "closed" for r in pm_rows),
        "postmortems_overdue": sum(r.overdue for r in pm_rows),
        "customer_months_over_budget": sum(r.over_budget for r in downtime_rows),
        "left_out": len(notes),
    }
    return Report(
        organisation=policy.organisation,
        generated_at=iso(now) or "",
        # The dates asked for, as the policy's zone reads them (local midnight, its offset).
        range_start=calendar.local(start).isoformat(),
        range_end=calendar.local(end).isoformat(),
        uptime_percent=policy.sla.uptime_percent,
        warn_at_percent=policy.sla.warn_at_percent,
        time_zone=calendar.zone_name,
        tables={
            "summary": [SummaryRow(k, int(v)) for k, v in summary.items()],
            "changes": change_rows,
            "notices": notice_rows,
            "breaches": breach_rows,
            "emergencies": emergency_rows,
            "postmortems": pm_rows,
            "acknowledgements": ack_rows,
            "downtime": downtime_rows,
            "notice_by_kind": kind_rows,
            "changes_by_week": week_rows,
        },
        notes=tuple(notes),
    )


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    if isinstance(exc, KeyError):
        return f"unknown change type {exc.args[0]!r}"
    return str(exc)


def _classification(record: Registered, policy: Policy) -> Classification:
    """What the stages know of the change without its plan, as `stages.from_ledger` reads it
    (the last announcement) but only the parts the report uses: type, categories, impact and
    the summary's destroys and replacements. Not announced: what the register says."""
    announced = [e for e in record.entries if e.stage == ANNOUNCE and not e.dry_run]
    if announced:
        last = max(announced, key=lambda e: e.delivered_at)
        categories = last.categories or ((last.change_type,) if last.change_type else ())
        impacting = tuple(c for c in categories if c in set(last.impacting_categories))
        actions = [action for _, action in last.resources]
        summary = {"destroy": actions.count("delete"), "replace": actions.count("replace")}
        change_type, service_impacting = last.change_type, last.service_impacting
        told = [e for e in announced if e.fingerprint == last.fingerprint]
        contacts = contacts_from_entries(policy, told, tuple(categories))
    else:
        contacts = ()
        categories = record.categories or ((record.change_type,) if record.change_type else ())
        impacting = tuple(categories) if record.service_impacting else ()
        summary = dict(record.summary)
        change_type, service_impacting = record.change_type, record.service_impacting
    return Classification(
        change_type=change_type,
        declared_type=None,
        categories=tuple(categories),
        service_impacting=service_impacting,
        summary=summary,
        reasons=(),
        resources=(),
        drift=(),
        outputs=(),
        fingerprint=record.fingerprint,
        has_changes=True,
        impacting_categories=impacting,
        notice=(),
        contacts=contacts,
    )


def _prepare(
    record: Registered, policy: Policy, cache: dict[tuple[object, ...], tuple[Audience, ...]]
) -> _Change:
    change = ChangeRecord.model_validate(
        dict(record.change), context={"customers": set(policy.customers)}
    )
    result = _classification(record, policy)
    key = (
        result.contacts,
        result.categories,
        result.impacting_categories,
        tuple(change.customers),
        record.environments,
    )
    audiences = cache.get(key)
    if audiences is None:
        audiences = cache[key] = resolve(policy, result, change, record.environments).audiences
    emergency = bool(
        (result.change_type and policy.change_type(result.change_type).notice_overrides_others)
        or any(e.emergency for e in record.entries)
    )
    life = lifecycle_of(record.entries)
    if life.records:  # one source of status: the lifecycle its entries replay to
        record = replace(record, status=life.state.value)
    went = life.started or record.status in WENT_AHEAD
    told: dict[str, list[Entry]] = {}
    for e in sorted(record.entries, key=_delivered):
        if e.stage == ANNOUNCE and not e.dry_run and _covers(e, record):
            told.setdefault(e.audience, []).append(e)
    owed = _as_announced(record, audiences, told) or audiences
    affected = tuple(
        downtime_customers(policy, change.customers, record.environments, record.audiences)
    )
    return _Change(record, life, change, result, owed, affected, emergency, went, None, told)


def _as_announced(
    record: Registered, audiences: Sequence[Audience], told: dict[str, list[Entry]]
) -> tuple[Audience, ...]:
    """The audiences owed notice, and the notice each, as the policy in force said when the
    change was announced (its announcements' transition entries record it); () for a change
    announced before they did. Each audience is judged by the requirement recorded with the
    announcement that gave its notice (else the latest one)."""
    marks = sorted(
        (
            e
            for e in record.entries
            if e.stage == LIFECYCLE
            and e.extra.get("transition") == ANNOUNCE
            and POLICY_DIGEST in e.extra
            and not e.dry_run
        ),
        key=_delivered,
    )
    if not marks:
        return ()
    current = {a.id: a for a in audiences}
    ids = [k[len(NOTICE_PREFIX) :] for m in marks for k in m.extra if k.startswith(NOTICE_PREFIX)]
    judged = []
    for audience_id in dict.fromkeys(ids):
        given = told.get(audience_id)
        at = given[0].delivered_at if given else None
        mark = [m for m in marks if at is None or m.delivered_at <= at]
        source = next(
            (m for m in reversed(mark or marks) if NOTICE_PREFIX + audience_id in m.extra),
            None,
        )
        if source is None:
            continue
        parts = source.extra[NOTICE_PREFIX + audience_id].split("|")
        try:
            minimum, recommended = parse_notice(parts[0]), parse_notice(parts[1])
        except (ValueError, IndexError):
            continue
        kind = parts[2] if len(parts) > 2 else "internal"
        known = current.get(audience_id)
        judged.append(
            Audience(
                audience_id,
                kind,
                known.label if known else audience_id.split(":", 1)[-1],
                known.time_zone if known else "UTC",
                frozenset({"pre_deployment"}),
                minimum,
                recommended,
                known.change_types if known else (),
            )
        )
    return tuple(judged)


def _delivered(entry: Entry) -> datetime:
    return entry.delivered_at


def outcome(record: Registered, life: Lifecycle, now: datetime) -> str:
    """What became of the change, in words a table can sort by, from its lifecycle: succeeded,
    rolled back (a rollback then `complete`: withdrawn, never succeeded), failed, cancelled,
    in progress or overrun, else planned, window open or no outcome recorded."""
    if not life.records:  # nothing replayable registered: its status (a lifecycle state) says
        life = _at(record.status)
    word = life.outcome
    start, end = record.window_start, record.window_end
    if word == "in progress":
        return "overrun" if life.overrunning(now, end) else "in progress"
    if word != "not started":
        return word
    if end is not None and now >= end:
        return "no outcome recorded"
    return "planned" if start is None or now < start else "window open"


_STATES = {s.value: s for s in State}


def _at(status: str) -> Lifecycle:
    """A lifecycle that is in `status` (for a record with no entries to replay)."""
    state = _STATES.get(status)
    if state is None:
        return Lifecycle()
    return Lifecycle(records=(Record("", datetime(1970, 1, 1, tzinfo=UTC), state),))


def _covers(entry: Entry, record: Registered) -> bool:
    if not entry.window_start or record.window_start is None or record.window_end is None:
        return True
    start = _instant(entry.window_start)
    end = _instant(entry.window_end)
    return bool(start <= record.window_start and record.window_end <= end)


@lru_cache(maxsize=4096)
def _instant(text: str) -> datetime:
    """An entry's window time (every announcement of a change repeats the same text)."""
    return datetime.fromisoformat(text)


def _notices(c: _Change, days: _Days, calendar: BusinessCalendar) -> list[NoticeRow]:
    rows = []
    start = c.record.window_start
    for audience in c.audiences:
        if "pre_deployment" not in audience.phases:
            continue
        told = c.told.get(audience.id, ())
        minimum, recommended = audience.minimum, audience.recommended
        business = minimum.kind == "business_days"
        unit = "business days" if business else "hours"
        required = minimum.business_days if business else _hours(minimum.elapsed)
        rec = recommended.business_days if business else _hours(recommended.elapsed)
        given_at = told[0].delivered_at if told else None
        given: int | float | None = None
        margin: int | float | None = None
        level = "not given"
        if given_at is not None and start is not None:
            given = days.given(given_at, start) if business else _hours(start - given_at)
            margin = given - required if business else round(given - required, 2)
            if given_at > start or not days.allows(given_at, start, minimum):
                level = "short"
            elif days.allows(given_at, start, recommended):
                level = "recommended"
            else:
                level = "minimum"
        rows.append(
            NoticeRow(
                change_id=c.record.change_id,
                audience=audience.id,
                kind=audience.kind,
                label=audience.label,
                unit=unit,
                required=required,
                recommended=rec,
                given_at=iso(given_at),
                given=given,
                margin=margin,
                level=level,
                outbox_only=bool(told) and all(e.channel == "outbox" for e in told),
            )
        )
    return rows


def _acknowledgements(c: _Change, policy: Policy) -> list[AckRow]:
    """Per audience told (or that answered): its answers to the latest announcement it was
    sent, from the register's copy of the change's ledger."""
    state = acks.by_audience(c.record.entries)
    rows = []
    for audience in c.audiences:
        answered = state.get(audience.id)
        if not audience.external and answered is None:
            continue
        told = [
            e
            for e in c.record.entries
            if e.stage == "announce" and e.audience == audience.id and not e.dry_run
        ]
        if not told and answered is None:
            continue
        latest = str(told[-1].extra.get(ack_gate.TOLD) or "") if told else ""
        since = min(
            (e.delivered_at for e in told if str(e.extra.get(ack_gate.TOLD) or "") == latest),
            default=None,
        )
        mine = [a for a in answered.acknowledged if a.announcement == latest] if answered else []
        first = min(mine, key=lambda a: a.at, default=None)
        objected = [a for a in acks.answers(c.record.entries) if a.audience == audience.id]
        every = [a for a in objected if a.decision == acks.OBJECTED]
        resolved = [a for a in objected if a.decision == acks.RESOLVED]
        rows.append(
            AckRow(
                change_id=c.record.change_id,
                audience=audience.id,
                label=audience.label,
                required=ack_gate.required(policy, c.record.change_type, audience),
                announced_at=iso(since),
                acknowledged_at=iso(first.at) if first else None,
                acknowledged_by=first.contact if first else "",
                hours_to_acknowledge=_hours(first.at - since) if first and since else None,
                objections=len(every),
                open_objections=len(answered.objections) if answered else 0,
                objection_reasons="; ".join(f"{a.contact}: {a.reason}" for a in every),
                resolutions="; ".join(f"{a.by}: {a.reason}" for a in resolved),
            )
        )
    return rows


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def _breaches(c: _Change, rows: Sequence[NoticeRow]) -> list[BreachRow]:
    """Notice that was short or reached nobody, on a change that went ahead: short notice let
    through by an emergency or else a manual override (the change went ahead although the gate
    would block), labelled "outbox only" too when only the outbox had it; enough notice that
    only the outbox had is a trial's (nobody was told)."""
    if not c.went_ahead:
        return []
    out = []
    why = (c.change.justification or "").strip()
    if c.emergency:
        out.append(
            BreachRow(
                c.record.change_id,
                "every audience",
                "every audience",
                "the change type's usual notice",
                "none (told immediately)",
                "emergency",
                f"justification: {why or 'none recorded'}; "
                f"approvers: {', '.join(c.change.approvers) or 'none recorded'}",
            )
        )
    for r in rows:
        short = r.level in ("short", "not given")
        if not short and not r.outbox_only:
            continue
        if short:
            # Short notice let through: by an emergency, else past the gate (a manual
            # override), whatever carried it; "outbox only" says nobody was told either.
            by = "emergency" if c.emergency else "manual override"
            by += "; outbox only" if r.outbox_only else ""
        else:
            by = "trial"  # enough notice, but only the outbox had it: nobody was told
        required = _amount(r.required, r.unit)
        given = "not given" if r.given is None else _amount(r.given, r.unit)
        detail = f"{r.label} was given {given} against {required} required"
        if r.outbox_only:
            detail = (
                f"{detail}, and only to the outbox: nobody was told"
                if short
                else "nobody was told: the notice went to the outbox only"
            )
        out.append(BreachRow(r.change_id, r.audience, r.label, required, given, by, detail))
    return out


def _amount(n: float, unit: str) -> str:
    """`1 business day`, `3 business days`, `34 hours`."""
    return f"{n:g} {unit if n != 1 else unit[:-1]}"


def _postmortem(
    c: _Change, policy: Policy, calendar: BusinessCalendar, now: datetime
) -> PostmortemRow | None:
    record = c.record
    if record.status not in reminders.WENT_AHEAD:  # its work has not stopped (or never began)
        return None
    reasons = postmortem_reasons(
        policy, c.change, c.result, record.entries, "complete", life=c.life
    )
    if not reasons:
        return None
    # The closing `hie-notify postmortem --closed` recorded, and the policy's deadline.
    entries = [e for e in record.entries if e.stage == "postmortem" and not e.dry_run]
    closed = [e for e in entries if e.extra.get("state") == "closed"]
    opened = [e for e in entries if e.extra.get("state") != "closed"]
    ended = reminders.ended_at(record, c.life)
    due = reminders.postmortem_due(record, calendar, policy.postmortems.due, c.life)
    opened_at = min((e.delivered_at for e in opened), default=None)
    closed_at = min((e.delivered_at for e in closed), default=None)
    state = "closed" if closed else ("opened" if opened else "owed")
    return PostmortemRow(
        change_id=record.change_id,
        change_type=record.change_type,
        reasons="; ".join(reasons),
        ended_at=iso(ended),
        due=iso(due),
        state=state,
        opened_at=iso(opened_at),
        closed_at=iso(closed_at),
        overdue=state != "closed" and due is not None and now > due,
        # The post-mortem's own link once it was closed (`postmortem --closed --link URL`),
        # else its issue's.
        link=_closing_link(closed[0]) if closed else (opened[0].message_id if opened else ""),
    )


def _closing_link(closing: Entry) -> str:
    return closing.extra.get("link") or closing.message_id


def _counts_downtime(c: _Change) -> bool:
    declared = c.change.downtime or timedelta(0)
    return c.record.status != "cancelled" and (
        c.record.service_impacting or declared > timedelta(0)
    )


def _actual(c: _Change) -> timedelta | None:
    """Real downtime from the stage times; a change that ran with no apply start recorded
    (its type hears no `during` stage) counts its declared downtime."""
    if not _counts_downtime(c) or not c.went_ahead:
        return None
    if c.span is None:
        return c.change.downtime or timedelta(0)
    return c.span[1] - c.span[0]


def actual_by_month(
    c_record: Registered, declared: timedelta | None, now: datetime, calendar: BusinessCalendar
) -> list[tuple[uptime.Month, timedelta]]:
    """A registered change's real downtime, split by calendar month (see `_actual`)."""
    life = lifecycle_of(c_record.entries)
    if life.records:
        c_record = replace(c_record, status=life.state.value)
    if c_record.status == "cancelled":
        return []
    span = uptime.outage(life, c_record.window_end, now)
    return _by_month(c_record, declared, span, calendar)


def _by_month(
    c_record: Registered,
    declared: timedelta | None,
    span: tuple[datetime, datetime] | None,
    calendar: BusinessCalendar,
) -> list[tuple[uptime.Month, timedelta]]:
    if c_record.status == "cancelled":
        return []
    if span is not None:
        return uptime.split_by_month(span, calendar.zone)
    ran = c_record.status in WENT_AHEAD
    if ran and declared and c_record.window_start is not None:
        return [(uptime.month_of(c_record.window_start, calendar.zone), declared)]
    return []


def _downtime(
    changes: Sequence[_Change],
    policy: Policy,
    calendar: BusinessCalendar,
    start: datetime,
    end: datetime,
) -> list[DowntimeRow]:
    """Each customer's month: the downtime declared and used by the changes that affect it
    (`downtime_customers`), not every customer that was told."""
    months = uptime.months_between(start, end, calendar.zone)
    keys = {m.key for m in months}
    declared: dict[tuple[str, str], timedelta] = {}
    actual: dict[tuple[str, str], timedelta] = {}
    counted: dict[tuple[str, str], set[str]] = {}
    for c in changes:
        if not _counts_downtime(c) or c.record.window_start is None:
            continue
        customers = c.affected
        month = uptime.month_of(c.record.window_start, calendar.zone).key
        parts = _by_month(c.record, c.change.downtime, c.span, calendar) if c.went_ahead else []
        for name in customers:
            if month in keys:
                declared[(name, month)] = declared.get((name, month), timedelta(0)) + (
                    c.change.downtime or timedelta(0)
                )
                counted.setdefault((name, month), set()).add(c.record.change_id)
            for m, used in parts:
                if m.key in keys:
                    actual[(name, m.key)] = actual.get((name, m.key), timedelta(0)) + used
                    counted.setdefault((name, m.key), set()).add(c.record.change_id)
    rows = []
    for name in policy.customers:
        for m in months:
            allowed = uptime.budget(m, policy.sla.uptime_percent)
            d = _minutes(declared.get((name, m.key), timedelta(0)))
            a = _minutes(actual.get((name, m.key), timedelta(0)))
            b = _minutes(allowed)
            rows.append(
                DowntimeRow(
                    customer=name,
                    month=m.key,
                    budget_minutes=b,
                    declared_minutes=d,
                    actual_minutes=a,
                    declared_percent=round(100 * d / b, 2) if b else 0.0,
                    actual_percent=round(100 * a / b, 2) if b else 0.0,
                    changes=len(counted.get((name, m.key), ())),
                    over_budget=a > b,
                )
            )
    return rows


def _by_kind(rows: Sequence[NoticeRow]) -> list[NoticeKindRow]:
    counts: Counter[tuple[str, str]] = Counter((r.kind, r.level) for r in rows)
    kinds = [k for k in KINDS if any(r.kind == k for r in rows)]
    kinds += sorted({r.kind for r in rows} - set(KINDS))
    return [
        NoticeKindRow(
            k,
            counts[(k, "recommended")],
            counts[(k, "minimum")],
            counts[(k, "short")],
            counts[(k, "not given")],
        )
        for k in kinds
    ]


def _by_week(
    changes: Sequence[_Change], calendar: BusinessCalendar, now: datetime
) -> list[WeekRow]:
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for c in changes:
        if c.record.window_start is None:
            continue
        day = calendar.local(c.record.window_start).date()
        year, week, _ = day.isocalendar()
        monday = day - timedelta(days=day.weekday())
        counts[
            (
                f"{year}-W{week:02d}",
                monday.isoformat(),
                c.record.change_type or "unclassified",
                outcome(c.record, c.life, now),
            )
        ] += 1
    return [WeekRow(w, m, t, o, n) for (w, m, t, o), n in sorted(counts.items())]
