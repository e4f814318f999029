"""Which token each feature needs; a token too weak is a clear error and the gate stays shut."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
import yaml

from hie_notify.cli import main
from tests.support.builders import plan, rc, write
from tests.support.gitlab_fake import API, ENV, FakeGitLab


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitLab]:
    import time

    monkeypatch.setattr(time, "sleep", lambda s: None)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeGitLab(rsps).install()


def test_validate_lists_each_feature_and_its_credential(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--format", "json", "validate"], env={"SLACK_BOT_TOKEN": "xoxb-1-2-abcdefghij"}) == 0
    )
    out = json.loads(capsys.readouterr().out)
    lines = "\n".join(out["credentials"])
    assert "Slack: uses SLACK_BOT_TOKEN" in lines
    assert "GitLab ledger, merge request note, post-mortem issues: not configured" in lines
    assert "CI_JOB_TOKEN cannot create notes" in lines


def test_a_read_only_gitlab_token_is_refused(
    capsys: pytest.CaptureFixture[str], fake: FakeGitLab
) -> None:
    fake.token_scopes = ["read_api"]
    code = main(["--ledger", "gitlab", "validate"], env={**ENV, "CI_MERGE_REQUEST_IID": "7"})
    err = capsys.readouterr().err
    assert code == 2
    assert (
        "HIE_GITLAB_TOKEN has scopes read_api: writing notes and issues needs the api scope" in err
    )
    assert ENV["HIE_GITLAB_TOKEN"] not in err


def test_job_token_cannot_keep_the_gitlab_ledger(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["--ledger", "gitlab", "validate"],
        env={"CI_JOB_TOKEN": "glcbt-abc", "CI_API_V4_URL": API, "CI_PROJECT_ID": "42"},
    )
    assert code == 2
    assert (
        "--ledger gitlab needs HIE_GITLAB_TOKEN: CI_JOB_TOKEN cannot create merge-request "
        "notes" in capsys.readouterr().err
    )


def test_gate_with_a_token_gitlab_refuses_stays_shut(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake: FakeGitLab
) -> None:
    fake.rsps.replace(
        responses.GET,
        f"{API}/user",
        status=403,
        json={"message": "403 Forbidden - insufficient_scope"},
    )
    change = tmp_path / "change.yaml"
    change.write_text(yaml.safe_dump({"id": "FFAPP-3", "purpose": "x"}))
    plan_file = write(tmp_path / "plan.json", plan(rc("aws_vpc.a", ["update"])))
    code = main(
        [
            "--change",
            str(change),
            "--ledger",
            "gitlab",
            "gate",
            "--plan",
            str(plan_file),
            "--dotenv",
            str(tmp_path / "g.env"),
        ],
        env={**ENV, "CI_MERGE_REQUEST_IID": "7"},
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "the token may not identify the notifier's user (403)" in err
    assert (tmp_path / "g.env").read_text() == "HIE_GATE_ALLOWED=false\n"
