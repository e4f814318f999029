"""PagerDuty change events (Events API v2) at apply start, success, failure and rollback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import responses

from tests.support.builders import rc
from tests.support.cli_flow import Flow
from tests.support.integration_fakes import LINK_ENV, MR, PD_KEY, PagerdutyFake, integration_policy

DB = rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["storage_encrypted"]])
ENV = {"PAGERDUTY_ROUTING_KEY": PD_KEY, **LINK_ENV}
NOW = "2026-12-08T19:10:00+00:00"


# Retries wait through time.sleep: the conftest's `waits` records the waits instead.
pytestmark = pytest.mark.usefixtures("waits")


@pytest.fixture
def pd() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = PagerdutyFake()
        fake.register(rsps)
        yield fake


def flow(tmp: Path, capsys: Any, env: dict[str, str] | None = None, **change: Any) -> Flow:
    policy = integration_policy(tmp, pagerduty={"source": "gitlab.example/acme/infra"})
    f = Flow(tmp, capsys, DB, env={**ENV, **(env or {})}, policy=policy, **change)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    return f


def test_a_change_event_at_each_apply_and_rollback_stage_none_at_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: PagerdutyFake
) -> None:
    f = flow(tmp_path, capsys)
    assert pd.events == []  # the announcement is not a change
    for cmd, status in (
        ("apply", "started"),
        ("apply", "failed"),
        ("rollback", "started"),
        ("rollback", "succeeded"),
    ):
        assert f(cmd, "--status", status, now=NOW)[0] == 0, f.err
    assert [e["payload"]["custom_details"]["stage"] for e in pd.events] == [
        "apply_started",
        "apply_failed",
        "rollback_started",
        "rollback_succeeded",
    ]
    first = pd.events[0]
    assert first["routing_key"] == PD_KEY
    assert first["payload"]["timestamp"] == "2026-12-08T19:10:00Z"
    assert first["payload"]["source"] == "gitlab.example/acme/infra"
    assert "FFAPP-4458" in first["payload"]["summary"] and len(first["payload"]["summary"]) <= 1024
    links = {link["text"]: link["href"] for link in first["links"]}
    assert links["Merge request"] == MR
    assert links["Jira ticket"] == "https://fitfile.atlassian.net/browse/FFAPP-4458"
    assert links["Pipeline"].endswith("/pipelines/12345")
    assert f("complete", "--verified-by", "Ollie", now=NOW)[0] == 0, f.err
    assert len(pd.events) == 4  # completion is not a change event


def test_success_is_sent_once_however_often_the_job_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: PagerdutyFake
) -> None:
    f = flow(tmp_path, capsys)
    for _ in range(3):
        assert f("apply", "--status", "succeeded", now=NOW)[0] == 0, f.err
    assert len(pd.events) == 1


def test_429_honours_retry_after_then_5xx_then_success(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: PagerdutyFake, waits: list[float]
) -> None:
    f = flow(tmp_path, capsys)
    pd.fail("POST", "/v2/change/enqueue", 429, {"Retry-After": "30"})
    pd.fail("POST", "/v2/change/enqueue", 500)
    assert f("apply", "--status", "started", now=NOW)[0] == 0, f.err
    assert waits[0] == 30.0 and len(waits) == 2
    assert len(pd.events) == 1


def test_5xx_past_the_budget_exits_3_and_a_rerun_sends_only_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: PagerdutyFake
) -> None:
    f = flow(tmp_path, capsys)
    pd.fail("POST", "/v2/change/enqueue", 503, times=5)
    code, out = f("apply", "--status", "failed", now=NOW)
    assert code == 3
    assert "NOT delivered: pagerduty via pagerduty" in f.err
    assert out["failed"] == [
        {
            "audience": "pagerduty",
            "channel": "pagerduty",
            "error": "PagerDuty: send the change event: still failing after 4 retries (HTTP 503)",
        }
    ]
    assert any(e["audience"].startswith("slack:") for e in out["delivered"])
    code, out = f("apply", "--status", "failed", now=NOW)
    assert code == 0, f.err
    assert [e["audience"] for e in out["delivered"]] == ["pagerduty"]
    assert len(pd.events) == 1


def test_a_refused_event_names_the_routing_key_with_pagerdutys_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: PagerdutyFake
) -> None:
    f = flow(tmp_path, capsys, env={"PAGERDUTY_ROUTING_KEY": "R0123456789abcdef0123456789abcde"})
    code, out = f("apply", "--status", "started", now=NOW)
    assert code == 3
    [failed] = out["failed"]
    assert failed["audience"] == "pagerduty"
    assert "HTTP 400" in failed["error"] and "Invalid routing key" in failed["error"]
    assert "PAGERDUTY_ROUTING_KEY must be the integration key" in failed["error"]
    assert out["delivered"]  # the internal channels still heard it
    assert "R0123456789abcdef0123456789abcde" not in f.err + json.dumps(out)


def test_planted_secrets_are_never_sent_and_the_outbox_has_no_routing_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: PagerdutyFake
) -> None:
    f = flow(tmp_path, capsys, purpose=f"Rotate {PD_KEY} and glpat-abcdefghijklmnopqrstu")
    assert f("apply", "--status", "started", now=NOW)[0] == 0, f.err
    summary = pd.events[0]["payload"]["summary"]
    assert PD_KEY not in summary and "glpat-" not in summary and "[MASKED]" in summary
    # Without the key, the outbox shows the event with a placeholder, never a key.
    f.env.pop("PAGERDUTY_ROUTING_KEY")
    assert f("apply", "--status", "succeeded", now=NOW)[0] == 0, f.err
    [written] = (tmp_path / "outbox" / "FFAPP-4458" / "apply_succeeded").glob("*.pagerduty.json")
    event = json.loads(written.read_text())
    assert event["routing_key"] == "$PAGERDUTY_ROUTING_KEY"
    assert "PAGERDUTY_ROUTING_KEY is not set" in f.err


def test_an_eu_account_sends_to_the_events_url_it_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # PagerDuty's EU service region has its own Events API host (the README's example).
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        eu = PagerdutyFake()
        eu.URL = "https://events.eu.pagerduty.com/v2/change/enqueue"
        eu.register(rsps)  # the US host is not there: a request to it fails the command
        f = flow(
            tmp_path, capsys, env={"PAGERDUTY_EVENTS_URL": "https://events.eu.pagerduty.com/v2"}
        )
        assert f("apply", "--status", "started", now=NOW)[0] == 0, f.err
    assert [e["payload"]["custom_details"]["stage"] for e in eu.events] == ["apply_started"]
