"""The local ledger: JSON lines, appended under an exclusive lock, never rewritten."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hie_notify import safejson
from hie_notify.errors import InputError
from hie_notify.ledger import Entry


class FileLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"file:{path}"

    def read(self, change_id: str) -> list[Entry]:
        return [e for e in self._all() if e.change_id == change_id]

    def _all(self) -> list[Entry]:
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
            entries.append(Entry.from_json(raw, where))
        return entries

    def record(self, entries: list[Entry]) -> list[Entry]:
        if not entries:
            return []
        payload = b"".join(
            json.dumps(e.to_json(), sort_keys=True).encode() + b"\n" for e in entries
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
