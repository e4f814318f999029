"""The record of every notice sent: append-only, one entry per delivery."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from hie_notify.errors import InputError
from hie_notify.records import ENTRY_VERSION, Entry

__all__ = ["ENTRY_VERSION", "Entry", "Ledger", "idempotency_key", "open_ledger"]


def idempotency_key(
    change_id: str, stage: str, audience: str, fingerprint: str, channel: str = ""
) -> str:
    """Same change, stage, audience, channel and plan: the same key, so a re-run sends nothing."""
    raw = "\x1f".join((change_id, stage, audience, fingerprint, channel))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class Ledger(Protocol):
    """Where deliveries are recorded. Entries are never edited or deleted."""

    @property
    def description(self) -> str: ...

    def read(self, change_id: str) -> list[Entry]:
        """Every entry recorded for a change, oldest first."""
        ...

    def record(self, entries: list[Entry]) -> list[Entry]:
        """Append entries; returns them as stored (the ledger may set delivered_at)."""
        ...

    def lock(self) -> AbstractContextManager[None]:
        """Held while a stage checks, delivers and records, so concurrent runs deliver once."""
        ...


def open_ledger(uri: str | None, env: Mapping[str, str]) -> Ledger:
    """`file:PATH` (default `file:.hie-notify/ledger.jsonl`) or `gitlab[:mr:IID|:issue:IID]`."""
    uri = uri or "file:.hie-notify/ledger.jsonl"
    if uri.startswith("file:"):
        from hie_notify.ledger.file import FileLedger

        return FileLedger(Path(uri[len("file:") :]))
    if uri == "gitlab" or uri.startswith("gitlab:"):
        from hie_notify.ledger.gitlab import GitLabLedger

        return GitLabLedger.from_env(uri, env)
    raise InputError(
        f"--ledger / HIE_LEDGER: expected file:PATH or gitlab (or gitlab:mr:IID, "
        f"gitlab:issue:IID), got {uri!r}"
    )
