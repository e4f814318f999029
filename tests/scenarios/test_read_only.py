"""Read-only means read-only (issue 23, item 5): `report`, `calendar`, `postmortem` (without
`--closed`) and every command under `--dry-run` never create or change a file: register,
ledger, lock, outbox, dotenv, Terraform report, merge request note. A register or ledger that a
command only reads and that does not exist is exit 2 naming it: a mistyped register path used
to create an empty register, and the compliance report then said "0 changes, 0 breaches".

Each command runs in a folder that holds everything it could touch (the working directory, the
ledger, the register, the outbox); the folder is snapshotted (every path, size, mtime and
content hash) before and after."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from hie_notify.cli import main
from tests.support.builders import plan, rc, write

ANNOUNCED = "2026-12-01T10:00:00+00:00"
IN_WINDOW = "2026-12-08T19:30:00+00:00"
AFTER = "2026-12-20T10:00:00+00:00"
CHANGE = """\
id: FFAPP-4458
type: planned_infra_update
purpose: Encrypt the database
downtime: 1h
rollback: Restore the snapshot
risk: low
monitoring: Grafana dashboard and alerts
approvers: [Ollie]
on_call: Leon
customers: [EoE]
window: {start: "2026-12-08T19:00:00+00:00", end: "2026-12-08T21:00:00+00:00"}
"""
DB = rc("aws_db_instance.main", ["delete", "create"], before={"a": 1}, after={"a": 2})

# Every command, with what it needs; `{P}` is the plan file.
COMMANDS: list[tuple[str, list[str], str]] = [
    ("classify", ["classify", "--plan", "{P}"], ANNOUNCED),
    ("plan", ["plan", "--plan", "{P}"], ANNOUNCED),
    ("announce", ["announce"], ANNOUNCED),
    ("gate", ["gate", "--plan", "{P}"], IN_WINDOW),
    ("earliest", ["earliest", "--plan", "{P}"], ANNOUNCED),
    ("apply-started", ["apply", "--status", "started"], IN_WINDOW),
    ("apply-succeeded", ["apply", "--status", "succeeded"], IN_WINDOW),
    ("apply-failed", ["apply", "--status", "failed", "--error", "boom"], IN_WINDOW),
    ("rollback-started", ["rollback", "--status", "started"], IN_WINDOW),
    ("rollback-succeeded", ["rollback", "--status", "succeeded"], IN_WINDOW),
    ("rollback-failed", ["rollback", "--status", "failed"], IN_WINDOW),
    ("complete", ["complete", "--verified-by", "ollie"], IN_WINDOW),
    ("cancel", ["cancel"], ANNOUNCED),
    ("preview", ["preview", "plan", "--plan", "{P}"], ANNOUNCED),
    ("preview-cancel", ["preview", "cancel"], ANNOUNCED),
    ("validate", ["validate"], ANNOUNCED),
    ("calendar", ["calendar", "--from", "2026-12-01", "--to", "2026-12-31"], ANNOUNCED),
    ("calendar-ics", ["calendar", "--format", "ics"], ANNOUNCED),
    ("remind", ["remind"], "2026-12-07T19:30:00+00:00"),
    ("remind-late", ["remind"], AFTER),
    ("digest", ["digest"], "2026-12-07T07:00:00+00:00"),
    ("update", ["update", "--message", "Halfway"], IN_WINDOW),
    ("postmortem", ["postmortem"], AFTER),
    ("postmortem-closed", ["postmortem", "--closed", "--link", "https://x.example/pm/1"], AFTER),
    ("report", ["report", "--from", "2026-12-01", "--to", "2026-12-31", "--format", "csv"], AFTER),
]
READ_ONLY = {"report", "calendar", "calendar-ics", "postmortem"}


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and folder under `root`: size, mtime and a hash of its content."""
    found: dict[str, tuple[int, int, str]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            path = Path(folder, name)
            found[str(path.relative_to(root)) + "/"] = (0, 0, "")
        for name in files:
            path = Path(folder, name)
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns, digest)
    return found


class Workspace:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root, self.capsys = root, capsys
        (root / "change.yaml").write_text(CHANGE)
        write(root / "plan.json", plan(DB))
        self.err = self.out = ""

    def __call__(
        self, args: list[str], now: str, *, dry_run: bool = False, fmt: str | None = None
    ) -> int:
        base = ["--format", fmt] if fmt else []
        base += ["--now", now, "--change", str(self.root / "change.yaml")]
        base += ["--ledger", f"file:{self.root}/state/ledger.jsonl", "--outbox", "outbox"]
        base += ["--dry-run"] if dry_run else []
        command = [a.replace("{P}", str(self.root / "plan.json")) for a in args]
        code = main([*base, *command], env={})
        captured = self.capsys.readouterr()
        self.out, self.err = captured.out, captured.err
        return code


@pytest.fixture
def ws(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    monkeypatch.chdir(tmp_path)
    return Workspace(tmp_path, capsys)


def _populate(ws: Workspace) -> None:
    """A change announced, applied and failed, so every command has something to read."""
    assert ws(["plan", "--plan", "{P}"], ANNOUNCED) == 0, ws.err
    assert ws(["apply", "--status", "started"], IN_WINDOW) == 0, ws.err
    assert ws(["apply", "--status", "failed", "--error", "boom"], IN_WINDOW) == 0, ws.err


@pytest.mark.parametrize(("label", "args", "now"), COMMANDS, ids=[c[0] for c in COMMANDS])
@pytest.mark.parametrize("state", ["populated", "empty"])
def test_dry_run_never_creates_or_changes_a_file(
    ws: Workspace, state: str, label: str, args: list[str], now: str
) -> None:
    if state == "populated":
        _populate(ws)
    before = snapshot(ws.root)
    code = ws(args, now, dry_run=True)
    assert code in (0, 1, 2), ws.err
    assert snapshot(ws.root) == before, f"{label} --dry-run (exit {code}): {ws.err[-2000:]}"


@pytest.mark.parametrize(
    ("label", "args", "now"),
    [c for c in COMMANDS if c[0] in READ_ONLY],
    ids=[c[0] for c in COMMANDS if c[0] in READ_ONLY],
)
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_commands_that_only_read_never_create_or_change_a_file(
    ws: Workspace, label: str, args: list[str], now: str, fmt: str
) -> None:
    _populate(ws)
    before = snapshot(ws.root)
    code = ws(args, now, fmt=fmt)
    assert code == 0, ws.err
    assert snapshot(ws.root) == before, f"{label}: {ws.err[-2000:]}"


# -- what a command that only reads says when what it reads is not there ----------------------


def test_a_mistyped_register_is_exit_2_naming_it_never_an_empty_all_clear(ws: Workspace) -> None:
    """`report` over a register path with a typo used to create an empty register and report
    "0 changes, 0 breaches"."""
    _populate(ws)
    before = snapshot(ws.root)
    typo = ws.root / "state" / "registre.sqlite3"
    args = ["--register", f"sqlite:{typo}", "report", "--from", "2026-12-01", "--to", "2026-12-31"]
    code = ws([*args, "--format", "csv", "--output", "r.csv"], AFTER)
    assert code == 2
    assert (
        f"  sqlite:{typo}: the change register does not exist (nothing was ever registered there, "
        "or --register / HIE_REGISTER, or the ledger it sits beside, names the wrong place); "
        "this command only reads it and creates nothing"
    ) in ws.err
    assert "0 changes" not in ws.err + ws.out
    assert snapshot(ws.root) == before  # no register, no report file
    code = ws(["--register", f"sqlite:{typo}", "calendar"], AFTER)
    assert code == 2 and f"sqlite:{typo}: the change register does not exist" in ws.err
    assert snapshot(ws.root) == before


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (["report", "--from", "2026-12-01", "--to", "2026-12-31"], "sqlite:{R}"),
        (["calendar"], "sqlite:{R}"),
        (["calendar", "--format", "ics"], "sqlite:{R}"),
        (["postmortem"], "--ledger / HIE_LEDGER: file:{L} does not exist"),
    ],
)
def test_nothing_there_yet_is_exit_2_naming_what_is_missing(
    ws: Workspace, args: list[str], missing: str
) -> None:
    expected = missing.replace("{R}", f"{ws.root}/state/register.sqlite3")
    expected = expected.replace("{L}", f"{ws.root}/state/ledger.jsonl")
    code = ws(args, AFTER)
    assert code == 2 and expected in ws.err, ws.err
    assert not (ws.root / "state").exists() and not (ws.root / "outbox").exists()


def test_a_sqlite_file_that_is_not_a_register_is_named(ws: Workspace) -> None:
    other = ws.root / "other.sqlite3"
    import sqlite3

    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    before = snapshot(ws.root)
    code = ws(["--register", f"sqlite:{other}", "calendar"], AFTER)
    assert code == 2
    assert f"sqlite:{other}: not a hie-notify change register" in ws.err
    assert snapshot(ws.root) == before


def test_postmortem_reads_the_register_it_finds_and_writes_nothing(ws: Workspace) -> None:
    _populate(ws)
    before = snapshot(ws.root)
    code = ws(["postmortem"], AFTER, fmt="json")
    assert code == 0, ws.err
    assert '"state": "opened"' in ws.out and '"overdue": true' in ws.out, ws.out
    assert snapshot(ws.root) == before
