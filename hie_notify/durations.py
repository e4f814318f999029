"""Notice periods and downtime estimates written as short strings: `24h`, `3bd`, `30m`, `0`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from hie_notify.limits import MAX_BUSINESS_DAYS, MAX_DOWNTIME, MAX_ELAPSED_NOTICE

# At most 7 digits: past them every value is over the limits below anyway, and int() of a
# long digit string is slow (and past 4,300 digits a ValueError).
_PERIOD = re.compile(r"\s*(\d{1,7})\s*(m|h|d|bd)\s*")
_DURATION = re.compile(r"\s*(?:(\d{1,7})\s*d)?\s*(?:(\d{1,7})\s*h)?\s*(?:(\d{1,7})\s*m)?\s*")


@dataclass(frozen=True, slots=True)
class NoticePeriod:
    """A notice period: real elapsed time, or a count of business days."""

    kind: Literal["elapsed", "business_days"]
    elapsed: timedelta = timedelta(0)
    business_days: int = 0

    def __str__(self) -> str:
        if self.kind == "business_days":
            return f"{self.business_days}bd"
        minutes = int(self.elapsed.total_seconds() // 60)
        if minutes == 0:
            return "0h"
        return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"

    def describe(self) -> str:
        """Words for people: `24 hours`, `3 business days`."""
        if self.kind == "business_days":
            n = self.business_days
            return f"{n} business day{'s' if n != 1 else ''}"
        hours, rest = divmod(int(self.elapsed.total_seconds()), 3600)
        if rest == 0 and 0 < hours < 72:
            return f"{hours} hour{'s' if hours != 1 else ''}"
        return describe_timedelta(self.elapsed)

    def longer_than(self, other: NoticePeriod) -> bool:
        """Longer within one unit (policy validation keeps each audience to one unit)."""
        return (self.elapsed, self.business_days) > (other.elapsed, other.business_days)

    def is_zero(self) -> bool:
        return self.business_days == 0 and self.elapsed == timedelta(0)


def parse_notice(value: object) -> NoticePeriod:
    """Parse `24h`, `48h`, `7d` (elapsed), `3bd` (business days), `30m` or `0`."""
    if isinstance(value, bool):
        raise ValueError(f"expected a notice period like 24h or 3bd, got {value!r}")
    if isinstance(value, int) and value == 0:
        return NoticePeriod("elapsed")
    if not isinstance(value, str):
        raise ValueError(f"expected a notice period like 24h or 3bd, got {value!r}")
    if value.strip() == "0":
        return NoticePeriod("elapsed")
    m = _PERIOD.fullmatch(value)
    if not m:
        raise ValueError(f"expected a notice period like 24h, 7d or 3bd, got {_short(value)}")
    n, unit = int(m.group(1)), m.group(2)
    if unit == "bd":
        if n > MAX_BUSINESS_DAYS:
            raise ValueError(f"expected at most {MAX_BUSINESS_DAYS}bd, got {n}bd")
        return NoticePeriod("business_days", business_days=n)
    scale = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}[unit]
    if n * scale > MAX_ELAPSED_NOTICE:
        raise ValueError(
            f"expected a notice of at most {MAX_ELAPSED_NOTICE.days} days, got {n}{unit}"
        )
    return NoticePeriod("elapsed", elapsed=n * scale)


def parse_duration(value: object) -> timedelta:
    """Parse a downtime estimate: `0`, `30m`, `2h`, `1h30m`, `1d`."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30m or 2h, got {value!r}")
    if isinstance(value, int) and value == 0:
        return timedelta(0)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a duration like 30m or 2h, got {value!r}")
    if value.strip() == "0":
        return timedelta(0)
    m = _DURATION.fullmatch(value)
    if not m or not any(m.groups()):
        raise ValueError(f"expected a duration like 30m, 2h or 1h30m, got {_short(value)}")
    d, h, mi = (int(g) if g else 0 for g in m.groups())
    total = timedelta(days=d, hours=h, minutes=mi)
    if total > MAX_DOWNTIME:
        raise ValueError(f"expected a duration of at most {MAX_DOWNTIME.days} days, got {value}")
    return total


def _short(value: str) -> str:
    return repr(value) if len(value) <= 40 else repr(value[:40]) + "..."


def describe_timedelta(delta: timedelta) -> str:
    """`1 day 2 hours`, `23 hours`, `45 minutes`, `none`."""
    total = int(delta.total_seconds() // 60)
    if total <= 0:
        return "none"
    days, rest = divmod(total, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = []
    for n, word in ((days, "day"), (hours, "hour"), (minutes, "minute")):
        if n:
            parts.append(f"{n} {word}{'s' if n != 1 else ''}")
    return " ".join(parts)


def format_duration(delta: timedelta) -> str:
    """The short form `parse_duration` reads back: `0`, `30m`, `2h`, `1h30m`."""
    total = int(delta.total_seconds() // 60)
    if total <= 0:
        return "0"
    hours, minutes = divmod(total, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
