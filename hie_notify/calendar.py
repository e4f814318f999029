"""Time arithmetic in the policy's zone: local times, business days, notice periods (pure)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hie_notify import timetext
from hie_notify.durations import NoticePeriod
from hie_notify.errors import InputError
from hie_notify.limits import BUSINESS_DAY_SEARCH_DAYS

if TYPE_CHECKING:
    from hie_notify.policy.model import Policy


class LocalTimeError(ValueError):
    """A wall-clock time that does not exist, or happens twice, in a zone."""


def resolve_local(naive: datetime, zone: str) -> datetime:
    """An aware datetime for a wall-clock time in `zone`.

    Refuses a time skipped by the spring clock change and one that happens twice in autumn
    (the caller must then give an explicit offset).
    """
    tz = ZoneInfo(zone)
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    back = first.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None)
    if back != naive:
        raise LocalTimeError(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {zone} (the clocks go forward then)"
        )
    if first.utcoffset() != second.utcoffset():
        raise LocalTimeError(
            f"{naive:%Y-%m-%d %H:%M} happens twice in {zone} (the clocks go back then); "
            f"give an explicit offset, e.g. {first.isoformat()} or {second.isoformat()}"
        )
    return first


def country_holidays(country: str, subdivision: str | None) -> Mapping[date, str]:
    """`holidays.country_holidays(country, subdiv=subdivision)`, without importing every country.

    The library's lazy loader imports the package `holidays.countries`, whose `__init__` imports
    all of its ~280 country modules (about 100 ms, most of the gate's own time) to hand back one
    class. The registry names the module each country code lives in; that one module is loaded
    under its own name (so a later `import holidays.countries` reuses it). A country the
    registry does not place, or a layout this does not recognise, takes the library's own path.
    """
    import holidays as _holidays

    entity = _country_class(country) if "holidays.countries" not in sys.modules else None
    if entity is None:
        found: Mapping[date, str] = _holidays.country_holidays(country, subdiv=subdivision)
        return found
    built: Mapping[date, str] = entity(subdiv=subdivision)
    return built


def _country_class(country: str) -> Any | None:
    import holidays as _holidays
    from holidays.registry import COUNTRIES

    found = [
        (module_name, names[0])
        for module_name, names in COUNTRIES.items()
        if country in names  # the class name, the ISO codes and the aliases
    ]
    if len(found) != 1:
        return None
    module_name, class_name = found[0]
    name = f"holidays.countries.{module_name}"
    module = sys.modules.get(name)
    if module is None:
        path = Path(_holidays.__file__).parent / "countries" / f"{module_name}.py"
        if not path.is_file():
            return None
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:  # never for a .py file: for the type checker
            return None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return getattr(module, class_name, None)


UTC = ZoneInfo("UTC")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class BusinessCalendar:
    """Business days, working hours and notice periods in one zone and holiday region.

    Hour notices are real elapsed time (measured in UTC, so a 24 h notice across the spring clock
    change needs 24 real hours). Business-day notices follow DESIGN.md: N business days after a
    notice given on a business day at local time T is the N-th following business day at T; a
    notice given on a weekend or bank holiday counts from 00:00 of the next business day.
    """

    def __init__(
        self,
        time_zone: str,
        country: str = "GB",
        subdivision: str | None = "ENG",
        work_start: time = time(9, 0),
        work_end: time = time(17, 30),
        work_days: Iterable[str] = ("mon", "tue", "wed", "thu", "fri"),
    ) -> None:
        self.zone = ZoneInfo(time_zone)
        self.zone_name = time_zone
        self._region = (country, subdivision)
        self.work_start = work_start
        self.work_end = work_end
        self.work_days = frozenset(_WEEKDAYS.index(d) for d in work_days)

    @classmethod
    def from_policy(cls, policy: Policy) -> BusinessCalendar:
        cal = policy.calendar
        return cls(
            cal.time_zone,
            cal.holidays.country,
            cal.holidays.subdivision,
            cal.working_hours.start,
            cal.working_hours.end,
            cal.working_hours.days,
        )

    @cached_property
    def _holidays(self) -> Mapping[date, str]:
        # Built on first use, so that commands that never count business days (classify) do
        # not import `holidays` at all.
        country, subdivision = self._region
        return country_holidays(country, subdivision)

    def holiday_name(self, day: date) -> str | None:
        name = self._holidays.get(day)
        return str(name) if name else None

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self.work_days and day not in self._holidays

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after `day`; InputError (a policy error) when there
        is none within BUSINESS_DAY_SEARCH_DAYS, so the search always ends."""
        start = day
        try:
            for _ in range(BUSINESS_DAY_SEARCH_DAYS):
                day += timedelta(days=1)
                if self.is_business_day(day):
                    return day
        except OverflowError:
            pass
        raise InputError(
            f"policy calendar: no business day in the {BUSINESS_DAY_SEARCH_DAYS} days after "
            f"{timetext.day(start)} (calendar.working_hours.days and calendar.holidays: expected "
            "at least one working day that is not a holiday)"
        )

    def local(self, when: datetime) -> datetime:
        return when.astimezone(self.zone)

    def moment(self, when: datetime) -> str:
        """`when` as people read it, in the policy's zone (`timetext.moment`)."""
        return timetext.moment(when, self.zone)

    def span(self, start: datetime, end: datetime) -> str:
        """A window as people read it, in the policy's zone (`timetext.span`)."""
        return timetext.span(start, end, self.zone)

    def earliest_start(self, notice_at: datetime, period: NoticePeriod) -> datetime:
        """The earliest window start that a notice given at `notice_at` allows (aware, UTC)."""
        if period.kind == "elapsed" or period.business_days == 0:
            # A notice of 0 business days asks only that it come before the window: no weekend
            # or holiday rule applies to it (DESIGN.md, notice arithmetic).
            return (notice_at.astimezone(UTC) + period.elapsed).astimezone(UTC)
        local = self.local(notice_at)
        day = local.date()
        at = local.time().replace(tzinfo=None)
        if not self.is_business_day(day):
            # Counts from 00:00 of the next business day.
            day, at = self.next_business_day(day), time(0, 0)
        for _ in range(period.business_days):
            day = self.next_business_day(day)
        return self._wall(day, at).astimezone(UTC)

    def notice_given(self, notice_at: datetime, start: datetime, period: NoticePeriod) -> bool:
        return start.astimezone(UTC) >= self.earliest_start(notice_at, period)

    def in_working_hours(self, start: datetime, end: datetime) -> bool:
        """Is the whole window inside working hours on business days (local time)?"""
        s, e = self.local(start), self.local(end)
        if s.date() != e.date():  # working hours end before midnight: a window across it is out
            return False
        return (
            self.is_business_day(s.date())
            and s.time() >= self.work_start
            and e.time() <= self.work_end
        )

    def _wall(self, day: date, at: time) -> datetime:
        """Local wall time on `day`; a time skipped by the clock change moves forward with it."""
        naive = datetime.combine(day, at)
        try:
            return resolve_local(naive, self.zone_name)
        except LocalTimeError:
            # Non-existent: take the instant the clock jumps past it. Ambiguous: the first one.
            aware = naive.replace(tzinfo=self.zone, fold=0)
            return aware.astimezone(UTC).astimezone(self.zone)


def elapsed(earlier: datetime, later: datetime) -> timedelta:
    """Real time between two aware datetimes, whatever their zones."""
    return later.astimezone(UTC) - earlier.astimezone(UTC)
