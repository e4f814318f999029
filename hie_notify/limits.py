"""Every bound on what the tool agrees to read or compute, in one place (README "Limits").

A value past one of these is bad input (exit 2) with a message naming the limit; nothing here
reads the clock or the environment except `memory_budget`, which is given the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from hie_notify.errors import InputError

# Times a change record, `--now` or a ledger entry may name. Outside them the calendar's
# arithmetic (a year of business-day search, a year of notice) could leave Python's dates.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(3000, 1, 1, tzinfo=timezone.utc)

# Notice periods and downtime estimates.
MAX_ELAPSED_NOTICE = timedelta(days=366)
MAX_BUSINESS_DAYS = 260
MAX_DOWNTIME = timedelta(days=366)
# A business-day search that finds no business day in this many days is a policy error.
BUSINESS_DAY_SEARCH_DAYS = 366

# YAML files (policy, change record).
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 200_000  # after aliases are expanded

# Plan JSON: the memory a plan may take to read, and how it is estimated from its bytes.
MEMORY_BUDGET_VAR = "HIE_MEMORY_BUDGET_MB"
DEFAULT_MEMORY_BUDGET = 2 << 30


def memory_budget(env: Mapping[str, str]) -> int:
    """Bytes of memory reading a plan may take: HIE_MEMORY_BUDGET_MB, else 2 GiB."""
    raw = env.get(MEMORY_BUDGET_VAR, "").strip()
    if not raw:
        return DEFAULT_MEMORY_BUDGET
    if not raw.isdigit() or not 16 <= int(raw) <= 1 << 20:
        raise InputError(
            f"{MEMORY_BUDGET_VAR}: expected a whole number of MiB from 16 to 1048576, "
            f"got {raw[:20]!r}"
        )
    return int(raw) << 20


def json_memory_estimate(raw: bytes) -> int:
    """An upper bound on the bytes a decoded JSON document takes, from counts of its bytes.

    Calibrated against the peak resident memory of orjson and the standard library decoding
    the worst shapes (a million `{}`, `[]`, short strings, numbers, unique keys) and real plans:
    see bench/classify_bench.py --memory. Brackets and quotes inside strings count too, so the
    bound errs high, never low.
    """
    return (
        2 * len(raw)
        + 112 * raw.count(b"{")
        + 96 * raw.count(b"[")
        + 64 * raw.count(b",")
        + 16 * raw.count(b":")
        + 32 * raw.count(b'"')
    )


def instant_problem(when: datetime) -> str | None:
    """Why an aware time is outside the range the tool computes with, or None."""
    try:
        inside = EARLIEST <= when < LATEST
    except (OverflowError, TypeError):
        inside = False
    if inside:
        return None
    return f"expected a time from {EARLIEST.year} to {LATEST.year - 1}"
