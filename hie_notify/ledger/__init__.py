"""The record of every notice sent: append-only, one entry per delivery."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from hie_notify.errors import InputError

ENTRY_VERSION = 1


@dataclass(frozen=True)
class Entry:
    """One delivered notice."""

    change_id: str
    stage: str
    audience: str
    channel: str
    recipient: str
    fingerprint: str
    change_type: str | None
    service_impacting: bool
    resources: tuple[tuple[str, str], ...]
    delivered_at: datetime
    message_id: str
    idempotency_key: str
    emergency: bool = False
    dry_run: bool = False
    categories: tuple[str, ...] = ()
    impacting_categories: tuple[str, ...] = ()
    window_start: str = ""
    window_end: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["v"] = ENTRY_VERSION
        data["delivered_at"] = self.delivered_at.isoformat()
        data["resources"] = [list(r) for r in self.resources]
        data["categories"] = list(self.categories)
        data["impacting_categories"] = list(self.impacting_categories)
        data["extra"] = dict(self.extra)
        return data

    @classmethod
    def from_json(cls, data: object, where: str) -> Entry:
        if not isinstance(data, dict):
            raise InputError(f"{where}: expected a ledger entry object")
        try:
            delivered = datetime.fromisoformat(str(data["delivered_at"]))
            if delivered.tzinfo is None:
                raise ValueError("delivered_at has no offset")
            resources = tuple((str(a), str(b)) for a, b in data["resources"])
            return cls(
                change_id=str(data["change_id"]),
                stage=str(data["stage"]),
                audience=str(data["audience"]),
                channel=str(data["channel"]),
                recipient=str(data["recipient"]),
                fingerprint=str(data["fingerprint"]),
                change_type=None if data["change_type"] is None else str(data["change_type"]),
                service_impacting=bool(data["service_impacting"]),
                resources=resources,
                delivered_at=delivered,
                message_id=str(data["message_id"]),
                idempotency_key=str(data["idempotency_key"]),
                emergency=bool(data.get("emergency", False)),
                dry_run=bool(data.get("dry_run", False)),
                categories=tuple(str(c) for c in data.get("categories") or ()),
                impacting_categories=tuple(str(c) for c in data.get("impacting_categories") or ()),
                window_start=str(data.get("window_start") or ""),
                window_end=str(data.get("window_end") or ""),
                extra={str(k): str(v) for k, v in dict(data.get("extra") or {}).items()},
            )
        except KeyError as exc:
            raise InputError(f"{where}: ledger entry has no {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: malformed ledger entry ({exc})") from None


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
