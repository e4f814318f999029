"""`hie-notify report` on the seeded register (tests/support/report_seed.py): every figure below is
worked out by hand from the cohorts described there."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hie_notify.calendar import BusinessCalendar
from hie_notify.cli import main
from hie_notify.durations import NoticePeriod
from hie_notify.policy import load_policy
from hie_notify.report.compute import _Days
from tests.support.report_seed import NOW, seed_register, seeds

RANGE = ["--from", "2026-10-01", "--to", "2026-12-31"]


@pytest.fixture(scope="module")
def register_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("register") / "register.sqlite3"
    seed_register(path, seeds())
    return path


def report(
    register: Path, fmt: str, tmp: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> str:
    out = tmp / f"report.{fmt}"
    code = main(
        [
            "--register",
            f"sqlite:{register}",
            "--now",
            NOW.isoformat(),
            "report",
            *RANGE,
            "--format",
            fmt,
            "--output",
            str(out),
            *extra,
        ],
        env={},
    )
    assert code == 0, capsys.readouterr().err
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def data(register_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("json") / "report.json"
    code = main(
        [
            "--register",
            f"sqlite:{register_path}",
            "--now",
            NOW.isoformat(),
            "report",
            *RANGE,
            "--format",
            "json",
            "--output",
            str(out),
        ],
        env={},
    )
    assert code == 0
    parsed: dict[str, Any] = json.loads(out.read_text())
    return parsed


def rows(data: dict[str, Any], table: str, **match: Any) -> list[dict[str, Any]]:
    return [r for r in data["tables"][table] if all(r[k] == v for k, v in match.items())]


def test_summary_matches_the_seed(data: dict[str, Any]) -> None:
    summary = {r["metric"]: r["value"] for r in data["tables"]["summary"]}
    assert summary == {
        "changes": 206,
        "went_ahead": 194,  # 12 application updates were cancelled
        "emergencies": 12,
        "notices": 776,  # A 180, B 192, C 96, D 48, E 144, F 72, G 36, H1 4, H2 4
        "notices_short": 24,  # C's customer notices
        "notices_not_given": 0,
        "breaches": 72,  # C 24 overrides, D 12 emergencies, G 36 outbox-only
        "postmortems_owed": 122,  # B 48, C 24, D 12, E 24, G 12, H1, H2
        "postmortems_opened": 38,  # B 12 + 12, D 12, H1, H2
        "postmortems_closed": 25,  # B 12, D 12, H2
        "postmortems_overdue": 97,  # every one not closed: B 36, C 24, E 24, G 12, H1
        "customer_months_over_budget": 1,  # NNUH in November
        "left_out": 0,
    }
    assert data["uptime_percent"] == 99.0 and data["warn_at_percent"] == 80


def test_every_change_with_type_window_status_and_outcome(data: dict[str, Any]) -> None:
    changes = data["tables"]["changes"]
    assert len(changes) == 206
    assert Counter(c["outcome"] for c in changes) == {
        "succeeded": 12 * (5 + 4 + 2 + 2 + 1) + 1,  # A, B, C, E, F#0 and H2
        "rolled back": 12 + 1,  # D and H1
        "failed": 12,  # G
        "cancelled": 12,  # F#1
    }
    (h1,) = rows(data, "changes", change_id="CHG-9001")
    assert h1["change_type"] == "planned_infra_update" and h1["status"] == "rolled back"
    assert h1["window_start"] == "2026-11-17T22:00:00+00:00"
    assert h1["window_end"] == "2026-11-18T04:00:00+00:00"
    assert h1["declared_downtime_minutes"] == 120 and h1["actual_downtime_minutes"] == 330
    assert h1["customers"] == "NNUH" and h1["postmortem"] == "overdue"
    (first_b,) = rows(data, "changes", change_id="CHG-6")
    assert first_b["actual_downtime_minutes"] == 10 and first_b["postmortem"] == "closed"
    (a,) = rows(data, "changes", change_id="CHG-1")
    assert a["actual_downtime_minutes"] is None and a["postmortem"] == "not owed"


def test_notice_required_given_and_margin_per_audience(data: dict[str, Any]) -> None:
    # B: told Monday for Thursday: exactly the 3 business days EoE needs, 82 hours inside.
    (eoe,) = rows(data, "notices", change_id="CHG-6", audience="customer:EoE")
    assert (eoe["unit"], eoe["required"], eoe["recommended"]) == ("business days", 3, 5)
    assert (eoe["given"], eoe["margin"], eoe["level"]) == (3, 0, "minimum")
    (devops,) = rows(data, "notices", change_id="CHG-6", audience="slack:#devops")
    assert (devops["unit"], devops["required"], devops["given"]) == ("hours", 24, 82)
    assert (devops["margin"], devops["level"]) == (58, "recommended")
    # C: told Wednesday for Thursday: 1 business day of 3.
    (cuh,) = rows(data, "notices", change_id="CHG-110", audience="customer:CUH")
    assert (cuh["given"], cuh["margin"], cuh["level"]) == (1, -2, "short")
    # E in the Christmas week: Friday 25 December is a bank holiday, 8 business days not 9.
    (xmas,) = rows(data, "notices", change_id="CHG-1113", audience="customer:NNUH")
    assert (xmas["given"], xmas["level"]) == (8, "minimum")
    (autumn,) = rows(data, "notices", change_id="CHG-13", audience="customer:NNUH")
    assert autumn["given"] == 9
    # G went to the outbox only.
    assert all(r["outbox_only"] for r in rows(data, "notices", change_id="CHG-17"))
    assert not any(r["outbox_only"] for r in rows(data, "notices", change_id="CHG-1"))


def test_margin_and_level_agree_with_the_gate_arithmetic(data: dict[str, Any]) -> None:
    for r in data["tables"]["notices"]:
        assert (r["level"] == "short") == (r["margin"] < 0), r


def test_breaches_are_listed_by_name(data: dict[str, Any]) -> None:
    breaches = data["tables"]["breaches"]
    assert Counter(b["let_through_by"] for b in breaches) == {
        "manual override": 24,
        "emergency": 12,
        "trial": 36,
    }
    (override,) = rows(data, "breaches", change_id="CHG-10")
    assert (
        override["audience"] == "customer:CUH"
        and override["label"] == "Cambridge University Hospitals"
    )
    assert (override["required"], override["given"]) == ("3 business days", "1 business day")
    (emergency,) = rows(data, "breaches", change_id="CHG-12")
    assert "Patch an exploited flaw (CHG-12)" in emergency["detail"]
    assert "Ollie" in emergency["detail"]
    trial = rows(data, "breaches", change_id="CHG-17")
    assert {t["audience"] for t in trial} == {
        "slack:#devops",
        "slack:#product",
        "meeting:Wednesday meeting",
    }
    assert all("outbox only" in t["detail"] for t in trial)


def test_emergencies_with_justification_and_approver(data: dict[str, Any]) -> None:
    emergencies = data["tables"]["emergencies"]
    assert len(emergencies) == 12
    assert rows(data, "emergencies", change_id="CHG-512") == [
        {
            "change_id": "CHG-512",
            "purpose": "Work CHG-512",
            "status": "rolled back",
            "window_start": "2026-11-10T14:00:00+00:00",  # week 5: Monday 9 November
            "justification": "Patch an exploited flaw (CHG-512)",
            "approvers": "Ollie",
        }
    ]


def test_postmortems_owed_opened_closed_and_overdue(data: dict[str, Any]) -> None:
    state = {r["change_id"]: (r["state"], r["overdue"]) for r in data["tables"]["postmortems"]}
    assert state["CHG-6"] == ("closed", False)
    assert state["CHG-7"] == ("opened", True)
    assert state["CHG-8"] == ("owed", True)
    assert state["CHG-10"] == ("owed", True)
    assert state["CHG-12"] == ("closed", False)
    assert state["CHG-17"] == ("owed", True)
    assert state["CHG-9001"] == ("opened", True)
    assert state["CHG-9002"] == ("closed", False)
    assert state["CHG-13"] == ("owed", True)  # significant: service-impacting maintenance
    assert "CHG-1" not in state and "CHG-15" not in state  # not significant; no failure
    (h1,) = rows(data, "postmortems", change_id="CHG-9001")
    assert "the change was rolled back" in h1["reasons"]
    assert "high risk" in h1["reasons"]
    # Ended Wed 18 Nov 03:30 (the rollback), due five business days later.
    assert h1["ended_at"] == "2026-11-18T03:30:00+00:00"
    assert h1["due"] == "2026-11-25T03:30:00+00:00"


def test_a_postmortem_is_overdue_only_after_its_due_date(
    register_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    code = main(
        [
            "--register",
            f"sqlite:{register_path}",
            "--now",
            "2026-11-25T03:00:00+00:00",
            "report",
            "--from",
            "2026-11-17",
            "--to",
            "2026-11-18",
            "--format",
            "json",
            "--output",
            str(out),
        ],
        env={},
    )
    assert code == 0
    data = json.loads(out.read_text())
    (h1,) = rows(data, "postmortems", change_id="CHG-9001")
    assert h1["overdue"] is False


DOWNTIME = {
    # customer, month: (budget, declared, actual) in minutes. Budgets: 99% of October 2026 in
    # London (745 hours: the clocks go back), November (720 h), December (744 h).
    ("EoE", "2026-10"): (447.0, 400, 280),  # B 16 x 15/10 min, E 8 x 20/15 min
    ("EoE", "2026-11"): (432.0, 400, 280),
    ("EoE", "2026-12"): (446.4, 400, 280),
    ("CUH", "2026-10"): (447.0, 400, 280),  # C 8 x 30/20 min, E
    ("MKUH", "2026-10"): (447.0, 240, 280),  # D 4 x 20/40 min, E
    ("NNUH", "2026-10"): (447.0, 220, 150),  # E, H2 60 declared, 30 of its hour in October
    ("NNUH", "2026-11"): (432.0, 280, 480),  # E, H1 120/330, H2's other 30 minutes
    ("NNUH", "2026-12"): (446.4, 160, 120),
}


def test_downtime_per_customer_per_month_against_the_promise(data: dict[str, Any]) -> None:
    table = {(r["customer"], r["month"]): r for r in data["tables"]["downtime"]}
    assert len(table) == 12
    for key, (budget, declared, actual) in DOWNTIME.items():
        row = table[key]
        assert (row["budget_minutes"], row["declared_minutes"], row["actual_minutes"]) == (
            budget,
            declared,
            actual,
        ), key
        assert row["actual_percent"] == round(100 * actual / budget, 2)
        assert row["over_budget"] is (actual > budget)
    assert [k for k, r in table.items() if r["over_budget"]] == [("NNUH", "2026-11")]


def test_chart_tables(data: dict[str, Any]) -> None:
    kinds = {r["kind"]: r for r in data["tables"]["notice_by_kind"]}
    assert kinds["internal"] == {
        "kind": "internal",
        "recommended": 474,
        "minimum": 72,
        "short": 0,
        "not_given": 0,
    }
    assert kinds["customer"] == {
        "kind": "customer",
        "recommended": 14,
        "minimum": 144,
        "short": 24,
        "not_given": 0,
    }
    assert kinds["stakeholder"]["recommended"] == 36 and kinds["meeting"]["recommended"] == 12
    week = {
        (r["change_type"], r["outcome"]): r["changes"]
        for r in rows(data, "changes_by_week", week="2026-W41")
    }
    assert week == {
        ("planned_infra_update", "succeeded"): 11,
        ("emergency_fix", "rolled back"): 1,
        ("scheduled_maintenance", "succeeded"): 2,
        ("application_update", "succeeded"): 1,
        ("application_update", "cancelled"): 1,
        ("cost_optimization", "failed"): 1,
    }
    assert len({r["week"] for r in data["tables"]["changes_by_week"]}) == 12


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


def test_the_csv_carries_the_same_rows_as_the_json(
    register_path: Path, data: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = report(register_path, "csv", tmp_path, capsys)
    tables: dict[str, list[list[str]]] = {}
    headers: dict[str, list[str]] = {}
    current = ""
    for line in csv.reader(io.StringIO(text)):
        if line[0] == "table":  # a header row: the next rows are its table's
            current = ""
            header = line[1:]
            continue
        if not current:
            current = line[0]
            headers[current] = header
        assert line[0] == current, "a table's rows follow its header"
        tables[current].append(line[1:]) if current in tables else tables.update(
            {current: [line[1:]]}
        )
    assert set(tables) <= set(data["tables"])
    for name, json_rows in data["tables"].items():
        expected = [[_cell(v) for v in r.values()] for r in json_rows]
        assert tables.get(name, []) == expected, name
        if json_rows:
            assert headers[name] == list(json_rows[0]), name
    assert len(tables["changes"]) == 206 and len(tables["notices"]) == 776


def test_bad_range_and_missing_register_are_exit_2(
    register_path: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = ["--register", f"sqlite:{register_path}", "report"]
    assert main([*base, "--from", "October", "--to", "2026-12-31"], env={}) == 2
    assert "--from: expected a date like 2026-12-07" in capsys.readouterr().err
    assert main([*base, "--from", "2026-12-31", "--to", "2026-10-01"], env={}) == 2
    assert "--to" in capsys.readouterr().err
    assert main(["--register", "none", "report", *RANGE], env={}) == 2
    assert "report needs the change register" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("not a folder")
    missing = tmp_path / "a-file" / "r.html"
    # The report stamps when it was made: the time is injected, never the machine's clock.
    now = ["--now", "2026-12-31T12:00:00+00:00"]
    assert main([*now, *base, *RANGE, "--output", str(missing)], env={}) == 2
    assert f"--output {missing}: cannot write" in capsys.readouterr().err
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database" * 100)
    assert main(["--register", f"sqlite:{garbage}", "report", *RANGE], env={}) == 2
    err = capsys.readouterr().err
    assert str(garbage) in err and "Traceback" not in err


def test_a_record_that_no_longer_validates_is_left_out_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = seeds(weeks=1)[:2]
    register = seed_register(tmp_path / "r.sqlite3", [good])
    broken = bad.record()
    change = dict(broken.change)
    change["downtime"] = "forever"
    from dataclasses import replace

    register.put(replace(broken, change=change), bad.entries(), bad.told)
    out = tmp_path / "r.json"
    code = main(
        [
            "--register",
            f"sqlite:{tmp_path / 'r.sqlite3'}",
            "--now",
            NOW.isoformat(),
            "report",
            *RANGE,
            "--format",
            "json",
            "--output",
            str(out),
        ],
        env={},
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert [c["change_id"] for c in data["tables"]["changes"]] == [good.change_id]
    assert len(data["notes"]) == 1
    assert data["notes"][0].startswith(f"{bad.change_id}: left out (downtime:")


def test_what_a_change_record_says_cannot_script_the_page_or_leak_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "xoxb-123456789012-abcdefABCDEF"
    (item,) = [s for s in seeds(weeks=1) if s.change_type == "emergency_fix"]
    register = seed_register(tmp_path / "r.sqlite3", [])
    record = item.record()
    from dataclasses import replace

    change = dict(record.change)
    change["justification"] = f'</td><script>alert(1)</script><img src="https://x.example/{token}">'
    register.put(
        replace(record, purpose="<b onmouseover=alert(2)>x</b>", change=change),
        item.entries(),
        item.told,
    )
    out = tmp_path / "r.html"
    code = main(
        [
            "--register",
            f"sqlite:{tmp_path / 'r.sqlite3'}",
            "--now",
            NOW.isoformat(),
            "report",
            *RANGE,
            "--output",
            str(out),
        ],
        env={"SLACK_BOT_TOKEN": token},
    )
    assert code == 0
    page = out.read_text()
    assert "<script" not in page and "<img" not in page and "<b onmouseover" not in page
    assert "&lt;script&gt;" in page
    assert token not in page


def test_html_is_one_page_with_charts_and_their_tables(
    register_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = report(register_path, "html", tmp_path, capsys)
    assert page.count("<svg ") == 3
    for title in (
        "Notice given against notice required, by audience kind",
        "Downtime budget used per customer per month",
        "Changes per week by type and outcome",
    ):
        assert f"<caption>{title}: the chart&#39;s data</caption>" in page
    assert "@page { size: A4" in page
    # Nothing to fetch: no script, stylesheet, image or font from anywhere.
    for needle in ("<script", "<link", "<img", "<iframe", "<object", "@import", "src="):
        assert needle not in page
    # The SVGs refer to their own clip paths and glyphs only.
    assert all(u.startswith("#") for u in re.findall(r"url\(\s*['\"]?([^)'\"]*)", page))
    assert all(h.startswith("#") for h in re.findall(r"href=\"([^\"]*)\"", page))


@settings(max_examples=300, deadline=None)
@given(
    notice=st.datetimes(
        min_value=datetime(2026, 3, 1),
        max_value=datetime(2027, 4, 30),
        timezones=st.just(timezone.utc),
    ),
    ahead=st.integers(min_value=0, max_value=60 * 24 * 30),
)
def test_business_days_given_inverts_the_gate_arithmetic(notice: datetime, ahead: int) -> None:
    calendar = BusinessCalendar.from_policy(load_policy())
    start = notice + timedelta(minutes=ahead)
    n = _Days(calendar).given(notice, start)

    def allows(k: int) -> bool:
        return (
            calendar.earliest_start(notice, NoticePeriod("business_days", business_days=k)) <= start
        )

    assert n == 0 or allows(n)
    assert not allows(n + 1)


def test_the_bulk_read_gives_what_between_and_get_give(register_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from hie_notify.register.sqlite import SqliteRegister
    from hie_notify.report import compute, export, source

    policy = load_policy()
    calendar = BusinessCalendar.from_policy(policy)
    zone = ZoneInfo("Europe/London")
    start, end = datetime(2026, 10, 1, tzinfo=zone), datetime(2027, 1, 1, tzinfo=zone)
    register = SqliteRegister(register_path)
    fast = source.whole_months(register, start, end, calendar)
    lo, hi = datetime(2026, 10, 1, tzinfo=zone), datetime(2027, 1, 1, tzinfo=zone)
    slow = [register.get(r.change_id) for r in register.between(lo, hi)]
    assert len(fast) > 150
    assert sum(len(r.entries) for r in fast) > 1000
    assert fast == slow  # every record and every entry, field by field, in the same order

    def build(records: Any) -> dict[str, Any]:
        return export.to_json(
            compute.build(
                policy=policy, calendar=calendar, records=records, start=start, end=end, now=NOW
            )
        )

    assert build(fast) == build(slow)
