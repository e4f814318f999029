"""Every bound on what the tool agrees to read or compute, in one place (docs/limits.md).

A value past one of these is bad input (exit 2) with a message naming the limit; nothing here
reads the clock or the environment except `memory_budget`, which is given the environment and
reads the memory limits the process really has (`memory_rooms`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

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


class MemoryRoom:
    """What the process may still take under one memory limit it really has."""

    __slots__ = ("address_space", "free", "limit", "name", "remedy")

    def __init__(self, free: int, limit: int, name: str, remedy: str, address_space: bool) -> None:
        self.free = free  # bytes left under the limit now
        self.limit = limit
        self.name = name  # "the address-space limit (`ulimit -v`)"
        self.remedy = remedy  # what the user can do about it
        # Counts address space set aside but never touched (a limit of the process's own).
        self.address_space = address_space


class MemoryBudget:
    """Bytes reading one plan may take, where that figure comes from and what raises it."""

    __slots__ = ("address_space", "bytes", "remedy", "source")

    def __init__(
        self,
        bytes: int,
        source: str = MEMORY_BUDGET_VAR,
        remedy: str = f"set {MEMORY_BUDGET_VAR} higher if the machine has the memory",
        address_space: int | None = None,
    ) -> None:
        self.bytes = bytes
        self.source = source
        self.remedy = remedy
        # What is left under an address-space limit (`ulimit -v`/`-d`), when there is one: a
        # decoder that sets aside far more than it touches (orjson) is used only within it.
        self.address_space = address_space

    def __repr__(self) -> str:
        return f"MemoryBudget({self.bytes}, {self.source!r}, address_space={self.address_space})"


def memory_budget(
    env: Mapping[str, str], rooms: Sequence[MemoryRoom] | None = None
) -> MemoryBudget:
    """The budget for reading a plan: HIE_MEMORY_BUDGET_MB (else 2 GiB), but never more than
    what the process's real limits leave, less a margin (`memory_rooms`; `rooms` for tests).

    Past a real limit the decoder's allocation fails or the kernel kills the process (SIGSEGV
    inside orjson under `ulimit -v`, SIGKILL from the OOM killer): a budget that stays inside
    them turns that into a refusal (exit 2) before anything is decoded.
    """
    raw = env.get(MEMORY_BUDGET_VAR, "").strip()
    if raw and (not raw.isdigit() or not 16 <= int(raw) <= 1 << 20):
        raise InputError(
            f"{MEMORY_BUDGET_VAR}: expected a whole number of MiB from 16 to 1048576, "
            f"got {raw[:20]!r}"
        )
    budget = MemoryBudget(int(raw) << 20 if raw else DEFAULT_MEMORY_BUDGET)
    address_space: int | None = None
    for room in memory_rooms() if rooms is None else rooms:
        margin = memory_margin(room.free)
        usable = max(0, room.free - margin)
        if room.address_space:
            address_space = usable if address_space is None else min(address_space, usable)
        if usable < budget.bytes:
            budget = MemoryBudget(
                usable,
                f"what is left of {room.name} of {room.limit >> 20} MiB, less a margin of "
                f"{margin >> 20} MiB",
                room.remedy,
            )
    return MemoryBudget(budget.bytes, budget.source, budget.remedy, address_space)


def memory_margin(free: int) -> int:
    """Kept free under a real limit: the command goes on after the plan is read (classifying,
    rendering, modules imported later), and the estimates are estimates."""
    return (64 << 20) + free // 8


def memory_rooms(
    proc: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")
) -> list[MemoryRoom]:
    """The room left under every memory limit this process has: its soft address-space and
    data limits (`ulimit -v`, `ulimit -d`), its cgroup's memory limit (v2 `memory.max` or v1
    `memory.limit_in_bytes`, the tightest on the way to the root) and the memory the machine
    has free (`MemAvailable`). A limit that cannot be read is left out."""
    rooms = _process_rooms(proc)
    cgroup = cgroup_room(_read_text(proc / "self" / "cgroup"), cgroup_root)
    if cgroup is not None:
        rooms.append(cgroup)
    available = _kib_fields(_read_text(proc / "meminfo")).get("MemAvailable")
    if available is not None:
        rooms.append(
            MemoryRoom(
                available,
                available,
                "the memory this machine has free (MemAvailable)",
                "run it where more memory is free",
                address_space=False,
            )
        )
    return rooms


def address_space_free(proc: Path = Path("/proc")) -> int | None:
    """Bytes this process may still map under its address-space and data limits (`ulimit -v`,
    `ulimit -d`), the tighter; None when it has neither."""
    return min((room.free for room in _process_rooms(proc)), default=None)


def _process_rooms(proc: Path) -> list[MemoryRoom]:
    rooms = []
    status = _kib_fields(_read_text(proc / "self" / "status"))
    soft = _soft_limits(_read_text(proc / "self" / "limits"))
    for key, used, name, flag in (
        ("Max address space", "VmSize", "the address-space limit", "-v"),
        ("Max data size", "VmData", "the data-size limit", "-d"),
    ):
        limit = soft.get(key)
        if limit is not None:
            rooms.append(
                MemoryRoom(
                    max(0, limit - status.get(used, 0)),
                    limit,
                    f"{name} (`ulimit {flag}`)",
                    f"raise the limit (`ulimit {flag}`) if the machine has the memory",
                    address_space=True,
                )
            )
    return rooms


_UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a page-rounded 2**63 - 1


def cgroup_room(proc_cgroup: str, root: Path) -> MemoryRoom | None:
    """The tightest room under the memory limits of the cgroup named in `/proc/self/cgroup`
    and its ancestors (a parent's limit binds its children), cgroup v2 or v1."""
    best: MemoryRoom | None = None
    for line in proc_cgroup.splitlines():
        ident, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if ident == "0" and controllers == "":
            base, files, cache = root, ("memory.max", "memory.current"), "inactive_file"
        elif "memory" in controllers.split(","):
            base = root / "memory"
            files, cache = ("memory.limit_in_bytes", "memory.usage_in_bytes"), "total_inactive_file"
        else:
            continue
        parts = [p for p in path.split("/") if p and p not in (".", "..")]
        # Inside a container the cgroup's own directory is often mounted as the root: the
        # path from /proc may not exist there, and the root is then the cgroup itself.
        for depth in range(len(parts), -1, -1):
            folder = base.joinpath(*parts[:depth])
            limit = _number(_read_text(folder / files[0]))
            if limit is None or limit >= _UNLIMITED:
                continue
            used = _number(_read_text(folder / files[1]))
            if used is None:
                continue
            # Usage counts the page cache; the part not recently used is given back on demand.
            used -= min(used, _stat_field(_read_text(folder / "memory.stat"), cache))
            if best is None or limit - used < best.free:
                best = MemoryRoom(
                    max(0, limit - used),
                    limit,
                    f"the container's memory limit (cgroup {files[0]})",
                    "give the job more memory (the runner's memory limit for the container)",
                    address_space=False,
                )
    return best


def _read_text(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(1 << 16).decode("ascii", "replace")
    except OSError:
        return ""


def _number(text: str) -> int | None:
    text = text.strip()
    if text == "max":
        return _UNLIMITED
    return int(text) if text.isdigit() else None


def _soft_limits(text: str) -> dict[str, int]:
    """The soft limits in bytes that /proc/self/limits gives (as `getrlimit` does, without
    loading the `resource` module on every start); "unlimited" ones are left out."""
    out = {}
    for line in text.splitlines():
        for key in ("Max address space", "Max data size"):
            if line.startswith(key):
                words = line[len(key) :].split()
                if words and words[0].isdigit():
                    out[key] = int(words[0])
    if not text:  # no /proc (not Linux): ask the C library
        try:
            import resource
        except ImportError:  # pragma: no cover - not POSIX
            return out
        for key, which in (
            ("Max address space", resource.RLIMIT_AS),
            ("Max data size", resource.RLIMIT_DATA),
        ):
            limit = resource.getrlimit(which)[0]
            if limit != resource.RLIM_INFINITY and limit >= 0:
                out[key] = limit
    return out


def _stat_field(text: str, name: str) -> int:
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == name and value.strip().isdigit():
            return int(value)
    return 0


def _kib_fields(text: str) -> dict[str, int]:
    """`Name:   123 kB` lines of /proc/self/status or /proc/meminfo, in bytes."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        words = value.split()
        if len(words) == 2 and words[1] == "kB" and words[0].isdigit():
            out[name] = int(words[0]) << 10
    return out


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


# The most `json_memory_estimate` counts for one byte (a `{`): a bound that needs no counting.
JSON_WORST_BYTES_PER_BYTE = 2 + 112
# orjson sets aside this much address space per byte of JSON before it decodes (yyjson's
# `yyjson_read_max_memory_usage`: 16-byte values, one per two bytes at most, grown by 1.5, and
# a copy of the input). It touches only what it fills, so this counts only under an
# address-space limit, where orjson crashed (SIGSEGV) when the rest no longer fitted.
ORJSON_RESERVE_PER_BYTE = 13

# Reading a plan the lean way (`terraform.plan_decode`) keeps the file's bytes, the structs it
# decodes each resource into (with views of its values), and per resource its record and the
# names of its changed attributes; calibrated by bench/classify_bench.py --shapes (at least what
# it measures).
TYPED_STRUCT_BYTES = 512
TYPED_RESOURCE_BYTES = 256
TYPED_NAME_BYTES = 128
# What bench/classify_bench.py's 20,000-resource plan (27 MB) takes, for messages.
TYPICAL_20K_PLAN_MIB = 70


def instant_problem(when: datetime) -> str | None:
    """Why an aware time is outside the range the tool computes with, or None."""
    try:
        inside = EARLIEST <= when < LATEST
    except (OverflowError, TypeError):
        inside = False
    if inside:
        return None
    return f"expected a time from {EARLIEST.year} to {LATEST.year - 1}"
