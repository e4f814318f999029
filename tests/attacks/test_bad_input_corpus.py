"""Issue 13's findings, one regression case each: every one crashed with a traceback, hung or ran
out of memory before, and is now a clean exit 2 whose message names the file and the field.

Cases that hung or took gigabytes run in a child process with a time limit and an address-space
limit, so a regression fails the test instead of stalling the suite or the machine.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hie_notify import safejson
from hie_notify.cli import main
from tests.support.builders import plan, rc, write
from tests.support.cli_flow import Flow

NOW = "2026-12-01T10:00:00+00:00"
GOOD = {
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
DNS = rc("aws_route53_record.a", ["update"], before={"ttl": 1}, after={"ttl": 2})
DB = rc("aws_db_instance.main", ["delete", "create"])
TOKEN = "xoxb-123456789012-123456789012-abcdefABCDEF1234"
CHANGE_WINDOW = "window:\n  start: {start}\n  end: 2026-12-08T12:00:00+00:00\n"
BOMB = "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)
BOMB = 'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\n' + BOMB


def _files(tmp: Path, files: dict[str, Any]) -> None:
    for name, content in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            content = json.dumps(content) if name.endswith(".json") else yaml.safe_dump(content)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def _args(tmp: Path, files: dict[str, Any], command: list[str]) -> list[str]:
    args = ["--ledger", f"file:{tmp}/ledger.jsonl", "--outbox", str(tmp / "outbox")]
    if "--now" not in command:
        args += ["--now", NOW]
    if "change.yaml" in files:
        args += ["--change", str(tmp / "change.yaml")]
    if "policy.yaml" in files:
        args += ["--policy", str(tmp / "policy.yaml")]
    return args + [part.replace("{tmp}", str(tmp)) for part in command]


CLASSIFY = ["classify", "--plan", "{tmp}/plan.json"]
GATE = ["gate", "--plan", "{tmp}/plan.json"]
EARLIEST = ["earliest", "--plan", "{tmp}/plan.json"]
PREVIEW = ["preview", "announce", "--plan", "{tmp}/plan.json"]


def _template(text: str) -> dict[str, Any]:
    return {"templates": {"announce.internal.j2": text}}


def _with_actions(actions: Any, where: str = "resource") -> dict[str, Any]:
    doc = plan(dict(DNS))
    if where == "resource":
        doc["resource_changes"][0] = {**DNS, "change": {**DNS["change"], "actions": actions}}
    else:
        doc["output_changes"] = {"endpoint": {"actions": actions}}
    return doc


def _ledger_line(field: str, value: str) -> str:
    """A ledger entry shaped as `plan` writes it, with one field damaged."""
    entry = {
        "v": 1,
        "change_id": "FFAPP-1",
        "stage": "announce",
        "audience": "slack:#devops",
        "channel": "slack",
        "recipient": "#devops",
        "fingerprint": "sha256:0",
        "change_type": "planned_infra_update",
        "service_impacting": False,
        "resources": [["aws_route53_record.a", "update"]],
        "delivered_at": "2026-11-20T10:00:00+00:00",
        "message_id": "m",
        "idempotency_key": "k",
        "window_start": "2026-12-08T10:00:00+00:00",
        "window_end": "2026-12-08T12:00:00+00:00",
    }
    entry[field] = value
    return json.dumps(entry) + "\n"


# (id, files, command, what the message must say)
IN_PROCESS: list[tuple[str, dict[str, Any], list[str], str]] = [
    (
        "yaml timestamp 2026-02-30 in a change record",
        {
            "plan.json": plan(DNS),
            "change.yaml": "id: FFAPP-1\npurpose: x\n"
            + CHANGE_WINDOW.format(start="2026-02-30 10:00:00"),
        },
        GATE,
        "change.yaml: not valid YAML at line 4, column 10: not a date and time that exists",
    ),
    (
        "yaml timestamp with offset +99:00",
        {
            "plan.json": plan(DNS),
            "change.yaml": "id: FFAPP-1\npurpose: x\n"
            + CHANGE_WINDOW.format(start="2026-12-08T10:00:00+99:00"),
        },
        GATE,
        "change.yaml: not valid YAML at line 4, column 10: not a date and time that exists",
    ),
    (
        "yaml timestamp at hour 25",
        {
            "plan.json": plan(DNS),
            "change.yaml": "id: FFAPP-1\npurpose: x\n"
            + CHANGE_WINDOW.format(start="2026-12-08 25:00:00"),
        },
        GATE,
        "hour must be in 0..23",
    ),
    (
        "yaml timestamp that does not exist in a policy",
        {"plan.json": plan(DNS), "policy.yaml": "organisation: 2026-02-30\n"},
        CLASSIFY,
        "policy.yaml: not valid YAML at line 1, column 15: not a date and time that exists",
    ),
    (
        "yaml integer of 5,000 digits",
        {"plan.json": plan(DNS), "policy.yaml": "sla: {uptime_percent: " + "9" * 5000 + "}\n"},
        CLASSIFY,
        "policy.yaml: not valid YAML at line 1, column 23: not a usable integer",
    ),
    (
        "json integer of 5,000 digits in a plan",
        {"plan.json": '{"format_version": "1.2", "resource_changes": [], "x": ' + "9" * 5000 + "}"},
        CLASSIFY,
        "plan.json: not valid JSON at line 1, column",
    ),
    (
        "plan nested 1,100 levels",
        {
            "plan.json": '{"format_version": "1.2", "resource_changes": [], "x": '
            + "[" * 1100
            + "]" * 1100
            + "}"
        },
        CLASSIFY,
        "plan.json: not valid JSON at line 1, column",
    ),
    (
        "plan attribute values nested 1,010 levels (compared while reading)",
        {
            "plan.json": json.dumps(
                plan(rc("aws_s3_bucket.b", ["update"], before={"p": "B"}, after={"p": "A"}))
            )
            .replace('"B"', "[" * 1010 + "1" + "]" * 1010)
            .replace('"A"', "[" * 1010 + "2" + "]" * 1010)
        },
        CLASSIFY,
        "plan.json: attribute values are nested too deeply",
    ),
    (
        "yaml nested 2,000 levels",
        {"plan.json": plan(DNS), "policy.yaml": "a: " + "[" * 2000 + "]" * 2000 + "\n"},
        CLASSIFY,
        "policy.yaml: not valid YAML at line 1, column 67: nested more than 64 levels deep",
    ),
    (
        "ledger line nested 100,000 levels",
        {
            "plan.json": plan(DNS),
            "change.yaml": GOOD,
            "ledger.jsonl": '{"z": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
        },
        GATE,
        "ledger.jsonl:1: not a JSON ledger entry",
    ),
    (
        "actions [{}] in resource_changes",
        {"plan.json": _with_actions([{}])},
        CLASSIFY,
        "resource_changes[0].change.actions: expected a list of action names",
    ),
    (
        'actions [["create"]] in resource_changes',
        {"plan.json": _with_actions([["create"]])},
        CLASSIFY,
        "resource_changes[0].change.actions: expected a list of action names",
    ),
    (
        "actions [{}] in output_changes",
        {"plan.json": _with_actions([{}], "output")},
        CLASSIFY,
        "output_changes.endpoint.actions: expected a list of action names",
    ),
    (
        "downtime of 10^30 days",
        {"plan.json": plan(DNS), "change.yaml": {**GOOD, "downtime": "9" * 30 + "d"}},
        GATE,
        "change.yaml: downtime: expected a duration like 30m",
    ),
    (
        "downtime over a year",
        {"plan.json": plan(DNS), "change.yaml": {**GOOD, "downtime": "400d"}},
        GATE,
        "change.yaml: downtime: expected a duration of at most 366 days",
    ),
    (
        "notice of 10^30 hours",
        {
            "plan.json": plan(DNS),
            "change.yaml": GOOD,
            "policy.yaml": {
                "change_types": {
                    "planned_infra_update": {
                        "internal_notice": {
                            "minimum": "9" * 30 + "h",
                            "recommended": "9" * 30 + "h",
                        }
                    }
                }
            },
        },
        EARLIEST,
        "policy.yaml: change_types.planned_infra_update.internal_notice.minimum: expected a "
        "notice period",
    ),
    (
        "notice of 9,000 hours",
        {
            "plan.json": plan(DNS),
            "change.yaml": GOOD,
            "policy.yaml": {
                "change_types": {
                    "planned_infra_update": {
                        "internal_notice": {"minimum": "9000h", "recommended": "9000h"}
                    }
                }
            },
        },
        EARLIEST,
        "internal_notice.minimum: expected a notice of at most 366 days, got 9000h",
    ),
    (
        "working_hours.days: [] (the business-day search never ended)",
        {
            "plan.json": plan(DB),
            "change.yaml": {**GOOD, "customers": ["EoE"]},
            "policy.yaml": "calendar: {working_hours: {days: []}}\n",
        },
        EARLIEST,
        "policy.yaml: calendar.working_hours.days: List should have at least 1 item",
    ),
    (
        "ledger window_start without an offset",
        {
            "plan.json": plan(DNS),
            "change.yaml": GOOD,
            "ledger.jsonl": _ledger_line("window_start", "2026-12-08T10:00"),
        },
        GATE,
        "ledger.jsonl:1: window_start: has no offset",
    ),
    (
        "ledger with an unknown change type",
        {
            "plan.json": plan(DNS),
            "change.yaml": GOOD,
            "ledger.jsonl": _ledger_line("change_type", "bogus"),
        },
        GATE,
        "ledger.jsonl:1: change_type: expected one of emergency_fix",
    ),
    (
        "ledger path that is a folder",
        {"plan.json": plan(DNS), "change.yaml": GOOD, "ledger.jsonl/inside": "x"},
        GATE,
        "ledger.jsonl: cannot read the ledger (Is a directory",
    ),
    (
        "--now in year 1",
        {"plan.json": plan(DNS), "change.yaml": GOOD},
        ["--now", "0001-01-01T00:00:00+00:00", *GATE],
        "--now / HIE_NOW: expected a time from 1970 to 2999",
    ),
    (
        "--now in year 9999",
        {"plan.json": plan(DNS), "change.yaml": GOOD},
        ["--now", "9999-12-31T23:00:00+00:00", *GATE],
        "--now / HIE_NOW: expected a time from 1970 to 2999",
    ),
    (
        "window in year 9999",
        {
            "plan.json": plan(DNS),
            "change.yaml": {
                **GOOD,
                "window": {
                    "start": "9999-12-31T20:00:00+00:00",
                    "end": "9999-12-31T23:00:00+00:00",
                },
            },
        },
        GATE,
        "change.yaml: window.start: expected a time from 1970 to 2999",
    ),
    (
        "window in year 1 with a zone",
        {
            "plan.json": plan(DNS),
            "change.yaml": {
                **GOOD,
                "window": {
                    "start": "0001-01-01T00:30:00",
                    "end": "0001-01-01T03:00:00",
                    "zone": "Europe/London",
                },
            },
        },
        GATE,
        "change.yaml: window.start: expected a time from 1970 to 2999",
    ),
    (
        "template with range(10**12)",
        {
            "plan.json": plan(DNS),
            "change.yaml": GOOD,
            "policy.yaml": _template("{% for i in range(10**12) %}x{% endfor %}"),
        },
        PREVIEW,
        "policy templates announce.internal.j2, line 1: SecurityError: a number over 100000",
    ),
    (
        "template macro that calls itself",
        {
            "plan.json": plan(DNS),
            "change.yaml": GOOD,
            "policy.yaml": _template("{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}"),
        },
        PREVIEW,
        "announce.internal.j2, line 1: SecurityError: macros call each other more than 40 deep",
    ),
    (
        "template with nested loops of 10^8 iterations",
        {
            "plan.json": plan(DNS),
            "change.yaml": GOOD,
            "policy.yaml": _template(
                "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}"
            ),
        },
        PREVIEW,
        "announce.internal.j2, line 1: SecurityError: the template does more than 200000 loop",
    ),
    (
        "template writing 10 MB of literal text",
        {
            "plan.json": plan(DNS),
            "change.yaml": GOOD,
            "policy.yaml": _template("{% for a in range(10000) %}" + "y" * 1000 + "{% endfor %}"),
        },
        PREVIEW,
        "announce.internal.j2, line 1: SecurityError: the template writes more than 1000000",
    ),
    (
        "template with a format width of 10^9",
        {
            "plan.json": plan(DNS),
            "change.yaml": GOOD,
            "policy.yaml": _template("{{ '{:>999999999}'.format(1) }}"),
        },
        PREVIEW,
        "announce.internal.j2, line 1: SecurityError: a format width of six digits",
    ),
    (
        "template replace that multiplies its text",
        {
            "plan.json": plan(DNS),
            "change.yaml": GOOD,
            "policy.yaml": _template("{{ ('x' * 1000) | replace('x', 'y' * 100000) }}"),
        },
        PREVIEW,
        "announce.internal.j2, line 1: SecurityError: a replace in a template would make over",
    ),
    (
        "justification of one zero-width space",
        {
            "plan.json": plan(DNS),
            "change.yaml": {**GOOD, "type": "emergency_fix", "justification": "\u200b"},
        },
        GATE,
        "change.yaml: justification: expected text; this holds only spaces or invisible",
    ),
    (
        "Jira key followed by a newline",
        {"plan.json": plan(DNS), "change.yaml": {**GOOD, "id": "FFAPP-7001\n"}},
        ["plan", "--plan", "{tmp}/plan.json", "--terraform-report", "{tmp}/r.json"],
        "change.yaml: id: expected a Jira key like FFAPP-4458, got 'FFAPP-7001\\n'",
    ),
    (
        "plan that is a device",
        {},
        ["classify", "--plan", "/dev/null"],
        "/dev/null: cannot read (a device or pipe, not a regular file",
    ),
]


@pytest.mark.parametrize(
    ("files", "command", "expected"),
    [pytest.param(f, c, e, id=i) for i, f, c, e in IN_PROCESS],
)
def test_bad_input_is_a_clean_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, Any],
    command: list[str],
    expected: str,
) -> None:
    _files(tmp_path, files)
    code = main(_args(tmp_path, files, command), env={})
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert code == 2, out.err
    assert expected in out.err
    assert not (tmp_path / "outbox").exists() or command[0] in ("preview",)


def test_a_business_day_search_that_finds_none_in_a_year_is_a_policy_error() -> None:
    """The search used to run until the date overflowed; the policy model now refuses an empty
    `days`, and the calendar still bounds the search for any calendar given to it."""
    from datetime import date, datetime, timezone

    from hie_notify.calendar import BusinessCalendar
    from hie_notify.durations import NoticePeriod
    from hie_notify.errors import InputError

    calendar = BusinessCalendar("Europe/London", work_days=())
    with pytest.raises(InputError, match="no business day in the 366 days after Tue 1 Dec 2026"):
        calendar.next_business_day(date(2026, 12, 1))
    with pytest.raises(InputError, match=r"calendar\.working_hours\.days"):
        calendar.earliest_start(
            datetime(2026, 12, 1, 10, tzinfo=timezone.utc),
            NoticePeriod("business_days", business_days=3),
        )


def test_a_gitlab_ledger_marker_that_inflates_to_gigabytes_is_refused() -> None:
    """Not in the issue's list, found while bounding every reader: a ledger note's marker is
    zlib data, and 1 GB of zeros compresses to about 1 MB."""
    import base64
    import zlib

    from hie_notify.errors import InputError
    from hie_notify.ledger.gitlab import MARKER, decode_marker

    bomb = zlib.compressobj(9)
    blob = b"".join(bomb.compress(b"\0" * (1 << 24)) for _ in range(64)) + bomb.flush()
    body = f"<!-- {MARKER}{base64.b64encode(blob).decode()} -->"
    with pytest.raises(InputError, match="the ledger marker cannot be read"):
        decode_marker(body, "note 7")


def test_nesting_within_the_decoder_limit_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1,000 levels in a key the tool does not use: read (orjson) or refused (the standard
    library's recursion limit), never a traceback."""
    doc = json.dumps(plan(DNS)).replace(
        '"resource_changes"', '"x": ' + "[" * 1000 + "]" * 1000 + ', "resource_changes"'
    )
    (tmp_path / "plan.json").write_text(doc)
    code = main(["classify", "--plan", str(tmp_path / "plan.json")], env={})
    out = capsys.readouterr()
    assert code in (0, 2) and "Traceback" not in out.err
    if safejson.backend() == "orjson":
        assert code == 0


def test_a_secret_in_a_ledger_field_is_never_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real ledger written by `plan`, then its window_start replaced by the Slack token: the
    gate used to print `ValueError: Invalid isoformat string: 'xoxb-…'`."""
    flow = Flow(tmp_path, capsys, DNS)
    code, _ = flow("plan", "--plan", str(flow.plan))
    assert code == 0, flow.err
    ledger = tmp_path / "ledger.jsonl"
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert lines and all(line["window_start"] for line in lines)
    ledger.write_text("".join(json.dumps({**e, "window_start": TOKEN}) + "\n" for e in lines))
    for debug in ([], ["--debug"]):
        flow.env = {"SLACK_BOT_TOKEN": TOKEN}
        code, doc = flow(*debug, "gate", "--plan", str(flow.plan))
        printed = flow.err + json.dumps(doc)
        assert code == 2
        assert TOKEN not in printed and "Traceback" not in printed
        assert "ledger.jsonl:1: window_start: expected an ISO 8601 time with offset" in printed


def test_an_unexpected_error_is_one_masked_line_and_the_traceback_only_with_debug(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever no reader caught: exit 2, one line, secrets masked; --debug adds the traceback,
    masked too. A network library's error is exit 3."""
    import requests

    from hie_notify.commands import classify

    def boom(*_args: object) -> int:
        raise ValueError(f"Invalid isoformat string: {TOKEN!r}")

    monkeypatch.setattr(classify, "run", boom)
    write(tmp_path / "plan.json", plan(DNS))
    env = {"SLACK_BOT_TOKEN": TOKEN}
    code = main(["classify", "--plan", str(tmp_path / "plan.json")], env=env)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("hie-notify: unexpected error: ValueError: Invalid isoformat string")
    assert TOKEN not in err and "[MASKED]" in err and "Traceback" not in err
    code = main(["--debug", "classify", "--plan", str(tmp_path / "plan.json")], env=env)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback (most recent call last)" in err and TOKEN not in err

    def down(*_args: object) -> int:
        raise requests.ConnectionError("connection refused")

    monkeypatch.setattr(classify, "run", down)
    code = main(["classify", "--plan", str(tmp_path / "plan.json")], env=env)
    err = capsys.readouterr().err
    assert code == 3 and err.startswith("hie-notify: an outside service failed: ConnectionError")


# -- cases that hung or took gigabytes: a child process, 60 s and 1.5 GiB at most

LIMIT_SECONDS = 60
LIMIT_BYTES = 1536 << 20


def _child(tmp: Path, files: dict[str, Any], command: list[str]) -> tuple[int, str]:
    _files(tmp, files)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))

    env = {"PATH": os.environ.get("PATH", ""), "HIE_MEMORY_BUDGET_MB": "1024"}
    proc = subprocess.run(
        [sys.executable, "-m", "hie_notify", *_args(tmp, files, command)],
        capture_output=True,
        timeout=LIMIT_SECONDS,
        preexec_fn=limit,
        env=env,
        cwd=tmp,
        check=False,
    )
    return proc.returncode, proc.stderr.decode(errors="replace")


def _empty_objects_plan(megabytes: int) -> bytes:
    # As resources: the lean reader steps aside at the first (no address), and decoding them
    # whole is what would take the memory. (In a key the tool does not read they are never
    # decoded at all: tests/terraform/test_plan_memory.py.)
    count = megabytes * 1_000_000 // 3
    return b'{"format_version": "1.2", "resource_changes": [' + b",".join([b"{}"] * count) + b"]}"


CHILD: list[tuple[str, dict[str, Any], list[str], str]] = [
    (
        "alias bomb in a change record",
        {"plan.json": plan(DNS), "change.yaml": BOMB + "id: FFAPP-1\npurpose: x\napprovers: *i\n"},
        GATE,
        "holds more than 200000 values once its aliases are expanded",
    ),
    (
        "alias bomb in a policy",
        {"plan.json": plan(DNS), "policy.yaml": BOMB + "organisation: *i\n"},
        CLASSIFY,
        "holds more than 200000 values once its aliases are expanded",
    ),
    (
        "--plan /dev/zero",
        {},
        ["classify", "--plan", "/dev/zero"],
        "/dev/zero: cannot read (a device or pipe, not a regular file",
    ),
    (
        "template 'x' * 10**9",
        {
            "plan.json": plan(DNS),
            "change.yaml": GOOD,
            "policy.yaml": _template("{{ 'x' * 10**9 }}"),
        },
        PREVIEW,
        "SecurityError: a repetition in a template makes more than 1000000 items",
    ),
    (
        "plan of 60 MB of {} (1.6 GB to decode)",
        {"plan.json": _empty_objects_plan(60)},
        CLASSIFY,
        "over the budget of 1024 MiB (HIE_MEMORY_BUDGET_MB)",
    ),
]


@pytest.mark.parametrize(
    ("files", "command", "expected"),
    [pytest.param(f, c, e, id=i) for i, f, c, e in CHILD],
)
def test_what_hung_or_filled_memory_is_refused_quickly(
    tmp_path: Path, files: dict[str, Any], command: list[str], expected: str
) -> None:
    code, err = _child(tmp_path, files, command)
    assert "Traceback" not in err
    assert code == 2, err
    assert expected in err
