"""One way to show a time (`hie_notify.timetext`): `Mon 15 Jun 2026 08:00 BST`, in a named zone,
that reads back to the same instant, across GMT, BST and both clock-change days."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hie_notify import timetext
from hie_notify.render import when_text

UTC = timezone.utc
LONDON = "Europe/London"
# Zones with a clock change each way and none (Sydney's summer is London's winter).
ZONES = [LONDON, "UTC", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]
_CHANGE_DAYS = [(2026, 3, 29), (2026, 10, 25), (2027, 3, 28), (2027, 10, 31)]
_SHAPE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([1-9]|[12][0-9]|3[01]) [A-Z][a-z]{2} \d{4} ")


def read_back(text: str, zone: str) -> datetime:
    """The instant `text` names in `zone`, read as a person would: the wall time, and the
    abbreviation to say which of two equal wall times (the autumn hour) is meant."""
    assert _SHAPE.match(text), text
    wall, abbreviation = text.rsplit(" ", 1)
    naive = datetime.strptime(wall, "%a %d %b %Y %H:%M")
    tz = ZoneInfo(zone)
    found = {
        aware.astimezone(UTC)
        for fold in (0, 1)
        if (aware := naive.replace(tzinfo=tz, fold=fold)).tzname() == abbreviation
        # a wall time the clocks skip is never shown
        and aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive
    }
    assert len(found) == 1, (text, found)
    (instant,) = found
    assert f"{instant.astimezone(tz):%a}" == wall[:3]  # the weekday agrees with the date
    return instant


@pytest.mark.parametrize(
    ("instant", "shown"),
    [
        (datetime(2026, 12, 8, 19, 0, tzinfo=UTC), "Tue 8 Dec 2026 19:00 GMT"),
        (datetime(2026, 6, 15, 7, 0, tzinfo=UTC), "Mon 15 Jun 2026 08:00 BST"),
        # Sun 29 Mar 2026: 01:00 GMT becomes 02:00 BST.
        (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "Sun 29 Mar 2026 00:59 GMT"),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "Sun 29 Mar 2026 02:00 BST"),
        # Sun 25 Oct 2026: 02:00 BST becomes 01:00 GMT; 01:30 happens twice.
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "Sun 25 Oct 2026 01:30 BST"),
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "Sun 25 Oct 2026 01:30 GMT"),
    ],
)
def test_a_moment_in_the_policy_zone(instant: datetime, shown: str) -> None:
    assert timetext.moment(instant, LONDON) == shown
    assert timetext.moment(instant, ZoneInfo(LONDON)) == shown
    assert read_back(shown, LONDON) == instant


def test_a_moment_in_another_zone_and_its_own() -> None:
    instant = datetime(2026, 12, 8, 19, 0, tzinfo=UTC)
    assert timetext.moment(instant, "UTC") == "Tue 8 Dec 2026 19:00 UTC"
    assert timetext.moment(instant, "Asia/Kolkata") == "Wed 9 Dec 2026 00:30 IST"
    assert timetext.moment(instant) == "Tue 8 Dec 2026 19:00 UTC"  # its own zone


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="has no zone"):
        timetext.moment(datetime(2026, 12, 8, 19, 0), LONDON)


@pytest.mark.parametrize(
    ("start", "end", "shown"),
    [
        ((2026, 12, 8, 19), (2026, 12, 8, 21), "Tue 8 Dec 2026 19:00 to 21:00 GMT"),
        (
            (2026, 12, 8, 23),
            (2026, 12, 9, 1),
            "Tue 8 Dec 2026 23:00 GMT to Wed 9 Dec 2026 01:00 GMT",
        ),
        # The autumn night: both ends named, the zone changes in the window.
        ((2026, 10, 24, 23), (2026, 10, 25, 3), "Sun 25 Oct 2026 00:00 BST to 03:00 GMT"),
        ((2026, 3, 29, 0), (2026, 3, 29, 2), "Sun 29 Mar 2026 00:00 GMT to 03:00 BST"),
    ],
)
def test_a_window(start: tuple[int, ...], end: tuple[int, ...], shown: str) -> None:
    s, e = datetime(*start, tzinfo=UTC), datetime(*end, tzinfo=UTC)
    assert timetext.span(s, e, LONDON) == shown


def test_a_period_of_whole_days_names_the_last_day_included() -> None:
    tz = ZoneInfo(LONDON)
    first, after = datetime(2026, 12, 7, tzinfo=tz), datetime(2026, 12, 28, tzinfo=tz)
    assert timetext.period(first, after, LONDON) == "Mon 7 Dec 2026 to Sun 27 Dec 2026"
    assert timetext.period(first, first + timedelta(days=1), LONDON) == "Mon 7 Dec 2026"
    assert timetext.period(first, first + timedelta(hours=9), LONDON) == (
        "Mon 7 Dec 2026 00:00 to 09:00 GMT"
    )


def test_iso_text_as_people_read_it() -> None:
    assert timetext.of_iso("2026-06-15T07:00:00Z", LONDON) == "Mon 15 Jun 2026 08:00 BST"
    assert timetext.of_iso("2026-06-15T07:00:00+00:00", LONDON) == "Mon 15 Jun 2026 08:00 BST"
    assert timetext.of_iso("closed", LONDON) == "closed"
    assert timetext.of_iso("2026-06-15T07:00:00", LONDON) == "2026-06-15T07:00:00"


# Every minute of 2026 and 2027 in every zone; and, in London, every minute of the three hours
# either side of its four clock changes (01:00 UTC on the last Sunday of March and October).
_ANY_MINUTE = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31, 23, 59), timezones=st.just(UTC)
)
_CHANGES = [datetime(y, m, d, 1, tzinfo=UTC) for y, m, d in _CHANGE_DAYS]
_NEAR_A_CHANGE = st.builds(
    lambda change, minutes: change + timedelta(minutes=minutes),
    st.sampled_from(_CHANGES),
    st.integers(min_value=-180, max_value=180),
)
_MOMENTS = st.one_of(
    st.tuples(_ANY_MINUTE, st.sampled_from(ZONES)),
    st.tuples(_NEAR_A_CHANGE, st.just(LONDON)),
)


@given(moment=_MOMENTS)
def test_what_is_shown_reads_back_to_the_same_minute(moment: tuple[datetime, str]) -> None:
    instant, zone = moment
    shown = timetext.moment(instant, zone)
    assert read_back(shown, zone) == instant.replace(second=0, microsecond=0)


@given(start=_MOMENTS, minutes=st.integers(min_value=1, max_value=3 * 24 * 60))
def test_a_window_shown_reads_back_to_both_ends(start: tuple[datetime, str], minutes: int) -> None:
    begin, zone = start
    begin = begin.replace(second=0, microsecond=0)
    end = begin + timedelta(minutes=minutes)
    shown = timetext.span(begin, end, zone)
    first, last = shown.split(" to ")
    if not _SHAPE.match(last):  # on one day the end says only its time (and zone)
        last = " ".join([*first.split(" ")[:4], last])
    if len(first.split(" ")) == 5:  # one zone for both ends, said at the end
        first = f"{first} {last.rsplit(' ', 1)[1]}"
    assert read_back(first, zone) == begin
    assert read_back(last, zone) == end


def test_a_message_window_across_the_autumn_change_names_both_zones() -> None:
    """The messages' window text: 00:30 is BST that night; shown with the end's GMT alone it
    read an hour late."""
    start = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)
    end = datetime(2026, 10, 25, 3, 0, tzinfo=UTC)
    assert when_text(start, end, LONDON) == "Sun 25 Oct 2026 00:30 BST to 03:00 GMT"
