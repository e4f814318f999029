"""How a time is shown to people: one format, in a named zone (pure).

`Mon 15 Jun 2026 08:00 BST`: weekday, day of the month, month, year, the 24-hour time and the
zone's abbreviation. The abbreviation names the zone and tells apart the two 01:30s of the
autumn clock change, so the text always reads back to one instant. Names are English whatever
the machine's locale. JSON, CSV and files keep ISO 8601 with an offset; this is for the text.
"""

from __future__ import annotations

from datetime import date, datetime, time, tzinfo
from functools import cache
from zoneinfo import ZoneInfo

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

Zone = tzinfo | str


@cache
def _named(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local(when: datetime, zone: Zone | None = None) -> datetime:
    """`when` in `zone` (a name or a tzinfo); in its own zone when none is given."""
    if when.tzinfo is None:
        raise ValueError(f"{when!r} has no zone: a time shown to people needs one")
    if zone is None:
        return when
    return when.astimezone(_named(zone) if isinstance(zone, str) else zone)


def day(d: date) -> str:
    """`Mon 15 Jun 2026`."""
    return f"{_WEEKDAYS[d.weekday()]} {d.day} {_MONTHS[d.month - 1]} {d.year}"


def _clock(at: datetime) -> str:
    return f"{at.hour:02d}:{at.minute:02d}"


def _abbreviation(at: datetime) -> str:
    return at.tzname() or at.strftime("%z")


def moment(when: datetime, zone: Zone | None = None) -> str:
    """`Mon 15 Jun 2026 08:00 BST`: `when` in `zone`, to the minute."""
    at = local(when, zone)
    return f"{day(at)} {_clock(at)} {_abbreviation(at)}"


def span(start: datetime, end: datetime, zone: Zone | None = None) -> str:
    """A window: `Tue 8 Dec 2026 19:00 to 21:00 GMT` on one day; the zone on both ends when the
    clocks change in it (`Sun 25 Oct 2026 00:30 BST to 03:00 GMT`); else two whole moments."""
    s, e = local(start, zone), local(end, zone)
    if s.date() != e.date():
        return f"{moment(s)} to {moment(e)}"
    if _abbreviation(s) != _abbreviation(e):
        return f"{moment(s)} to {_clock(e)} {_abbreviation(e)}"
    return f"{day(s)} {_clock(s)} to {_clock(e)} {_abbreviation(e)}"


def period(start: datetime, end: datetime, zone: Zone | None = None) -> str:
    """A range of time asked for (a calendar's, a report's): whole local days as the first and
    the last day included (`Mon 7 Dec 2026 to Sun 27 Dec 2026`), else as a `span`."""
    s, e = local(start, zone), local(end, zone)
    if s.time() == e.time() == time(0) and e.date() > s.date():
        last = date.fromordinal(e.date().toordinal() - 1)
        return day(s.date()) if last == s.date() else f"{day(s.date())} to {day(last)}"
    return span(start, end, zone)


def of_iso(text: str, zone: Zone | None = None) -> str:
    """An ISO 8601 time with an offset (as stored, or as a service answered it) as people read
    it; text that is not one is shown as it is."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return text if when.tzinfo is None else moment(when, zone)
