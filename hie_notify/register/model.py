"""A registered change, as plain data every layer can read (reports and integrations too).

Nothing here does I/O or reads a clock; `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from hie_notify.errors import InputError
from hie_notify.lifecycle import LIFECYCLE, TERMINAL, Lifecycle, State, replay
from hie_notify.records import Entry

# 2: the status is the change's lifecycle state, replayed from its entries when it is stored.
RECORD_VERSION = 2
STATUSES = tuple(s.value for s in State)
# A change whose status is one of these has ended: nothing more is expected of it.
ENDED = frozenset(s.value for s in TERMINAL)
# The statuses a record of version 1 could hold (the name of its last stage's kind, whatever
# came before it: "done" after a rollback too), and the nearest state: what it reads as until
# its entries say better (see `settled`).
LEGACY_STATUSES = {
    "announced": State.ANNOUNCED.value,
    "in progress": State.IN_PROGRESS.value,
    "done": State.COMPLETED.value,
    "rolled back": State.ROLLED_BACK.value,
    "failed": State.FAILED.value,
    "cancelled": State.CANCELLED.value,
}


def utc(when: datetime) -> datetime:
    return when.astimezone(timezone.utc)


def utc_text(when: datetime | None) -> str:
    """A fixed-width UTC form that sorts as text (SQLite ranges, GitLab markers)."""
    return "" if when is None else utc(when).strftime("%Y-%m-%dT%H:%M:%S+00:00")


@dataclass(frozen=True)
class Registered:
    """One change in the register.

    `change` is the change record as its YAML would say it (JSON types). `sequence` rises each
    time the window moves or the change is cancelled, so calendar clients replace the event.
    """

    change_id: str
    status: str
    change_type: str | None
    purpose: str
    window_start: datetime | None
    window_end: datetime | None
    customers: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()  # HCP workspaces / GitLab environments it touches
    audiences: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    service_impacting: bool = False
    summary: Mapping[str, int] = field(default_factory=dict)
    fingerprint: str = ""
    change: Mapping[str, Any] = field(default_factory=dict)
    sequence: int = 0
    updated_at: datetime = datetime(1970, 1, 1, tzinfo=timezone.utc)
    entries: tuple[Entry, ...] = ()  # its ledger: every delivery and transition recorded
    version: int = RECORD_VERSION  # as read: below 2, `status` is only a guess (`settled`)
    # The GitLab project whose pipeline registered it (CI_PROJECT_PATH, e.g. "team-a/infra"):
    # one register may be shared by an organisation's projects. Empty: not said (outside CI,
    # or a record written before records carried it).
    project: str = ""

    @property
    def legacy(self) -> bool:
        """Written before the status was the lifecycle state: read it from the entries."""
        return self.version < 2

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def overlaps(self, start: datetime, end: datetime) -> bool:
        if self.window_start is None or self.window_end is None:
            return False
        return self.window_start < end and self.window_end > start

    def to_json(self, *, with_entries: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": RECORD_VERSION,
            "change_id": self.change_id,
            "status": self.status,
            "change_type": self.change_type,
            "purpose": self.purpose,
            "window_start": utc_text(self.window_start) or None,
            "window_end": utc_text(self.window_end) or None,
            "customers": list(self.customers),
            "environments": list(self.environments),
            "audiences": list(self.audiences),
            "categories": list(self.categories),
            "service_impacting": self.service_impacting,
            "summary": dict(self.summary),
            "fingerprint": self.fingerprint,
            "change": dict(self.change),
            "sequence": self.sequence,
            "updated_at": utc_text(self.updated_at),
            "project": self.project,
        }
        if with_entries:
            data["entries"] = [e.to_json() for e in self.entries]
        return data

    @classmethod
    def from_json(cls, data: object, where: str) -> Registered:
        if not isinstance(data, dict):
            raise InputError(f"{where}: expected a register record object")
        try:
            status = str(data["status"])
            version = int(data.get("v") or 1)
            known = STATUSES if version >= 2 else tuple(LEGACY_STATUSES)
            if status not in known:
                raise ValueError(f"status {status!r} is not one of {', '.join(known)}")
            status = status if version >= 2 else LEGACY_STATUSES[status]
            change = data.get("change") or {}
            if not isinstance(change, dict):
                raise ValueError("change is not an object")
            return cls(
                change_id=str(data["change_id"]),
                status=status,
                change_type=None if data.get("change_type") is None else str(data["change_type"]),
                purpose=str(data.get("purpose") or ""),
                window_start=_time(data.get("window_start")),
                window_end=_time(data.get("window_end")),
                customers=_strings(data.get("customers")),
                environments=_strings(data.get("environments")),
                audiences=_strings(data.get("audiences")),
                categories=_strings(data.get("categories")),
                service_impacting=bool(data.get("service_impacting", False)),
                summary={str(k): int(v) for k, v in dict(data.get("summary") or {}).items()},
                fingerprint=str(data.get("fingerprint") or ""),
                change=change,
                sequence=int(data.get("sequence") or 0),
                updated_at=_time(data.get("updated_at")) or cls.updated_at,
                entries=tuple(
                    Entry.from_json(e, f"{where} entry {i}")
                    for i, e in enumerate(data.get("entries") or ())
                ),
                version=version,
                project=str(data.get("project") or ""),
            )
        except KeyError as exc:
            raise InputError(f"{where}: register record has no {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: malformed register record ({exc})") from None


def _time(value: object) -> datetime | None:
    if value in (None, ""):
        return None
    when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"{value!r} has no offset")
    return utc(when)


def _strings(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return tuple(str(v) for v in value)


def lifecycle_of(entries: Iterable[Entry]) -> Lifecycle:
    """The lifecycle a change's registered entries record (its ledger's copy)."""
    return replay(entries)


def status_of(entries: Iterable[Entry], otherwise: str) -> str:
    """The change's lifecycle state replayed from its entries; `otherwise` when they record no
    transition (a digest's record, or a change registered before any)."""
    life = replay(entries)
    return life.state.value if life.records else otherwise


def settled(record: Registered) -> Registered:
    """`record` with its status replayed from its entries when it was written before the status
    was the lifecycle state (a record since is stored with the state its entries replay to)."""
    if not record.legacy or not record.entries:
        return record
    return replace(record, status=status_of(record.entries, record.status))


def updated(
    old: Registered | None, new: Registered, now: datetime, entries: Iterable[Entry] = ()
) -> Registered:
    """`new` as it should be stored over `old`, with `entries` added: its status is the
    lifecycle state its entries (the old ones, `new`'s and `entries`) replay to (the stored
    one when none of them records a transition); the SEQUENCE
    rises when the window moves or the change is cancelled; entries already registered are
    kept."""
    known = merge_entries(old.entries if old else (), (*new.entries, *entries))
    status = status_of(known, new.status)
    if old is not None and not old.legacy and not any(e.stage == LIFECYCLE for e in known):
        # No transition recorded among them (a register read without its entries, given a
        # reminder's delivery): the state stored from the transitions stands.
        status = old.status
    new = replace(new, status=status, version=RECORD_VERSION)
    if old is not None and not new.project:
        new = replace(new, project=old.project)  # written outside CI: it stays its project's
    if old is None:
        return replace(new, sequence=0, updated_at=utc(now))
    sequence = old.sequence
    moved = (old.window_start, old.window_end) != (new.window_start, new.window_end)
    if moved or (new.status == "cancelled" and old.status != "cancelled"):
        sequence += 1
    return replace(
        new,
        sequence=sequence,
        updated_at=utc(now),
        entries=merge_entries(old.entries, new.entries),
    )


def merge_entries(old: Iterable[Entry], new: Iterable[Entry]) -> tuple[Entry, ...]:
    """Entries of both, each idempotency key once, oldest first."""
    seen: dict[str, Entry] = {}
    for e in (*old, *new):
        seen.setdefault(e.idempotency_key, e)
    return tuple(sorted(seen.values(), key=lambda e: e.delivered_at))


def new_entries(known: Iterable[Entry], entries: Iterable[Entry]) -> list[Entry]:
    """The entries not registered yet (by idempotency key), in order."""
    keys = {e.idempotency_key for e in known}
    out = []
    for e in entries:
        if e.idempotency_key not in keys:
            keys.add(e.idempotency_key)
            out.append(e)
    return out
