"""Reading back the times a payload writes, independently of the code that wrote them.

- ISO 8601 with an offset (`2026-06-15T07:00:00+00:00`, `...Z`): `iso()`.
- iCalendar DTSTART/DTEND: a `...Z` value is UTC; a TZID value is resolved through the file's own
  VTIMEZONE (as a calendar client does, RFC 5545 3.3.5: a local time that happens twice is its
  first occurrence, one skipped takes the offset before the gap), never through zoneinfo.
- Times in text a person reads: `Monday 15 June 2026, 08:00 to 09:30 BST`,
  `Mon 15 Jun 2026 08:00 BST`, `Sun 29 Mar 2026 00:30-03:00 BST`, `15 Jun 2026 07:00 UTC+01:00`:
  each `HH:MM` takes the last date written before it on its line and the first zone written
  after it on its line (an abbreviation or an offset). A time with no zone after it on its line
  is reported as unzoned: a person cannot know which instant it is.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

UTC = timezone.utc

# The zones the tests use (Europe/London, America/New_York, UTC): an abbreviation names one
# offset, so reading one needs no time zone database.
ABBREVIATIONS = {"UTC": 0, "GMT": 0, "BST": 60, "EST": -300, "EDT": -240}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_ISO = re.compile(
    r"(?<![\d-])(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?(?![\d:])"
)
_TOKEN = re.compile(
    r"(?P<date>(?:\b(?P<wd>Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*\.?,?\s+)?"
    r"\b(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+"
    r"(?P<m>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?,?"
    r"(?:\s+(?P<y>\d{4})\b)?)"
    r"|(?P<isodate>(?<![\d-])(?P<iy>\d{4})-(?P<im>\d{2})-(?P<id>\d{2})(?![\d-]))"
    r"|(?P<offset>\b(?:UTC|GMT)\s?(?P<os>[+-])(?P<oh>\d{1,2})(?::?(?P<om>\d{2}))?(?!\d))"
    r"|(?P<abbr>\b(?:UTC|GMT|BST|EST|EDT)\b)"
    r"|(?P<time>(?<![\d:.])(?P<h>\d{1,2}):(?P<mi>\d{2})(?![\d:])"
    r"(?:\s(?P<ts>[+-])(?P<th>\d{2}):?(?P<tm>\d{2})(?!\d))?)"
)


@dataclass
class Said:
    """The times one text states."""

    instants: list[datetime] = field(default_factory=list)
    # A zoned time on a line that names no date: (offset, wall time).
    dateless: list[tuple[timedelta, time]] = field(default_factory=list)
    unzoned: list[str] = field(default_factory=list)

    def states(self, when: datetime) -> bool:
        moment = when.astimezone(UTC)
        return any(i.astimezone(UTC) == moment for i in self.instants) or any(
            (moment + offset).time() == wall for offset, wall in self.dateless
        )


def iso(value: Any) -> datetime:
    """An ISO 8601 time that must carry its offset."""
    assert isinstance(value, str), f"expected an ISO 8601 string, got {value!r}"
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert when.tzinfo is not None, f"{value!r} has no offset: which instant is it?"
    return when


def _day(m: re.Match[str], around: datetime) -> date:
    day, month = int(m["d"]), _MONTHS.index(m["m"].lower()[:3]) + 1
    if m["y"]:
        return date(int(m["y"]), month, day)
    years = [around.year - 1, around.year, around.year + 1]
    candidates = [date(y, month, day) for y in years]
    if m["wd"]:
        weekday = _WEEKDAYS.index(m["wd"].lower()[:3])
        candidates = [c for c in candidates if c.weekday() == weekday] or candidates
    return min(candidates, key=lambda c: abs((c - around.date()).days))


def read_times(text: str, around: datetime) -> Said:
    """Every time `text` states; `around` places a date written without its year."""
    said = Said()
    for line in text.splitlines():
        for m in _ISO.finditer(line):
            if m[7] is None:
                said.unzoned.append(m[0])
                continue
            said.instants.append(iso(m[0]))
        line = _ISO.sub(" ", line)
        day: date | None = None
        pending: list[tuple[date | None, int, int, str]] = []
        for m in _TOKEN.finditer(line):
            offset: timedelta | None = None
            if m["date"]:
                day = _day(m, around)
            elif m["isodate"]:
                day = date(int(m["iy"]), int(m["im"]), int(m["id"]))
            elif m["time"]:
                pending.append((day, int(m["h"]), int(m["mi"]), m["time"]))
                if m["ts"]:
                    sign = 1 if m["ts"] == "+" else -1
                    offset = sign * timedelta(hours=int(m["th"]), minutes=int(m["tm"]))
            elif m["offset"]:
                sign = 1 if m["os"] == "+" else -1
                offset = sign * timedelta(hours=int(m["oh"]), minutes=int(m["om"] or 0))
            elif m["abbr"]:
                offset = timedelta(minutes=ABBREVIATIONS[m["abbr"]])
            if offset is None:
                continue
            zone = timezone(offset)
            for on, hour, minute, _ in pending:
                if on is None:
                    said.dateless.append((offset, time(hour, minute)))
                else:
                    said.instants.append(datetime.combine(on, time(hour, minute), zone))
            pending = []
        said.unzoned += [raw for *_, raw in pending]
    return said


def _utc_and_london(when: datetime) -> str:
    from zoneinfo import ZoneInfo

    local = when.astimezone(ZoneInfo("Europe/London"))
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%MZ} ({local:%a %d %b %H:%M %Z})"


def check_text(
    where: str,
    text: str,
    meant: Sequence[datetime],
    also: Collection[datetime] = (),
    *,
    required: bool = True,
) -> None:
    """Every time `text` states is one of `meant` or `also` (other instants the payload may
    name: when it was sent, when the apply started); with `required`, it states each of
    `meant`."""
    said = read_times(text, meant[0] if meant else next(iter(also)))
    known = {k.astimezone(UTC) for k in (*meant, *also)}
    problems = []
    if said.unzoned:
        problems.append(f"a time with no zone: {said.unzoned}")
    for when in said.instants:
        if when.astimezone(UTC) not in known:
            problems.append(f"states {_utc_and_london(when)}, which is no instant meant")
    for offset, wall in said.dateless:
        if not any((k.astimezone(UTC) + offset).time() == wall for k in known):
            problems.append(f"states {wall:%H:%M} at UTC{offset}, which is no instant meant")
    if required:
        for when in meant:
            if not said.states(when):
                problems.append(f"does not state {_utc_and_london(when)}")
    assert not problems, f"{where}:\n  " + "\n  ".join(problems) + f"\n--- the text:\n{text}"


_INLINE = re.compile(r"</?(?:strong|b|em|i|a|span|code|abbr|time|small|u)\b[^>]*>", re.I)


def html_text(document: str) -> str:
    """What a person reads of an HTML document: inline tags dropped, others ending a line."""
    body = re.sub(r"(?is)<(style|script|head)\b.*?</\1>", "\n", document)
    body = _INLINE.sub("", body)
    return html.unescape(re.sub(r"<[^>]*>", "\n", body))


# -- iCalendar


@dataclass(frozen=True)
class Rule:
    at: datetime  # UTC, naive
    before: timedelta
    after: timedelta


def _onsets(sub: Any) -> list[datetime]:
    first = sub["DTSTART"].dt
    out = [first]
    rdates = sub.get("RDATE", [])
    for group in rdates if isinstance(rdates, list) else [rdates]:
        out += [d.dt for d in group.dts]
    if "RRULE" in sub:
        from dateutil.rrule import rrulestr

        rule = rrulestr(sub["RRULE"].to_ical().decode(), dtstart=first)
        out += list(rule.between(first, datetime(2100, 1, 1), inc=True))
    return [o.replace(tzinfo=None) for o in out]


def zone_rules(vtimezone: Any) -> list[Rule]:
    """The offsets a VTIMEZONE says are in force, as UTC onsets."""
    rules = []
    for sub in vtimezone.subcomponents:
        if sub.name not in ("STANDARD", "DAYLIGHT"):
            continue
        before, after = sub["TZOFFSETFROM"].td, sub["TZOFFSETTO"].td
        rules += [Rule(onset - before, before, after) for onset in _onsets(sub)]
    assert rules, f"VTIMEZONE {vtimezone.get('TZID')} has no STANDARD or DAYLIGHT rule"
    return sorted(rules, key=lambda r: r.at)


def _offset_at(utc: datetime, rules: Sequence[Rule]) -> timedelta:
    passed = [r for r in rules if r.at <= utc]
    return passed[-1].after if passed else rules[0].before


def resolve_local(naive: datetime, rules: Sequence[Rule]) -> datetime:
    """RFC 5545 3.3.5: the first occurrence of a repeated local time; a skipped one is read
    with the offset before the gap."""
    offsets = {r.before for r in rules} | {r.after for r in rules}
    fits = sorted(naive - o for o in offsets if _offset_at(naive - o, rules) == o)
    if fits:
        return fits[0].replace(tzinfo=UTC)
    before_gap = _offset_at(naive - max(offsets), rules)
    return (naive - before_gap).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Event:
    uid: str
    status: str
    sequence: int
    method: str
    start: datetime | date
    end: datetime | date
    stamp: datetime
    summary: str
    description: str


def ics_events(data: str) -> list[Event]:
    """The VEVENTs of an iCalendar text, every time resolved to an instant."""
    import icalendar

    cal = icalendar.Calendar.from_ical(data)
    zones = {str(tz["TZID"]): zone_rules(tz) for tz in cal.walk("VTIMEZONE")}

    def instant(prop: Any) -> datetime | date:
        raw = prop.to_ical().decode()
        if len(raw) == 8:
            return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
        naive = datetime.strptime(raw.rstrip("Z"), "%Y%m%dT%H%M%S")
        if raw.endswith("Z"):
            return naive.replace(tzinfo=UTC)
        tzid = prop.params.get("TZID")
        assert tzid, f"{raw}: a floating time (no TZID, no Z) is a different instant per reader"
        assert tzid in zones, f"TZID={tzid} has no VTIMEZONE in the file (RFC 5545 requires one)"
        return resolve_local(naive, zones[tzid])

    out = []
    for ev in cal.walk("VEVENT"):
        stamp = instant(ev["DTSTAMP"])
        assert isinstance(stamp, datetime)
        out.append(
            Event(
                uid=str(ev["UID"]),
                status=str(ev.get("STATUS", "")),
                sequence=int(ev.get("SEQUENCE", 0)),
                method=str(cal.get("METHOD", "")),
                start=instant(ev["DTSTART"]),
                end=instant(ev["DTEND"]),
                stamp=stamp,
                summary=str(ev.get("SUMMARY", "")),
                description=str(ev.get("DESCRIPTION", "")),
            )
        )
    return out


def adf_text(node: Any) -> str:
    """The text of an Atlassian Document Format document, a paragraph a line."""
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text", ""))
    if node.get("type") == "hardBreak":
        return "\n"
    inner = "".join(adf_text(c) for c in node.get("content", []))
    return inner + "\n" if node.get("type") == "paragraph" else inner


def every(values: Iterable[datetime]) -> list[str]:
    return [_utc_and_london(v) for v in values]
