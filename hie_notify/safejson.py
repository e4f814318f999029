"""JSON from files and services, decoded with bounds: size, nesting depth, number length.

`orjson` decodes when it is installed (several times faster than the standard library, and it
refuses nesting deeper than 1024 levels itself); the standard library's `json` is the fallback,
and decodes a large document too where orjson's reservation of address space would not fit
under the process's limit (`ulimit -v`), where orjson died with SIGSEGV.
Whichever decodes, every failure is one `JsonError` whose message says what was wrong and
where (line and column), never a `RecursionError` or a `ValueError` about integer digits.
"""

from __future__ import annotations

import json
from typing import Any

from hie_notify import limits

_orjson: Any
try:  # the fast parser; optional so that a minimal install still works
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only where orjson is missing
    _orjson = None

# From this size, orjson decodes only where its reservation fits under `ulimit -v`.
_CHECK_FROM = 8 << 20
# What orjson says when it cannot allocate the buffer it decodes into.
_ORJSON_NO_MEMORY = "Not enough memory to allocate buffer"
# orjson's own limit; the standard library stops near Python's recursion limit (about 1000).
MAX_DEPTH = 1024


class JsonError(ValueError):
    """A document that is not JSON, or not JSON we agree to hold; the message says why and
    where, and never repeats the document's text."""


def loads(data: bytes | str, *, max_bytes: int | None = None, lean: bool = False) -> Any:
    """Decode one JSON document, refusing one over `max_bytes` or nested over MAX_DEPTH.

    `lean`: decode with the standard library, which sets aside only the memory it fills (orjson
    first sets aside 13 bytes of address space per byte of JSON; see `limits`). MemoryError when
    the memory could not be had, never a JsonError that calls the document broken.
    """
    raw = data.encode() if isinstance(data, str) else data
    if max_bytes is not None and len(raw) > max_bytes:
        raise JsonError(f"{len(raw)} bytes is more than the {max_bytes} allowed")
    if _orjson is not None and not lean and not _reservation_over_limit(raw):
        try:
            return _orjson.loads(raw)
        except _orjson.JSONDecodeError as exc:
            if not str(exc.msg).startswith(_ORJSON_NO_MEMORY):
                raise JsonError(_describe(exc)) from None
        # orjson could not set aside its buffer (a limit on address space or on overcommit):
        # the standard library needs only the memory it fills.
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise JsonError(_describe(exc)) from None
    except UnicodeDecodeError:
        raise JsonError("not UTF-8 text") from None
    except RecursionError:
        raise JsonError("nested too deeply (Python's recursion limit)") from None
    except ValueError as exc:  # an integer over sys.get_int_max_str_digits() digits
        raise JsonError(f"a number is too long ({str(exc).split(';')[0]})") from None


def _reservation_over_limit(raw: bytes) -> bool:
    """Would orjson's reservation and what it decodes pass the process's address-space limit?
    There orjson died with SIGSEGV (issue 23); checked only for large documents."""
    if len(raw) < _CHECK_FROM:
        return False
    free = limits.address_space_free()
    if free is None:
        return False
    need = limits.ORJSON_RESERVE_PER_BYTE * len(raw) + limits.json_memory_estimate(raw)
    return need > free - limits.memory_margin(free)


def backend() -> str:
    """Which decoder `loads` uses: `orjson` or `json`."""
    return "orjson" if _orjson is not None else "json"


def _describe(exc: json.JSONDecodeError) -> str:
    # orjson's messages already end with ": line L column C (char N)"; the stdlib's do too.
    msg = str(exc.msg).split(": line ")[0]
    if "UTF-8" in msg:
        return "not UTF-8 text"
    return f"at line {exc.lineno}, column {exc.colno}: {msg}"
