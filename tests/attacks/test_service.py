"""The service refuses what the CI gate refuses: no pinned clock or dry run without a trial,
HCP's verification request answered only once signed, and no run taken as a change's own
unless its message names that change (a pinned HIE_CHANGE included)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hie_notify.cli import main
from hie_notify.service.server import Service
from tests.support.paths import EXAMPLES
from tests.support.runtask_harness import (
    HMAC_KEY,
    MR,
    Harness,
    deliver,
    harness_fixture,
    payload,
    post,
    sign,
)
from tests.support.service_calls import notification, notify, stages

_ = harness_fixture  # the `h` fixture

SERVICE_ENV = {"HIE_RUN_TASK_HMAC_KEY": HMAC_KEY, "HIE_LISTEN": "127.0.0.1:0"}
NO_KEY = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=80
).filter(lambda m: not any(c.isupper() for c in m))  # a Jira key needs capitals


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Service]:
    """Services that `receive` started (serving is recorded, never entered)."""
    from hie_notify.service import logs

    started: list[Service] = []
    monkeypatch.setattr(Service, "serve", lambda self: started.append(self))
    monkeypatch.setattr(logs, "configure", lambda masker: None)  # pytest keeps the handlers
    return started


def receive(*args: str, **env: str) -> int:
    return main([*args, "receive"], env={**SERVICE_ENV, **env})


# -- a pinned clock or a dry run is a trial's, never a real service's


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ((), {"HIE_NOW": "2026-12-08T19:05:00+00:00"}, "--now / HIE_NOW"),
        (("--now", "2026-12-08T19:05:00+00:00"), {}, "--now / HIE_NOW"),
        ((), {"HIE_DRY_RUN": "true"}, "--dry-run / HIE_DRY_RUN"),
        (("--dry-run",), {}, "--dry-run / HIE_DRY_RUN"),
    ],
)
def test_receive_refuses_a_pinned_clock_or_a_dry_run_at_start(
    served: list[Service],
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    env: dict[str, str],
    named: str,
) -> None:
    assert receive("--policy", str(EXAMPLES / "policy.yaml"), *args, **env) == 2
    assert served == []  # nothing listened
    err = capsys.readouterr().err
    assert f"{named}: refused by receive" in err
    assert "examples/policy.yaml" in err and "does not declare trial: true" in err
    assert HMAC_KEY not in err


def test_receive_names_both_when_both_are_set(
    served: list[Service], capsys: pytest.CaptureFixture[str]
) -> None:
    assert receive(HIE_NOW="2026-12-08T19:05:00+00:00", HIE_DRY_RUN="1") == 2
    err = capsys.readouterr().err
    assert "--now / HIE_NOW: refused" in err and "--dry-run / HIE_DRY_RUN: refused" in err
    assert "built-in default" in err and served == []


@given(now=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2998, 12, 31)))
@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_pinned_time_is_refused(served: list[Service], now: datetime) -> None:
    assert receive(HIE_NOW=now.replace(tzinfo=timezone.utc).isoformat()) == 2
    assert served == []


def test_a_trial_policy_may_pin_the_clock(served: list[Service], tmp_path: Path) -> None:
    trial = tmp_path / "policy.yaml"
    trial.write_text((EXAMPLES / "policy.yaml").read_text() + "trial: true\n")
    now = "2026-12-08T19:05:00+00:00"
    assert receive("--policy", str(trial), HIE_NOW=now, HIE_DRY_RUN="yes") == 0
    (service,) = served
    try:
        assert service.run_tasks is not None
        assert service.run_tasks.clock() == datetime(2026, 12, 8, 19, 5, tzinfo=timezone.utc)
    finally:
        service.close(timeout=1)


# -- HCP's verification request


def test_the_bare_verification_request_is_answered_once_signed(h: Harness) -> None:
    service = h.start()
    # What HCP's check may carry: the test token and nothing a run would (no stage, no ids).
    body = json.dumps({"access_token": "test-token"}).encode()
    assert post(service, body, signature=None)[0] == 401
    assert post(service, body, signature=sign(b"{}"))[0] == 401
    code, answer = post(service, body)
    assert code == 200 and "verification" in answer["status"]
    assert service.run_tasks is not None and service.run_tasks.drain(5)
    assert h.callbacks.headers == [] and h.gitlab.notes == {}
    assert not [c for c in h.rsps.calls if "json-output" in c.request.url]


@given(
    junk=st.dictionaries(
        st.sampled_from(["stage", "task_result_id", "run_id", "payload_version", "run_message"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=20), st.lists(st.integers())),
    )
)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_a_signed_verification_is_200_whatever_else_it_carries(
    h: Harness, junk: dict[str, Any]
) -> None:
    service = h.services[0][0] if h.services else h.start()
    body = json.dumps({**payload(), **junk, "access_token": "test-token"}).encode()
    code, answer = post(service, body)
    assert code == 200 and "verification" in answer["status"]
    assert service.run_tasks is not None and service.run_tasks.drain(5)
    assert h.callbacks.headers == [] and h.gitlab.notes == {}


def test_a_malformed_request_with_another_token_is_still_refused(h: Harness) -> None:
    service = h.start()
    code, answer = post(service, json.dumps(payload(stage="test")).encode())
    assert code == 400 and "stage" in answer["status"]
    assert h.callbacks.headers == []


# -- a run whose message names no change is nobody's, even with HIE_CHANGE pinned


def pinned(h: Harness) -> Path:
    path = h.tmp / "pinned-change.yaml"
    path.write_bytes(h.change)
    return path


def test_a_keyless_errored_run_sends_nothing_with_a_pinned_change(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc))
    service = h.start(ledger=f"gitlab:mr:{MR}", change=pinned(h))
    laptop = notification("notification_errored_canceled.json")
    data = json.loads(laptop)
    data["run_message"] = "terraform apply from a laptop"
    code, _ = notify(service, json.dumps(data).encode())
    assert code == 200
    assert "apply_failed" not in stages(h) and "postmortem" not in stages(h)
    assert not (h.tmp / "outbox/FFAPP-4458/apply_failed").exists()
    assert "ignored: the run message names no Jira key" in caplog.text
    # The same event naming the change is acted on: the pin still serves its own runs.
    code, _ = notify(service, notification("notification_errored_canceled.json"))
    assert code == 200 and "apply_failed" in stages(h)


@given(message=NO_KEY)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_no_keyless_message_is_taken_for_the_pinned_change(h: Harness, message: str) -> None:
    if not h.services:
        h.start(ledger=f"gitlab:mr:{MR}", change=pinned(h))
    service = h.services[0][0]
    data = json.loads(notification("notification_applying.json"))
    data["run_message"] = message
    code, _ = notify(service, json.dumps(data).encode())
    assert code == 200 and stages(h) == []


def test_a_keyless_run_task_fails_at_pre_apply_with_a_pinned_change(h: Harness) -> None:
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc))
    service = h.start(ledger=f"gitlab:mr:{MR}", change=pinned(h))
    deliver(h, service, run_message="terraform apply from a laptop")
    data = h.callbacks.only()
    assert data["attributes"]["status"] == "failed"
    assert "names no Jira key" in data["attributes"]["message"]
