"""The HCP Terraform run-task service under test: a signed payload,
the fakes it calls back and the harness that starts it
(moved from tests/test_run_task.py)."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import responses

from hie_notify.cli import main
from hie_notify.options import Options
from hie_notify.service.server import Service
from hie_notify.service.settings import Settings
from tests.support.gitlab_fake import ENV as GITLAB_ENV
from tests.support.gitlab_fake import PROJECT, FakeGitLab
from tests.support.hcp_fake import PLANS, TOKEN, FakeHcp
from tests.support.paths import EXAMPLES

HMAC_KEY = "runtask-hmac-PLANTED-key-8c1d"


SHA = "3f1c2ab4" * 5


MR = 7


TASK_RESULT = "taskrs-2nH8HK5aPeWxRkqJ"


CALLBACK = f"https://app.terraform.io/api/v2/task-results/{TASK_RESULT}/callback"


NOW = datetime(2026, 12, 8, 19, 5, tzinfo=timezone.utc)  # inside the example window


def sign(body: bytes, key: str = HMAC_KEY) -> str:
    # Independently of the service: lowercase hex HMAC-SHA512 of the raw body.
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def payload(**over: Any) -> dict[str, Any]:
    """A request as HCP sends it (run-tasks-integration, payload_version 1)."""
    task = over.pop("task_result_id", TASK_RESULT)
    data: dict[str, Any] = {
        "payload_version": 1,
        "stage": "pre_apply",
        "access_token": TOKEN,
        "capabilities": {"outcomes": True},
        "configuration_version_download_url": (
            "https://app.terraform.io/api/v2/configuration-versions/cv-ntv3HbhJqvFzamy7/download"
        ),
        "configuration_version_id": "cv-ntv3HbhJqvFzamy7",
        "is_speculative": False,
        "organization_name": "hie-sde",
        "plan_json_api_url": "https://app.terraform.io/api/v2/plans/plan-Rb2cY7nVhM4kLx9S/json-output",
        "run_app_url": "https://app.terraform.io/app/hie-sde/eoe-prod/runs/run-Qx7bN2eKpL4mRw9T",
        "run_created_at": "2026-12-08T18:52:11.036Z",
        "run_created_by": "project_42_bot_tfc",
        "run_id": "run-Qx7bN2eKpL4mRw9T",
        "run_message": "FFAPP-4458: resize the EKS general worker nodes to m6i.xlarge",
        "task_result_callback_url": f"https://app.terraform.io/api/v2/task-results/{task}/callback",
        "task_result_enforcement_level": "mandatory",
        "task_result_id": task,
        "vcs_branch": "main",
        "vcs_commit_url": f"https://gitlab.example.com/hie/infra/-/commit/{SHA}",
        "vcs_pull_request_url": None,
        "vcs_repo_url": "https://gitlab.example.com/hie/infra",
        "workspace_app_url": "https://app.terraform.io/app/hie-sde/eoe-prod",
        "workspace_id": "ws-Hk3vT8pRcY2nWq6D",
        "workspace_name": "eoe-prod",
        "workspace_working_directory": "/terraform",
    }
    data.update(over)
    return data


@dataclass
class Callbacks:
    """HCP's callback endpoint: PATCH /api/v2/task-results/:id/callback."""

    rsps: responses.RequestsMock
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    final: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> Callbacks:
        import re

        self.rsps.add_callback(
            responses.PATCH,
            re.compile(r"^https://app\.terraform\.io/api/v2/task-results/([^/]+)/callback$"),
            callback=self._patch,
        )
        return self

    def _patch(self, request: Any) -> tuple[int, dict[str, str], str]:
        with self.lock:
            self.headers.append(dict(request.headers))
            if self.script:
                code, headers = self.script.pop(0)
                return code, headers, ""
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return 401, {}, json.dumps({"errors": [{"status": "401"}]})
            body = json.loads(request.body)
            task = request.url.split("/")[-2]
            if task in self.final:  # go-tfe: a final result cannot be updated
                return 409, {}, ""
            if body["data"]["attributes"]["status"] in ("passed", "failed"):
                self.final.add(task)
            self.received.append(body)
            return 200, {}, ""

    def only(self) -> dict[str, Any]:
        assert len(self.received) == 1, self.received
        return self.received[0]["data"]  # type: ignore[no-any-return]


class Harness:
    def __init__(self, tmp: Path, rsps: responses.RequestsMock) -> None:
        self.tmp = tmp
        self.rsps = rsps
        self.gitlab = FakeGitLab(rsps).install()
        self.gitlab.commit_mrs[SHA] = [MR]
        self.hcp = FakeHcp(rsps).install()
        self.callbacks = Callbacks(rsps).install()
        self.sleeps: list[float] = []
        self.services: list[tuple[Service, threading.Thread]] = []
        self.change = (EXAMPLES / "change.yaml").read_bytes()
        # The outbox stands in for Slack and email here. The service is an enforcement point,
        # where the outbox tells nobody, so the operator's policy declares a trial (the test of
        # the outbox without a trial is below).
        self.policy = tmp / "policy.yaml"
        self.policy.write_text((EXAMPLES / "policy.yaml").read_text() + "trial: true\n")
        self.gitlab.files[(str(PROJECT), SHA, "deploy/change.yaml")] = self.change
        self.gitlab.files[(str(PROJECT), "main", "deploy/change.yaml")] = self.change
        self.gitlab.projects[str(PROJECT)] = {
            "id": PROJECT,
            "path_with_namespace": "hie/infra",
            "default_branch": "main",
            "web_url": "https://gitlab.example.com/hie/infra",
        }
        self.env = {
            **GITLAB_ENV,
            "HIE_RUN_TASK_HMAC_KEY": HMAC_KEY,
            "HIE_TFC_NOTIFICATION_TOKEN": "nc-token-PLANTED-6d2f-0000",
            "HIE_LISTEN": "127.0.0.1:0",
            "HIE_SERVICE_IDLE_TIMEOUT": "2",
        }

    def announce(self, at: datetime, plan: str = "s3.json") -> None:
        """`hie-notify plan` in the merge request pipeline, its notes written at `at`."""
        self.gitlab.clock = at
        change = self.tmp / "change.yaml"
        change.write_bytes(self.change)
        env = {**GITLAB_ENV, "CI_MERGE_REQUEST_IID": str(MR)}
        code = main(
            [
                "--policy",
                str(self.policy),
                "--change",
                str(change),
                "--ledger",
                f"gitlab:mr:{MR}",
                "--outbox",
                str(self.tmp / "outbox"),
                "--now",
                at.isoformat(),
                "plan",
                "--plan",
                str(PLANS / plan),
                "--terraform-report",
                str(self.tmp / "report.json"),
            ],
            env={**env, "HIE_ENVIRONMENT": "eoe-prod"},
        )
        assert code == 0

    def start(
        self,
        instance: str = "a",
        ledger: str | None = None,
        clock: Callable[[], datetime] = lambda: NOW,
        change: Path | None = None,
        **env: str,
    ) -> Service:
        settings = Settings.from_env({**self.env, **env})
        options = Options(
            policy=self.policy,
            change=change,
            ledger=ledger,
            outbox=self.tmp / "outbox",
            env={**self.env, **env},
        )
        service = Service(
            settings,
            options,
            clock=clock,
            sleep=self.sleeps.append,
            workdir=self.tmp / f"work-{instance}",
            instance=instance,
        )
        thread = threading.Thread(target=service.run, daemon=True)
        thread.start()
        self.services.append((service, thread))
        return service

    def stop(self) -> None:
        for service, _ in self.services:
            service.close(timeout=10)
        for _, thread in self.services:
            thread.join(timeout=10)

    def ledger_entries(self, stage: str) -> list[dict[str, Any]]:
        from hie_notify.ledger.gitlab import decode_marker

        found = []
        for note in self.gitlab.notes.get(("merge_requests", MR), []):
            for item in decode_marker(note["body"], "note") or []:
                if item["stage"] == stage:
                    found.append(item)
        return found


def post(
    service: Service,
    body: bytes,
    *,
    signature: str | None = "auto",
    path: str = "/run-task",
    header: str = "X-TFC-Task-Signature",
    timeout: float = 10,
) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=timeout)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "TFC/1.0 (+https://app.terraform.io; TFC)",
    }
    if signature == "auto":
        signature = sign(body)
    if signature is not None:
        headers[header] = signature
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(data) if data else {}


def deliver(h: Harness, service: Service, **over: Any) -> tuple[int, dict[str, Any]]:
    body = json.dumps(payload(**over)).encode()
    code, answer = post(service, body)
    assert service.run_tasks is not None
    assert service.run_tasks.drain(30)
    return code, answer


@pytest.fixture(name="h")
def harness_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setattr(time, "sleep", lambda s: None)  # python-gitlab's own retry waits
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        harness = Harness(tmp_path, rsps)
        try:
            yield harness
        finally:
            harness.stop()
