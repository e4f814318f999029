"""A merge request pipeline as an attacker meets it: GitLab CI, a protected policy on the default
branch, the GitLab ledger, Slack and SMTP reached for real (local fakes), the clock injected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml

from hie_notify.cli import main
from tests.support.builders import plan, rc, write
from tests.support.gitlab_fake import ENV, PROJECT, FakeGitLab
from tests.support.slack_fake import TOKEN, FakeSlack
from tests.support.smtp_server import SmtpServer

PROTECTED = b"""\
customers:
  EoE: {contacts: [{email: desk@eoe.example.org, critical: true}]}
stakeholders:
  critical: {name: Critical stakeholders, contacts: [{email: cso@hie.example.org}]}
"""
DB = rc("aws_db_instance.main", ["delete", "create"], before={"a": 1}, after={"a": 2})
CHANGE: dict[str, Any] = {
    "id": "FFAPP-4458",
    "purpose": "Encrypt the database",
    "downtime": "1h",
    "rollback": "Restore the snapshot",
    "risk": "low",
    "monitoring": "Grafana dashboard and alerts",
    "approvers": ["Ollie"],
    "on_call": "Leon",
    "customers": ["EoE"],
    "window": {"start": "2026-12-08T19:00:00+00:00", "end": "2026-12-08T21:00:00+00:00"},
}
ANNOUNCED = "2026-12-01T10:00:00+00:00"  # five business days before the window
AT_WINDOW = "2026-12-08T19:30:00+00:00"


class Pipeline:
    """`pipe("gate")` runs `hie-notify --format json gate --plan ...` as a CI job would."""

    def __init__(
        self,
        tmp: Path,
        capsys: pytest.CaptureFixture[str],
        gitlab: FakeGitLab,
        slack: FakeSlack,
        smtp: SmtpServer,
    ) -> None:
        self.tmp, self.capsys = tmp, capsys
        self.gitlab, self.slack, self.smtp = gitlab, slack, smtp
        self.protected(PROTECTED)
        self.change = tmp / "change.yaml"
        self.fields = dict(CHANGE)
        self.write_change()
        self.plan = write(tmp / "plan.json", plan(DB))
        self.env: dict[str, str] = {
            **ENV,
            "GITLAB_CI": "true",
            "CI_DEFAULT_BRANCH": "main",
            "CI_MERGE_REQUEST_IID": "7",
            "HIE_LEDGER": "gitlab",
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_API_URL": slack.url,
            **smtp.env(),
        }
        self.err = ""
        self.branch_file = tmp / ".hie-notify" / "policy.yaml"

    def protected(self, text: bytes) -> None:
        if b"support:" not in text:  # a policy must say whom customers contact
            text = b"support: {email: devops@hie.example.org}\n" + text
        self.gitlab.files[(str(PROJECT), "main", ".hie-notify/policy.yaml")] = text

    def branch_policy(self, text: str) -> None:
        self.branch_file.parent.mkdir(exist_ok=True)
        self.branch_file.write_text(text)

    def write_change(self, **fields: Any) -> None:
        self.fields.update(fields)
        self.fields = {k: v for k, v in self.fields.items() if v is not None}
        self.change.write_text(yaml.safe_dump(self.fields))

    @property
    def dotenv(self) -> str:
        path = self.tmp / "gate.env"
        return path.read_text() if path.exists() else ""

    def __call__(
        self,
        *args: str,
        at: str = AT_WINDOW,
        env: dict[str, str] | None = None,
        flags: list[str] | None = None,
    ) -> tuple[int, Any]:
        when = datetime.fromisoformat(at)
        extra = {
            "plan": ["--plan", str(self.plan), "--terraform-report", str(self.tmp / "r.json")],
            "gate": ["--plan", str(self.plan), "--dotenv", str(self.tmp / "gate.env")],
        }.get(args[0], [])
        base = ["--format", "json", "--change", str(self.change), "--outbox", str(self.tmp / "o")]
        base += flags or []
        code = main([*base, *args, *extra], env=env or self.env, clock=lambda: when)
        out = self.capsys.readouterr()
        self.err = out.err
        return code, json.loads(out.out) if out.out.strip() else {}

    def note_bodies(self) -> list[str]:
        return [n["body"] for n in self.gitlab.notes.get(("merge_requests", 7), [])]

    def requests_to(self, fragment: str) -> list[Any]:
        return [c.request for c in self.gitlab.rsps.calls if fragment in c.request.url]


@contextmanager
def pipeline(
    tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pipeline]:
    import time

    monkeypatch.setattr(time, "sleep", lambda s: None)
    monkeypatch.chdir(tmp)
    with (
        responses.RequestsMock(assert_all_requests_are_fired=False) as rsps,
        FakeSlack() as slack,
        SmtpServer(tmp) as smtp,
    ):
        yield Pipeline(tmp, capsys, FakeGitLab(rsps).install(), slack, smtp)
