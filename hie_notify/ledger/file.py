"""The local ledger: JSON lines, appended under an exclusive lock, never rewritten; each entry
sealed to the one before it (hie_notify/ledger/seal.py)."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hie_notify import safejson
from hie_notify.errors import InputError
from hie_notify.ledger.seal import Verified, seal, verify
from hie_notify.records import Entry


class FileLedger:
    def __init__(self, path: Path, key: bytes | None = None) -> None:
        self.path = path
        self.key = key
        self.description = f"file:{path}"
        self._held = 0  # lock() is re-entrant: a stage holds it around its own deliveries

    def read(self, change_id: str) -> list[Entry]:
        return self.verified(change_id).entries

    def verified(self, change_id: str) -> Verified:
        return verify([(e, w) for e, w in self._all() if e.change_id == change_id], self.key)

    def _all(self) -> list[tuple[Entry, str]]:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read the ledger ({exc.strerror})") from None
        try:
            with os.fdopen(fd, "rb") as fh:
                fcntl.flock(fh, fcntl.LOCK_SH)
                data = fh.read()
        except OSError as exc:  # a folder, a device, a read error
            raise InputError(
                f"{self.path}: cannot read the ledger ({exc.strerror}; expected a file of "
                "JSON lines)"
            ) from None
        return self._parse(data)

    def _parse(self, data: bytes) -> list[tuple[Entry, str]]:
        entries = []
        lines = data.split(b"\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{self.path}:{number}"
            if number == len(lines):
                raise InputError(
                    f"{where}: the last line has no newline (a write was cut short); the ledger "
                    "was left as it is: check it, then move it aside or repair it by hand"
                )
            try:
                raw = safejson.loads(line)
            except safejson.JsonError as exc:
                raise InputError(
                    f"{where}: not a JSON ledger entry; the ledger was left as it is: check it, "
                    f"then move it aside or repair it by hand ({exc})"
                ) from None
            entries.append((Entry.from_json(raw, where), where))
        return entries

    def record(self, entries: list[Entry]) -> list[Entry]:
        if not entries:
            return []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Chained under the write lock, after the last entry that counts for the change
            # (read through the locked descriptor: a second flock on the file would wait on us).
            with os.fdopen(os.dup(fd), "rb") as fh:
                fh.seek(0)
                data = fh.read()
            stored = self._parse(data)

            def last(change_id: str) -> str:
                mine = [(e, w) for e, w in stored if e.change_id == change_id]
                return verify(mine, self.key).last

            entries = seal(entries, last, self.key)
            payload = b"".join(
                json.dumps(e.to_json(), sort_keys=True).encode() + b"\n" for e in entries
            )
            # One write of whole lines on an O_APPEND descriptor, under the lock: readers never
            # see half an entry, and two writers never interleave.
            written = os.write(fd, payload)
            if written != len(payload):
                raise OSError(f"short write to {self.path}")
            os.fsync(fd)
        finally:
            os.close(fd)
        return entries

    @contextmanager
    def lock(self) -> Iterator[None]:
        if self._held:  # a second flock on a new descriptor would wait for ourselves
            self._held += 1
            try:
                yield
            finally:
                self._held -= 1
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._held = 1
            yield
        finally:
            self._held = 0
            os.close(fd)
