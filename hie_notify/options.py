"""The global options of every command, after flags and environment variables are combined."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from hie_notify.errors import InputError


@dataclass(frozen=True)
class Options:
    policy: Path | None = None
    change: Path | None = None
    ledger: str | None = None
    register: str | None = None
    now: datetime | None = None
    outbox: Path = Path("hie-notify-outbox")
    format: str = "text"
    dry_run: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    # The real clock; tests inject one here (a branch can set --now or HIE_NOW, not this).
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))

    @classmethod
    def from_raw(
        cls,
        values: Mapping[str, object],
        env: Mapping[str, str],
        wall_clock: Callable[[], datetime] | None = None,
    ) -> Options:
        def path(key: str) -> Path | None:
            value = values.get(key)
            return Path(str(value)) if value else None

        return cls(
            policy=path("policy"),
            change=path("change"),
            ledger=str(values["ledger"]) if values.get("ledger") else None,
            register=str(values["register"]) if values.get("register") else None,
            now=parse_now(str(values["now"])) if values.get("now") else None,
            outbox=path("outbox") or Path("hie-notify-outbox"),
            format=str(values.get("format") or "text"),
            dry_run=bool(values.get("dry_run")),
            env=env,
            **({"wall_clock": wall_clock} if wall_clock else {}),
        )

    def clock(self) -> datetime:
        """`--now` when given, else the real time (read here, at the edge, once)."""
        return self.now or self.wall_clock()


def parse_now(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"--now / HIE_NOW: expected an ISO 8601 time with offset like "
            f"2026-12-01T18:00:00+00:00, got {value!r}"
        ) from None
    if when.tzinfo is None:
        raise InputError(
            f"--now / HIE_NOW: {value!r} has no offset (expected e.g. 2026-12-01T18:00:00+00:00)"
        )
    return when
