"""`hie-notify ack --resolve`: who resolves an objection is never the change's author (the merge
request's author, read from GitLab, where GitLab is configured), and in GitLab CI it is the job's
user, whatever `--by` says."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import responses
import yaml

from hie_notify.cli import main
from hie_notify.commands.ack import _resolver
from hie_notify.errors import InputError
from hie_notify.ledger.file import FileLedger
from hie_notify.options import Options
from hie_notify.records import Entry
from tests.support.gitlab_fake import ENV, FakeGitLab

GL = {**ENV, "CI_MERGE_REQUEST_IID": "7"}
AT = datetime(2026, 12, 2, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitLab]:
    import time

    monkeypatch.setattr(time, "sleep", lambda s: None)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeGitLab(rsps).install()


def objection(tmp: Path) -> list[str]:
    change = tmp / "change.yaml"
    change.write_text(yaml.safe_dump({"id": "FFAPP-4458", "purpose": "Encrypt", "owner": "ollie"}))
    FileLedger(tmp / "ledger.jsonl").record(
        [
            Entry(
                "FFAPP-4458",
                "ack",
                "customer:EoE",
                "web",
                "ops@eoe.example",
                "",
                None,
                False,
                (),
                AT,
                "",
                "k1",
                extra={"decision": "objected", "reason": "month end", "announcement": "t"},
            )
        ]
    )
    return [
        "--format",
        "json",
        "--now",
        "2026-12-03T10:00:00+00:00",
        "--change",
        str(change),
        "--ledger",
        f"file:{tmp}/ledger.jsonl",
        "--register",
        "none",
    ]


def test_the_merge_requests_author_may_not_resolve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake: FakeGitLab
) -> None:
    base = objection(tmp_path)
    # The fake's merge request 7 is mallory's (the record's owner, ollie, is not asked then).
    assert main([*base, "ack", "--resolve", "--reason", "ok", "--by", "mallory"], env=GL) == 2
    assert "mallory is the change's author" in capsys.readouterr().err
    assert main([*base, "ack", "--resolve", "--reason", "agreed", "--by", "ollie"], env=GL) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recorded"] == ["customer:EoE"]
    (row,) = out["acknowledgements"]
    assert row["open_objections"] == [] and row["resolved"][-1]["by"] == "ollie"


def test_in_gitlab_ci_the_person_is_the_jobs_user() -> None:
    def who(by: str | None, env: dict[str, str]) -> str:
        return _resolver(argparse.Namespace(by=by), Options(env=env))

    ci = {"GITLAB_CI": "true", "GITLAB_USER_LOGIN": "ollie"}
    assert who(None, ci) == "ollie" and who("ollie", ci) == "ollie"
    with pytest.raises(InputError, match="the job's user \\(ollie\\), not 'mallory'"):
        who("mallory", ci)
    with pytest.raises(InputError, match="GITLAB_USER_LOGIN is not set"):
        who("ollie", {"GITLAB_CI": "true"})
    with pytest.raises(InputError, match="give --by NAME"):
        who(None, {})
    assert who("bob", {}) == "bob"
