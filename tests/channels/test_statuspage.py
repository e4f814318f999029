"""Statuspage scheduled maintenance: created at the announcement on the mapped components,
moved with the window, updated on failure and rollback, completed, deleted on cancel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.builders import rc
from tests.support.cli_flow import Flow
from tests.support.integration_fakes import (
    COMPONENT,
    PAGE,
    SP_KEY,
    StatuspageFake,
    integration_policy,
)

DB = rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["storage_encrypted"]])
SETTINGS = {"page_id": PAGE, "components": {"EoE": [COMPONENT], "cuh-prod": ["k4ml2cbmb7t9"]}}
ENV = {"STATUSPAGE_API_KEY": SP_KEY}


# Retries wait through time.sleep: the conftest's `waits` records the waits instead.
pytestmark = pytest.mark.usefixtures("waits")


@pytest.fixture
def page() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = StatuspageFake()
        fake.register(rsps)
        yield fake


def flow(tmp: Path, capsys: Any, env: dict[str, str] | None = None, **change: Any) -> Flow:
    policy = integration_policy(tmp, statuspage=SETTINGS)
    return Flow(tmp, capsys, DB, env={**ENV, **(env or {})}, policy=policy, **change)


def methods(page: StatuspageFake) -> list[str]:
    return [m for m, _, _ in page.calls if m != "GET"]


def test_maintenance_follows_the_change_from_announcement_to_completion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], page: StatuspageFake
) -> None:
    f = flow(tmp_path, capsys)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    [incident] = page.incidents.values()
    create = next(b for m, _, b in page.calls if m == "POST")["incident"]
    assert create["status"] == "scheduled"
    assert create["scheduled_for"] == "2026-12-08T19:00:00Z"
    assert create["scheduled_until"] == "2026-12-08T21:00:00Z"
    assert create["component_ids"] == [COMPONENT]  # EoE's, not CUH's
    assert create["scheduled_remind_prior"] is True and create["scheduled_auto_in_progress"] is True
    assert create["scheduled_auto_completed"] is False
    assert create["metadata"] == {"hie": {"change_id": "FFAPP-4458"}}
    assert "FFAPP-4458" in create["name"] and len(create["name"]) <= 255
    assert "components" not in create  # nothing is under maintenance before the window
    # The window moves: the same maintenance is moved, not a second one made.
    f.window("2026-12-10T19:00:00+00:00", "2026-12-10T20:00:00+00:00")
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert len(page.incidents) == 1
    assert incident["scheduled_for"] == "2026-12-10T19:00:00Z"
    assert f("apply", "--status", "failed", now="2026-12-10T19:20:00+00:00")[0] == 0, f.err
    assert incident["status"] == "in_progress"
    assert incident["components"] == [{"id": COMPONENT, "status": "under_maintenance"}]
    assert f("rollback", "--status", "succeeded", now="2026-12-10T19:40:00+00:00")[0] == 0, f.err
    assert incident["status"] == "verifying"
    code, out = f("complete", "--verified-by", "Ollie", now="2026-12-10T20:00:00+00:00")
    assert code == 0, f.err
    assert incident["status"] == "completed"
    assert incident["components"] == [{"id": COMPONENT, "status": "operational"}]
    assert methods(page) == ["POST", "PATCH", "PATCH", "PATCH", "PATCH"]
    assert [e["channel"] for e in out["delivered"]].count("statuspage") == 1


def test_a_summer_window_is_scheduled_at_its_utc_instant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], page: StatuspageFake
) -> None:
    """A window written in London summer time (BST, UTC+1) is on the page an hour earlier in
    UTC, also when it is written with its offset and when it moves."""
    f = flow(tmp_path, capsys)
    f.write_change(
        window={
            "start": "2026-06-16T22:00:00",
            "end": "2026-06-17T00:30:00",
            "zone": "Europe/London",
        }
    )
    assert f("plan", "--plan", str(f.plan), now="2026-06-02T09:00:00+01:00")[0] == 0, f.err
    [incident] = page.incidents.values()
    assert incident["scheduled_for"] == "2026-06-16T21:00:00Z"
    assert incident["scheduled_until"] == "2026-06-16T23:30:00Z"
    f.window("2026-06-18T07:15:00+01:00", "2026-06-18T08:45:00+01:00")
    assert f("plan", "--plan", str(f.plan), now="2026-06-03T09:00:00+01:00")[0] == 0, f.err
    assert len(page.incidents) == 1
    assert incident["scheduled_for"] == "2026-06-18T06:15:00Z"
    assert incident["scheduled_until"] == "2026-06-18T07:45:00Z"


def test_the_maintenance_is_in_progress_from_the_apply_start_and_completed_at_completion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], page: StatuspageFake
) -> None:
    """The page follows the change's lifecycle: in progress (its components under
    maintenance) once the apply starts, whatever the automatic settings would do at the
    scheduled time; its success leaves it so until `complete` completes it."""
    f = flow(tmp_path, capsys)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    [iid] = page.incidents
    assert f("apply", "--status", "started", now="2026-12-08T19:10:00+00:00")[0] == 0, f.err
    assert methods(page) == ["POST", "PATCH"]
    assert page.incidents[iid]["status"] == "in_progress"
    patch = page.calls[-1][2]["incident"]
    assert set(patch["components"].values()) == {"under_maintenance"}
    assert f("apply", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")[0] == 0, f.err
    assert methods(page) == ["POST", "PATCH"]
    assert f("complete", now="2026-12-08T20:00:00+00:00")[0] == 0, f.err
    assert methods(page) == ["POST", "PATCH", "PATCH"]
    assert page.incidents[iid]["status"] == "completed"


def test_cancel_deletes_the_maintenance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], page: StatuspageFake
) -> None:
    f = flow(tmp_path, capsys)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    [iid] = page.incidents
    code, _ = f("cancel", "--detail", "Postponed")
    assert code == 0, f.err
    assert page.incidents == {}
    assert ("DELETE", f"/v1/pages/{PAGE}/incidents/{iid}", None) in page.calls


def test_customers_without_components_get_no_maintenance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], page: StatuspageFake
) -> None:
    f = flow(tmp_path, capsys, customers=["MKUH"])
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert page.calls == []


def test_a_lost_ledger_finds_the_maintenance_by_its_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], page: StatuspageFake
) -> None:
    f = flow(tmp_path, capsys)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    (tmp_path / "ledger.jsonl").unlink()
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert len(page.incidents) == 1
    assert methods(page) == ["POST", "PATCH"]
    assert any(m == "GET" and "q=FFAPP-4458" in u for m, u, _ in page.calls)


def test_a_create_that_failed_after_it_was_applied_is_not_made_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], page: StatuspageFake
) -> None:
    page.fail("POST", "/incidents", 502, applied=True)
    f = flow(tmp_path, capsys)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert len(page.incidents) == 1


@pytest.mark.parametrize("status", [420, 429])
def test_rate_limited_waits_as_long_as_retry_after_says(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    page: StatuspageFake,
    waits: list[float],
    status: int,
) -> None:
    page.fail("GET", "/incidents", status, {"Retry-After": "11"})
    f = flow(tmp_path, capsys)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert 11.0 in waits and len(page.incidents) == 1


def test_5xx_then_success_and_5xx_past_the_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], page: StatuspageFake
) -> None:
    page.fail("POST", "/incidents", 503, times=5)
    f = flow(tmp_path, capsys)
    code, out = f("plan", "--plan", str(f.plan))
    assert code == 3
    assert f"NOT delivered: statuspage:{PAGE} via statuspage" in f.err
    assert out["failed"][0]["error"].startswith("Statuspage: create the scheduled maintenance")
    assert page.incidents == {}
    code, out = f("plan", "--plan", str(f.plan))
    assert code == 0, f.err
    assert [e["audience"] for e in out["delivered"]] == [f"statuspage:{PAGE}"]
    assert len(page.incidents) == 1


def test_401_names_the_key_and_the_rest_still_go_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], page: StatuspageFake
) -> None:
    f = flow(tmp_path, capsys, env={"STATUSPAGE_API_KEY": "not-the-key-0000"})
    code, out = f("plan", "--plan", str(f.plan))
    assert code == 3
    [failed] = out["failed"]
    assert failed["audience"] == f"statuspage:{PAGE}"
    assert "HTTP 401" in failed["error"] and "check STATUSPAGE_API_KEY" in failed["error"]
    assert f"organization that owns page {PAGE}" in failed["error"]
    assert "customer:EoE" in {e["audience"] for e in out["delivered"]}
    assert "Statuspage" in f.err and "STATUSPAGE_API_KEY" in f.err
    assert "not-the-key-0000" not in f.err + json.dumps(out)


def test_text_from_the_merge_request_is_not_markup_on_the_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], page: StatuspageFake
) -> None:
    purpose = "Fix <script>alert(1)</script> <a href='https://evil.example'>x</a> [y](https://evil.example)"
    f = flow(tmp_path, capsys, purpose=purpose, env={"HIE_WEBHOOK_SECRET": "whsec-planted-77"})
    f.write_change(rollback="whsec-planted-77 then " + SP_KEY)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    fields = next(b for m, _, b in page.calls if m == "POST")["incident"]
    for text in (fields["name"], fields["body"]):
        assert "<" not in text and ">" not in text and "](" not in text
    assert "script\u203aalert(1)" in fields["body"]
    sent = page.bodies()
    assert "whsec-planted-77" not in sent and SP_KEY not in sent


def test_preview_shows_the_request_the_page_would_get(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = integration_policy(tmp_path, statuspage=SETTINGS, pagerduty={}, jira={"enabled": True})
    f = Flow(tmp_path, capsys, DB, policy=policy)
    code, out = f("preview", "plan", "--plan", str(f.plan))
    assert code == 0, f.err
    requests = {m["audience"]: m.get("request") for m in out["messages"]}
    assert requests[f"statuspage:{PAGE}"]["incident"]["component_ids"] == [COMPONENT]
    assert requests["jira:FFAPP-4458"]["body"]["type"] == "doc"
    assert "pagerduty" not in requests  # change events start at apply
    code, out = f("preview", "apply", "--status", "started", "--plan", str(f.plan))
    assert code == 0, f.err
    event = next(m["request"] for m in out["messages"] if m["audience"] == "pagerduty")
    assert event["routing_key"] == "$PAGERDUTY_ROUTING_KEY"


def test_validate_lists_each_integration_and_what_its_credential_must_allow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = Flow(tmp_path, capsys, DB, env={"JIRA_URL": "https://x.atlassian.net", **ENV})
    code, _ = f("validate")
    assert code == 2
    assert "Jira: JIRA_URL is set but neither JIRA_PAT nor JIRA_USER + JIRA_API_TOKEN is" in f.err
    f.env.pop("JIRA_URL")
    code, out = f("validate")
    assert code == 0, f.err
    lines = "\n".join(out["credentials"])
    assert "Statuspage (scheduled maintenance): uses STATUSPAGE_API_KEY" in lines
    assert "PagerDuty (change events): not configured: set PAGERDUTY_ROUTING_KEY" in lines
    assert "Transition issues" in lines and "Events API v2" in lines


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_plain_text_never_carries_a_tag_or_a_markdown_link(text: str) -> None:
    from hie_notify.channels.statuspage import plain

    out = plain(text)
    assert "<" not in out and ">" not in out and "](" not in out
    assert len(out) >= len(text)


def test_a_component_mapped_to_an_unknown_customer_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = integration_policy(
        tmp_path, statuspage={"page_id": PAGE, "components": {"EoF": [COMPONENT]}}
    )
    f = Flow(tmp_path, capsys, DB, policy=policy)
    code, _ = f("validate")
    assert code == 2
    assert "policy.yaml" in f.err and "statuspage.components: EoF is neither a customer" in f.err
    policy = integration_policy(tmp_path, statuspage={"page_id": "Not An Id", "components": {}})
    code, _ = f("validate")
    assert code == 2
    assert "statuspage.page_id" in f.err and "expected a Statuspage page id" in f.err
