"""What the calendar shows: registered changes, deploy freezes, bank holidays and the conflicts
between them, as text, JSON or an iCalendar feed (pure: `now` is passed in)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from hie_notify import timetext
from hie_notify.calendar import BusinessCalendar
from hie_notify.errors import InputError
from hie_notify.register.model import Registered, utc_text

DOMAIN = "hie-notify"
MAX_FREEZES = 500  # occurrences of one freeze period in one range


@dataclass(frozen=True)
class FreezePeriod:
    """A GitLab deploy freeze period: cron expressions for its start and end, in a zone."""

    start_cron: str
    end_cron: str
    zone: str = "UTC"
    source: str = "GitLab deploy freeze"


@dataclass(frozen=True)
class Freeze:
    start: datetime
    end: datetime
    period: FreezePeriod

    @property
    def label(self) -> str:
        p = self.period
        return f"{p.source} ({p.start_cron} to {p.end_cron} {p.zone})"


@dataclass(frozen=True)
class Holiday:
    day: date
    name: str


@dataclass(frozen=True)
class Conflict:
    """Two changes whose windows overlap and touch the same thing, or a change in a freeze."""

    change_id: str
    other: str  # the other change's id, or the freeze's label
    why: str
    project: str = ""  # the change's project (CI_PROJECT_PATH), when its record says it
    other_project: str = ""  # the other change's project: another team's, in a shared register

    def text(self) -> str:
        other = self.other
        if self.other_project and self.other_project != self.project:
            other += f" (project {self.other_project})"
        return f"{self.change_id} and {other}: {self.why}"


@dataclass(frozen=True)
class View:
    start: datetime
    end: datetime
    changes: tuple[Registered, ...]
    freezes: tuple[Freeze, ...]
    holidays: tuple[Holiday, ...]
    conflicts: tuple[Conflict, ...]
    notes: tuple[str, ...] = ()


def freezes_between(
    periods: Iterable[FreezePeriod], start: datetime, end: datetime
) -> list[Freeze]:
    """Each time a freeze period is on during [start, end): from an occurrence of its start
    cron to the next occurrence of its end cron (as GitLab computes CI_DEPLOY_FREEZE)."""
    from cronsim import CronSim, CronSimError

    out: list[Freeze] = []
    for period in periods:
        try:
            zone = ZoneInfo(period.zone)
            before = next(CronSim(period.start_cron, start.astimezone(zone), reverse=True))
            starts = CronSim(period.start_cron, before - timedelta(seconds=1))
            for _ in range(MAX_FREEZES):
                s = next(starts)
                if s >= end:
                    break
                e = next(CronSim(period.end_cron, s))
                if e > start:
                    out.append(
                        Freeze(s.astimezone(timezone.utc), e.astimezone(timezone.utc), period)
                    )
        except (CronSimError, StopIteration, KeyError, ValueError) as exc:
            raise InputError(
                f"{period.source}: freeze_start {period.start_cron!r} / freeze_end "
                f"{period.end_cron!r} ({period.zone}): expected cron expressions GitLab "
                f"accepts ({exc})"
            ) from None
    return sorted(out, key=lambda f: f.start)


def holidays_between(calendar: BusinessCalendar, start: datetime, end: datetime) -> list[Holiday]:
    """Bank holidays of the policy's region on the local days the range touches."""
    day, last = calendar.local(start).date(), calendar.local(end - timedelta(microseconds=1)).date()
    out = []
    while day <= last:
        name = calendar.holiday_name(day)
        if name:
            out.append(Holiday(day, name))
        day += timedelta(days=1)
    return out


def touches(a: Registered, b: Registered) -> list[str]:
    """What two changes both touch: customers, environments or workspaces."""
    shared = [f"customer {c}" for c in a.customers if c in b.customers]
    shared += [f"environment {e}" for e in a.environments if e in b.environments]
    return shared


def conflicts(
    changes: Sequence[Registered], freezes: Sequence[Freeze], among: Sequence[str] | None = None
) -> list[Conflict]:
    """Changes that have not been cancelled whose windows overlap and touch the same customer,
    environment or workspace; changes whose window falls in a freeze. With `among`, only the
    conflicts of those changes."""
    live = [c for c in changes if c.status != "cancelled" and c.window_start and c.window_end]
    mine = live if among is None else [c for c in live if c.change_id in among]
    # Which changes touch each customer and environment: each change is compared with those
    # that share one (four weeks of an organisation's changes are some 500: not 500 x 500).
    touching: dict[tuple[str, str], list[int]] = {}
    for i, c in enumerate(live):
        for key in _keys(c):
            touching.setdefault(key, []).append(i)
    out: list[Conflict] = []
    for a in mine:
        near = sorted({i for key in _keys(a) for i in touching.get(key, ())})
        for b in (live[i] for i in near):
            if b.change_id == a.change_id or (among is None and b.change_id < a.change_id):
                continue
            assert b.window_start and b.window_end
            if a.overlaps(b.window_start, b.window_end) and (shared := touches(a, b)):
                out.append(
                    Conflict(
                        a.change_id,
                        b.change_id,
                        "windows overlap, both touch " + ", ".join(shared),
                        a.project,
                        b.project,
                    )
                )
        for f in freezes:
            if a.overlaps(f.start, f.end):
                out.append(
                    Conflict(
                        a.change_id, f.label, "the window is inside a deploy freeze", a.project
                    )
                )
    return out


def _keys(change: Registered) -> set[tuple[str, str]]:
    """What `touches` compares: its customers and its environments."""
    return {*(("c", x) for x in change.customers), *(("e", x) for x in change.environments)}


def build(
    changes: Sequence[Registered],
    freezes: Sequence[Freeze],
    calendar: BusinessCalendar,
    start: datetime,
    end: datetime,
    notes: Sequence[str] = (),
    projects: Sequence[str] = (),
) -> View:
    """With `projects`, only those projects' changes, and their conflicts with any change
    (another team's change of the same customer at the same time is theirs to know of)."""
    shown = [c for c in changes if not projects or c.project in projects]
    ids = {c.change_id for c in shown}
    found = [c for c in conflicts(changes, freezes) if c.change_id in ids or c.other in ids]
    return View(
        start,
        end,
        tuple(shown),
        tuple(freezes),
        tuple(holidays_between(calendar, start, end)),
        tuple(found),
        tuple(notes),
    )


def to_json(view: View) -> dict[str, Any]:
    return {
        "from": utc_text(view.start),
        "to": utc_text(view.end),
        # Each change's register record as docs/register.md documents it (without its entries, which
        # `between` does not read), with `id` and the iCalendar feed's `uid`.
        "changes": [{"id": c.change_id, **c.to_json(), "uid": uid(c)} for c in view.changes],
        "freezes": [
            {"start": utc_text(f.start), "end": utc_text(f.end), "source": f.label}
            for f in view.freezes
        ],
        "holidays": [{"date": h.day.isoformat(), "name": h.name} for h in view.holidays],
        "conflicts": [
            {
                "change": c.change_id,
                "other": c.other,
                "why": c.why,
                "project": c.project,
                "other_project": c.other_project,
            }
            for c in view.conflicts
        ],
        "notes": list(view.notes),
    }


def to_text(view: View, calendar: BusinessCalendar) -> str:
    rows: list[tuple[datetime, str, str]] = []  # (start, when, the rest)
    # A register shared by several projects says whose each change is.
    several = len({c.project for c in view.changes}) > 1
    for c in view.changes:
        assert c.window_start and c.window_end
        whose = f" [{c.project or 'project not recorded'}]" if several else ""
        rows.append(
            (
                c.window_start,
                calendar.span(c.window_start, c.window_end),
                f"{c.change_id:12} {c.status:12} {c.change_type or '-'}: {c.purpose}{whose}",
            )
        )
    for f in view.freezes:
        rows.append((f.start, calendar.span(f.start, f.end), f"{'freeze':12} {f.label}"))
    for h in view.holidays:
        start = datetime.combine(h.day, time(0), calendar.zone)
        rows.append((start, f"{timetext.day(h.day)} (all day)", f"{'holiday':12} {h.name}"))
    span = timetext.period(view.start, view.end, calendar.zone)
    head = f"Changes, deploy freezes and bank holidays from {span} ({calendar.zone_name})"
    width = max([46, *(len(when) for _, when, _ in rows)])
    lines = [head, *(f"  {when:{width}} {rest}" for _, when, rest in sorted(rows, key=_first))]
    if not rows:
        lines.append("  nothing registered, frozen or on holiday in this range")
    if view.conflicts:
        lines.append(f"Conflicts ({len(view.conflicts)}):")
        lines += [f"  - {c.text()}" for c in view.conflicts]
    lines += [f"note: {n}" for n in view.notes]
    return "\n".join(lines)


def _first(row: tuple[datetime, str, str]) -> datetime:
    return row[0]


def uid(change: Registered) -> str:
    """One UID per change for ever: calendar clients update the event when it moves."""
    return f"change-{change.change_id}@{DOMAIN}"


def to_ics(view: View, calendar: BusinessCalendar, name: str, now: datetime) -> str:
    """An iCalendar feed (METHOD:PUBLISH) to subscribe to. SEQUENCE rises on each move and on
    cancellation; a cancelled change stays in the feed with STATUS:CANCELLED."""
    import icalendar

    cal = icalendar.Calendar()
    cal.add("prodid", "-//hie-notify//change calendar//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", calendar.zone_name)
    stamp = now.astimezone(timezone.utc).replace(microsecond=0)
    for c in view.changes:
        ev = icalendar.Event()
        ev.add("uid", uid(c))
        ev.add("sequence", c.sequence)
        ev.add("dtstamp", stamp)
        ev.add("last-modified", c.updated_at.replace(microsecond=0))
        ev.add("dtstart", c.window_start)
        ev.add("dtend", c.window_end)
        ev.add("summary", f"{c.change_id}: {c.purpose}")
        ev.add("status", "CANCELLED" if c.status == "cancelled" else "CONFIRMED")
        ev.add("categories", [c.change_type or "change"])
        ev.add(
            "description",
            "\n".join(
                [
                    f"Status: {c.status}",
                    f"Type: {c.change_type or 'not classified'}"
                    + (", service-impacting" if c.service_impacting else ""),
                    f"Customers: {', '.join(c.customers) or 'none named'}",
                    *([f"Project: {c.project}"] if c.project else []),
                ]
            ),
        )
        ev.add("transp", "OPAQUE")
        cal.add_component(ev)
    for f in view.freezes:
        ev = icalendar.Event()
        ev.add("uid", f"freeze-{f.start:%Y%m%dT%H%M%SZ}@{DOMAIN}")
        ev.add("dtstamp", stamp)
        ev.add("dtstart", f.start)
        ev.add("dtend", f.end)
        ev.add("summary", "Deploy freeze")
        ev.add("description", f.label)
        cal.add_component(ev)
    for h in view.holidays:
        ev = icalendar.Event()
        ev.add("uid", f"holiday-{h.day:%Y%m%d}@{DOMAIN}")
        ev.add("dtstamp", stamp)
        ev.add("dtstart", h.day)
        ev.add("dtend", h.day + timedelta(days=1))
        ev.add("summary", f"Bank holiday: {h.name}")
        ev.add("transp", "TRANSPARENT")
        cal.add_component(ev)
    return str(cal.to_ical().decode())
