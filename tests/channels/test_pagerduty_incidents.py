"""PagerDuty incident events (Events API v2 alert events) from a change's deliveries: which
incidents a resolve closes, and the shape of each event, for any history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hie_notify.channels import Outgoing
from hie_notify.channels.alerts import ALERT_STAGES, INCIDENT, RESOLVE_STAGES, open_incidents
from hie_notify.channels.pagerduty import DEDUP_LIMIT, incident_events
from hie_notify.durations import NoticePeriod
from hie_notify.records import Audience, Entry
from hie_notify.render import Rendered

T0 = datetime(2026, 12, 8, 18, 0, tzinfo=UTC)
ZERO = NoticePeriod("elapsed")
PHASES = frozenset({"pre_deployment", "during", "post_deployment"})
AUDIENCE = Audience(INCIDENT, "internal", "PagerDuty on-call", "UTC", PHASES, ZERO, ZERO, ())


def entry(change_id: str, stage: str, minute: int, audience: str = INCIDENT) -> Entry:
    return Entry(
        change_id=change_id,
        stage=stage,
        audience=audience,
        channel=INCIDENT,
        recipient="PagerDuty on-call",
        fingerprint="f",
        change_type="emergency_fix",
        service_impacting=False,
        resources=(),
        delivered_at=T0 + timedelta(minutes=minute),
        message_id="k",
        idempotency_key=f"{stage}-{minute}",
    )


def outgoing(change_id: str, stage: str, history: tuple[Entry, ...]) -> Outgoing:
    rendered = Rendered(stage, AUDIENCE, f"[{change_id}] {stage}", {"text": stage})
    return Outgoing(change_id, rendered, "key", INCIDENT, history)


STAGES = st.sampled_from([*ALERT_STAGES, *RESOLVE_STAGES, "apply_started", "apply_succeeded"])
IDS = st.text(min_size=1, max_size=400).filter(lambda s: s.strip() == s and s)


@given(IDS, st.lists(STAGES, max_size=12), st.sampled_from(RESOLVE_STAGES))
def test_a_resolve_closes_exactly_the_incidents_triggered_since_the_last_one(
    change_id: str, stages: list[str], closing: str
) -> None:
    history = tuple(entry(change_id, s, i) for i, s in enumerate(stages))
    expected: list[str] = []
    for stage in stages:
        if stage in RESOLVE_STAGES:
            expected = []
        elif stage in ALERT_STAGES and stage not in expected:
            expected.append(stage)
    events = incident_events(outgoing(change_id, closing, history), "K", {}, T0, "src")
    assert [e["event_action"] for e in events] == ["resolve"] * len(expected)
    assert len({e["dedup_key"] for e in events}) == len(events)
    assert all(len(e["dedup_key"]) <= DEDUP_LIMIT for e in events)
    assert open_incidents(history) == expected


@given(IDS, st.sampled_from(ALERT_STAGES))
def test_a_trigger_has_what_pagerduty_requires(change_id: str, stage: str) -> None:
    [event] = incident_events(outgoing(change_id, stage, ()), "K", {}, T0, "src")
    assert event["event_action"] == "trigger" and event["routing_key"] == "K"
    assert 0 < len(event["dedup_key"]) <= DEDUP_LIMIT
    assert event["dedup_key"] == f"{change_id}/{stage}"[:DEDUP_LIMIT]
    payload = event["payload"]
    assert payload["severity"] in ("critical", "error", "warning", "info")
    assert payload["summary"] and len(payload["summary"]) <= 1024
    assert payload["source"] == "src" and payload["timestamp"] == "2026-12-08T18:00:00Z"


def test_other_audiences_and_other_stages_open_nothing() -> None:
    history = (
        entry("C-1", "apply_failed", 1, audience="slack:#ops"),
        entry("C-1", "apply_started", 2),
    )
    assert open_incidents(history) == []
