"""The RFC 5322 message for a rendered notice: text and HTML parts, and a calendar invite for
the maintenance window (same UID, higher SEQUENCE when it moves, METHOD:CANCEL when cancelled)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from hie_notify.channels import Outgoing

DOMAIN = "hie-notify.invalid"


def build(outgoing: Outgoing, sender: str, now: datetime) -> EmailMessage:
    message = outgoing.rendered
    recipients = message.audience.emails
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = sender
    mail["To"] = ", ".join(recipients) if recipients else "undisclosed-recipients:;"
    mail["Date"] = format_datetime(now)
    # The idempotency key in the Message-ID lets a mail server or a person see a resend.
    mail["Message-ID"] = make_msgid(idstring=outgoing.key[:24], domain=DOMAIN)
    mail["X-HIE-Notify-Key"] = outgoing.key
    mail.set_content(message.body("text"))
    mail.add_alternative(message.email_html, subtype="html")
    invite = calendar_invite(outgoing, sender, now)
    if invite is not None:
        method, data = invite
        mail.add_attachment(
            data,
            subtype="calendar",
            filename="maintenance-window.ics",
            params={"method": method},
        )
    return mail


def invite_sequence(outgoing: Outgoing) -> int:
    """0 for the first window announced; one more each time the window moved since."""
    windows: list[tuple[str, str]] = []
    for entry in outgoing.history:
        if entry.stage in ("announce", "cancelled") and entry.window_start:
            w = (entry.window_start, entry.window_end)
            if not windows or windows[-1] != w:
                windows.append(w)
    if outgoing.window is None:
        return len(windows)
    current = (outgoing.window[0].isoformat(), outgoing.window[1].isoformat())
    if outgoing.stage == "cancelled":
        return len(windows)
    if windows and windows[-1] == current:
        return len(windows) - 1
    return len(windows)


def calendar_invite(outgoing: Outgoing, sender: str, now: datetime) -> tuple[str, str] | None:
    """(METHOD, iCalendar text) for announcements and cancellations with a window."""
    if outgoing.window is None or outgoing.stage not in ("announce", "cancelled"):
        return None
    import icalendar

    message = outgoing.rendered
    method = "CANCEL" if outgoing.stage == "cancelled" else "REQUEST"
    cal = icalendar.Calendar()
    cal.add("prodid", "-//hie-notify//maintenance window//EN")
    cal.add("version", "2.0")
    cal.add("method", method)
    event = icalendar.Event()
    event.add("uid", f"{_uid_part(outgoing)}@{DOMAIN}")
    event.add("sequence", invite_sequence(outgoing))
    event.add("dtstamp", now.replace(microsecond=0))
    # In the audience's zone, named by its IANA id, with the VTIMEZONE RFC 5545 requires for a
    # TZID: Outlook places an event with an unknown TZID at the wrong time.
    zone = ZoneInfo(message.audience.time_zone)
    cal.add_component(vtimezone(zone, *outgoing.window))
    event.add("dtstart", _invite_time(outgoing.window[0], zone))
    event.add("dtend", _invite_time(outgoing.window[1], zone))
    event.add("summary", message.subject)
    event.add("description", message.body("text"))
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "TRANSPARENT")
    name, address = parseaddr(sender)
    organizer = icalendar.vCalAddress(f"mailto:{address or 'hie-notify@localhost'}")
    if name:
        organizer.params["cn"] = icalendar.vText(name)
    event.add("organizer", organizer)
    for email in message.audience.emails:
        attendee = icalendar.vCalAddress(f"mailto:{email}")
        attendee.params["role"] = icalendar.vText("OPT-PARTICIPANT")
        event.add("attendee", attendee, encode=False)
    cal.add_component(event)
    return method, cal.to_ical().decode()


def vtimezone(zone: ZoneInfo, first: datetime, last: datetime) -> Any:
    """The VTIMEZONE for times from `first` to `last` in `zone`: the observance in force at
    `first` and each clock change up to `last`, every onset written in the wall time before it
    (TZOFFSETFROM), as RFC 5545 3.6.5 has it. icalendar's `add_missing_timezones` writes a
    spring onset in the new offset: a reader that goes by the VTIMEZONE (Outlook does) then
    puts the hour after the clocks go forward an hour late."""
    import icalendar

    changes = _clock_changes(zone, first - timedelta(days=370), last + timedelta(days=1))
    kept = [c for c in changes if c[0] <= first][-1:] + [c for c in changes if c[0] > first]
    if not kept:  # no clock change in the year before: one observance, from then
        local = first.astimezone(zone)
        offset = local.utcoffset() or timedelta(0)
        kept = [(first - timedelta(days=370), offset, offset, local.tzname() or "", False)]
    tz = icalendar.Timezone()
    tz.add("tzid", zone.key)
    for at, before, after, name, daylight in kept:
        sub = icalendar.TimezoneDaylight() if daylight else icalendar.TimezoneStandard()
        sub.add("dtstart", (at + before).replace(tzinfo=None, microsecond=0))
        sub.add("tzoffsetfrom", before)
        sub.add("tzoffsetto", after)
        sub.add("tzname", name)
        tz.add_component(sub)
    return tz


def _clock_changes(
    zone: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, timedelta, timedelta, str, bool]]:
    """(UTC instant, offset before, offset after, name after, daylight after) of each change
    of `zone`'s offset in [start, end): found day by day (no zone changes twice in a day),
    then to the second."""

    def offset(when: datetime) -> timedelta:
        return when.astimezone(zone).utcoffset() or timedelta(0)

    out = []
    day = start.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    before = offset(day)
    while day < end:
        after = offset(day + timedelta(days=1))
        if after != before:
            lo, hi = day, day + timedelta(days=1)  # offset(lo) == before != offset(hi)
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) // 2
                lo, hi = (mid, hi) if offset(mid) == before else (lo, mid)
            local = hi.astimezone(zone)
            out.append((hi, before, after, local.tzname() or "", bool(local.dst())))
        before = after
        day += timedelta(days=1)
    return out


def _invite_time(when: datetime, zone: ZoneInfo) -> datetime:
    """`when` in `zone`, or in UTC when its wall time there happens twice (the clocks go back):
    a TZID time that happens twice is its first occurrence to every calendar (RFC 5545
    3.3.5), which would put the second an hour early."""
    local = when.astimezone(zone)
    if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
        return when.astimezone(timezone.utc)
    return local


def _uid_part(outgoing: Outgoing) -> str:
    """One event per change and audience: the same UID every time its window is re-sent."""
    audience = "".join(c if c.isalnum() else "-" for c in outgoing.rendered.audience.id)
    return f"{outgoing.change_id}-{audience}"
