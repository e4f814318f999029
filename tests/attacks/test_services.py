"""Hardening: outside services that time out, reset the connection, rate-limit, fail, or answer
malformed JSON or an HTML error page get bounded retries, then exit 3, with nothing recorded
that was not delivered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
import yaml

from hie_notify.cli import main
from tests.support.builders import plan, rc, write
from tests.support.gitlab_fake import API as GITLAB_API
from tests.support.gitlab_fake import ENV as GITLAB_ENV
from tests.support.hcp_fake import API as HCP_API
from tests.support.hcp_fake import ENV as HCP_ENV
from tests.support.hcp_fake import RUN_ID, FakeHcp

FAULTS: dict[str, dict[str, Any]] = {
    "timeout": {"body": requests.exceptions.ReadTimeout("read timed out")},
    "reset": {"body": requests.exceptions.ConnectionError("Connection reset by peer")},
    "429": {
        "status": 429,
        "json": {"message": "429 Too Many Requests"},
        "headers": {"Retry-After": "2"},
    },
    "500": {"status": 500, "json": {"message": "500 Internal Server Error"}},
    "malformed": {"status": 200, "body": "{not json", "content_type": "application/json"},
    "html": {
        "status": 502,
        "body": "<html><body><h1>502 Bad Gateway</h1></body></html>",
        "content_type": "text/html",
    },
}
TEAMS = "https://prod-1.westeurope.logic.azure.com/workflows/x/triggers/manual/paths/invoke"


# Retries wait through time.sleep: the conftest's `waits` records the waits instead.
pytestmark = pytest.mark.usefixtures("waits")


class Flow:
    def __init__(self, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.tmp, self.capsys = tmp, capsys
        self.change = tmp / "change.yaml"
        self.change.write_text(
            yaml.safe_dump(
                {
                    "id": "FFAPP-5",
                    "purpose": "TTL",
                    "downtime": "0",
                    "rollback": "Revert",
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
        self.plan = write(
            tmp / "plan.json",
            plan(rc("aws_route53_record.a", ["update"], before={"ttl": 1}, after={"ttl": 2})),
        )

    def __call__(
        self, *args: str, env: dict[str, str], ledger: str | None = None, policy: Path | None = None
    ) -> tuple[int, str]:
        base = [
            "--now",
            "2026-12-01T10:00:00+00:00",
            "--change",
            str(self.change),
            "--ledger",
            ledger or f"file:{self.tmp}/ledger.jsonl",
            "--outbox",
            str(self.tmp / "outbox"),
        ]
        if policy:
            base += ["--policy", str(policy)]
        extra = ["--terraform-report", str(self.tmp / "r.json")] if args[0] == "plan" else []
        code = main([*base, *args, *extra], env=env)
        out = self.capsys.readouterr()  # the report (with why) on stdout, the error on stderr
        return code, out.out + out.err

    def recorded(self) -> list[dict[str, Any]]:
        path = self.tmp / "ledger.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Flow:
    return Flow(tmp_path, capsys)


@pytest.mark.parametrize("fault", FAULTS)
def test_gitlab_ledger_faults(flow: Flow, fault: str) -> None:
    env = {**GITLAB_ENV, "CI_MERGE_REQUEST_IID": "7"}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.GET, f"{GITLAB_API}/user", **FAULTS[fault])
        code, err = flow("plan", "--plan", str(flow.plan), env=env, ledger="gitlab")
        attempts = len(rsps.calls)
    assert code == 3, err
    assert "GitLab" in err and GITLAB_ENV["HIE_GITLAB_TOKEN"] not in err
    assert 1 <= attempts <= 5  # python-gitlab's retries, bounded at 4
    assert not (flow.tmp / "outbox").exists()  # nothing was sent before the ledger could be read


@pytest.mark.parametrize("fault", FAULTS)
def test_hcp_faults(flow: Flow, fault: str) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        hcp = FakeHcp(rsps).install()
        reply = FAULTS[fault]
        for _ in range(6):
            if "body" in reply and isinstance(reply["body"], Exception):
                hcp.script("run", reply["body"])
            else:
                headers = {
                    **reply.get("headers", {}),
                    "Content-Type": reply.get("content_type", "application/json"),
                }
                body = reply.get("body") or json.dumps(reply.get("json"))
                hcp.script("run", (reply["status"], headers, body))
        code, err = flow("plan", "--run-id", RUN_ID, env=dict(HCP_ENV))
        attempts = len([c for c in rsps.calls if c.request.url.startswith(f"{HCP_API}/runs/")])
    assert code == 3, err
    assert attempts == 5 or (fault == "malformed" and attempts == 1)
    assert HCP_ENV["TF_API_TOKEN"] not in err
    assert flow.recorded() == [] and not (flow.tmp / "outbox").exists()


@pytest.mark.parametrize("fault", FAULTS)
def test_teams_fault_leaves_the_others_delivered(flow: Flow, fault: str) -> None:
    policy = flow.tmp / "policy.yaml"
    policy.write_text("channels: {internal: [teams, outbox]}\n")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        for _ in range(6):
            rsps.add(responses.POST, TEAMS, **FAULTS[fault])
        code, err = flow(
            "plan", "--plan", str(flow.plan), env={"TEAMS_WEBHOOK_URL": TEAMS}, policy=policy
        )
        attempts = len(rsps.calls)
    if fault == "malformed":  # a 200 is a delivery: Workflows webhooks answer with no body
        assert code == 0
        return
    assert code == 3, err
    assert attempts == 15  # three channels, 1 + 4 retries each
    assert "NOT delivered" in err and "logic.azure" not in err
    channels = {(e["audience"], e["channel"]) for e in flow.recorded() if e["stage"] != "lifecycle"}
    assert channels == {
        ("slack:#devops", "outbox"),
        ("slack:#infrastructure", "outbox"),
        ("slack:#product", "outbox"),
    }  # only what was delivered is recorded
    # a re-run delivers only what is missing
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, TEAMS, status=202)
        code, _ = flow(
            "plan", "--plan", str(flow.plan), env={"TEAMS_WEBHOOK_URL": TEAMS}, policy=policy
        )
        assert code == 0 and len(rsps.calls) == 3


def test_smtp_server_down(flow: Flow, waits: list[float]) -> None:
    from tests.support.smtp_server import free_port

    policy = flow.tmp / "policy.yaml"
    policy.write_text(
        "stakeholders: {business: {name: Biz, contacts: [{email: a@b.org}]}}\n"
        "support: {email: devops@example.org}\n"
        "channels: {internal: [outbox]}\n"
    )
    flow.plan = write(
        flow.tmp / "plan.json",
        plan(rc("helm_release.app", ["update"], before={"v": 1}, after={"v": 2})),
    )
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(free_port()), "SMTP_SECURITY": "ssl"}
    code, err = flow("plan", "--plan", str(flow.plan), env=env, policy=policy)
    assert code == 3
    assert "still failing after 3 retries (ConnectionRefusedError)" in err
    assert len(waits) == 3
    assert "stakeholders:business" not in {e["audience"] for e in flow.recorded()}


def test_slack_html_error_page(tmp_path: Path, flow: Flow) -> None:
    from tests.support.slack_fake import TOKEN, FakeSlack

    with FakeSlack() as slack:
        slack.state.fail.extend([("chat.postMessage", 502, {}, False)] * 12)
        code, err = flow(
            "plan",
            "--plan",
            str(flow.plan),
            env={"SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": slack.url},
        )
        assert code == 3
        assert len(slack.state.calls("chat.postMessage")) == 12  # 4 tries x 3 channels
        assert slack.state.messages == []
    # Nothing delivered is recorded: only the transition, which tells nobody.
    assert [e["stage"] for e in flow.recorded()] == ["lifecycle"]
    assert TOKEN not in err
