"""The PagerDuty change event, built piece by piece (channels/pagerduty.py `event`, `_refused`):
the mutation bench's `pagerduty` target. Its `timestamp` is the moment meant, in UTC, in GMT, in
BST and on the days the clocks change (Events API v2: ISO 8601)."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hie_notify.channels.pagerduty import PERMISSIONS, SUMMARY_LIMIT, _refused, event
from hie_notify.lifecycle import State
from tests.support.payloads import DAYS, outgoing

UTC = timezone.utc
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 6, 16, 9, 30, 15, 500, tzinfo=LONDON)


def test_the_event_carries_the_change_its_stage_state_and_key(machine_in_london: None) -> None:
    out = outgoing("apply_started", subject="Applying FFAPP-1", state=State.IN_PROGRESS.value)
    links = {
        "merge_request": "https://gitlab.example.org/g/p/-/merge_requests/7",
        "run": "http://hcp.example.org/runs/run-1",
        "jira": "javascript:alert(1)",  # not a web address: left out
        "pipeline": "https://gitlab.example.org/g/p/-/pipelines/9",
        "other": "https://example.org",  # not a link PagerDuty is told about
    }
    assert event(out, "R0UTINGKEY", links, NOW, "hie-sde") == {
        "routing_key": "R0UTINGKEY",
        "payload": {
            "summary": "Applying FFAPP-1",
            "timestamp": "2026-06-16T08:30:15Z",
            "source": "hie-sde",
            "custom_details": {
                "change_id": "FFAPP-1",
                "stage": "apply_started",
                "state": "in progress",
                "idempotency_key": "k",
            },
        },
        "links": [
            {
                "href": "https://gitlab.example.org/g/p/-/merge_requests/7",
                "text": "Merge request",
            },
            {"href": "http://hcp.example.org/runs/run-1", "text": "HCP Terraform run"},
            {"href": "https://gitlab.example.org/g/p/-/pipelines/9", "text": "Pipeline"},
        ],
    }
    jira = event(out, "k", {"jira": "https://jira.example.org/browse/FFAPP-1"}, NOW, "s")
    assert jira["links"] == [
        {"href": "https://jira.example.org/browse/FFAPP-1", "text": "Jira ticket"}
    ]


def test_the_summary_is_cut_to_pagerdutys_limit() -> None:
    out = outgoing(subject="x" * (SUMMARY_LIMIT + 10))
    assert event(out, "k", {}, NOW, "s")["payload"]["summary"] == "x" * SUMMARY_LIMIT


def test_a_refused_event_names_the_fix() -> None:
    assert _refused(400, "Invalid Routing Key") == PERMISSIONS
    assert _refused(400, "Event object is invalid") == ""
    assert _refused(404, "") == (
        "PAGERDUTY_EVENTS_URL must be the Events API v2 base, e.g. "
        "https://events.pagerduty.com/v2 (EU: https://events.eu.pagerduty.com/v2)"
    )
    assert _refused(403, "routing") == ""
    assert _refused(500, "") == ""


@st.composite
def moments(draw: st.DrawFn) -> datetime:
    """A moment on a GMT, a BST or a clock-change day, at London's offset then."""
    day = draw(st.sampled_from(DAYS))
    at = datetime.combine(day, time(0), UTC) + timedelta(seconds=draw(st.integers(0, 86_399)))
    return at.astimezone(LONDON)


@given(now=moments())
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_property_the_timestamp_is_the_moment_meant(now: datetime, machine_in_london: None) -> None:
    written = event(outgoing("apply_started"), "k", {}, now, "s")["payload"]["timestamp"]
    assert written.endswith("Z")
    read = datetime.fromisoformat(written.removesuffix("Z") + "+00:00")
    assert read == now.astimezone(UTC)  # in UTC: see test_statuspage_payload (PEP 495)
