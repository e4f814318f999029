"""Break-glass: an emergency is announced at once, needs a justification and, where GitLab is
configured, an approval on the merge request from someone other than its author."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml

from hie_notify.cli import main
from tests.support.builders import fired, plan, rc, write
from tests.support.gitlab_fake import BOT, ENV, HUMAN, FakeGitLab

SG = rc("aws_security_group_rule.block", ["create"], after={"type": "ingress"})
GL = {**ENV, "CI_MERGE_REQUEST_IID": "7"}
OLLIE = {
    "id": 23,
    "username": "ollie",
    "name": "Ollie",
    "state": "active",
    "avatar_url": None,
    "web_url": "https://gitlab.example.com/ollie",
}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitLab]:
    import time

    monkeypatch.setattr(time, "sleep", lambda s: None)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeGitLab(rsps).install()


def run(
    tmp: Path, capsys: pytest.CaptureFixture[str], command: str, env: dict[str, str], now: str
) -> tuple[int, Any]:
    change = tmp / "change.yaml"
    change.write_text(
        yaml.safe_dump(
            {
                "id": "FFAPP-911",
                "type": "emergency_fix",
                "purpose": "Block the exploited port",
                "justification": "CVE-2026-0001 is being exploited",
                "downtime": "0",
                "rollback": "Remove the rule",
                "risk": "low",
                "monitoring": "Grafana dashboard and alerts",
                "approvers": ["Ollie"],
                "on_call": "Leon",
                "window": {
                    "start": "2026-12-08T10:00:00+00:00",
                    "end": "2026-12-08T12:00:00+00:00",
                },
            }
        )
    )
    args = [
        "--format",
        "json",
        "--now",
        now,
        "--change",
        str(change),
        "--ledger",
        f"file:{tmp}/ledger.jsonl",
        "--outbox",
        str(tmp / "outbox"),
        command,
        "--plan",
        str(write(tmp / "plan.json", plan(SG))),
    ]
    args += {
        "plan": ["--terraform-report", str(tmp / "r.json")],
        "gate": ["--dotenv", str(tmp / "g.env")],
    }[command]
    code = main(args, env=env)
    out = capsys.readouterr()
    assert code in (0, 1), out.err
    return code, json.loads(out.out) if out.out.strip() else {}


@pytest.mark.parametrize(
    ("approvers", "allowed"),
    [
        ([], False),
        ([HUMAN], False),  # the author approving their own emergency does not count
        ([HUMAN, OLLIE], True),
    ],
)
def test_emergency_needs_another_persons_approval(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake: FakeGitLab,
    approvers: list[dict[str, Any]],
    allowed: bool,
) -> None:
    fake.approved_by[7] = approvers
    code, out = run(tmp_path, capsys, "plan", GL, "2026-12-08T10:00:00+00:00")
    assert code == 0
    # announced immediately, to the emergency's audiences, and recorded as an emergency
    assert {"slack:#ops", "slack:#devops"} <= {d["audience"] for d in out["delivered"]}
    assert all(
        json.loads(line)["emergency"]
        for line in (tmp_path / "ledger.jsonl").read_text().splitlines()
    )
    code, out = run(tmp_path, capsys, "gate", GL, "2026-12-08T10:05:00+00:00")
    assert out["allowed"] is allowed and out["emergency"] is True
    if not allowed:
        assert "emergency.not_approved" in fired(out)
        assert any(
            r.startswith(
                "an emergency fix needs an approval on its merge request from "
                "someone other than its author (author mallory"
            )
            for r in out["reasons"]
        )
    else:
        assert out["reasons"] == []
    assert BOT["username"] not in json.dumps(out)


def test_without_gitlab_the_approval_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(tmp_path, capsys, "plan", {}, "2026-12-08T10:00:00+00:00")
    code, out = run(tmp_path, capsys, "gate", {}, "2026-12-08T10:05:00+00:00")
    assert code == 0
    assert fired(out, "warn") == ["emergency.approval_unchecked"]
