"""Emergency alerts and paging (issue 25, item 5): an emergency's announcement, a failed apply
or rollback and an overrun mention the internal Slack channels (`<!here>`) and trigger a
PagerDuty incident (Events API v2, /v2/enqueue) routed by the change type's key; completion,
a rollback that worked and a cancellation resolve it. Re-runs never page twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml

from hie_notify.policy.protected import weakenings
from tests.support.builders import rc
from tests.support.cli_flow import Flow
from tests.support.integration_fakes import integration_policy
from tests.support.paths import EXAMPLES
from tests.support.slack_fake import TOKEN, FakeSlack

SG = rc("aws_security_group_rule.block", ["create"], after={"type": "ingress"})
NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])
KEY = "f1e2d3c4b5a697887766554433221100"  # 32 characters, an Events API v2 integration key
VARIABLE = "PAGERDUTY_EMERGENCY_ROUTING_KEY"  # named by examples/policy.yaml
ENQUEUE = "https://events.pagerduty.com/v2/enqueue"
EMERGENCY = {
    "id": "FFAPP-911",
    "type": "emergency_fix",
    "purpose": "Block the exploited port",
    "justification": "CVE-2026-0001 is being exploited",
    "downtime": "0",
    "rollback": "Remove the rule",
    "risk": "low",
    "monitoring": "Grafana dashboard and alerts",
    "approvers": ["Ollie"],
}
NOW = "2026-12-08T19:10:00+00:00"

pytestmark = pytest.mark.usefixtures("waits")  # retries wait through the conftest's `waits`


class Incidents:
    """PagerDuty's Events API v2 alert endpoint, as its docs shape it: 202 with the dedup_key,
    400 `invalid event` with `errors`, 429 when throttled."""

    def __init__(self, rsps: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self.calls = 0
        self.planned: list[tuple[int, dict[str, str]]] = []
        rsps.add_callback("POST", ENQUEUE, callback=self._handle)

    def fail(self, status: int, headers: dict[str, str] | None = None, times: int = 1) -> None:
        self.planned += [(status, headers or {})] * times

    def _invalid(self, *errors: str) -> tuple[int, dict[str, str], str]:
        body = {
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": list(errors),
        }
        return 400, {}, json.dumps(body)

    def _handle(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.calls += 1
        if self.planned:
            status, headers = self.planned.pop(0)
            words = (
                {"status": "throttled", "message": "Requests for this service are throttled"}
                if status == 429
                else {"status": "error", "message": "Internal server error"}
            )
            return status, headers, json.dumps(words)
        body = json.loads(request.body)
        if body.get("routing_key") != KEY:
            return self._invalid("Invalid routing key")
        action = body.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            return self._invalid("'event_action' is invalid")
        dedup = body.get("dedup_key")
        if action != "trigger" and not dedup:
            return self._invalid("'dedup_key' is required to resolve")
        if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
            return self._invalid("'dedup_key' must be a string of at most 255 characters")
        if action == "trigger":
            payload = body.get("payload") or {}
            for field in ("summary", "source", "severity"):
                if not payload.get(field):
                    return self._invalid(f"'payload.{field}' is missing or blank")
            if payload["severity"] not in ("critical", "error", "warning", "info"):
                return self._invalid("'payload.severity' is invalid")
            if len(payload["summary"]) > 1024:
                return self._invalid("'payload.summary' is too long")
        self.events.append(body)
        reply = {"status": "success", "message": "Event processed", "dedup_key": dedup}
        return 202, {}, json.dumps(reply)

    def actions(self) -> list[tuple[str, str]]:
        return [(e["event_action"], e["dedup_key"]) for e in self.events]


@pytest.fixture
def pd() -> Iterator[Incidents]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield Incidents(rsps)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def emergency(
    tmp: Path, capsys: Any, slack: FakeSlack | None = None, **env: str
) -> tuple[Flow, int, Any]:
    environ = {VARIABLE: KEY, **env}
    if slack is not None:
        environ.update(SLACK_BOT_TOKEN=TOKEN, SLACK_API_URL=slack.url)
    f = Flow(tmp, capsys, SG, env=environ, policy=EXAMPLES / "policy.yaml", **EMERGENCY)
    code, out = f("plan", "--plan", str(f.plan), now="2026-12-08T18:00:00+00:00")
    return f, code, out


def posts(slack: FakeSlack, channel: str) -> list[dict[str, Any]]:
    return [r.body for r in slack.state.calls("chat.postMessage") if r.body["channel"] == channel]


def stage_posts(slack: FakeSlack, stage: str) -> list[dict[str, Any]]:
    """The posts of one stage (replies in the announcement's thread name no channel name)."""
    return [
        r.body
        for r in slack.state.calls("chat.postMessage")
        if r.body["metadata"]["event_payload"]["stage"] == stage
    ]


def test_an_emergency_announcement_pages_on_call_and_mentions_the_channels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: Incidents, slack: FakeSlack
) -> None:
    f, code, out = emergency(tmp_path, capsys, slack)
    assert code == 0, f.err
    [trigger] = pd.events
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == "FFAPP-911/announce"
    payload = trigger["payload"]
    assert payload["severity"] == "critical"
    assert payload["timestamp"] == "2026-12-08T18:00:00Z"
    assert payload["source"] == "hie-notify"
    assert "FFAPP-911" in payload["summary"]
    assert payload["custom_details"]["event"] == "announce"
    assert "pagerduty_incident" in {e["audience"] for e in out["delivered"]}
    # #ops gets `<!here>` (the default), #devops `<!channel>` (the example policy's choice),
    # in the notification text and at the head of the message.
    [ops] = posts(slack, "#ops")
    [devops] = posts(slack, "#devops")
    assert ops["text"].startswith("<!here> ") and ops["blocks"][0]["text"]["text"].startswith(
        "<!here> "
    )
    assert devops["text"].startswith("<!channel> ")
    assert "<!here>" not in devops["text"]


def test_an_ordinary_announcement_neither_pages_nor_mentions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: Incidents
) -> None:
    f = Flow(tmp_path, capsys, NODES, env={VARIABLE: KEY}, policy=EXAMPLES / "policy.yaml")
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert pd.calls == 0
    for name in f.outbox("announce"):
        if name.startswith("slack-"):
            text = (tmp_path / "outbox/FFAPP-4458/announce" / name).read_text()
            assert "<!here>" not in text and "<!channel>" not in text


def test_a_failed_apply_pages_and_a_rollback_that_worked_resolves_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: Incidents, slack: FakeSlack
) -> None:
    f, code, _ = emergency(tmp_path, capsys, slack)
    assert code == 0, f.err
    assert f("apply", "--status", "started", now=NOW)[0] == 0, f.err
    assert len(pd.events) == 1  # a start is no alert
    assert f("apply", "--status", "failed", now=NOW)[0] == 0, f.err
    assert pd.actions()[-1] == ("trigger", "FFAPP-911/apply_failed")
    assert pd.events[-1]["payload"]["severity"] == "error"
    # Every internal channel told of the failure hears it with a mention (#devops `<!channel>`).
    failed = {p["channel"]: p["text"].split(" ", 1)[0] for p in stage_posts(slack, "apply_failed")}
    assert failed.pop("C0DEVOPS") == "<!channel>"
    assert "C0OPS" in failed and set(failed.values()) == {"<!here>"}
    assert f("rollback", "--status", "started", now=NOW)[0] == 0, f.err
    assert f("rollback", "--status", "succeeded", now=NOW)[0] == 0, f.err
    assert pd.actions() == [
        ("trigger", "FFAPP-911/announce"),
        ("trigger", "FFAPP-911/apply_failed"),
        ("resolve", "FFAPP-911/announce"),
        ("resolve", "FFAPP-911/apply_failed"),
    ]
    # A rollback that worked is news, not an alarm.
    worked = stage_posts(slack, "rollback_succeeded")
    assert worked and not any(p["text"].startswith("<!") for p in worked)


def test_a_failed_rollback_pages_as_critical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: Incidents
) -> None:
    f, code, _ = emergency(tmp_path, capsys)
    assert code == 0, f.err
    for cmd, status in (("apply", "started"), ("apply", "failed"), ("rollback", "started")):
        assert f(cmd, "--status", status, now=NOW)[0] == 0, f.err
    assert f("rollback", "--status", "failed", now=NOW)[0] == 0, f.err
    assert pd.actions()[-1] == ("trigger", "FFAPP-911/rollback_failed")
    assert pd.events[-1]["payload"]["severity"] == "critical"
    # Without Slack, the outbox's chat.postMessage payload carries the mention.
    [written] = (tmp_path / "outbox/FFAPP-911/rollback_failed").glob("slack-ops*.json")
    assert json.loads(written.read_text())["text"].startswith("<!here> ")


def test_completion_resolves_and_a_retried_job_pages_nobody_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: Incidents
) -> None:
    f, code, _ = emergency(tmp_path, capsys)
    assert code == 0, f.err
    for _ in range(3):  # the job retried
        assert f("plan", "--plan", str(f.plan), now="2026-12-08T18:05:00+00:00")[0] == 0, f.err
    assert f("apply", "--status", "started", now=NOW)[0] == 0, f.err
    for _ in range(2):
        assert f("apply", "--status", "failed", now=NOW)[0] == 0, f.err
    assert f("apply", "--status", "started", now=NOW)[0] == 0, f.err  # tried again
    assert f("apply", "--status", "succeeded", now=NOW)[0] == 0, f.err
    for _ in range(2):
        assert f("complete", "--verified-by", "Ollie", now=NOW)[0] == 0, f.err
    assert pd.actions() == [
        ("trigger", "FFAPP-911/announce"),
        ("trigger", "FFAPP-911/apply_failed"),
        ("resolve", "FFAPP-911/announce"),
        ("resolve", "FFAPP-911/apply_failed"),
    ]


def test_an_overrun_pages_on_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: Incidents
) -> None:
    f, code, _ = emergency(tmp_path, capsys)
    assert code == 0, f.err
    assert f("apply", "--status", "started", now=NOW)[0] == 0, f.err
    for _ in range(2):  # `remind` runs hourly
        assert f("remind", now="2026-12-08T21:30:00+00:00")[0] == 0, f.err
    assert pd.actions() == [("trigger", "FFAPP-911/announce"), ("trigger", "FFAPP-911/overrun")]
    assert pd.events[-1]["payload"]["severity"] == "warning"
    [written] = (tmp_path / "outbox/FFAPP-911/overrun").glob("slack-ops*.json")
    assert json.loads(written.read_text())["text"].startswith("<!here> ")
    assert f("apply", "--status", "succeeded", now="2026-12-08T21:35:00+00:00")[0] == 0, f.err
    assert f("complete", "--verified-by", "Ollie", now="2026-12-08T21:40:00+00:00")[0] == 0
    assert pd.actions()[-2:] == [
        ("resolve", "FFAPP-911/announce"),
        ("resolve", "FFAPP-911/overrun"),
    ]


def test_a_failure_of_an_ordinary_change_mentions_here_but_pages_only_where_routed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: Incidents
) -> None:
    f = Flow(tmp_path, capsys, NODES, env={VARIABLE: KEY}, policy=EXAMPLES / "policy.yaml")
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert f("apply", "--status", "started", now=NOW)[0] == 0, f.err
    assert f("apply", "--status", "failed", now=NOW)[0] == 0, f.err
    assert pd.calls == 0  # planned infra updates have no routing key in the example policy
    written = list((tmp_path / "outbox/FFAPP-4458/apply_failed").glob("slack-*.json"))
    assert written
    assert all(json.loads(p.read_text())["text"].startswith("<!here> ") for p in written)


def test_429_is_retried_after_retry_after(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: Incidents, waits: list[float]
) -> None:
    pd.fail(429, {"Retry-After": "30"})
    f, code, _ = emergency(tmp_path, capsys)
    assert code == 0, f.err
    assert 30.0 in waits
    assert pd.actions() == [("trigger", "FFAPP-911/announce")]


def test_a_refused_event_is_exit_3_after_the_others_and_never_shows_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: Incidents
) -> None:
    wrong = "R0123456789abcdef0123456789abcde"
    f, code, out = emergency(tmp_path, capsys, **{VARIABLE: wrong})
    assert code == 3
    [failed] = out["failed"]
    assert failed["audience"] == "pagerduty_incident"
    assert "HTTP 400" in failed["error"] and "Invalid routing key" in failed["error"]
    assert VARIABLE in failed["error"]
    assert {e["audience"] for e in out["delivered"]} >= {"slack:#ops", "slack:#devops"}
    assert wrong not in f.err + json.dumps(out)
    # Fixed, a re-run pages once and sends nothing else again.
    f.env[VARIABLE] = KEY
    code, out = f("plan", "--plan", str(f.plan), now="2026-12-08T18:05:00+00:00")
    assert code == 0, f.err
    assert [e["audience"] for e in out["delivered"]] == ["pagerduty_incident"]
    assert pd.actions() == [("trigger", "FFAPP-911/announce")]


def test_the_routing_key_is_never_in_output_ledger_or_outbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: Incidents
) -> None:
    f = Flow(tmp_path, capsys, SG, env={VARIABLE: KEY}, policy=EXAMPLES / "policy.yaml")
    # Even pasted into the change record, the key is masked wherever it would be shown.
    f.write_change(**{**EMERGENCY, "purpose": f"Block the port (key {KEY})"})
    code, out = f("plan", "--plan", str(f.plan), now="2026-12-08T18:00:00+00:00")
    assert code == 0, f.err
    assert "[MASKED]" in pd.events[0]["payload"]["summary"]
    assert all(KEY not in json.dumps(e["payload"]) for e in pd.events)
    assert f("apply", "--status", "failed", now=NOW)[0] == 0, f.err
    seen = f.err + json.dumps(out) + (tmp_path / "ledger.jsonl").read_text()
    seen += "".join(p.read_text() for p in (tmp_path / "outbox").rglob("*") if p.is_file())
    assert KEY not in seen
    # Without the variable, the outbox shows the events with the variable's name instead.
    f.env.pop(VARIABLE)
    assert f("rollback", "--status", "started", now=NOW)[0] == 0, f.err
    assert f("rollback", "--status", "failed", now=NOW)[0] == 0, f.err
    assert f"{VARIABLE} is not set" in f.err
    [written] = (tmp_path / "outbox/FFAPP-911/rollback_failed").glob("*.pagerduty_incident.json")
    [event] = json.loads(written.read_text())["events"]
    assert event["routing_key"] == f"${VARIABLE}"
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "FFAPP-911/rollback_failed"


def test_a_mention_planted_in_the_change_record_is_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: Incidents, slack: FakeSlack
) -> None:
    environ = {VARIABLE: KEY, "SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": slack.url}
    f = Flow(
        tmp_path,
        capsys,
        NODES,
        env=environ,
        policy=EXAMPLES / "policy.yaml",
        purpose="Upgrade <!channel> nodes <!here>",
    )
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert f("apply", "--status", "failed", now=NOW)[0] != 2, f.err
    for body in (r.body for r in slack.state.calls("chat.postMessage")):
        text = body["text"] + json.dumps(body["blocks"])
        mentions = text.count("<!here>") + text.count("<!channel>")
        assert mentions == (2 if body["text"].startswith("<!here> ") else 0), text


def _policy(tmp: Path, alerts: dict[str, Any]) -> Path:
    return integration_policy(tmp, change_types={"emergency_fix": {"alerts": alerts}})


@pytest.mark.parametrize(
    "branch_alerts",
    [
        {"events": ["apply_failed"]},  # no page at announce
        {"mention": "none"},
        {"channels": {"#ops": "none"}},
        {"incident_routing_key_env": "PAGERDUTY_BRANCH_KEY"},  # paging sent elsewhere
        {"incident_routing_key_env": None},
    ],
)
def test_a_branch_cannot_remove_an_emergencys_alert_or_page(branch_alerts: dict[str, Any]) -> None:
    protected = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())
    branch = {"change_types": {"emergency_fix": {"alerts": branch_alerts}}}
    # Even a protected policy that lets branches change every change type's keys.
    problems = list(weakenings(branch, protected, ["change_types.*"]))
    assert problems and all("alerts" in p and "protected policy" in p for p in problems), problems


@pytest.mark.parametrize(
    ("alerts", "words"),
    [
        ({"mention": "everyone"}, "mention"),
        ({"events": ["apply_started"]}, "events"),
        ({"incident_routing_key_env": KEY}, "incident_routing_key_env"),
        ({"incident_routing_key_env": "PAGERDUTY_KEY"}, "ending in _ROUTING_KEY"),
        ({"channels": {"#nowhere": "here"}}, "#nowhere"),
    ],
)
def test_bad_alert_settings_are_exit_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], alerts: dict[str, Any], words: str
) -> None:
    f = Flow(tmp_path, capsys, NODES, policy=_policy(tmp_path, alerts))
    code, _ = f("validate")
    assert code == 2
    assert "change_types.emergency_fix" in f.err and words in f.err
    assert KEY not in f.err  # a key pasted where its variable's name belongs is not repeated


def test_validate_shows_the_alert_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = Flow(tmp_path, capsys, NODES, policy=EXAMPLES / "policy.yaml")
    code, out = f("validate")
    assert code == 0, f.err
    [rule] = [r for r in out["rules"] if r.startswith("emergency_fix: alerts")]
    assert rule == (
        "emergency_fix: alerts on announce, apply_failed, rollback_failed, overrun: Slack @here, "
        "#devops @channel; a PagerDuty incident to the key in PAGERDUTY_EMERGENCY_ROUTING_KEY "
        "(alerts)"
    )
    assert not [r for r in out["rules"] if "alerts" in r and r != rule]  # the others: default


def test_preview_shows_the_mention_and_the_incident_it_would_trigger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = Flow(tmp_path, capsys, SG, policy=EXAMPLES / "policy.yaml", **EMERGENCY)
    code, out = f("preview", "plan", "--plan", str(f.plan), now="2026-12-08T18:00:00+00:00")
    assert code == 0, f.err
    by = {m["audience"]: m for m in out["messages"]}
    assert by["slack:#ops"]["alert"] == "<!here>"
    assert by["slack:#devops"]["alert"] == "<!channel>"
    assert "alert" not in by["customer:EoE"]
    [event] = by["pagerduty_incident"]["request"]["events"]
    assert event["routing_key"] == f"${VARIABLE}" and event["dedup_key"] == "FFAPP-911/announce"


def test_a_cancelled_emergency_resolves_its_page_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pd: Incidents
) -> None:
    f, code, _ = emergency(tmp_path, capsys)
    assert code == 0, f.err
    for _ in range(2):
        code, out = f("cancel", "--detail", "Fixed upstream", now="2026-12-08T18:30:00+00:00")
        assert code == 0, f.err
    assert pd.actions() == [("trigger", "FFAPP-911/announce"), ("resolve", "FFAPP-911/announce")]
    assert "pagerduty_incident" not in {e["audience"] for e in out["delivered"]}  # the re-run
