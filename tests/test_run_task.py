"""The run task endpoint, driven over HTTP as HCP Terraform drives it.

The service runs on waitress on a loopback port. Its outside world is faked at the HTTP layer:
HCP Terraform (the plan JSON with its 307 to the archive host, and the callback receiver) and
GitLab (the change record in the repository, the merge request's ledger notes). Announcements
are made by the real `hie-notify plan` against the same fake GitLab, at the fake's clock.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
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
from tests.support.hcp_fake import ARCHIVIST, PLANS, SIGNED_SECRET, TOKEN, FakeHcp
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


# -- who may call


@pytest.mark.parametrize(
    "signature",
    [None, "", "0" * 128, sign(b"another body"), "AUTO-OTHER-KEY"],
)
def test_a_missing_or_wrong_signature_is_401_and_nothing_else(
    h: Harness, signature: str | None
) -> None:
    service = h.start()
    body = json.dumps(payload()).encode()
    if signature == "AUTO-OTHER-KEY":
        signature = sign(body, "someone-elses-hmac-key-1234")
    code, answer = post(service, body, signature=signature)
    assert code == 401
    assert HMAC_KEY not in json.dumps(answer)
    assert service.run_tasks is not None and service.run_tasks.drain(5)
    assert h.callbacks.headers == []
    assert h.gitlab.notes == {}  # no claim, no decision
    assert not [c for c in h.rsps.calls if "json-output" in c.request.url]


def test_the_verification_request_is_answered_without_a_callback(h: Harness) -> None:
    service = h.start()
    # What HCP sends when the task is created: a test token, signed with the task's key,
    # answered before the run's fields are checked (test_service_attacks.py has the rest).
    for stage in ("test", "pre_apply"):
        code, answer = deliver(h, service, access_token="test-token", stage=stage)
        assert code == 200 and "verification" in answer["status"]
    assert h.callbacks.headers == [] and h.gitlab.notes == {}


# -- the decision


def test_notice_too_short_fails_with_every_reason_and_the_earliest_start(h: Harness) -> None:
    h.announce(datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc))
    service = h.start()
    code, answer = deliver(h, service)
    assert code == 200 and answer["status"] == "accepted"
    data = h.callbacks.only()
    assert data["type"] == "task-results"
    attrs = data["attributes"]
    assert attrs["status"] == "failed"
    assert attrs["message"].startswith("BLOCKED: 1 reason(s); earliest allowed start Wed 9 Dec")
    assert "Wed 9 Dec 2026 10:00 GMT: East of England was told" in attrs["message"]
    assert len(attrs["message"]) <= 1000
    outcomes = data["relationships"]["outcomes"]["data"]
    failed = [o for o in outcomes if o["attributes"]["tags"]["Status"][0]["label"] == "Failed"]
    assert len(failed) == 1
    first = failed[0]["attributes"]
    assert first["outcome-id"] == "HIE-1"
    assert "East of England was told" in first["description"]
    assert first["tags"]["Severity"] == [{"label": "High", "level": "error"}]
    assert "**Earliest allowed start**: Wed 9 Dec 2026 10:00 GMT" in first["body"]
    assert "| East of England | 5bd |" in first["body"]
    # HCP's headers, the access token as the bearer; the decision and the claim are recorded.
    headers = h.callbacks.headers[0]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Content-Type"] == "application/vnd.api+json"
    (decision,) = h.ledger_entries("run_task")
    assert decision["extra"]["status"] == "failed"
    assert decision["extra"]["task_result_id"] == TASK_RESULT
    assert len(h.ledger_entries("run_task_claim")) == 1


def test_enough_notice_passes(h: Harness) -> None:
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc))
    service = h.start()
    code, _ = deliver(h, service)
    assert code == 200
    data = h.callbacks.only()
    assert data["attributes"]["status"] == "passed"
    assert data["attributes"]["message"].startswith("ALLOWED")
    outcomes = [o["attributes"] for o in data["relationships"]["outcomes"]["data"]]
    assert all(o["tags"]["Status"][0]["label"] != "Failed" for o in outcomes)
    assert any("East of England told Fri 27 Nov 2026" in o["description"] for o in outcomes)
    # The link goes to the run when the merge request has no web address in the fake.
    assert data["attributes"]["url"].startswith("https://app.terraform.io/app/hie-sde/")


def test_notices_only_written_to_the_outbox_tell_nobody_and_fail(h: Harness) -> None:
    """The run task is an enforcement point, as GitLab CI is: without a declared trial, an
    announcement that only reached the outbox does not count."""
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc))
    h.policy.write_text((EXAMPLES / "policy.yaml").read_text())  # no trial
    code, _ = deliver(h, h.start())
    assert code == 200
    data = h.callbacks.only()
    assert data["attributes"]["status"] == "failed"
    outcomes = [o["attributes"] for o in data["relationships"]["outcomes"]["data"]]
    assert any("was only written to the outbox" in o["description"] for o in outcomes)


def test_the_plan_json_is_fetched_with_the_token_and_the_archive_without_it(h: Harness) -> None:
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc))
    deliver(h, h.start())
    api = [c.request for c in h.rsps.calls if "/json-output" in c.request.url]
    archive = [c.request for c in h.rsps.calls if c.request.url.startswith(ARCHIVIST)]
    assert api and api[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert archive and "Authorization" not in archive[0].headers
    assert h.callbacks.only()["attributes"]["status"] == "passed"  # the fake refuses a token


def test_a_speculative_run_passes_as_not_a_deployment(h: Harness) -> None:
    service = h.start()
    deliver(h, service, is_speculative=True)
    data = h.callbacks.only()
    assert data["attributes"]["status"] == "passed"
    assert data["attributes"]["message"] == "speculative: not a deployment"
    assert not [c for c in h.rsps.calls if "json-output" in c.request.url]


def test_a_plan_changed_since_the_announcement_fails(h: Harness) -> None:
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc), plan="s3.json")
    h.hcp.plan = json.loads((PLANS / "rds_replace.json").read_text())
    deliver(h, h.start())
    data = h.callbacks.only()
    assert data["attributes"]["status"] == "failed"
    bodies = " ".join(o["attributes"]["body"] for o in data["relationships"]["outcomes"]["data"])
    assert "told about a different plan" in bodies
    assert "not announced" in bodies


def test_no_announcement_at_all_fails_for_every_audience(h: Harness) -> None:
    deliver(h, h.start())
    data = h.callbacks.only()
    assert data["attributes"]["status"] == "failed"
    reasons = [
        o["attributes"]["description"]
        for o in data["relationships"]["outcomes"]["data"]
        if o["attributes"]["tags"]["Status"][0]["label"] == "Failed"
    ]
    assert len(reasons) >= 2 and all("has not been told" in r for r in reasons)


def test_post_plan_is_advisory_and_says_whether_notice_is_owed(h: Harness) -> None:
    h.announce(datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc))
    deliver(h, h.start(), stage="post_plan")
    data = h.callbacks.only()
    attrs = data["attributes"]
    assert attrs["status"] == "passed"
    # The example policy's five audiences and its direct contact for the QA-reports buckets
    # (the plan changes S3), told in time as the others are.
    assert attrs["message"].startswith(
        "advisory: planned_infra_update; notice owed to 6 audience(s), 5 told in time"
    )
    assert "the gate would block now" in attrs["message"]
    tags = [
        o["attributes"]["tags"]["Status"][0]["label"]
        for o in data["relationships"]["outcomes"]["data"]
    ]
    assert "Failed" not in tags and "Warning" in tags


def test_a_run_of_another_change_fails_at_pre_apply(h: Harness) -> None:
    deliver(h, h.start(), run_message="FFAPP-9999: something else")
    data = h.callbacks.only()
    assert data["attributes"]["status"] == "failed"
    assert (
        "the change record is FFAPP-4458, but the run names FFAPP-9999"
        in (data["attributes"]["message"])
    )


def test_a_run_message_without_a_jira_key_fails_closed(h: Harness) -> None:
    deliver(h, h.start(), run_message="Triggered via API")
    data = h.callbacks.only()
    assert data["attributes"]["status"] == "failed"
    assert "names no Jira key" in data["attributes"]["message"]


def test_without_the_outcomes_capability_only_the_status_is_sent(h: Harness) -> None:
    deliver(h, h.start(), capabilities={"outcomes": False}, is_speculative=True)
    assert "relationships" not in h.callbacks.only()


def test_go_tfes_misspelled_capability_is_read_too(h: Harness) -> None:
    deliver(h, h.start(), capabilities={"capabilitites": True}, is_speculative=True)
    assert "relationships" in h.callbacks.only()


# -- delivery


def test_hcp_retrying_the_same_request_gets_one_decision_and_one_callback(h: Harness) -> None:
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc))
    service = h.start()
    body = json.dumps(payload()).encode()
    codes = [post(service, body)[0] for _ in range(3)]
    assert service.run_tasks is not None and service.run_tasks.drain(30)
    codes.append(post(service, body)[0])  # after the decision too
    assert service.run_tasks.drain(30)
    assert codes == [200, 200, 200, 200]
    assert len(h.callbacks.headers) == 1
    assert len(h.ledger_entries("run_task")) == 1


def test_the_callback_host_failing_is_retried_a_bounded_number_of_times(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h.callbacks.script = [(503, {})] * 50
    deliver(h, h.start(), is_speculative=True)
    assert len(h.callbacks.headers) == 6  # the first try and 5 retries
    assert len(h.sleeps) == 5 and all(0 < s <= 30 for s in h.sleeps)
    assert "could not be delivered" in caplog.text
    assert "count it as failed" in caplog.text
    assert TOKEN not in caplog.text and HMAC_KEY not in caplog.text


def test_the_callback_honours_retry_after_then_delivers(h: Harness) -> None:
    h.callbacks.script = [(429, {"Retry-After": "7"}), (502, {})]
    deliver(h, h.start(), is_speculative=True)
    assert h.sleeps[0] == 7.0 and len(h.sleeps) == 2
    assert h.callbacks.only()["attributes"]["status"] == "passed"


def test_a_refused_callback_is_not_retried(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h.callbacks.script = [(422, {})]
    deliver(h, h.start(), is_speculative=True)
    assert len(h.callbacks.headers) == 1 and h.sleeps == []
    assert "could not be delivered" in caplog.text


def test_twenty_concurrent_requests_are_all_answered_and_decided(h: Harness) -> None:
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc))
    h.gitlab.per_page = 100  # as GitLab pages (the fake's default of 2 tests paging elsewhere)
    service = h.start()
    answers: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        body = json.dumps(payload(task_result_id=f"taskrs-concurrent{i:02d}")).encode()
        code, _ = post(service, body, timeout=30)
        with lock:
            answers.append(code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert service.run_tasks is not None and service.run_tasks.drain(120)
    assert sorted(answers) == [200] * 20
    assert len(h.callbacks.received) == 20
    assert {r["data"]["attributes"]["status"] for r in h.callbacks.received} == {"passed"}
    assert len(h.ledger_entries("run_task")) == 20


def test_a_50_mb_body_is_refused_before_it_is_read(h: Harness) -> None:
    service = h.start()
    size = 50 * 1024 * 1024
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", service.port), timeout=5) as sock:
        head = (
            f"POST /run-task HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"X-TFC-Task-Signature: {'0' * 128}\r\nContent-Length: {size}\r\n\r\n"
        )
        sock.sendall(head.encode() + b"[" * 65536)
        reply = sock.recv(4096)
    elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 413"), reply[:80]
    assert elapsed < 1.0
    assert h.callbacks.headers == []


def test_two_instances_sharing_one_gitlab_decide_once(h: Harness) -> None:
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc))
    a, b = h.start("a"), h.start("b")
    body = json.dumps(payload()).encode()
    codes: list[int] = []
    barrier = threading.Barrier(2)

    def send(service: Service) -> None:
        barrier.wait()
        codes.append(post(service, body)[0])

    threads = [threading.Thread(target=send, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for s in (a, b):
        assert s.run_tasks is not None and s.run_tasks.drain(30)
    # HCP retrying later, through the load balancer to the other replica:
    codes.append(post(b, body)[0])
    codes.append(post(a, body)[0])
    for s in (a, b):
        assert s.run_tasks is not None and s.run_tasks.drain(30)
    assert codes == [200, 200, 200, 200]
    assert len(h.callbacks.headers) == 1
    assert len(h.ledger_entries("run_task")) == 1
    claims = h.ledger_entries("run_task_claim")
    assert 1 <= len(claims) <= 2


def test_the_signed_archive_url_and_tokens_stay_out_of_the_logs(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    h.announce(datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc))
    deliver(h, h.start())
    for secret in (SIGNED_SECRET, TOKEN, HMAC_KEY, GITLAB_ENV["HIE_GITLAB_TOKEN"]):
        assert secret not in caplog.text


def test_a_decision_recorded_by_another_replica_is_not_repeated(h: Harness) -> None:
    # A decision recorded by another replica: this one sends nothing.
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc))
    deliver(h, h.start("a"))
    assert len(h.callbacks.headers) == 1
    deliver(h, h.start("c"))
    assert len(h.callbacks.headers) == 1


def test_healthz(h: Harness) -> None:
    service = h.start()
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=5)
    conn.request("GET", "/healthz")
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["status"].startswith("ok")
    conn.close()
    assert post(service, b"{}", path="/nowhere")[0] == 404


def test_the_access_token_never_goes_to_another_host(h: Harness) -> None:
    # A signed request comes from HCP, but the token still only goes to the configured host.
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc))
    deliver(h, h.start(), plan_json_api_url="https://evil.example/api/v2/plans/plan-x/json-output")
    data = h.callbacks.only()
    assert data["attributes"]["status"] == "failed"
    assert "plan_json_api_url: not on https://app.terraform.io" in data["attributes"]["message"]
    assert not [c for c in h.rsps.calls if "evil.example" in c.request.url]
    deliver(
        h,
        h.start("b"),
        task_result_id="taskrs-elsewhere1",
        task_result_callback_url="https://evil.example/callback",
        is_speculative=True,
    )
    assert not [c for c in h.rsps.calls if "evil.example" in c.request.url]
    assert len(h.callbacks.received) == 1
