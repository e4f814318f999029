"""The record of every notice sent: append-only, one entry per delivery."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from hie_notify.errors import InputError
from hie_notify.ledger.seal import Verified, ledger_key
from hie_notify.records import ENTRY_VERSION, Entry
from hie_notify.switches import in_gitlab_ci

if TYPE_CHECKING:
    from hie_notify.settings import Settings

__all__ = ["ENTRY_VERSION", "Entry", "Ledger", "Verified", "idempotency_key", "open_ledger"]


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
        """Every entry recorded for a change that passes the seal check, in ledger order."""
        ...

    def verified(self, change_id: str) -> Verified:
        """The entries that count, and what the seal check found wrong (the gate blocks on
        problems; warnings name entries it ignored)."""
        ...

    def record(self, entries: list[Entry]) -> list[Entry]:
        """Append entries, sealed after the change's last one; returns them as stored (the
        ledger may move delivered_at later, never earlier)."""
        ...

    def lock(self) -> AbstractContextManager[None]:
        """Held while a stage checks, delivers and records, so concurrent runs deliver once."""
        ...


def open_ledger(
    uri: str | None,
    env: Mapping[str, str],
    *,
    signed: bool = False,
    must_exist: bool = False,
    settings: Settings | None = None,
) -> Ledger:
    """`file:PATH` (default `file:.hie-notify/ledger.jsonl`) or `gitlab[:mr:IID|:issue:IID]`.
    Entries are signed with HIE_LEDGER_KEY when it is set; `signed` (the protected policy's
    `ledger: {signed: true}`) makes the key required. `must_exist` (a command that only reads
    it): a file ledger that does not exist is an error naming it, never an empty ledger."""
    uri = uri or "file:.hie-notify/ledger.jsonl"
    key = ledger_key(env, required=signed)
    if uri.startswith("file:") and key is None and in_gitlab_ci(env):
        # In CI a file ledger is put together from the working tree, which a branch controls
        # (it can commit a ledger file): only entries signed with a key it lacks can count.
        raise InputError(
            "--ledger / HIE_LEDGER: a file ledger in GitLab CI needs HIE_LEDGER_KEY (a masked, "
            "protected CI/CD variable) so entries committed to the branch cannot count; or use "
            "--ledger gitlab"
        )
    if uri.startswith("file:"):
        from hie_notify.ledger.file import FileLedger

        path = Path(uri[len("file:") :])
        if must_exist and not path.exists():
            raise InputError(
                f"--ledger / HIE_LEDGER: {uri} does not exist (nothing was ever recorded there, "
                "or the path is wrong); this command only reads it and creates nothing"
            )
        return FileLedger(path, key)
    if uri == "gitlab" or uri.startswith("gitlab:"):
        from hie_notify.ledger.gitlab import GitLabLedger

        return GitLabLedger.from_env(uri, env, key, settings)
    raise InputError(
        f"--ledger / HIE_LEDGER: expected file:PATH or gitlab (or gitlab:mr:IID, "
        f"gitlab:issue:IID), got {uri!r}"
    )
