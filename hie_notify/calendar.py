"""Time arithmetic in the policy's zone: local times, business days, notice periods (pure)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


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
