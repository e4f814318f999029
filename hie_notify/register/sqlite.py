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

from hie_notify.errors import InputError
from hie_notify.records import Entry
from hie_notify.register.model import ENDED, Registered, new_entries, updated, utc_text

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
CREATE TABLE IF NOT EXISTS entries (
    change_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    delivered_at TEXT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (change_id, idempotency_key)
);
"""


class SqliteRegister:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    @property
    def description(self) -> str:
        return f"sqlite:{self.path}"

    def _db(self) -> sqlite3.Connection:
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
            except (sqlite3.Error, OSError) as exc:
                raise InputError(
                    f"{self.path}: cannot open the register as an SQLite database ({exc})"
                ) from None
            self._conn = conn
        return self._conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._db()
        except sqlite3.Error as exc:
            raise InputError(f"{self.path}: cannot read the register ({exc})") from None

    def get(self, change_id: str) -> Registered | None:
        with self._reading() as db:
            row = db.execute(
                "SELECT record FROM changes WHERE change_id = ?", (change_id,)
            ).fetchone()
            if row is None:
                return None
            rows = db.execute(
                "SELECT entry FROM entries WHERE change_id = ? ORDER BY delivered_at",
                (change_id,),
            ).fetchall()
        record = self._record(row[0], change_id)
        where = f"{self.path} change {change_id}"
        entries = tuple(Entry.from_json(json.loads(r[0]), where) for r in rows)
        return replace(record, entries=entries)

    def put(self, record: Registered, entries: Sequence[Entry], now: datetime) -> Registered:
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                old = self.get(record.change_id)
                stored = updated(old, record, now)
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
            rows = db.execute(
                "SELECT change_id, record FROM changes WHERE window_start < ? AND window_end > ? "
                "ORDER BY window_start, change_id",
                (utc_text(end), utc_text(start)),
            ).fetchall()
        return [self._record(r[1], r[0]) for r in rows]

    def open_changes(self) -> list[Registered]:
        marks = ",".join("?" * len(ENDED))
        with self._reading() as db:
            rows = db.execute(
                f"SELECT change_id, record FROM changes WHERE status NOT IN ({marks}) "
                "ORDER BY window_start, change_id",
                tuple(sorted(ENDED)),
            ).fetchall()
        return [self._record(r[1], r[0]) for r in rows]

    def _record(self, raw: str, change_id: str) -> Registered:
        where = f"{self.path} change {change_id}"
        try:
            data = json.loads(raw)
        except ValueError:
            raise InputError(f"{where}: the record is not JSON") from None
        return Registered.from_json(data, where)
