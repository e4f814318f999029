"""The GitLab ledger over a fake of the Notes API: own notes only, server time only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import responses

from hie_notify.errors import InputError
from hie_notify.ledger import open_ledger
from hie_notify.ledger.gitlab import GitLabLedger, encode_marker, note_body
from hie_notify.ledger.seal import seal
from tests.gitlab_fake import BOT, ENV, HUMAN, FakeGitLab
from tests.test_ledger_file import entry


@pytest.fixture
def fake() -> Iterator[FakeGitLab]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeGitLab(rsps).install()


def test_record_then_read_uses_server_time(fake: FakeGitLab) -> None:
    ledger = open_ledger("gitlab", {**ENV, "CI_MERGE_REQUEST_IID": "7"})
    assert isinstance(ledger, GitLabLedger)
    stored = ledger.record([entry(1), entry(2)])
    note = fake.notes[("merge_requests", 7)][0]
    assert "hie-notify-ledger:v1:" in note["body"] and "FFAPP-1" in note["body"]
    server = datetime(2026, 11, 27, 10, 0, 5, tzinfo=timezone.utc)
    assert [e.delivered_at for e in stored] == [server, server]
    again = ledger.read("FFAPP-1")
    assert [e.message_id for e in again] == ["msg-1", "msg-2"]
    assert all(e.delivered_at == server for e in again)
    post = next(c for c in fake.rsps.calls if c.request.method == "POST")
    assert post.request.url.endswith("/projects/42/merge_requests/7/notes")
    assert post.request.headers["PRIVATE-TOKEN"] == ENV["HIE_GITLAB_TOKEN"]


def test_pagination_forged_notes_and_claimed_times(fake: FakeGitLab) -> None:
    t = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
    # A note by another user with a valid-looking marker: ignored.
    fake.add_note("merge_requests", 7, "looks official\n" + encode_marker([entry(9)]), HUMAN, t)
    # Our own note whose body claims an earlier delivery: the server's created_at wins.
    claimed = replace(entry(1), delivered_at=t - timedelta(days=30))
    first, second = seal([claimed, replace(entry(2), delivered_at=t)], lambda _: "", None)
    fake.add_note("merge_requests", 7, note_body([first]), BOT, t + timedelta(hours=2))
    fake.add_note("merge_requests", 7, "a human comment", HUMAN, t + timedelta(hours=3))
    fake.add_note("merge_requests", 7, "added 1 commit", BOT, t + timedelta(hours=4), system=True)
    fake.add_note("merge_requests", 7, note_body([second]), BOT, t + timedelta(hours=5))
    ledger = open_ledger("gitlab:mr:7", ENV)
    got = ledger.read("FFAPP-1")
    assert [(e.message_id, e.delivered_at) for e in got] == [
        ("msg-1", t + timedelta(hours=2)),
        ("msg-2", t + timedelta(hours=5)),
    ]
    pages = [c.request.url for c in fake.rsps.calls if "/notes" in c.request.url]
    assert len(pages) == 3  # five notes, two per page


def test_branch_pipeline_finds_the_merge_request_of_the_commit(fake: FakeGitLab) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    fake.commit_mrs[sha] = [12]
    ledger = open_ledger("gitlab", {**ENV, "CI_COMMIT_SHA": sha})
    ledger.record([entry(1)])
    assert ("merge_requests", 12) in fake.notes
    assert ledger.description == "gitlab:mr:12"


def test_no_merge_request_for_the_commit(fake: FakeGitLab) -> None:
    ledger = open_ledger("gitlab", {**ENV, "CI_COMMIT_SHA": "ab" * 20})
    with pytest.raises(InputError, match="no merge request contains commit"):
        ledger.read("FFAPP-1")


def test_change_issue(fake: FakeGitLab) -> None:
    ledger = open_ledger(
        "gitlab", {**ENV, "HIE_CHANGE_ISSUE_IID": "3", "CI_MERGE_REQUEST_IID": "7"}
    )
    ledger.record([entry(1)])
    assert list(fake.notes) == [("issues", 3)]


def test_wrong_token_is_a_clear_error_without_the_token(fake: FakeGitLab) -> None:
    ledger = open_ledger("gitlab:mr:7", {**ENV, "HIE_GITLAB_TOKEN": "glpat-WRONG-999"})
    with pytest.raises(InputError) as info:
        ledger.read("FFAPP-1")
    assert "refused the token" in str(info.value)
    assert "glpat-WRONG-999" not in str(info.value)


def test_marker_round_trip_is_compact_json() -> None:
    marker = encode_marker([entry(1)])
    assert marker.startswith("<!-- hie-notify-ledger:v1:") and marker.endswith(" -->")
    assert "{" not in marker  # nothing readable for Markdown to render or mangle
    assert json.loads(json.dumps(entry(1).to_json()))["message_id"] == "msg-1"
