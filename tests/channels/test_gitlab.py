"""The merge request summary note (one, updated in place) and the post-mortem issue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from hie_notify.channels.gitlab import NOTE_LIMIT, MergeRequestSummary, fit, summary_marker
from hie_notify.gitlab_api import NoteTarget
from tests.support.builders import rc
from tests.support.cli_flow import Flow as _Flow
from tests.support.gitlab_fake import ENV, HUMAN, FakeGitLab

DB = rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["storage_encrypted"]])
GL_ENV = {**ENV, "CI_MERGE_REQUEST_IID": "7", "CI_PIPELINE_URL": "https://gitlab.example.com/p/1"}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitLab]:
    import time

    monkeypatch.setattr(time, "sleep", lambda s: None)  # python-gitlab's retry backoff
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeGitLab(rsps).install()


def Flow(tmp: Path, capsys: pytest.CaptureFixture[str], resources: Any) -> _Flow:
    return _Flow(
        tmp,
        capsys,
        *resources,
        env=GL_ENV,
        purpose="Encrypt <b>the</b> database @all",
        rollback="Restore",
        risk="low",
        monitoring="Grafana dashboard and alerts",
        approvers=["Ollie"],
    )


def _summaries(fake: FakeGitLab) -> list[dict[str, Any]]:
    return [
        n
        for n in fake.notes.get(("merge_requests", 7), [])
        if summary_marker("FFAPP-4458") in n["body"]
    ]


def test_one_note_updated_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake: FakeGitLab
) -> None:
    flow = Flow(tmp_path, capsys, [DB])
    assert flow("plan", "--plan", str(flow.plan))[0] == 0
    notes = _summaries(fake)
    assert len(notes) == 1
    body = notes[0]["body"]
    assert "## hie-notify · FFAPP-4458 · Planned Infra Update" in body
    assert "| 0 | 0 | 0 | 1 | 0 | 0 |" in body  # add change destroy replace import move
    assert "**Destroyed or replaced**" in body and "`aws_db_instance.main`" in body
    assert "announce: customer:EoE via outbox" in body
    report = json.loads((tmp_path / "r.json").read_text())
    assert report == {"create": 1, "update": 0, "delete": 1}
    posts = [c for c in fake.rsps.calls if c.request.method == "POST"]
    assert posts[0].request.url.endswith("/api/v4/projects/42/merge_requests/7/notes")
    flow(
        "gate",
        "--plan",
        str(flow.plan),
        "--dotenv",
        str(tmp_path / "g.env"),
        now="2026-12-08T19:05:00+00:00",
    )
    flow("apply", "--status", "started", now="2026-12-08T19:06:00+00:00")
    notes = _summaries(fake)
    assert len(notes) == 1  # never a second copy
    assert "**State**: in progress" in notes[0]["body"]  # the change's lifecycle state
    puts = [c for c in fake.rsps.calls if c.request.method == "PUT"]
    assert puts and all(c.request.url.endswith(f"/notes/{notes[0]['id']}") for c in puts)


def test_gate_status_in_the_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake: FakeGitLab
) -> None:
    flow = Flow(tmp_path, capsys, [DB])
    flow("plan", "--plan", str(flow.plan))
    code, _ = flow(
        "gate",
        "--plan",
        str(flow.plan),
        "--dotenv",
        str(tmp_path / "g.env"),
        now="2026-12-08T19:05:00+00:00",
    )
    assert code == 0
    assert "**Gate**: allowed" in _summaries(fake)[0]["body"]


def test_escaped_and_a_forged_summary_is_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake: FakeGitLab
) -> None:
    from datetime import datetime, timezone

    fake.add_note(
        "merge_requests",
        7,
        "fake summary " + summary_marker("FFAPP-4458"),
        HUMAN,
        datetime(2026, 11, 30, tzinfo=timezone.utc),
    )
    flow = Flow(tmp_path, capsys, [DB])
    flow("plan", "--plan", str(flow.plan))
    ours = [n for n in _summaries(fake) if n["author"]["id"] != HUMAN["id"]]
    assert len(ours) == 1
    assert "&#64;all" in ours[0]["body"] and "@all" not in ours[0]["body"]
    assert "<b>the</b>" not in ours[0]["body"]


def test_502_on_a_create_that_went_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake: FakeGitLab
) -> None:
    fake.fail_posts_after_store = 1
    flow = Flow(tmp_path, capsys, [DB])
    code, _ = flow("plan", "--plan", str(flow.plan))
    assert code == 0, flow.err
    assert len(_summaries(fake)) == 1


def test_over_the_note_limit_is_cut_with_a_link() -> None:
    body = "x" * (NOTE_LIMIT + 500)
    cut = fit(body, NOTE_LIMIT, "https://gitlab.example.com/p/-/jobs/9")
    assert len(cut) <= NOTE_LIMIT
    assert cut.endswith("Full plan: https://gitlab.example.com/p/-/jobs/9\n")
    assert fit("short", NOTE_LIMIT, "x") == "short"


def test_publish_api(fake: FakeGitLab) -> None:
    summary = MergeRequestSummary(NoteTarget.from_env(GL_ENV, "test"))
    first = summary.publish("FFAPP-1", "hello")
    again = summary.publish("FFAPP-1", "hello")  # unchanged: not even an update
    assert first == again
    assert not [c for c in fake.rsps.calls if c.request.method == "PUT"]


def test_failed_apply_opens_one_postmortem_issue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake: FakeGitLab
) -> None:
    flow = Flow(tmp_path, capsys, [DB])
    flow("plan", "--plan", str(flow.plan))
    code, _ = flow(
        "apply",
        "--status",
        "failed",
        "--error",
        "Error: timeout waiting for DB",
        now="2026-12-08T19:30:00+00:00",
    )
    assert code == 0, flow.err
    assert len(fake.issues) == 1
    issue = fake.issues[0]
    assert issue["title"] == "Post-mortem: FFAPP-4458 Encrypt <b>the</b> database @all"
    assert "the deployment failed" in issue["description"]
    assert issue["labels"] == ["post-mortem", "hie-notify"]
    devops = (tmp_path / "outbox/FFAPP-4458/apply_failed/slack-devops.json").read_text()
    assert "Post-mortem owed" in devops and "issues/1" in devops
    assert "timeout waiting for DB" in devops
    code, _ = flow("rollback", "--status", "succeeded", now="2026-12-08T20:00:00+00:00")
    assert code == 0 and len(fake.issues) == 1
    code, _ = flow("complete", now="2026-12-08T21:00:00+00:00")
    assert code == 0 and len(fake.issues) == 1  # owed once, opened once
