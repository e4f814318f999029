"""What `hie-notify remind` owes now, for one registered change (pure: `now` is passed in).

- `reminder`: at each offset before the window the policy sets for the audience's kind, to
  every audience that was told of the window, for the offsets that had not passed when it was
  told; a job that missed some sends only the latest one due, and never one older than a
  reminder already sent for the same window. It says the time actually left (`time_left`).
  With a cadence (`reminders.internal_cadence`: weekly, biweekly), internal audiences are also
  reminded every week (or fortnight) from their announcement until the window: at each whole
  number of periods before the window that falls after they were told, until an offset
  reminder takes over. Each is keyed by its count (`reminder week 2@...`: two weeks before), so
  it goes out once; a job that missed some sends only the latest, and one down for longer than
  `CADENCE_CATCH_UP` past it sends none (the next week's comes).
- `window_opens`: once the window has started with no apply recorded, to the internal channels.
- `overrun`: once the window has ended with no completion or rollback recorded, to every
  internal channel (the lead) and, when the work is recorded as started (an apply in its
  replayed lifecycle), to the audiences that hear "during" updates: work that never started
  has not overrun anything a customer sees.
- `postmortem_overdue`: once a change that owes a post-mortem ended longer ago than the policy's
  `postmortems.due` and no closing is recorded, to the internal channels (the lead).

Each is keyed by the window it is about, so a moved window is reminded of again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from hie_notify.calendar import BusinessCalendar
from hie_notify.durations import NoticePeriod
from hie_notify.lifecycle import ACTIVE, WAITING, Lifecycle, State
from hie_notify.records import Audience, Entry
from hie_notify.register.model import Registered, lifecycle_of, utc_text

REMINDER, WINDOW_OPENS, OVERRUN = "reminder", "window_opens", "overrun"
POSTMORTEM_OVERDUE = "postmortem_overdue"
STAGES = (REMINDER, WINDOW_OPENS, OVERRUN, POSTMORTEM_OVERDUE)
S = State
# Statuses (lifecycle states) in which the work went ahead and stopped, so a post-mortem may be
# owed (a cancelled change never went ahead).
_STOPPED = (S.SUCCEEDED, S.RESOLVED, S.FAILED, S.ROLLED_BACK, S.ROLLBACK_FAILED, S.COMPLETED)
WENT_AHEAD = frozenset(s.value for s in (*_STOPPED, S.WITHDRAWN))
# Not started: the window opening is news to the lead; started and not finished, or never
# started, once the window has ended: an overrun.
NOT_STARTED = frozenset(s.value for s in WAITING)
OVERRUNS = frozenset(s.value for s in (*WAITING, *ACTIVE))
# `remind` looks at a change's post-mortem for this long after it became overdue (by its
# window's end): a job down for longer than that does not remind of it any more.
POSTMORTEM_CATCH_UP = timedelta(days=7)
# `remind` looks for a cadence reminder this long after it fell due (a job down for longer
# leaves it to the next one): the cheap test before reading a change's entries needs a bound.
CADENCE_CATCH_UP = timedelta(days=2)
_MARK = "|remind:"


@dataclass(frozen=True)
class Due:
    stage: str
    audience: Audience
    tag: str  # what makes this notice distinct: offset and window, e.g. "reminder 24h@..."
    offset: timedelta | None = None


def tag(stage: str, at: datetime, offset: timedelta | None = None) -> str:
    minutes = "" if offset is None else f" {int(offset.total_seconds() // 60)}m"
    return f"{stage}{minutes}@{utc_text(at)}"


def variant(fingerprint: str, due_tag: str) -> str:
    """The plan fingerprint a delivery of `due_tag` is recorded under (its idempotency key
    depends on it, so each reminder is delivered once)."""
    return f"{fingerprint}{_MARK}{due_tag}"


def sent_tags(entries: Sequence[Entry], audience: str) -> set[str]:
    return {
        e.fingerprint.split(_MARK, 1)[1]
        for e in entries
        if e.audience == audience and _MARK in e.fingerprint
    }


def first_told(
    entries: Sequence[Entry], audience: str, window: tuple[datetime, datetime] | None = None
) -> datetime | None:
    """When `audience` was first told of the change; with `window`, of that window (an
    announcement of another window, or of none, does not count: a reminder for an offset
    that had passed when it heard of this window would be its first notice). Entries that
    record no window at all (written before they did) count for any."""
    told = [e for e in entries if e.audience == audience and e.stage == "announce"]
    if window is not None and any(e.window_start for e in told):
        told = [e for e in told if _window(e) == window]
    return min((e.delivered_at for e in told), default=None)


def _window(entry: Entry) -> tuple[datetime, datetime] | None:
    if not (entry.window_start and entry.window_end):
        return None
    return datetime.fromisoformat(entry.window_start), datetime.fromisoformat(entry.window_end)


def might_owe(
    record: Registered, now: datetime, horizon: timedelta, cadence: timedelta | None = None
) -> bool:
    """Cheap test before reading a change's entries: could anything be due now? With a
    `cadence`, also: did a cadence point pass lately with nothing registered since?"""
    if record.ended or record.window_start is None or record.window_end is None:
        return False
    if record.window_start - horizon <= now:
        return True
    point = cadence_point(record.window_start, now, cadence)
    return (
        point is not None
        and now - point[1] < CADENCE_CATCH_UP
        and record.updated_at < point[1]  # a run since then would have sent it
    )


def cadence_point(
    start: datetime, now: datetime, cadence: timedelta | None
) -> tuple[int, datetime] | None:
    """The latest cadence point at or before `now` (a whole number of periods before the
    window's `start`): how many periods before, and when; None after the window or without a
    cadence."""
    if cadence is None or now >= start:
        return None
    count = -((now - start) // cadence)  # ceil((start - now) / cadence), at least 1
    return count, start - count * cadence


def cadence_tag(at: datetime, number: int, period: timedelta) -> str:
    """`reminder week 2@WINDOW`: the cadence reminder two weeks before the window."""
    word = "week" if period <= timedelta(days=7) else "fortnight"
    return f"{REMINDER} {word} {number}@{utc_text(at)}"


def owed(
    record: Registered,
    audiences: Sequence[Audience],
    offsets: Mapping[str, Sequence[timedelta]],
    now: datetime,
    cadence: timedelta | None = None,
) -> list[Due]:
    """Everything `record` owes at `now`, given its registered entries (`record.entries`);
    `cadence`: the internal audiences' periodic reminder (weekly, biweekly), if any."""
    start, end = record.window_start, record.window_end
    if record.ended or start is None or end is None:
        return []
    entries = record.entries
    out: list[Due] = []
    started: bool | None = None  # replayed once, when an overrun is in question
    for audience in audiences:
        told = first_told(entries, audience.id, (start, end))
        if told is None:
            continue  # never told of this window: nothing to remind of (the gate reports it)
        sent = sent_tags(entries, audience.id)
        if now < start:
            due = [
                o
                for o in offsets.get(audience.kind, ())
                if told < start - o <= now  # the announcement itself covers earlier ones
            ]
            if due:
                latest = min(due)  # the one nearest the window
                done = {
                    o for o in offsets.get(audience.kind, ()) if tag(REMINDER, start, o) in sent
                }
                if not any(o <= latest for o in done):
                    out.append(Due(REMINDER, audience, tag(REMINDER, start, latest), latest))
            elif cadence is not None and audience.kind == "internal":
                # The latest cadence point since it was told (the announcement covers the
                # earlier ones), once.
                point = cadence_point(start, now, cadence)
                if point is not None and told < point[1]:
                    t = cadence_tag(start, point[0], cadence)
                    if t not in sent:
                        out.append(Due(REMINDER, audience, t))
        elif now < end:
            if record.status in NOT_STARTED and audience.kind == "internal":
                t = tag(WINDOW_OPENS, start)
                if t not in sent:
                    out.append(Due(WINDOW_OPENS, audience, t))
        elif record.status in OVERRUNS and hears_overrun(audience, None):
            if not hears_overrun(audience, False):
                if started is None:
                    started = lifecycle_of(entries).started
                if not started:
                    continue  # never started: the lead is told, nobody outside
            t = tag(OVERRUN, end)
            if t not in sent:
                out.append(Due(OVERRUN, audience, t))
    return out


def hears_overrun(audience: Audience, started: bool | None) -> bool:
    """Does `audience` hear an overrun: every internal channel; an audience that hears
    "during" updates only when the work is recorded as started (`started` None: it might)."""
    if audience.kind == "internal":
        return True
    return "during" in audience.phases and started is not False


def hears_reminder(audience: Audience, offsets: Mapping[str, Sequence[timedelta]]) -> bool:
    """Is `audience` reminded at all: it is told before the work and its kind has offsets."""
    return "pre_deployment" in audience.phases and bool(offsets.get(audience.kind))


def ended_at(record: Registered, life: Lifecycle | None = None) -> datetime | None:
    """When the change's work stopped (`Lifecycle.work_ended_at`: the failure or rollback, or
    the apply's success; not the completion, nor the window's end), from its registered
    entries (`life`, when given, is their replay); None while it goes on. With no transition
    registered, its window's end."""
    life = lifecycle_of(record.entries) if life is None else life
    if life.records:
        return life.work_ended_at
    return record.window_end if record.status in WENT_AHEAD else None


def postmortem_closed(entries: Sequence[Entry]) -> Entry | None:
    """The first recorded closing of the change's post-mortem (`hie-notify postmortem`)."""
    closed = [
        e
        for e in entries
        if e.stage == "postmortem" and e.extra.get("state") == "closed" and not e.dry_run
    ]
    return min(closed, key=lambda e: e.delivered_at, default=None)


def postmortem_due(
    record: Registered,
    calendar: BusinessCalendar,
    due: NoticePeriod,
    life: Lifecycle | None = None,
) -> datetime | None:
    """When the post-mortem of a change that ended is due (None before it ended)."""
    ended = ended_at(record, life)
    return calendar.earliest_start(ended, due) if ended is not None else None


def might_be_overdue(
    record: Registered, calendar: BusinessCalendar, due: NoticePeriod, now: datetime
) -> bool:
    """Cheap test before reading a change's entries: did it go ahead and end, and could its
    post-mortem (counted from when its work stopped: after its window started, and before the
    register last heard of it) have fallen due within the catch-up period?"""
    if record.status not in WENT_AHEAD or record.window_start is None:
        return False
    first = calendar.earliest_start(min(record.window_start, record.updated_at), due)
    last = calendar.earliest_start(max(record.window_start, record.updated_at), due)
    return first <= now <= last + POSTMORTEM_CATCH_UP


def postmortem_overdue(
    record: Registered, audiences: Sequence[Audience], due: datetime | None, now: datetime
) -> list[Due]:
    """The overdue post-mortem notice `record` owes at `now`: once per change, to each internal
    audience, when `due` (None: no post-mortem is owed) passed with no closing recorded."""
    if record.status not in WENT_AHEAD or due is None or now < due:
        return []
    if postmortem_closed(record.entries) is not None:
        return []
    t = tag(POSTMORTEM_OVERDUE, due)
    return [
        Due(POSTMORTEM_OVERDUE, a, t)
        for a in audiences
        if a.kind == "internal" and t not in sent_tags(record.entries, a.id)
    ]


def time_left(left: timedelta) -> str:
    """`in 2 hours`, `in 4 days and 21 hours`, `in 1 hour and 55 minutes`, `in 45 minutes`:
    the time actually left (to the minute, rounded down), in its two largest units."""
    minutes = max(0, int(left.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    units = [(days, "day"), (hours, "hour"), (mins, "minute")]
    while units and units[0][0] == 0:
        units.pop(0)
    if not units:
        return "now"
    parts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in units[:2] if n]
    return "in " + " and ".join(parts)


def starts_in(offset: timedelta) -> str:
    """`in 24 hours`, `in 7 days`, `tomorrow`-free wording for a reminder's subject."""
    minutes = int(offset.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days and not rest:
        return f"in {days} day{'s' if days != 1 else ''}"
    if not days and hours and not mins:
        return f"in {hours} hour{'s' if hours != 1 else ''}"
    return f"in {minutes} minutes" if minutes < 120 else f"in {minutes // 60} hours"


def describe(due_tag: str) -> str:
    """`reminder 1440m@...` -> `reminder, 1 day before the window`."""
    head = due_tag.split("@", 1)[0]
    if head.startswith("ack-escalation-"):
        return f"acknowledgement overdue: escalation step {int(head.rsplit('-', 1)[1]) + 1}"
    for word, every in (("week", "weekly"), ("fortnight", "biweekly")):
        if head.startswith(f"{REMINDER} {word} "):
            count = head.rsplit(" ", 1)[1]
            return (
                f"{every} reminder, {count} {word}{'s' if count != '1' else ''} before the window"
            )
    if head.startswith(REMINDER + " ") and head.endswith("m"):
        offset = timedelta(minutes=int(head[len(REMINDER) + 1 : -1]))
        return f"reminder, {starts_in(offset).removeprefix('in ')} before the window"
    return {
        WINDOW_OPENS: "the window is open",
        OVERRUN: "overrun",
        POSTMORTEM_OVERDUE: "the post-mortem is overdue",
    }.get(head, head)
