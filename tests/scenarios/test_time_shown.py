"""Every time a person reads is shown one way, in the policy's zone with the zone named
(`Tue 7 Jul 2026 19:00 BST`): the commands' text, the report's page, the messages, the merge
request note and the post-mortem issue. JSON keeps ISO 8601 with an offset, and what JSON and
CSV count is an integer.

One summer change (BST, an hour from UTC, so a time shown in UTC or without its zone is caught)
goes through every command that shows a time; whatever it prints must hold no ISO time and no
clock time outside the one format."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
import re
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hie_notify.cli import main
from hie_notify.notify import StageReport
from hie_notify.register.jobs import RemindReport
from tests.support.builders import rc
from tests.support.cli_flow import Flow
from tests.support.register_records import entry

_DAY = (
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) [1-9][0-9]? "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4}"
)
_ZONE = r"(?:BST|GMT)"
# A moment; a window on one day (its zone said once, or at each end when it changes); two
# moments; a day alone.
ONE_FORMAT = re.compile(
    rf"{_DAY} \d\d:\d\d(?: {_ZONE})?(?: to (?:{_DAY} )?\d\d:\d\d)? {_ZONE}\b|{_DAY}"
)
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d)?")
CLOCK = re.compile(r"\b\d{1,2}:\d\d\b")
# Not times: paths (outbox files) and links, register references, plan fingerprints, the
# reminders' tags (`postmortem_overdue@2026-07-14T19:40:00+00:00`) and addresses.
NOT_TIMES = re.compile(r"\S*/\S*|\b(?:agenda|digest)-\d{4}-[\dW-]+|\bsha256:\w+|\S+@\S+")

UTC = timezone.utc
NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])
WINDOW = {"start": "2026-07-07T19:00:00+01:00", "end": "2026-07-07T21:00:00+01:00"}


def off_format(text: str) -> list[str]:
    """Every time or date in `text` that is not in the one format (empty when all are)."""
    rest = ONE_FORMAT.sub("<time>", NOT_TIMES.sub("", text))
    return ISO_TIME.findall(rest) + CLOCK.findall(rest)


def _main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv, env={})
    return code, out.getvalue(), err.getvalue()


class Summer:
    """The change's commands, as JSON (the data) or as text (what a person reads)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.flow = Flow(tmp, None, NODES, window=WINDOW)  # type: ignore[arg-type]
        self.read: dict[str, str] = {}
        self.data: dict[str, Any] = {}

    def _base(self, now: str) -> list[str]:
        return [
            "--now",
            now,
            "--change",
            str(self.flow.change),
            "--ledger",
            f"file:{self.tmp}/ledger.jsonl",
            "--outbox",
            str(self.tmp / "outbox"),
            "--register",
            f"sqlite:{self.tmp}/register.sqlite3",
        ]

    def json(self, name: str, *args: str, now: str) -> int:
        code, out, err = _main(["--format", "json", *self._base(now), *args])
        self.read[name] = err  # under --format json the text for people is on stderr
        self.data[name] = json.loads(out) if out.strip() else {}
        return code

    def text(self, name: str, *args: str, now: str) -> int:
        code, out, err = _main([*self._base(now), *args])
        self.read[name] = out + err
        return code


@pytest.fixture(scope="module")
def summer(tmp_path_factory: pytest.TempPathFactory) -> Summer:
    s = Summer(tmp_path_factory.mktemp("summer"))
    plan = str(s.flow.plan)
    # Announced Monday 29 June 10:00 BST, six business days ahead; the window on Tuesday
    # 7 July 19:00 BST; the apply, which succeeds at 20:40 BST (completed at 20:50): the
    # post-mortem is due five business days after the work ended.
    assert s.json("plan", "plan", "--plan", plan, now="2026-06-29T09:00:00Z") == 0
    assert s.text("earliest", "earliest", "--plan", plan, now="2026-07-06T09:00:00Z") == 0
    assert s.json("gate early", "gate", "--plan", plan, now="2026-07-07T17:59:00Z") == 1
    assert s.json("gate", "gate", "--plan", plan, now="2026-07-07T18:01:00Z") == 0
    assert s.json("apply started", "apply", "--status", "started", now="2026-07-07T18:05:00Z") == 0
    assert s.json("again", "apply", "--status", "started", now="2026-07-07T18:06:00Z") == 0
    assert s.json("applied", "apply", "--status", "succeeded", now="2026-07-07T19:40:00Z") == 0
    assert s.json("complete", "complete", now="2026-07-07T19:50:00Z") == 0
    later = "2026-07-15T09:00:00Z"
    assert s.json("postmortem", "postmortem", now=later) == 0
    assert s.text("postmortem text", "postmortem", now=later) == 0
    july = ["--from", "2026-07-01", "--to", "2026-07-31"]
    assert s.json("calendar", "calendar", *july, now=later) == 0
    assert s.text("calendar text", "calendar", *july, now=later) == 0
    assert s.json("remind", "remind", now=later) == 0
    assert s.json("digest", "digest", now="2026-07-06T07:00:00Z") == 0
    assert s.json("digest again", "digest", now="2026-07-06T08:00:00Z") == 0
    for fmt in ("json", "csv", "html"):
        out = s.tmp / f"report.{fmt}"
        code = s.text(
            f"report {fmt}", "report", *july, "--format", fmt, "--output", str(out), now=later
        )
        assert code == 0, s.read[f"report {fmt}"]
    return s


def test_what_the_commands_print(summer: Summer) -> None:
    read = summer.read
    assert "These notices allow a window from Thu 2 Jul 2026 10:00 BST." in read["plan"]
    assert "  earliest start     Thu 9 Jul 2026 10:00 BST" in read["earliest"]
    assert summer.data["gate early"]["reasons"] == [
        "the window has not opened: it starts Tue 7 Jul 2026 19:00 BST; this job may run from then"
    ]
    assert "told: Mon 29 Jun 2026 10:00 BST" in read["gate"]
    assert "(not sent again)" in read["again"] and "Tue 7 Jul 2026 19:05 BST" in read["again"]
    assert "  due Tue 14 Jul 2026 20:40 BST (OVERDUE)" in read["postmortem text"]
    assert "  Tue 7 Jul 2026 19:00 to 21:00 BST " in read["calendar text"]
    assert "next meeting Wed 8 Jul 2026 10:00 BST" in read["digest"]
    assert "Mon 6 Jul 2026 08:00 BST (not sent again)" in read["digest again"]
    for name, text in read.items():
        assert off_format(text) == [], (name, text)


def test_json_keeps_iso_8601_with_an_offset(summer: Summer) -> None:
    assert summer.data["plan"]["earliest_start"] == "2026-07-02T09:00:00+00:00"
    assert summer.data["postmortem"]["due"] == "2026-07-14T19:40:00+00:00"
    assert summer.data["calendar"]["changes"][0]["window_start"] == "2026-07-07T18:00:00+00:00"
    assert summer.data["digest"]["meeting"] == "2026-07-08T10:00:00+01:00"


def _numbers(data: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            for path, number in _numbers(value):
                yield f"{key}.{path}" if path else key, number
    elif isinstance(data, list):
        for value in data:
            yield from _numbers(value)
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        yield "", data


def test_what_json_counts_is_an_integer(summer: Summer) -> None:
    for name in ("calendar", "postmortem", "digest", "remind"):
        floats = [(p, n) for p, n in _numbers(summer.data[name]) if isinstance(n, float)]
        assert floats == [], name
    assert summer.data["calendar"]["changes"][0]["sequence"] == 0
    report = json.loads((summer.tmp / "report.json").read_text())
    tables = report["tables"]
    assert all(type(r["value"]) is int for r in tables["summary"])
    counted = {
        "changes": ("notices_short", "breaches"),
        "downtime": ("changes",),
        "notice_by_kind": ("recommended", "minimum", "short", "not_given"),
        "changes_by_week": ("changes",),
    }
    for table, names in counted.items():
        assert tables[table], table
        assert all(type(r[n]) is int for r in tables[table] for n in names), table
    # Business days are counted; hours are measured.
    (eoe,) = [r for r in tables["notices"] if r["audience"] == "customer:EoE"]
    assert (eoe["unit"], eoe["required"], eoe["given"], eoe["margin"]) == ("business days", 3, 6, 3)
    assert all(type(eoe[n]) is int for n in ("required", "recommended", "given", "margin"))
    devops = next(r for r in tables["notices"] if r["audience"] == "slack:#devops")
    assert devops["unit"] == "hours" and devops["given"] == 201.0


def test_what_csv_counts_has_no_decimal_point(summer: Summer) -> None:
    rows = list(csv.reader(io.StringIO((summer.tmp / "report.csv").read_text())))
    header: list[str] = []
    summary = {}
    for row in rows:
        if row[0] == "table":
            header = row
        elif row[0] == "summary":
            summary[row[1]] = row[2]
        elif row[0] == "notices" and "customer:EoE" in row:
            notice = dict(zip(header, row, strict=True))
            assert (notice["required"], notice["given"], notice["margin"]) == ("3", "6", "3")
        elif row[0] == "changes":
            change = dict(zip(header, row, strict=True))
            assert change["window_start"] == "2026-07-07T18:00:00+00:00"  # data: ISO
    assert summary["changes"] == "1" and all(v.isdigit() for v in summary.values()), summary


def test_the_report_page(summer: Summer) -> None:
    page = (summer.tmp / "report.html").read_text()
    header = re.search(r'<p class="meta">(.*?)</p>', page, re.S)
    assert header is not None
    assert " ".join(header.group(1).split()).startswith(
        "Changes with a window from Wed 1 Jul 2026 to Fri 31 Jul 2026 (Europe/London); "
        "generated Wed 15 Jul 2026 10:00 BST."
    )
    text = re.sub(r"<svg.*?</svg>", "", page, flags=re.S)  # the charts' own metadata
    text = re.sub(r"<style.*?</style>", "", text, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    assert "Tue 7 Jul 2026 19:00 BST" in text  # the window's start in the tables
    assert off_format(text) == []


def test_the_messages_the_note_and_the_postmortem_issue(summer: Summer) -> None:
    outbox = summer.tmp / "outbox"
    texts = {}
    for path in sorted(outbox.rglob("*")):
        if path.suffix == ".eml":
            mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            body = mail.get_body(("plain",))
            assert body is not None
            texts[str(path)] = f"{mail['Subject']}\n{body.get_content()}"
        elif path.suffix == ".md":
            texts[str(path)] = path.read_text()
        elif path.suffix == ".json":
            texts[str(path)] = "\n".join(_strings(json.loads(path.read_text())))
    assert any("Tue 7 Jul 2026 19:00 to 21:00 BST" in t for t in texts.values())
    note = texts[str(outbox / "FFAPP-4458" / "merge-request-note.md")]
    assert "at Mon 29 Jun 2026 10:00 BST" in note
    for path, text in texts.items():
        assert off_format(text) == [], (path, text)


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)
    elif isinstance(data, str):
        yield data


_ISO_VALUE = re.compile(r"\d{4}-\d\d-\d\d(?:T\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))?")


def test_in_json_a_time_is_iso_and_a_sentence_shows_it_one_way(summer: Summer) -> None:
    """A field holding a time holds ISO 8601 with its offset; a field holding words for people
    (reasons, warnings, notes) shows its times as the text does."""
    for name, data in summer.data.items():
        for value in _strings(data):
            if _ISO_VALUE.fullmatch(value):
                continue
            assert off_format(value) == [], (name, value)


def test_errors_show_times_one_way(summer: Summer) -> None:
    flow = summer.flow
    change = summer.tmp / "ended.yaml"
    change.write_text(flow.change.read_text())
    code, _, err = _main(
        [
            "--now",
            "2026-07-15T09:00:00Z",
            "--change",
            str(change),
            "--outbox",
            str(summer.tmp / "x"),
            "--ledger",
            f"file:{summer.tmp}/x.jsonl",
            "plan",
            "--plan",
            str(flow.plan),
        ]
    )
    assert (
        code == 2
        and (
            "window.end: the window ended Tue 7 Jul 2026 21:00 BST, before now "
            "(Wed 15 Jul 2026 10:00 BST)"
        )
        in err
    ), err
    code, _, err = _main(
        ["--now", "2026-07-15T09:00:00Z", "calendar", "--from", "2026-07-08", "--to", "2026-07-01"]
    )
    assert (
        code == 2
        and ("--to (Thu 2 Jul 2026 00:00 BST) must be after --from (Wed 8 Jul 2026 00:00 BST)")
        in err
    ), err


def test_remind_says_when_a_notice_already_went_in_the_policy_zone() -> None:
    """A reminder partly sent before (one channel failed): the run after says when the others
    went, in the policy's zone."""
    went = replace(entry(stage="reminder"), delivered_at=datetime(2026, 7, 6, 18, tzinfo=UTC))
    report = RemindReport(
        checked=1,
        reports=[("FFAPP-1", "reminder 1440m@x", StageReport("reminder", already=[went]))],
        time_zone="Europe/London",
    )
    (line,) = [x for x in report.lines() if "not sent again" in x]
    assert line.endswith("Mon 6 Jul 2026 19:00 BST (not sent again)")
