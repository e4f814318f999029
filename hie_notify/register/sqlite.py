"""The register in a local SQLite file: the embedded default (`sqlite:PATH`).

One row per change (its record as JSON, with the window and status in columns for range
queries), one row per registered delivery. Windows are stored as fixed-width UTC text, which
sorts as time.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from hie_notify.errors import InputError
from hie_notify.limits import instant_problem
from hie_notify.records import CHANGE_TYPES, Entry
from hie_notify.register.model import (
    ENDED,
    Registered,
    new_entries,
    settled,
    updated,
    utc_text,
)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
    change_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    window_start TEXT,
    window_end TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_window ON changes (window_start, window_end);
CREATE INDEX IF NOT EXISTS changes_status ON changes (status);
CREATE INDEX IF NOT EXISTS changes_end ON changes (window_end);
CREATE TABLE IF NOT EXISTS entries (
    change_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    delivered_at TEXT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (change_id, idempotency_key)
);
"""


_END_INDEX = "CREATE INDEX IF NOT EXISTS changes_end ON changes (window_end)"


class SqliteRegister:
    """Reading never creates or changes the file: a register that does not exist yet reads as
    empty (or, with `must_exist`, is an error naming it); only `put` creates it. `read_only`
    (a dry run, a command that only reads) refuses `put`."""

    def __init__(
        self, path: Path, *, read_only: bool = False, must_exist: bool = False, project: str = ""
    ) -> None:
        self.path = path
        self.project = project  # stamped on each record `put` that does not say its own
        self.read_only = read_only
        self.must_exist = must_exist
        self._conn: sqlite3.Connection | None = None
        self._writable = False

    @property
    def description(self) -> str:
        return f"sqlite:{self.path}"

    def _reader(self) -> sqlite3.Connection | None:
        """The database opened read-only (SQLite's mode=ro), or None when there is no register
        there yet (an error instead with `must_exist`)."""
        if self._conn is not None:
            return self._conn
        if not self.path.exists():
            if self.must_exist:
                raise InputError(
                    f"{self.description}: the change register does not exist (nothing was ever "
                    "registered there, or --register / HIE_REGISTER, or the ledger it sits "
                    "beside, names the wrong place); this command only reads it and creates "
                    "nothing"
                )
            return None
        try:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except (sqlite3.Error, OSError) as exc:
            raise InputError(
                f"{self.path}: cannot open the register as an SQLite database ({exc})"
            ) from None
        if version > SCHEMA_VERSION:
            conn.close()
            raise InputError(
                f"{self.path}: register schema {version} is newer than this hie-notify reads "
                f"({SCHEMA_VERSION}): upgrade hie-notify"
            )
        if version < SCHEMA_VERSION:  # an empty file, or some other database
            conn.close()
            if self.must_exist:
                raise InputError(
                    f"{self.description}: not a hie-notify change register (an SQLite file "
                    "without its tables): check --register / HIE_REGISTER"
                )
            return None
        self._conn = conn
        return conn

    def _db(self) -> sqlite3.Connection:
        """The database opened for writing, created when it does not exist."""
        if self.read_only:
            raise InputError(
                f"{self.description}: the register is only read here (a dry run, or a command "
                "that only reads): nothing may be written to it"
            )
        if self._conn is not None and not self._writable:
            self._conn.close()
            self._conn = None
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise InputError(
                        f"{self.path}: register schema {version} is newer than this hie-notify "
                        f"reads ({SCHEMA_VERSION}): upgrade hie-notify"
                    )
                if version < SCHEMA_VERSION:  # new (or older) file: a write only then
                    conn.executescript(_SCHEMA)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                else:  # a register written before the index on window ends: add it
                    conn.execute(_END_INDEX)
            except (sqlite3.Error, OSError) as exc:
                raise InputError(
                    f"{self.path}: cannot open the register as an SQLite database ({exc})"
                ) from None
            self._conn = conn
            self._writable = True
        return self._conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection | None]:
        try:
            yield self._reader()
        except sqlite3.Error as exc:
            raise InputError(f"{self.path}: cannot read the register ({exc})") from None

    def get(self, change_id: str) -> Registered | None:
        with self._reading() as db:
            if db is None:
                return None
            row = db.execute(
                "SELECT record FROM changes WHERE change_id = ?", (change_id,)
            ).fetchone()
            if row is None:
                return None
            rows = db.execute(
                "SELECT entry FROM entries WHERE change_id = ? "
                "ORDER BY delivered_at, idempotency_key",  # the bulk read's order, ties too
                (change_id,),
            ).fetchall()
        record = self._record(row[0], change_id)
        return settled(replace(record, entries=tuple(self._entry(change_id, r[0]) for r in rows)))

    def put(self, record: Registered, entries: Sequence[Entry], now: datetime) -> Registered:
        if self.project and not record.project:
            record = replace(record, project=self.project)
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                old = self.get(record.change_id)
                stored = updated(old, record, now, entries)
                fresh = new_entries(old.entries if old else (), entries)
                db.execute(
                    "INSERT OR REPLACE INTO changes VALUES (?, ?, ?, ?, ?)",
                    (
                        stored.change_id,
                        stored.status,
                        utc_text(stored.window_start) or None,
                        utc_text(stored.window_end) or None,
                        json.dumps(stored.to_json(), sort_keys=True),
                    ),
                )
                db.executemany(
                    "INSERT OR IGNORE INTO entries VALUES (?, ?, ?, ?)",
                    [
                        (
                            e.change_id,
                            e.idempotency_key,
                            utc_text(e.delivered_at),
                            json.dumps(e.to_json(), sort_keys=True),
                        )
                        for e in fresh
                    ],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise InputError(f"{self.path}: cannot write the register ({exc})") from None
        keys = {e.idempotency_key for e in fresh}
        known = [e for e in old.entries if e.idempotency_key not in keys] if old else []
        given = {e.idempotency_key for e in entries}
        return replace(stored, entries=(*(e for e in known if e.idempotency_key in given), *fresh))

    def between(self, start: datetime, end: datetime) -> list[Registered]:
        with self._reading() as db:
            if db is None:
                return []
            rows = db.execute(
                "SELECT change_id, record FROM changes WHERE window_start < ? AND window_end > ? "
                "ORDER BY window_start, change_id",
                (utc_text(end), utc_text(start)),
            ).fetchall()
        return [self._current(self._record(r[1], r[0])) for r in rows]

    def _current(self, record: Registered) -> Registered:
        """A record as it reads now: one written before its status was the lifecycle state is
        read with its entries, which say what became of it (not "done" after a rollback)."""
        if not record.legacy:
            return record
        full = self.get(record.change_id) or record
        return replace(record, status=full.status)

    def between_with_entries(self, start: datetime, end: datetime) -> list[Registered]:
        """`between`, each change with its entries as `get` reads them, in two queries. Entries
        are decoded by orjson and checked by `_Reader`; one it does not vouch for is read
        by `Entry.from_json`, so it is accepted or refused exactly as `get` would."""
        records = self.between(start, end)
        if not records:
            return records
        entries: dict[str, list[Entry]] = {}
        reader = _Reader()
        with self._reading() as db:
            assert db is not None  # `between` found records
            rows = db.execute(
                "SELECT e.change_id, e.entry FROM entries e "
                "JOIN changes c ON c.change_id = e.change_id "
                "WHERE c.window_start < ? AND c.window_end > ? "
                "ORDER BY e.change_id, e.delivered_at, e.idempotency_key",
                (utc_text(end), utc_text(start)),
            )
            for change_id, raw in rows:  # one at a time: 100,000 entries are some 80 MB
                try:
                    entry = reader.entry(orjson.loads(raw))
                except (_Bad, orjson.JSONDecodeError, TypeError, KeyError):
                    entry = self._entry(change_id, raw)
                entries.setdefault(change_id, []).append(entry)
        return [settled(replace(r, entries=tuple(entries.get(r.change_id, ())))) for r in records]

    def _entry(self, change_id: str, raw: str) -> Entry:
        """One entry read with Entry.from_json's checks (`get`, and what the quick bulk reading
        did not vouch for); one that is not JSON is named, not a traceback."""
        where = f"{self.path} change {change_id}"
        try:
            data = json.loads(raw)
        except ValueError:
            raise InputError(f"{where}: a ledger entry is not JSON") from None
        return Entry.from_json(data, where)

    def open_changes(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[Registered]:
        marks = ",".join("?" * len(ENDED))
        bounded = start is not None and end is not None
        where = "AND window_start < ? AND window_end > ? " if bounded else ""
        with self._reading() as db:
            if db is None:
                return []
            rows = db.execute(
                f"SELECT change_id, record FROM changes WHERE status NOT IN ({marks}) "
                f"{where}ORDER BY window_start, change_id",
                (*sorted(ENDED), *((utc_text(end), utc_text(start)) if bounded else ())),
            ).fetchall()
        found = [self._current(self._record(r[1], r[0])) for r in rows]
        return [r for r in found if not r.ended]

    def _record(self, raw: str, change_id: str) -> Registered:
        where = f"{self.path} change {change_id}"
        try:
            data = orjson.loads(raw)  # the types json.loads gives, three times as fast
        except orjson.JSONDecodeError:
            raise InputError(f"{where}: the record is not JSON") from None
        return Registered.from_json(data, where)


_PLAIN = (str, int, float, bool)


def _by_init(values: dict[str, Any]) -> Entry:
    return Entry(**values)


def _by_dict(values: dict[str, Any]) -> Entry:
    """An Entry with the fields given, all of them, set as its __init__ would set them, without
    the 23 frozen-attribute writes that init makes (a third of a second over 100,000 entries)."""
    entry: Entry = object.__new__(Entry)
    entry.__dict__.update(values)
    return entry


# The shortcut holds while Entry is a plain frozen dataclass: no __post_init__ to run, no
# __slots__ (so a __dict__); otherwise the entries are made by Entry itself.
_made = (
    _by_dict if not hasattr(Entry, "__post_init__") and "__slots__" not in vars(Entry) else _by_init
)


class _Bad(Exception):
    """The quick reading does not vouch for this entry: `Entry.from_json` reads it."""


class _Reader:
    """`Entry.from_json` for entries as the register writes them (`Entry.to_json`): the same
    checks, made only in the shapes that form takes; anything else is `_Bad` (TypeError and
    KeyError too). Window times and category lists, which every entry of a change repeats, are
    checked once per read."""

    def __init__(self) -> None:
        self._times: dict[str, datetime] = {}
        self._lists: dict[tuple[str, ...], tuple[str, ...]] = {}

    def entry(self, data: Any) -> Entry:
        if type(data) is not dict:
            raise _Bad
        change_id, stage, audience, channel = (
            data["change_id"],
            data["stage"],
            data["audience"],
            data["channel"],
        )
        recipient, fingerprint, message_id, key = (
            data["recipient"],
            data["fingerprint"],
            data["message_id"],
            data["idempotency_key"],
        )
        if not (
            type(change_id) is str
            and type(stage) is str
            and type(audience) is str
            and type(channel) is str
            and type(recipient) is str
            and type(fingerprint) is str
            and type(message_id) is str
            and type(key) is str
        ):
            raise _Bad
        change_type = data["change_type"]
        if change_type is not None and change_type not in CHANGE_TYPES:
            raise _Bad
        delivered = _instant(data["delivered_at"])
        start, end = data.get("window_start"), data.get("window_end")
        start, end = "" if start is None else start, "" if end is None else end
        if type(start) is not str or type(end) is not str or (start == "") != (end == ""):
            raise _Bad
        if start:
            self._time(start)
            self._time(end)
        resources = data["resources"]
        if type(resources) is not list:
            raise _Bad
        pairs = []
        for r in resources:
            if type(r) is not list or len(r) != 2 or type(r[0]) is not str or type(r[1]) is not str:
                raise _Bad
            pairs.append((r[0], r[1]))
        categories, impacting = data.get("categories"), data.get("impacting_categories")
        extra, receipt = data.get("extra"), data.get("receipt")
        prev, digest, mac = data.get("prev"), data.get("digest"), data.get("mac")
        return _made(
            {
                "change_id": change_id,
                "stage": stage,
                "audience": audience,
                "channel": channel,
                "recipient": recipient,
                "fingerprint": fingerprint,
                "change_type": change_type,
                "service_impacting": bool(data["service_impacting"]),
                "resources": tuple(pairs),
                "delivered_at": delivered,
                "message_id": message_id,
                "idempotency_key": key,
                "emergency": bool(data.get("emergency", False)),
                "dry_run": bool(data.get("dry_run", False)),
                "categories": () if categories is None else self._list(categories),
                "impacting_categories": () if impacting is None else self._list(impacting),
                "window_start": start,
                "window_end": end,
                # As from_json: any empty value is none.
                "extra": _plain(extra) if extra else {},
                "receipt": _plain(receipt) if receipt else {},
                "prev": "" if prev is None or prev == "" else _text(prev),
                "digest": "" if digest is None or digest == "" else _text(digest),
                "mac": "" if mac is None or mac == "" else _text(mac),
            }
        )

    def _time(self, text: str) -> datetime:
        known = self._times.get(text)
        if known is None:
            known = self._times[text] = _instant(text)
        return known

    def _list(self, value: object) -> tuple[str, ...]:
        if type(value) is not list:
            raise _Bad
        key = tuple(value)
        known = self._lists.get(key)  # TypeError when an item is a list or an object
        if known is None:
            if not all(type(v) is str for v in key):
                raise _Bad
            known = self._lists[key] = key
        return known


def _instant(value: object) -> datetime:
    if type(value) is not str or len(value) > 40:
        raise _Bad
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise _Bad from None
    if when.tzinfo is None or instant_problem(when):
        raise _Bad
    return when


def _plain(value: object) -> dict[str, str]:
    if type(value) is not dict or not all(isinstance(v, _PLAIN) for v in value.values()):
        raise _Bad
    return {str(k): str(v) for k, v in value.items()}


def _text(value: object) -> str:
    if type(value) is not str:
        raise _Bad
    return value
