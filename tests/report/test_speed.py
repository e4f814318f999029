"""What the report's speed rests on gives the same answers as the slower way it replaced: the
register's bulk read against `between` + `get` (both backends; entries of every shape a damaged
file may hold), the masker's shortcut against its pattern, the report made with the cyclic
collector paused, the HTML's charts drawn by a helper process."""

from __future__ import annotations

import gc
import json
import multiprocessing
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hie_notify import masking
from hie_notify.errors import InputError
from hie_notify.masking import Masker
from hie_notify.register.sqlite import SqliteRegister
from hie_notify.register.store import Register, open_register
from tests.support.register_fake import ENV, RegisterFake
from tests.support.register_records import NOW, at, entry, record


def _both(register: Register) -> tuple[Any, Any]:
    """What the bulk read gives for December 2026, and what between + get give (each either
    the records or the refusal's message)."""
    lo, hi = at(1, 0), at(31, 0)
    try:
        bulk: Any = register.between_with_entries(lo, hi)
    except InputError as exc:
        bulk = str(exc)
    try:
        slow: Any = [register.get(r.change_id) for r in register.between(lo, hi)]
    except InputError as exc:
        slow = str(exc)
    return bulk, slow


@pytest.fixture(params=["sqlite", "gitlab"])
def register(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Register]:
    if request.param == "sqlite":
        yield SqliteRegister(tmp_path / "r.sqlite3")
        return
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        RegisterFake(rsps).install()
        reg = open_register("gitlab", ENV, time_zone="Europe/London")
        assert reg is not None
        yield reg


def test_the_bulk_read_is_between_with_each_change_as_get_gives_it(register: Register) -> None:
    register.put(record("A-1", day=8), [entry("A-1", n=0), entry("A-1", "complete", n=1)], NOW)
    register.put(record("A-2", day=9), [entry("A-2", n=2)], NOW)
    register.put(record("A-3", day=10), [], NOW)
    register.put(record("OUT-1", window_start=None, window_end=None), [entry("OUT-1")], NOW)
    register.put(record("OUT-2", day=8, window_start=at(2, 0), window_end=at(2, 1)), [], NOW)
    bulk, slow = _both(register)
    assert [r.change_id for r in bulk] == ["OUT-2", "A-1", "A-2", "A-3"]
    assert [len(r.entries) for r in bulk] == [0, 2, 1, 0]
    assert bulk == slow


# Values a damaged or hand-edited register may hold in place of an entry's field.
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(
        [
            "",
            "{}",
            "[]",
            '["a", "b"]',
            "emergency_fix",
            "no_such_type",
            "2026-12-01T10:00:00",
            "2026-12-01T10:00:00+00:00",
            "1969-12-31T23:00:00+00:00",
            "3000-01-01T00:00:00+00:00",
            "x" * 41,
        ]
    ),
    st.lists(st.sampled_from(["a", "b"]), max_size=2),
    st.lists(st.lists(st.sampled_from(["a.b", "update"]), max_size=3), max_size=2),
    st.dictionaries(st.sampled_from(["state", "n"]), st.one_of(st.text(max_size=3), st.none())),
    st.just({"state": {"nested": 1}}),
)
FIELDS = sorted(entry().to_json())


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(FIELDS), st.one_of(ODD, st.just("<missing>"))),
        max_size=3,
    ),
)
def test_an_entry_of_any_shape_is_read_in_bulk_as_get_reads_it(
    tmp_path_factory: pytest.TempPathFactory, changes: list[tuple[str, Any]]
) -> None:
    path = tmp_path_factory.mktemp("bulk") / "r.sqlite3"
    register = SqliteRegister(path)
    register.put(record("B-1"), [entry("B-1", n=0), entry("B-1", "complete", n=1)], NOW)
    data = entry("B-1", "apply_started", n=2).to_json()
    for name, value in changes:
        if value == "<missing>":
            data.pop(name, None)
        else:
            data[name] = value
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?)",
            ("B-1", "odd", (NOW + timedelta(hours=1)).isoformat(), json.dumps(data)),
        )
    db.close()
    bulk, slow = _both(register)
    assert bulk == slow


def test_an_entry_that_is_not_json_is_refused_naming_the_change(tmp_path: Path) -> None:
    register = SqliteRegister(tmp_path / "r.sqlite3")
    register.put(record("C-1"), [entry("C-1")], NOW)
    db = sqlite3.connect(tmp_path / "r.sqlite3")
    with db:
        db.execute("UPDATE entries SET entry = '{not json'")
    db.close()
    with pytest.raises(InputError, match=r"r\.sqlite3 change C-1: a ledger entry is not JSON"):
        register.between_with_entries(at(1, 0), at(31, 0))


PIECES = st.sampled_from(
    [
        "xoxb-",
        "xoxq-",
        "xox",
        "glpat-",
        "glpat",
        "https://",
        "http://",
        "hooks.slack.com/",
        "x.webhook.office.com",
        "a.logic.azure.com/",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789",
        "-_",
        " ",
        '"<>)',
        "\n",
        "h",
        "g",
        "x",
    ]
)


@given(st.lists(PIECES, max_size=12).map("".join))
def test_the_masker_shortcut_masks_what_the_pattern_masks(text: str) -> None:
    assert Masker()(text) == masking._PATTERNS.sub(masking.MASK, text)


def test_the_report_leaves_the_cyclic_collector_as_it_found_it(tmp_path: Path) -> None:
    from hie_notify.calendar import BusinessCalendar
    from hie_notify.policy import load_policy
    from hie_notify.report.generate import generate

    policy = load_policy()
    register = SqliteRegister(tmp_path / "r.sqlite3")
    register.put(record("D-1"), [entry("D-1")], NOW)
    calendar = BusinessCalendar.from_policy(policy)
    seen = []

    def clock() -> Any:
        seen.append(gc.isenabled())
        return NOW

    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            _report, text = generate(
                register,
                policy=policy,
                calendar=calendar,
                start=at(1, 0),
                end=at(31, 0),
                clock=clock,
                kind="json",
            )
            assert gc.isenabled() is enabled
        finally:
            gc.enable()
        assert json.loads(text)["notes"][0].startswith("D-1: left out")
    assert seen == [False, False]  # paused while the report was made


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.report_seed import seed_register, seeds

    path = tmp_path_factory.mktemp("seeded") / "register.sqlite3"
    seed_register(path, seeds())
    return path


def _page(register: Path, *, painter: bool, clock: Any = None) -> str:
    from zoneinfo import ZoneInfo

    from hie_notify.calendar import BusinessCalendar
    from hie_notify.policy import load_policy
    from hie_notify.report.generate import generate
    from tests.support.report_seed import NOW

    policy = load_policy()
    zone = ZoneInfo("Europe/London")
    _report, text = generate(
        SqliteRegister(register),
        policy=policy,
        calendar=BusinessCalendar.from_policy(policy),
        start=datetime(2026, 10, 1, tzinfo=zone),
        end=datetime(2027, 1, 1, tzinfo=zone),
        clock=clock or (lambda: NOW),
        kind="html",
        painter=painter,
    )
    return text


def test_charts_drawn_by_the_helper_process_are_the_ones_drawn_here(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hie_notify.report import html
    from tests.support.report_seed import NOW

    here = _page(seeded, painter=False)

    def no_drawing_here(*args: Any) -> list[str]:
        raise AssertionError("the page drew its charts itself")

    def clock() -> Any:
        # Read after the register, so after the helper forked: only this process is changed.
        monkeypatch.setattr(html, "draw", no_drawing_here)
        return NOW

    there = _page(seeded, painter=True, clock=clock)
    assert there.count("<svg ") == 3
    assert there == here
    assert not multiprocessing.active_children()


def test_a_helper_that_fails_leaves_the_page_to_draw_its_charts(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hie_notify.report import charts

    here = _page(seeded, painter=False)

    def broken() -> None:
        raise ImportError("no matplotlib in the helper")

    monkeypatch.setattr(charts, "warm_up", broken)  # the forked helper inherits it
    assert _page(seeded, painter=True) == here
    assert not multiprocessing.active_children()


def test_a_register_that_cannot_be_read_stops_the_helper(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database" * 100)
    with pytest.raises(InputError, match=r"garbage\.sqlite3"):
        _page(garbage, painter=True)
    assert not multiprocessing.active_children()
