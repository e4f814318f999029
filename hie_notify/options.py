"""The global options of every command, after flags and environment variables are combined."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from hie_notify.errors import InputError
from hie_notify.limits import instant_problem

if TYPE_CHECKING:
    from hie_notify.settings import Settings


def _machine_now() -> datetime:
    return datetime.now(timezone.utc)


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
    # True where the gate is enforced outside GitLab CI (the run-task service): only real
    # deliveries count there, as in CI. Set by code, never from the environment.
    enforced: bool = False
    # The machine's clock, read only when no `--now` is given; tests inject one here (a branch
    # can set --now or HIE_NOW, not this). The default looks _machine_now up at each call.
    wall_clock: Callable[[], datetime] = field(
        default=lambda: _machine_now(), compare=False, repr=False
    )
    # The typed settings the face (cli.main, the service) built once from the environment.
    given_settings: Settings | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_raw(
        cls,
        values: Mapping[str, object],
        env: Mapping[str, str],
        wall_clock: Callable[[], datetime] | None = None,
        settings: Settings | None = None,
    ) -> Options:
        def path(key: str) -> Path | None:
            value = values.get(key)
            return Path(str(value)) if value else None

        options = cls(
            policy=path("policy"),
            change=path("change"),
            ledger=str(values["ledger"]) if values.get("ledger") else None,
            register=str(values["register"]) if values.get("register") else None,
            now=parse_now(str(values["now"])) if values.get("now") else None,
            outbox=path("outbox") or Path("hie-notify-outbox"),
            format=str(values.get("format") or "text"),
            dry_run=bool(values.get("dry_run")),
            env=env,
            given_settings=settings,
        )
        return replace(options, wall_clock=wall_clock) if wall_clock else options

    @property
    def settings(self) -> Settings:
        """The settings the face built (Options built without them, as tests do, get them
        from `env`)."""
        from hie_notify.settings import settings_or_env

        return settings_or_env(self.given_settings, self.env)

    def clock(self) -> datetime:
        """`--now` when given (the machine's clock is then never read), else the machine's time."""
        if self.now is not None:
            return self.now
        return self.wall_clock()


def parse_now(value: str) -> datetime:
    shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"--now / HIE_NOW: expected an ISO 8601 time with offset like "
            f"2026-12-01T18:00:00+00:00, got {shown}"
        ) from None
    if when.tzinfo is None:
        raise InputError(
            f"--now / HIE_NOW: {shown} has no offset (expected e.g. 2026-12-01T18:00:00+00:00)"
        )
    problem = instant_problem(when)
    if problem:
        raise InputError(f"--now / HIE_NOW: {problem}, got {shown}")
    return when
