"""The GitLab ledger over a fake of the Notes API: own notes only, server time only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import responses

from hie_notify.errors import InputError
from hie_notify.ledger import Entry, open_ledger
from hie_notify.ledger.gitlab import GitLabLedger, decode_marker, encode_marker, note_body
from hie_notify.ledger.seal import seal
from tests.support.gitlab_fake import BOT, ENV, HUMAN, FakeGitLab
from tests.support.ledger_entries import entry


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
    # A long discussion: the ledger's notes are on different pages (GitLab pages by 100 at most).
    for i in range(150):
        fake.add_note("merge_requests", 7, f"comment {i}", HUMAN, t + timedelta(hours=3, minutes=i))
    fake.add_note("merge_requests", 7, "added 1 commit", BOT, t + timedelta(hours=6), system=True)
    fake.add_note("merge_requests", 7, note_body([second]), BOT, t + timedelta(hours=7))
    ledger = open_ledger("gitlab:mr:7", ENV)
    got = ledger.read("FFAPP-1")
    # Oldest first, as the Ledger protocol promises: GitLab's own default order is newest first.
    assert [(e.message_id, e.delivered_at) for e in got] == [
        ("msg-1", t + timedelta(hours=2)),
        ("msg-2", t + timedelta(hours=7)),
    ]
    pages = [c.request.url for c in fake.rsps.calls if "/notes" in c.request.url]
    assert len(pages) == 2  # 154 notes, 100 per page
    assert all("sort=asc" in url and "order_by=created_at" in url for url in pages)


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
    original = [entry(1), replace(entry(2), dry_run=True, extra={"permalink": "https://x/1"})]
    marker = encode_marker(original)
    assert marker.startswith("<!-- hie-notify-ledger:v1:") and marker.endswith(" -->")
    assert "{" not in marker  # nothing readable for Markdown to render or mangle
    decoded = decode_marker(f"notes before\n\n{marker}\n", "note 1")
    assert decoded is not None
    assert [Entry.from_json(item, "note 1") for item in decoded] == original


def test_a_damaged_marker_is_a_clear_error() -> None:
    marker = encode_marker([entry(1)])
    damaged = marker.replace(marker[40:44], "!!!!")
    with pytest.raises(InputError, match="note 9: the ledger marker cannot be read"):
        decode_marker(damaged, "note 9")
    assert decode_marker("no marker here", "note 9") is None
