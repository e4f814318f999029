"""Where the register is kept: `sqlite:PATH` (the embedded default) or `gitlab[:PROJECT]`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from hie_notify.errors import InputError
from hie_notify.options import Options
from hie_notify.policy.model import Policy
from hie_notify.records import Entry
from hie_notify.register.model import Registered

if TYPE_CHECKING:
    from hie_notify.settings import Settings

DEFAULT_FILE = "register.sqlite3"


class Register(Protocol):
    """One record per change. Records are replaced as the change moves on; its entries (the
    deliveries recorded for it) are only ever added."""

    @property
    def description(self) -> str: ...

    def get(self, change_id: str) -> Registered | None:
        """The change with its entries, or None when it is not registered."""
        ...

    def put(self, record: Registered, entries: Sequence[Entry], now: datetime) -> Registered:
        """Store `record` over the one registered (SEQUENCE rises on a move or cancellation)
        and add the entries not registered yet; returns the record as stored, with the given
        entries (reading back every entry is `get`'s work)."""
        ...

    def between(self, start: datetime, end: datetime) -> list[Registered]:
        """Changes whose window overlaps [start, end), earliest first, without entries."""
        ...

    def between_with_entries(self, start: datetime, end: datetime) -> list[Registered]:
        """`between`, each change with its entries as `get` gives them: read in bulk where the
        backend can (SQLite: two queries), for reports over thousands of changes."""
        ...

    def open_changes(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[Registered]:
        """Changes that have not ended (status not done, rolled back, failed or cancelled);
        with `start` and `end`, only those whose window overlaps [start, end) (read by the
        range, not by loading every open change the register ever had)."""
        ...


def default_uri(ledger: str | None) -> str | None:
    """The register next to a file ledger (`.hie-notify/register.sqlite3` by default). With a
    GitLab ledger there is none unless asked for: issues are created only on purpose."""
    ledger = ledger or "file:.hie-notify/ledger.jsonl"
    if ledger.startswith("file:"):
        return "sqlite:" + str(Path(ledger[len("file:") :]).parent / DEFAULT_FILE)
    return None


def project_of(env: Mapping[str, str]) -> str:
    """The project a pipeline registers its changes as: GitLab's CI_PROJECT_PATH (empty outside
    CI). A register shared by an organisation's projects tells them apart by it."""
    return env.get("CI_PROJECT_PATH", "").strip()


def open_register(
    uri: str | None,
    env: Mapping[str, str],
    *,
    ledger: str | None = None,
    time_zone: str = "UTC",
    mask: Callable[[str], str] = str,
    read_only: bool = False,
    must_exist: bool = False,
    settings: Settings | None = None,
) -> Register | None:
    """`sqlite:PATH`, `gitlab` (project HIE_REGISTER_PROJECT, else CI_PROJECT_ID),
    `gitlab:PROJECT`, or `none`; unset: next to a file ledger (see `default_uri`). A SQLite
    register is created by the first write only; `read_only` refuses writes, `must_exist` makes
    one that does not exist an error naming it."""
    uri = uri if uri else default_uri(ledger)
    if uri is None or uri == "none":
        return None
    if uri.startswith("sqlite:") and len(uri) > len("sqlite:"):
        from hie_notify.register.sqlite import SqliteRegister

        path = Path(uri[len("sqlite:") :])
        return SqliteRegister(
            path, read_only=read_only, must_exist=must_exist, project=project_of(env)
        )
    if uri == "gitlab" or (uri.startswith("gitlab:") and len(uri) > len("gitlab:")):
        from hie_notify.register.gitlab import GitLabRegister

        project = uri[len("gitlab:") :] if uri != "gitlab" else None
        return GitLabRegister.from_env(
            env,
            project,
            time_zone=time_zone,
            mask=mask,
            writer=project_of(env),
            settings=settings,
        )
    raise InputError(
        f"--register / HIE_REGISTER: expected sqlite:PATH, gitlab, gitlab:PROJECT or none, "
        f"got {uri!r}"
    )


def register_of(
    options: Options, policy: Policy, *, required_by: str | None = None, only_reads: bool = False
) -> Register | None:
    """The register `options` name (`--register`, else beside a file ledger), in the policy's
    zone, with every secret in the environment masked in what it stores. With `required_by` (a
    command's name), InputError when there is none. Under --dry-run it is only read; for a
    command that `only_reads`, one that does not exist is an error naming it."""
    from hie_notify.masking import Masker

    register = open_register(
        options.register,
        options.env,
        ledger=options.ledger,
        time_zone=policy.calendar.time_zone,
        mask=Masker.from_env(options.env),
        read_only=options.dry_run or only_reads,
        must_exist=only_reads,
        settings=options.settings,
    )
    if register is None and required_by:
        raise InputError(
            f"{required_by} needs the change register: give --register sqlite:PATH or gitlab "
            "(HIE_REGISTER)"
        )
    return register
