"""Hardening: bad input of every kind, to every file the tool reads, is exit 2 with the file and
the field named, and nothing is sent or recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hie_notify.cli import main
from tests.support.builders import plan, rc, write

GOOD_CHANGE = {
    "id": "FFAPP-1",
    "purpose": "Resize",
    "downtime": "0",
    "rollback": "Revert",
    "risk": "low",
    "monitoring": "Grafana dashboard and alerts",
    "approvers": ["Ollie"],
    "on_call": "Leon",
    "window": {"start": "2026-12-08T10:00:00+00:00", "end": "2026-12-08T12:00:00+00:00"},
}
COMMANDS = ("classify", "plan", "gate", "earliest", "preview")


def _run(
    tmp: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    *,
    policy: Path | None,
    change: Path,
    plan_file: Path,
) -> tuple[int, str]:
    args = [
        "--change",
        str(change),
        "--ledger",
        f"file:{tmp}/ledger.jsonl",
        "--outbox",
        str(tmp / "outbox"),
        "--now",
        "2026-12-01T10:00:00+00:00",
    ]
    if policy is not None:
        args += ["--policy", str(policy)]
    args += [command] + (["plan"] if command == "preview" else []) + ["--plan", str(plan_file)]
    if command == "plan":
        args += ["--terraform-report", str(tmp / "r.json")]
    if command == "gate":
        args += ["--dotenv", str(tmp / "g.env")]
    code = main(args, env={})
    out = capsys.readouterr()
    return code, out.err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    change = tmp_path / "change.yaml"
    change.write_text(yaml.safe_dump(GOOD_CHANGE))
    return {
        "change": change,
        "plan": write(
            tmp_path / "plan.json",
            plan(rc("aws_route53_record.a", ["update"], before={"ttl": 1}, after={"ttl": 2})),
        ),
    }


def _nothing_happened(tmp: Path) -> None:
    assert not (tmp / "outbox").exists()
    assert not (tmp / "ledger.jsonl").exists()


BAD_POLICIES = [
    ("not yaml", b"change_types: [unclosed\n", "not valid YAML at line"),
    ("a list", b"- a\n- b\n", "expected a mapping of keys at the top, got list"),
    ("wrong type", b"sla: {uptime_percent: [99]}\n", "sla.uptime_percent: expected a valid number"),
    ("unknown key", b"slaa: {}\n", "slaa: unknown key"),
    ("bad value", b"calendar: {time_zone: Mars/Olympus}\n", "calendar.time_zone: expected an IANA"),
    ("huge", b"a: " + b"x" * (6 * 1024 * 1024) + b"\n", "is too large (at most 5242880)"),
    ("binary", b"\x00\xff\xfe", "not UTF-8 text"),
]


BAD_CHANGES = [
    ("not yaml", "id: [\n", "not valid YAML"),
    ("unknown key", yaml.safe_dump({**GOOD_CHANGE, "windw": 1}), "windw: unknown key"),
    (
        "wrong type",
        yaml.safe_dump({**GOOD_CHANGE, "customers": "EoE"}),
        "customers: expected a valid list",
    ),
    (
        "impossible window",
        yaml.safe_dump(
            {
                **GOOD_CHANGE,
                "window": {
                    "start": "2026-12-08T12:00:00+00:00",
                    "end": "2026-12-08T10:00:00+00:00",
                },
            }
        ),
        "window: end (2026-12-08T10:00:00+00:00) must be after start",
    ),
    (
        "missing local time",
        yaml.safe_dump(
            {
                **GOOD_CHANGE,
                "window": {
                    "start": "2027-03-28T01:15:00",
                    "end": "2027-03-28T03:00:00",
                    "zone": "Europe/London",
                },
            }
        ),
        "window: start: 2027-03-28 01:15 does not exist in Europe/London",
    ),
    ("bad key", yaml.safe_dump({**GOOD_CHANGE, "id": "jira 1"}), "id: expected a Jira key"),
]


BAD_PLANS = [
    ("not json", b"Plan: 1 to add", "not JSON (a text file; is this the `terraform show -json`"),
    ("truncated", b'{"format_version": "1.2", "resource_changes": [{"address": "a', "truncated"),
    (
        "future format",
        b'{"format_version": "2.0", "resource_changes": []}',
        "format_version: unsupported plan format '2.0'",
    ),
    ("state not plan", b'{"format_version": "1.0", "values": {}}', "this is a state file"),
    (
        "wrong type",
        b'{"format_version": "1.2", "resource_changes": {"a": 1}}',
        "resource_changes: expected a list, got an object",
    ),
    (
        "bad actions",
        b'{"format_version": "1.2", "resource_changes": [{"address": "a.b", '
        b'"type": "a", "change": {"actions": ["explode"]}}]}',
        "resource_changes[0].change.actions: unknown action list",
    ),
]


CASES = (
    [("policy", label, content, expected) for label, content, expected in BAD_POLICIES]
    + [("change", label, content.encode(), expected) for label, content, expected in BAD_CHANGES]
    + [("plan", label, content, expected) for label, content, expected in BAD_PLANS]
)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("target", "label", "content", "expected"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_bad_input(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, Path],
    command: str,
    target: str,
    label: str,
    content: bytes,
    expected: str,
) -> None:
    """Each bad file, to each command that reads it: exit 2, file and field named, nothing
    sent or recorded."""
    path = tmp_path / "policy.yaml" if target == "policy" else files[target]
    path.write_bytes(content)
    code, err = _run(
        tmp_path,
        capsys,
        command,
        policy=path if target == "policy" else None,
        change=files["change"],
        plan_file=files["plan"],
    )
    assert code == 2
    assert str(path) in err and expected in err
    _nothing_happened(tmp_path)


def test_huge_plan_is_refused_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    with files["plan"].open("wb") as fh:  # sparse: no gigabyte written
        fh.truncate((1 << 30) + 1)
    code, err = _run(
        tmp_path, capsys, "classify", policy=None, change=files["change"], plan_file=files["plan"]
    )
    assert code == 2 and "is too large for a plan" in err


def test_corrupt_ledger_stops_every_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    (tmp_path / "ledger.jsonl").write_text('{"change_id": "FFAPP-1", "stage": "announce"}\n')
    for command in ("plan", "gate"):
        code, err = _run(
            tmp_path, capsys, command, policy=None, change=files["change"], plan_file=files["plan"]
        )
        assert code == 2 and "ledger.jsonl:1: ledger entry has no" in err
    assert not (tmp_path / "outbox").exists()


def test_a_folder_where_a_file_should_be(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    folder = tmp_path / "change-dir"
    folder.mkdir()
    code, err = _run(
        tmp_path, capsys, "classify", policy=None, change=folder, plan_file=files["plan"]
    )
    assert code == 2 and f"{folder}: cannot read" in err
    code, err = _run(
        tmp_path, capsys, "classify", policy=None, change=files["change"], plan_file=folder
    )
    assert code == 2 and f"{folder}: cannot read" in err
