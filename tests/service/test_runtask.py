"""The run task endpoint, driven over HTTP as HCP Terraform drives it.

The service runs on waitress on a loopback port. Its outside world is faked at the HTTP layer:
HCP Terraform (the plan JSON with its 307 to the archive host, and the callback receiver) and
GitLab (the change record in the repository, the merge request's ledger notes). Announcements
are made by the real `hie-notify plan` against the same fake GitLab, at the fake's clock.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from datetime import datetime, timezone

import pytest

from hie_notify.service.server import Service
from tests.support.gitlab_fake import ENV as GITLAB_ENV
from tests.support.hcp_fake import ARCHIVIST, PLANS, SIGNED_SECRET, TOKEN
from tests.support.paths import EXAMPLES
from tests.support.runtask_harness import (
    HMAC_KEY,
    TASK_RESULT,
    Harness,
    deliver,
    harness_fixture,
    payload,
    post,
    sign,
)

_ = harness_fixture  # the `h` fixture: the run-task service over fakes of GitLab and HCP

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
