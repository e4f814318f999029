"""One register for an organisation: records say the project whose pipeline wrote them, the
calendar shows and filters by project, conflicts are found across projects, and reading the
weeks around now costs the same whatever the register's size (20,000 changes: three years)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import responses
from hypothesis import given
from hypothesis import strategies as st

from hie_notify.cli import main
from hie_notify.register.gitlab import GitLabRegister
from hie_notify.register.model import Registered
from hie_notify.register.sqlite import SqliteRegister
from hie_notify.register.store import Register, open_register
from tests.support.builders import rc
from tests.support.cli_flow import Flow
from tests.support.register_fake import ENV, RegisterFake, fill, history

UTC = timezone.utc
NOW = datetime(2026, 12, 15, 9, tzinfo=UTC)
NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])
TEAM_A, TEAM_B = "team-a/infra", "team-b/platform"


def _team(tmp: Path, capsys: pytest.CaptureFixture[str], project: str, **change: Any) -> Flow:
    """A pipeline of `project` with its own ledger, writing the organisation's one register."""
    folder = tmp / project.replace("/", "_")
    folder.mkdir()
    env = {"HIE_REGISTER": f"sqlite:{tmp / 'org.sqlite3'}", "CI_PROJECT_PATH": project}
    return Flow(folder, capsys, NODES, env=env, **change)


def test_two_teams_one_customer_at_once_is_a_conflict_naming_the_other_team(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _team(tmp_path, capsys, TEAM_A)  # FFAPP-4458: EoE, 19:00-21:00 on 8 December
    assert a("plan", "--plan", str(a.plan))[0] == 0
    b = _team(tmp_path, capsys, TEAM_B, id="PLAT-77", customers=["EoE", "CUH"])
    b.window("2026-12-08T20:00:00+00:00", "2026-12-08T22:00:00+00:00")
    code, out = b("plan", "--plan", str(b.plan))
    assert code == 0
    assert (
        "WARNING: conflict: PLAT-77 and FFAPP-4458 (project team-a/infra): windows overlap, "
        "both touch customer EoE" in out["notes"]
    )
    # Anyone's calendar (here outside CI) shows both teams' changes, each with its project.
    cal = ["calendar", "--from", "2026-12-07", "--to", "2026-12-09"]
    code, view = a(*cal)
    assert code == 0
    assert [(c["id"], c["project"]) for c in view["changes"]] == [
        ("FFAPP-4458", TEAM_A),
        ("PLAT-77", TEAM_B),
    ]
    assert view["conflicts"] == [
        {
            "change": "FFAPP-4458",
            "other": "PLAT-77",
            "why": "windows overlap, both touch customer EoE",
            "project": TEAM_A,
            "other_project": TEAM_B,
        }
    ]
    # One team's view: its changes only, and their conflicts with any team's.
    code, mine = b(*cal, "--project", TEAM_A)
    assert [c["id"] for c in mine["changes"]] == ["FFAPP-4458"]
    assert mine["conflicts"] == view["conflicts"]
    code, none = b(*cal, "--project", "team-c/other")
    assert none["changes"] == [] and none["conflicts"] == []
    # The text says whose each change is when the register holds more than one project's.
    assert main(["--now", "2026-12-01T10:00:00+00:00", *cal], env=a.env) == 0
    text = capsys.readouterr().out
    assert "FFAPP-4458" in text and "[team-a/infra]" in text and "[team-b/platform]" in text
    assert "FFAPP-4458 and PLAT-77 (project team-b/platform): windows overlap" in text


def test_a_calendar_of_one_project_needs_a_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _team(tmp_path, capsys, TEAM_A)
    code, _ = a("calendar", "--project", " ")
    assert code == 2 and "--project" in a.err and "Traceback" not in a.err


def test_the_project_is_kept_by_an_update_from_outside_ci(tmp_path: Path) -> None:
    shared = f"sqlite:{tmp_path / 'org.sqlite3'}"
    by_pipeline = open_register(shared, {"CI_PROJECT_PATH": TEAM_A})
    by_hand = open_register(shared, {})
    assert by_pipeline is not None and by_hand is not None
    (first,) = history(1, NOW)
    first = Registered(**{**first.__dict__, "project": ""})
    assert by_pipeline.put(first, [], NOW).project == TEAM_A
    assert by_hand.put(first, [], NOW + timedelta(hours=1)).project == TEAM_A
    got = by_hand.get(first.change_id)
    assert got is not None and got.project == TEAM_A


def test_records_written_before_projects_still_read(tmp_path: Path) -> None:
    """A register written before records carried their project, and before the index on
    window ends: it reads (no project said), and the first write adds the index."""
    path = tmp_path / "old.sqlite3"
    (record,) = history(1, NOW)
    old = {k: v for k, v in record.to_json().items() if k != "project"}
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE changes (change_id TEXT PRIMARY KEY, status TEXT NOT NULL, "
        "window_start TEXT, window_end TEXT, record TEXT NOT NULL);"
        "CREATE INDEX changes_window ON changes (window_start, window_end);"
        "CREATE INDEX changes_status ON changes (status);"
        "CREATE TABLE entries (change_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, "
        "delivered_at TEXT NOT NULL, entry TEXT NOT NULL, PRIMARY KEY (change_id, "
        "idempotency_key)); PRAGMA user_version = 1;"
    )
    db.execute(
        "INSERT INTO changes VALUES (?, ?, ?, ?, ?)",
        (record.change_id, old["status"], old["window_start"], old["window_end"], json.dumps(old)),
    )
    db.commit()
    db.close()
    register = SqliteRegister(path, project=TEAM_B)
    (read,) = register.between(NOW, NOW + timedelta(weeks=9))
    assert read.change_id == record.change_id and read.project == ""
    register.put(history(2, NOW)[0], [], NOW)  # another change, from team B's pipeline
    indexes = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "changes_end" in indexes
    assert register.get(record.change_id).project == ""  # type: ignore[union-attr]


@pytest.fixture(params=["sqlite", "gitlab"])
def register(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Register]:
    if request.param == "sqlite":
        yield SqliteRegister(tmp_path / "r.sqlite3")
        return
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        RegisterFake(rsps).install()
        yield GitLabRegister.from_env(ENV, None)


def test_open_changes_of_a_range(register: Register) -> None:
    """Unfinished changes whose window overlaps the range: one left unfinished months ago, or
    one weeks ahead, is not among them."""
    records = history(60, NOW)  # one every 79 minutes, from 8 weeks ahead back
    stale = Registered(
        **{
            **records[-1].__dict__,
            "change_id": "OLD-1",
            "window_start": NOW - timedelta(days=200),
            "window_end": NOW - timedelta(days=200) + timedelta(hours=2),
        }
    )
    for r in [*records, stale]:
        register.put(r, [], NOW)
    start, end = NOW + timedelta(weeks=8) - timedelta(hours=10), NOW + timedelta(weeks=9)
    got = register.open_changes(start, end)
    expected = [r.change_id for r in records if r.overlaps(start, end) and not r.ended]
    assert len(expected) == 10 and sorted(r.change_id for r in got) == sorted(expected)
    assert "OLD-1" in {r.change_id for r in register.open_changes()}
    assert "OLD-1" not in {r.change_id for r in register.open_changes(NOW, end)}


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)),
    st.integers(1, 60 * 24 * 20),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)),
    st.integers(1, 60 * 24 * 90),
)
def test_a_window_and_a_range_that_overlap_share_a_month_label(
    window: datetime, minutes: int, start: datetime, range_minutes: int
) -> None:
    """What makes the GitLab register's range reads complete: a window is labelled with every
    month it touches, a range reads every month it touches."""
    from hie_notify.register.gitlab import months

    ws, rs = window.replace(tzinfo=UTC), start.replace(tzinfo=UTC)
    we, re_ = ws + timedelta(minutes=minutes), rs + timedelta(minutes=range_minutes)
    overlap = ws < re_ and we > rs
    assert overlap <= bool(set(months(ws, we)) & set(months(rs, re_)))


def _run(*args: str, env: dict[str, str], tmp: Path) -> int:
    base = ["--format", "json", "--now", NOW.isoformat(), "--register", "gitlab"]
    base += ["--outbox", str(tmp / "outbox"), "--ledger", f"file:{tmp}/ledger.jsonl"]
    return main([*base, *args], env=env)


def test_gitlab_requests_do_not_grow_with_the_register(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """2,000 changes, then 20,000 (three years, a seventh of the past ones never finished): a
    four-week calendar and an hourly remind make the same requests, a handful."""
    counts: dict[int, dict[str, int]] = {}
    for size in (2000, 20000):
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            fake = RegisterFake(rsps).install()
            fill(fake, history(size, NOW))
            counts[size] = {}
            for name, args in (("calendar", ["calendar"]), ("remind", ["remind"])):
                rsps.calls.reset()
                began = time.perf_counter()
                assert _run(*args, env=dict(ENV), tmp=tmp_path) == 0, capsys.readouterr().err
                assert time.perf_counter() - began < 10
                out = json.loads(capsys.readouterr().out)
                counts[size][name] = len(rsps.calls)
                if name == "calendar":
                    assert len(out["changes"]) > 500  # four weeks of 18 changes a day
    assert counts[2000] == counts[20000], counts
    # The calendar: who am I, the freeze periods, December's and January's issues (some 550 a
    # month: six pages each) and one page of issues written before the month labels.
    assert counts[20000]["calendar"] <= 16, counts
    # remind: as many list requests, and the notes of each open change whose window starts in
    # the week ahead (some 130 at 18 a day; GitLab reads notes per issue) or ended unfinished
    # in the week before (an overrun): what may be due, never the register's size (before,
    # every open issue of three years was listed and each past one's notes read).
    assert counts[20000]["remind"] <= 16 + 18 * 9, counts


_slot = st.integers(0, 30)
_change = st.tuples(
    _slot,
    st.integers(1, 6),
    st.lists(st.sampled_from(["EoE", "CUH", "MKUH"]), max_size=2),
    st.lists(st.sampled_from(["ws-1", "ws-2"]), max_size=2),
    st.booleans(),
)


@given(st.lists(_change, max_size=12))
def test_conflicts_are_every_pair_that_overlaps_and_shares_something(
    drawn: list[tuple[int, int, list[str], list[str], bool]],
) -> None:
    """The calendar compares each change only with those touching one of its customers or
    environments: what it finds is what comparing every pair finds, in the same order."""
    from hie_notify.register.feed import Conflict, conflicts, touches

    changes = [
        Registered(
            change_id=f"C-{i:02d}",
            status="cancelled" if cancelled else "announced",
            change_type=None,
            purpose="x",
            window_start=NOW + timedelta(hours=slot),
            window_end=NOW + timedelta(hours=slot + hours),
            customers=tuple(customers),
            environments=tuple(envs),
            project=("a", "b")[i % 2],
        )
        for i, (slot, hours, customers, envs, cancelled) in enumerate(drawn)
    ]
    live = [c for c in changes if c.status != "cancelled"]
    expected = [
        Conflict(
            a.change_id,
            b.change_id,
            "windows overlap, both touch " + ", ".join(touches(a, b)),
            a.project,
            b.project,
        )
        for a in live
        for b in live
        if a.change_id < b.change_id
        and a.overlaps(b.window_start, b.window_end)  # type: ignore[arg-type]
        and touches(a, b)
    ]
    assert conflicts(changes, []) == expected
    some = [c.change_id for c in changes[:2]]
    assert conflicts(changes, [], among=some) == [
        Conflict(
            a.change_id,
            b.change_id,
            "windows overlap, both touch " + ", ".join(touches(a, b)),
            a.project,
            b.project,
        )
        for a in live
        if a.change_id in some
        for b in live
        if b.change_id != a.change_id
        and a.overlaps(b.window_start, b.window_end)  # type: ignore[arg-type]
        and touches(a, b)
    ]


def test_two_teams_share_a_gitlab_register_in_a_central_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The GitLab register in one project, written by two projects' pipelines: each issue says
    its project, and the second team is warned of the first team's change."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = RegisterFake(rsps).install()
        flows = []
        for project, change in ((TEAM_A, {}), (TEAM_B, {"id": "PLAT-77"})):
            folder = tmp_path / project.replace("/", "_")
            folder.mkdir()
            env = {**ENV, "HIE_REGISTER": "gitlab", "CI_PROJECT_PATH": project}
            flows.append(Flow(folder, capsys, NODES, env=env, **change))
        a, b = flows
        assert a("plan", "--plan", str(a.plan))[0] == 0
        b.window("2026-12-08T20:00:00+00:00", "2026-12-08T22:00:00+00:00")
        code, out = b("plan", "--plan", str(b.plan))
        assert code == 0
        assert (
            "WARNING: conflict: PLAT-77 and FFAPP-4458 (project team-a/infra): windows overlap, "
            "both touch customer EoE" in out["notes"]
        )
        issues = fake.issues.values()
        descriptions = {i["title"].split("]")[0][1:]: i["description"] for i in issues}
        assert "- Project: team-a/infra" in descriptions["FFAPP-4458"]
        assert "- Project: team-b/platform" in descriptions["PLAT-77"]
        code, view = a("calendar", "--from", "2026-12-07", "--to", "2026-12-09")
        assert [(c["id"], c["project"]) for c in view["changes"]] == [
            ("FFAPP-4458", TEAM_A),
            ("PLAT-77", TEAM_B),
        ]
