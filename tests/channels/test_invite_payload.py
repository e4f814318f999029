"""The calendar invite an email carries (channels/email_message.py), piece by piece: the mutation
bench's `invite` target. DTSTART and DTEND, read back through the file's own VTIMEZONE as a
calendar client does (tests/time_reading.py), are the window's instants in GMT, in BST and on
the days the clocks change, for an audience in London and one in New York."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta, timezone
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

import icalendar
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hie_notify.channels import Outgoing
from hie_notify.channels.email_message import (
    _clock_changes,
    _invite_time,
    build,
    calendar_invite,
    invite_sequence,
)
from hie_notify.render import Rendered
from tests.support.ledger_entries import entry
from tests.support.payloads import AUD, DAYS
from tests.support.time_reading import ics_events

UTC = timezone.utc
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
START = datetime(2026, 12, 8, 19, tzinfo=UTC)
END = datetime(2026, 12, 8, 21, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 10, 15, 30, 123, tzinfo=UTC)
SENDER = "HIE Notify <hie@example.org>"
MAILS = ("ops@eoe.example.org", "desk@eoe.example.org")


def outgoing(
    stage: str = "announce",
    window: tuple[datetime, datetime] | None = (START, END),
    *,
    zone: str = "Europe/London",
    history: tuple[object, ...] = (),
    audience_id: str = "customer:EoE",
) -> Outgoing:
    audience = replace(AUD, id=audience_id, time_zone=zone, emails=MAILS)
    msg = Rendered(
        stage,
        audience,
        "Planned change (ref FFAPP-1)",
        {"text": "Encrypt the database", "html": "<p>Encrypt the database</p>"},
    )
    return Outgoing("FFAPP-1", msg, "k" * 32, "email", history, None, window)  # type: ignore[arg-type]


def sent(stage: str, start: datetime, end: datetime) -> object:
    return replace(
        entry(1), stage=stage, window_start=start.isoformat(), window_end=end.isoformat()
    )


def test_the_invite_is_a_request_with_every_property() -> None:
    invite = calendar_invite(outgoing(), SENDER, NOW)
    assert invite is not None
    method, data = invite
    assert method == "REQUEST"
    cal = icalendar.Calendar.from_ical(data)
    assert str(cal["PRODID"]) == "-//hie-notify//maintenance window//EN"
    assert str(cal["VERSION"]) == "2.0"
    assert str(cal["METHOD"]) == "REQUEST"
    [ev] = cal.walk("VEVENT")
    assert str(ev["UID"]) == "FFAPP-1-customer-EoE@hie-notify.invalid"
    assert int(ev["SEQUENCE"]) == 0
    assert ev["DTSTAMP"].to_ical().decode() == "20261120T101530Z"
    assert str(ev["SUMMARY"]) == "Planned change (ref FFAPP-1)"
    assert str(ev["DESCRIPTION"]) == "Encrypt the database"
    assert str(ev["STATUS"]) == "CONFIRMED"
    assert str(ev["TRANSP"]) == "TRANSPARENT"
    assert str(ev["ORGANIZER"]) == "mailto:hie@example.org"
    assert str(ev["ORGANIZER"].params["CN"]) == "HIE Notify"
    attendees = ev["ATTENDEE"]
    assert [str(a) for a in attendees] == [f"mailto:{m}" for m in MAILS]
    assert all(str(a.params["ROLE"]) == "OPT-PARTICIPANT" for a in attendees)
    assert ev["DTSTART"].params["TZID"] == "Europe/London"
    assert ev["DTSTART"].to_ical().decode() == "20261208T190000"
    assert ev["DTEND"].params["TZID"] == "Europe/London"
    assert ev["DTEND"].to_ical().decode() == "20261208T210000"
    [tz] = cal.walk("VTIMEZONE")
    assert str(tz["TZID"]) == "Europe/London"
    [event] = ics_events(data)
    assert (event.start, event.end) == (START, END)


def test_an_organizer_without_a_name_or_address() -> None:
    invite = calendar_invite(outgoing(), "hie@example.org", NOW)
    assert invite is not None
    [ev] = icalendar.Calendar.from_ical(invite[1]).walk("VEVENT")
    assert str(ev["ORGANIZER"]) == "mailto:hie@example.org"
    assert "CN" not in ev["ORGANIZER"].params
    invite = calendar_invite(outgoing(), "", NOW)
    assert invite is not None
    [ev] = icalendar.Calendar.from_ical(invite[1]).walk("VEVENT")
    assert str(ev["ORGANIZER"]) == "mailto:hie-notify@localhost"


def test_a_cancellation_cancels_the_same_event() -> None:
    history = (sent("announce", START, END),)
    invite = calendar_invite(outgoing("cancelled", history=history), SENDER, NOW)
    assert invite is not None
    method, data = invite
    assert method == "CANCEL"
    [ev] = icalendar.Calendar.from_ical(data).walk("VEVENT")
    assert str(ev["STATUS"]) == "CANCELLED"
    assert str(ev["UID"]) == "FFAPP-1-customer-EoE@hie-notify.invalid"
    assert int(ev["SEQUENCE"]) == 1


def test_no_invite_without_a_window_or_for_another_stage() -> None:
    assert calendar_invite(outgoing(window=None), SENDER, NOW) is None
    assert calendar_invite(outgoing("apply_started"), SENDER, NOW) is None
    assert calendar_invite(outgoing("reminder"), SENDER, NOW) is None


def test_the_sequence_counts_the_moves_of_the_window() -> None:
    later = (START + timedelta(days=1), END + timedelta(days=1))
    first = sent("announce", START, END)
    assert invite_sequence(outgoing()) == 0
    assert invite_sequence(outgoing(history=(first,))) == 0  # the same window again
    assert invite_sequence(outgoing(window=later, history=(first,))) == 1
    # Sent twice at the first window, then at the later one: two windows, one move.
    moved = sent("announce", *later)
    assert invite_sequence(outgoing(window=later, history=(first, first, moved))) == 1
    back = outgoing(window=(START, END), history=(first, moved))
    assert invite_sequence(back) == 2
    # Entries of other stages, or without a window, do not count.
    other = sent("apply_started", *later)
    bare = replace(first, window_start="", window_end="")
    assert invite_sequence(outgoing(history=(other, bare))) == 0
    assert invite_sequence(outgoing(history=(bare, first))) == 0
    # A cancellation is one more than the last request, whatever its window.
    assert invite_sequence(outgoing("cancelled", history=(first,))) == 1
    assert invite_sequence(outgoing("cancelled", history=(first, moved))) == 2
    assert invite_sequence(outgoing("cancelled", window=later, history=(first, moved))) == 2
    assert invite_sequence(outgoing(window=None, history=(first, moved))) == 2
    cancel = sent("cancelled", *later)
    assert invite_sequence(outgoing(window=later, history=(first, cancel))) == 1
    # A cancellation's window is one the reader's calendar holds: going back is a move.
    assert invite_sequence(outgoing(history=(first, cancel))) == 2


def test_the_uid_is_one_per_change_and_audience() -> None:
    invite = calendar_invite(outgoing(audience_id="stakeholders:Business Ops"), SENDER, NOW)
    assert invite is not None
    [ev] = icalendar.Calendar.from_ical(invite[1]).walk("VEVENT")
    assert str(ev["UID"]) == "FFAPP-1-stakeholders-Business-Ops@hie-notify.invalid"


def test_the_email_carries_the_parts_and_the_invite() -> None:
    mail = build(outgoing(), SENDER, NOW)
    assert mail["Subject"] == "Planned change (ref FFAPP-1)"
    assert mail["From"] == SENDER
    assert mail["To"] == ", ".join(MAILS)
    assert parsedate_to_datetime(str(mail["Date"])) == NOW.replace(microsecond=0)
    assert mail["X-HIE-Notify-Key"] == "k" * 32
    assert str(mail["Message-ID"]).startswith("<")
    assert str(mail["Message-ID"]).endswith(".kkkkkkkkkkkkkkkkkkkkkkkk@hie-notify.invalid>")
    key = "0123456789abcdefghijklmnopqrstuv"
    keyed = build(replace(outgoing(), key=key), SENDER, NOW)
    assert str(keyed["Message-ID"]).endswith(f".{key[:24]}@hie-notify.invalid>")
    assert keyed["X-HIE-Notify-Key"] == key
    assert mail.get_body(("plain",)).get_content().strip() == "Encrypt the database"
    assert mail.get_body(("html",)).get_content().strip() == "<p>Encrypt the database</p>"
    [invite] = list(mail.iter_attachments())
    assert invite.get_content_type() == "text/calendar"
    assert invite.get_param("method") == "REQUEST"
    assert invite.get_filename() == "maintenance-window.ics"
    [ev] = icalendar.Calendar.from_ical(invite.get_content()).walk("VEVENT")
    assert str(ev["ORGANIZER"]) == "mailto:hie@example.org"
    alone = outgoing("apply_started")
    alone = replace(alone, rendered=replace(alone.rendered, audience=replace(AUD, emails=())))
    mail = build(alone, SENDER, NOW)
    assert mail["To"] == "undisclosed-recipients:;"
    assert list(mail.iter_attachments()) == []


def test_a_wall_time_that_happens_twice_is_written_in_utc() -> None:
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 01:30 BST
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 01:30 GMT
    for when in (first, second):
        written = _invite_time(when, LONDON)
        assert written.tzinfo is UTC and written == when
    plain = datetime(2026, 10, 25, 2, 30, tzinfo=UTC)
    written = _invite_time(plain, LONDON)
    assert written.tzinfo is LONDON and written == plain
    gap = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 02:30 BST: after the gap, once
    assert _invite_time(gap, LONDON).tzinfo is LONDON


def test_the_clock_changes_are_found_to_the_second() -> None:
    changes = _clock_changes(
        LONDON, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    )
    # The first instant of the new offset, found to within a second (the VTIMEZONE drops the
    # microseconds).
    assert [(at.replace(microsecond=0), *rest) for at, *rest in changes] == [
        (datetime(2026, 3, 29, 1, tzinfo=UTC), timedelta(0), timedelta(hours=1), "BST", True),
        (datetime(2026, 10, 25, 1, tzinfo=UTC), timedelta(hours=1), timedelta(0), "GMT", False),
    ]
    assert (
        _clock_changes(
            ZoneInfo("UTC"), datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
        )
        == []
    )


@st.composite
def windows(draw: st.DrawFn) -> tuple[datetime, datetime]:
    day = draw(st.sampled_from(DAYS))
    start = datetime.combine(day, time(0), UTC) + timedelta(minutes=15 * draw(st.integers(-8, 95)))
    return start, start + timedelta(minutes=15 * draw(st.integers(1, 24)))


@given(window=windows(), zone=st.sampled_from(["Europe/London", "America/New_York", "UTC"]))
@example(
    window=(datetime(2026, 3, 29, 0, 30, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
    zone="Europe/London",
)  # 00:30 GMT to 02:30 BST
@example(
    window=(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
    zone="Europe/London",
)  # 01:30 BST to 01:30 GMT
@example(
    window=(datetime(2026, 11, 1, 5, 30, tzinfo=UTC), datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),
    zone="America/New_York",
)
@example(
    window=(datetime(2026, 11, 1, 6, 0, tzinfo=UTC), datetime(2026, 11, 1, 7, 0, tzinfo=UTC)),
    zone="America/New_York",
)  # from the instant the clocks go back (found to the microsecond): 01:00 EST to 02:00 EST
@settings(max_examples=30, deadline=None)
def test_property_the_invite_holds_the_instants_meant(
    window: tuple[datetime, datetime], zone: str
) -> None:
    given_at = (window[0].astimezone(LONDON), window[1].astimezone(LONDON))
    invite = calendar_invite(outgoing(window=given_at, zone=zone), SENDER, NOW)
    assert invite is not None
    [event] = ics_events(invite[1])
    assert (event.start, event.end) == window
    assert event.stamp == NOW.replace(microsecond=0)


def _vtimezone(zone: str, first: str, last: str) -> list[str]:
    from hie_notify.channels.email_message import vtimezone

    tz = vtimezone(ZoneInfo(zone), datetime.fromisoformat(first), datetime.fromisoformat(last))
    return tz.to_ical().decode().splitlines()


def _observance(kind: str, start: str, name: str, before: str, after: str) -> list[str]:
    return [
        f"BEGIN:{kind}",
        f"DTSTART:{start}",
        f"TZNAME:{name}",
        f"TZOFFSETFROM:{before}",
        f"TZOFFSETTO:{after}",
        f"END:{kind}",
    ]


GMT_FROM_OCT_2026 = _observance("STANDARD", "20261025T020000", "GMT", "+0100", "+0000")


def test_the_vtimezone_has_the_observance_in_force_and_each_change_up_to_the_end(
    machine_in_london: None,
) -> None:
    """Every onset in the wall time before it (RFC 5545 3.6.5): 02:00 BST as the clocks go
    back, 01:00 GMT as they go forward."""
    assert _vtimezone(
        "Europe/London", "2026-12-08T19:00:00+00:00", "2026-12-08T21:00:00+00:00"
    ) == [
        "BEGIN:VTIMEZONE",
        "TZID:Europe/London",
        *GMT_FROM_OCT_2026,
        "END:VTIMEZONE",
    ]
    # Three changes in the year before the start: only the last is in force.
    assert _vtimezone(
        "Europe/London", "2026-10-26T09:00:00+00:00", "2027-03-28T12:00:00+00:00"
    ) == [
        "BEGIN:VTIMEZONE",
        "TZID:Europe/London",
        *GMT_FROM_OCT_2026,
        *_observance("DAYLIGHT", "20270328T010000", "BST", "+0000", "+0100"),
        "END:VTIMEZONE",
    ]
    # Ending at midnight the day before a change: the change is not one of the window's.
    assert _vtimezone(
        "Europe/London", "2026-10-20T09:00:00+00:00", "2026-10-24T00:00:00+00:00"
    ) == [
        "BEGIN:VTIMEZONE",
        "TZID:Europe/London",
        *_observance("DAYLIGHT", "20260329T010000", "BST", "+0000", "+0100"),
        "END:VTIMEZONE",
    ]
    # Starting at the instant the clocks go back: the new observance is the one in force.
    assert (
        _vtimezone("Europe/London", "2026-10-25T01:00:00+00:00", "2026-10-25T02:00:00+00:00")[2:-1]
        == _observance("DAYLIGHT", "20260329T010000", "BST", "+0000", "+0100") + GMT_FROM_OCT_2026
    )


def test_a_window_from_the_instant_the_clocks_go_back_has_that_observance_alone() -> None:
    assert _vtimezone(
        "America/New_York", "2026-11-01T06:00:00+00:00", "2026-11-01T07:00:00+00:00"
    ) == [
        "BEGIN:VTIMEZONE",
        "TZID:America/New_York",
        *_observance("STANDARD", "20261101T020000", "EST", "-0400", "-0500"),
        "END:VTIMEZONE",
    ]


def test_a_zone_without_clock_changes_has_one_observance_from_a_year_before(
    machine_in_london: None,
) -> None:
    for zone, start, offset, name in (
        ("UTC", "20250611T090000", "+0000", "UTC"),
        ("Asia/Tokyo", "20250611T180000", "+0900", "JST"),
    ):
        assert _vtimezone(zone, "2026-06-16T09:00:00+00:00", "2026-06-16T10:00:00+00:00") == [
            "BEGIN:VTIMEZONE",
            f"TZID:{zone}",
            *_observance("STANDARD", start, name, offset, offset),
            "END:VTIMEZONE",
        ]
