"""The change register over both backends: SQLite (real) and GitLab issues (a fake of the
issues, notes and labels API at the HTTP layer)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import responses
from hypothesis import given
from hypothesis import strategies as st

from hie_notify.errors import InputError
from hie_notify.register.gitlab import LABEL, GitLabRegister, decode_record, encode_record
from hie_notify.register.model import STATUSES, Registered, updated
from hie_notify.register.store import Register, default_uri, open_register
from tests.support.register_fake import ENV, HUMAN, RegisterFake
from tests.support.register_records import DONE, NOW, UTC, at, entry, record, steps


@pytest.fixture
def fake() -> Iterator[RegisterFake]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield RegisterFake(rsps).install()


@pytest.fixture(params=["sqlite", "gitlab"])
def register(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Register]:
    if request.param == "sqlite":
        yield open_register(f"sqlite:{tmp_path}/r.sqlite3", {})  # type: ignore[misc]
        return
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        RegisterFake(rsps).install()
        reg = open_register("gitlab", ENV, time_zone="Europe/London")
        assert reg is not None
        yield reg


def test_a_change_is_stored_with_its_entries_once(register: Register) -> None:
    stored = register.put(record(), [entry(n=0), entry(n=1)], NOW)
    assert stored.status == "announced" and stored.sequence == 0
    again = register.put(record(), [entry(n=1), entry(n=2)], NOW + timedelta(hours=1))
    got = register.get("FFAPP-1")
    assert got is not None
    assert [e.message_id for e in got.entries] == ["m0", "m1", "m2"]
    assert [e.message_id for e in again.entries] == ["m1", "m2"]
    assert got.window_start == at(8) and got.customers == ("EoE",)
    assert register.get("FFAPP-2") is None


def test_a_moved_window_and_a_cancellation_raise_the_sequence(register: Register) -> None:
    register.put(record(), [], NOW)
    assert register.put(record(), [], NOW).sequence == 0  # same window: same event
    moved = register.put(record(day=9), [], NOW)
    assert moved.sequence == 1 and moved.window_start == at(9)
    cancelled = register.put(record(day=9), steps("announce", "cancelled", day=9), NOW)
    assert cancelled.sequence == 2 and cancelled.status == "cancelled"
    got = register.get("FFAPP-1")
    assert got is not None and got.sequence == 2


def test_the_status_is_the_lifecycle_its_entries_replay_to(register: Register) -> None:
    """Whatever status a caller puts, the register stores the state the change's transitions
    replay to: announcing again never takes a change under way back to announced."""
    started = steps("announce", "apply_started")
    assert register.put(record(), started, NOW).status == "in progress"
    assert register.put(record(), [entry(n=5)], NOW).status == "in progress"
    assert register.put(record(status="completed"), [], NOW).status == "in progress"
    got = register.get("FFAPP-1")
    assert got is not None and got.status == "in progress"
    rolled = steps("announce", "apply_started", "apply_failed", "rollback_succeeded", "complete")
    assert register.put(record("FFAPP-2"), rolled, NOW).status == "withdrawn"
    back = steps("announce", "cancelled", "announce", change_id="FFAPP-3")
    assert register.put(record("FFAPP-3"), back, NOW).status == "announced"  # back on


def test_range_and_open_changes(register: Register) -> None:
    register.put(record("FFAPP-1", day=3), [], NOW)
    register.put(record("FFAPP-2", day=8), [], NOW)
    register.put(record("FFAPP-3", day=8), steps(*DONE, change_id="FFAPP-3"), NOW)
    register.put(record("FFAPP-4", day=20), [], NOW)
    register.put(record("FFAPP-5", window_start=None, window_end=None), [], NOW)
    found = register.between(at(7, 0), at(14, 0))
    assert [r.change_id for r in found] == ["FFAPP-2", "FFAPP-3"]
    # A window that overlaps the edge of the range is in it.
    edge = register.between(at(3, 20), at(4, 0))
    assert [r.change_id for r in edge] == ["FFAPP-1"]
    assert [r.change_id for r in register.between(at(3, 21), at(4, 0))] == []
    assert {r.change_id for r in register.open_changes()} == {
        "FFAPP-1",
        "FFAPP-2",
        "FFAPP-4",
        "FFAPP-5",
    }


def test_gitlab_issue_has_labels_due_date_record_and_notes(fake: RegisterFake) -> None:
    reg = GitLabRegister.from_env(ENV, None, time_zone="Europe/London")
    # 23:30 UTC on 8 December is still the 8th in London (GMT); in summer it would be the 9th.
    reg.put(record(window_start=at(8, 23) + timedelta(minutes=30), window_end=at(9, 1)), [], NOW)
    reg.put(record(window_start=at(8, 23), window_end=at(9, 1)), [entry(n=0)], NOW)
    (issue,) = fake.issues.values()
    assert issue["title"] == "[FFAPP-1] Resize nodes for FFAPP-1"
    assert set(issue["labels"]) == {
        LABEL,
        "change-status::announced",
        "change-type::planned_infra_update",
        # when: the UTC months its window touches, so a range reads only its months' issues
        "hie-notify-by-month",
        "hie-notify-month:2026-12",
    }
    assert issue["due_date"] == "2026-12-08"
    assert issue["state"] == "opened"
    assert "Status: announced" in issue["description"]
    # People read the window in the policy's zone, one way (the marker keeps ISO 8601).
    assert "- Window: Tue 8 Dec 2026 23:00 GMT to Wed 9 Dec 2026 01:00 GMT" in issue["description"]
    decoded = decode_record(issue["description"], "issue")
    assert decoded is not None and decoded[0].sequence == 1 and decoded[1] == {"FFAPP-1-announce-0"}
    (note,) = fake.notes[1]
    assert "announce: slack:#devops0 via outbox" in note["body"]
    late = {"window_start": at(8, 23), "window_end": at(9, 1)}
    reg.put(record(**late), steps("announce", "cancelled"), NOW)
    assert issue["state"] == "closed"
    assert "change-status::cancelled" in issue["labels"]
    assert "- cancelled: the change is now cancelled" in fake.notes[1][-1]["body"]
    reg.put(record(**late), steps("announce", "cancelled", "announce"), NOW)  # back on
    assert issue["state"] == "opened" and "change-status::announced" in issue["labels"]


def test_gitlab_register_project_is_configurable(fake: RegisterFake) -> None:
    reg = open_register("gitlab", {**ENV, "HIE_REGISTER_PROJECT": "99"})
    assert isinstance(reg, GitLabRegister) and reg.target.project_id == "99"
    reg = open_register("gitlab:7", {**ENV, "HIE_REGISTER_PROJECT": "99"})
    assert isinstance(reg, GitLabRegister) and reg.target.project_id == "7"


def test_gitlab_counts_only_its_own_issues_and_notes(fake: RegisterFake) -> None:
    forged = encode_record(record(status="done"), ["x"])
    fake.add_issue("[FFAPP-1] forged", forged, HUMAN, labels=[LABEL], due_date="2026-12-08")
    reg = GitLabRegister.from_env(ENV, None)
    assert reg.get("FFAPP-1") is None
    assert reg.between(at(1), at(20)) == []
    reg.put(record(), [entry(n=0)], NOW)
    fake.add_note(2, fake.notes[2][0]["body"].replace("m0", "forged"), HUMAN)
    got = GitLabRegister.from_env(ENV, None).get("FFAPP-1")
    assert got is not None and got.status == "announced"
    assert [e.message_id for e in got.entries] == ["m0"]


def test_gitlab_range_reads_are_paginated_and_bounded(fake: RegisterFake) -> None:
    """2,000 changes, about two a day over three years, written before the month labels: a
    four-week range reads the pages from the newest due date down to the range (and 14 days
    before it), not the whole register (and its months' labels, which none of these has)."""
    reg = GitLabRegister.from_env(ENV, None)
    start = datetime(2024, 1, 1, 20, tzinfo=UTC)
    for i in range(2000):
        when = start + timedelta(hours=13 * i)
        r = record(f"FFAPP-{i + 1}", window_start=when, window_end=when + timedelta(hours=2))
        fake.add_issue(
            f"[FFAPP-{i + 1}] x",
            encode_record(r, []),
            {"id": 901},
            labels=[LABEL],
            due_date=when.date().isoformat(),
        )
    last = start + timedelta(hours=13 * 1999)
    fake.rsps.calls.reset()
    found = reg.between(last - timedelta(days=28), last + timedelta(days=1))
    assert len(found) == 52  # 28 days of windows 13 hours apart, and the last one
    gets = fake.requests("GET")
    lists = [r for r in gets if r.url.split("?")[0].endswith("/issues")]
    assert all("per_page=100" in r.url for r in lists)
    unlabelled = [r for r in lists if "not%5Blabels%5D" in r.url]
    assert len(unlabelled) == 1  # 52 + 26 (the 14 days before) fit on the first page of 100
    assert len(lists) == 3  # and the two months the range touches (none of these issues)
    assert len(gets) <= 4  # and who am I
    fake.rsps.calls.reset()
    old = reg.between(start, start + timedelta(days=28))
    assert len(old) == 52
    # The oldest month is at the end: every page is read, each once.
    old_pages = [r for r in fake.requests("GET") if "not%5Blabels%5D" in r.url]
    assert len(old_pages) == 20


def test_gitlab_failing_is_retried_then_exit_3(
    fake: RegisterFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from hie_notify.errors import ServiceError

    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    fake.rsps.replace(
        responses.GET,
        fake.rsps.registered()[1].url,
        status=503,
        json={"message": "503 Service Unavailable"},
        headers={"Retry-After": "7"},
    )
    reg = GitLabRegister.from_env(ENV, None)
    with pytest.raises(ServiceError, match="list the open changes") as caught:
        reg.open_changes()
    assert caught.value.exit_code == 3
    assert waits == [7.0] * 4  # bounded, honouring Retry-After


def test_sqlite_file_that_is_not_a_register_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "r.sqlite3"
    bad.write_bytes(b"this is not a database" * 100)
    reg = open_register(f"sqlite:{bad}", {})
    assert reg is not None
    with pytest.raises(InputError, match=r"r\.sqlite3: cannot open the register"):
        reg.get("FFAPP-1")


def test_sqlite_record_that_was_tampered_with_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    reg = open_register(f"sqlite:{path}", {})
    assert reg is not None
    reg.put(record(), [], NOW)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE changes SET record = ?", (json.dumps({"change_id": "FFAPP-1"}),))
    with pytest.raises(InputError, match=r"r\.sqlite3 change FFAPP-1: register record has no"):
        open_register(f"sqlite:{path}", {}).get("FFAPP-1")  # type: ignore[union-attr]


def test_sqlite_entry_that_is_not_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    reg = open_register(f"sqlite:{path}", {})
    assert reg is not None
    reg.put(record(), [entry()], NOW)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE entries SET entry = ?", ("{not json",))
    with pytest.raises(InputError, match=r"r\.sqlite3 change FFAPP-1: a ledger entry is not JSON"):
        open_register(f"sqlite:{path}", {}).get("FFAPP-1")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("uri", "ledger", "expected"),
    [
        (None, None, "sqlite:.hie-notify/register.sqlite3"),
        (None, "file:/tmp/x/ledger.jsonl", "sqlite:/tmp/x/register.sqlite3"),
        (None, "gitlab", None),
        ("none", None, None),
    ],
)
def test_default_register(uri: str | None, ledger: str | None, expected: str | None) -> None:
    assert (uri or default_uri(ledger)) == expected or (uri == "none" and expected is None)


@pytest.mark.parametrize("uri", ["sqlite:", "gitlab:", "postgres://x", "file:x"])
def test_a_bad_register_uri_names_the_option(uri: str) -> None:
    with pytest.raises(InputError, match="--register / HIE_REGISTER: expected sqlite:PATH"):
        open_register(uri, {})


def test_gitlab_register_without_credentials_says_what_is_missing() -> None:
    with pytest.raises(InputError, match="the GitLab register needs GitLab: HIE_GITLAB_TOKEN"):
        open_register("gitlab", {})


windows = st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=12)


@given(windows)
def test_sequence_counts_the_moves(days: list[int]) -> None:
    """Whatever order the window is re-announced in, SEQUENCE is the number of moves."""
    old = None
    moves = 0
    for i, d in enumerate(days):
        new = record(day=2 + d)
        if old is not None and old.window_start != new.window_start:
            moves += 1
        old = updated(old, new, NOW)
        assert old.sequence == moves, i


@given(
    st.builds(
        record,
        change_id=st.from_regex(r"[A-Z]{2,5}-[1-9][0-9]{0,4}", fullmatch=True),
        day=st.integers(min_value=1, max_value=30),
        purpose=st.text(max_size=80),
        status=st.sampled_from(STATUSES),
    )
)
def test_a_record_survives_the_marker(rec: Registered) -> None:
    back = decode_record("before\n" + encode_record(rec, ["k"]) + "\nafter", "issue")
    assert back is not None
    assert back[0] == replace(rec, updated_at=back[0].updated_at)


def test_a_register_marker_that_inflates_past_its_limit_is_refused() -> None:
    """A register issue's description is read with the ledger's bounded inflate: a few
    kilobytes that would inflate to gigabytes (a zip bomb) are refused, not expanded."""
    import base64
    import zlib

    from hie_notify.errors import InputError
    from hie_notify.register.gitlab import MARKER, decode_record

    bomb = zlib.compress(b"[" + b" " * (64 << 20) + b"]", 9)
    assert len(bomb) < 100_000
    body = f"<!-- {MARKER}{base64.b64encode(bomb).decode()} -->"
    with pytest.raises(InputError, match="the register marker cannot be read"):
        decode_record(body, "issue 1")
