"""The RFC 5322 message for a rendered notice: text and HTML parts, and a calendar invite for
the maintenance window (same UID, higher SEQUENCE when it moves, METHOD:CANCEL when cancelled)."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
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
    # TZID (added below): Outlook places an event with an unknown TZID at the wrong time.
    zone = ZoneInfo(message.audience.time_zone)
    event.add("dtstart", outgoing.window[0].astimezone(zone))
    event.add("dtend", outgoing.window[1].astimezone(zone))
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
    cal.add_missing_timezones()
    return method, cal.to_ical().decode()


def _uid_part(outgoing: Outgoing) -> str:
    """One event per change and audience: the same UID every time its window is re-sent."""
    audience = "".join(c if c.isalnum() else "-" for c in outgoing.rendered.audience.id)
    return f"{outgoing.change_id}-{audience}"
