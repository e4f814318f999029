"""Every refusal names its fix (issue 23, item 7): the variable that holds the credential (never
its value), the scope or permission that is missing, what the service said. A refusal is a
failed delivery: the stage still tells everyone else and exits 3."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.builders import rc
from tests.support.cli_flow import Flow
from tests.support.integration_fakes import integration_policy
from tests.support.slack_fake import TOKEN, FakeSlack
from tests.support.smtp_server import PASSWORD, SmtpServer

DB = rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["storage_encrypted"]])
TEAMS_URL = (
    "https://prod-42.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke"
    "?sig=PLANTEDSIG123"
)

pytestmark = pytest.mark.usefixtures("waits")


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def slack_flow(tmp: Path, capsys: Any, slack: FakeSlack, token: str = TOKEN) -> Flow:
    env = {"SLACK_BOT_TOKEN": token, "SLACK_API_URL": slack.url}
    return Flow(tmp, capsys, DB, env=env)


def test_missing_scope_names_the_scope_slack_asked_for_and_the_token_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], slack: FakeSlack
) -> None:
    slack.state.refuse["chat.postMessage"] = {
        "ok": False,
        "error": "missing_scope",
        "needed": "chat:write",
        "provided": "channels:read,channels:history",
    }
    f = slack_flow(tmp_path, capsys, slack)
    code, out = f("plan", "--plan", str(f.plan))
    assert code == 3
    errors = {x["audience"]: x["error"] for x in out["failed"]}
    assert set(errors) == {"slack:#devops", "slack:#infrastructure", "slack:#product"}
    for error in errors.values():
        assert "missing_scope" in error
        assert "the token in SLACK_BOT_TOKEN lacks the chat:write scope" in error
        assert "(it has channels:read,channels:history)" in error
        assert "Bot Token Scopes" in error
    # Everyone else was still told, and recorded.
    assert "customer:EoE" in {e["audience"] for e in out["delivered"]}
    assert TOKEN not in f.err + json.dumps(out)


@pytest.mark.parametrize(
    ("error", "says"),
    [
        ("invalid_auth", "is not a valid token for this workspace"),
        ("token_expired", "has expired"),
        ("not_authed", "was not sent"),
        ("token_revoked", "was revoked"),
    ],
)
def test_a_token_slack_will_not_take_names_slack_bot_token(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    slack: FakeSlack,
    error: str,
    says: str,
) -> None:
    slack.state.refuse["chat.postMessage"] = {"ok": False, "error": error}
    f = slack_flow(tmp_path, capsys, slack)
    code, out = f("plan", "--plan", str(f.plan))
    assert code == 3
    for failed in out["failed"]:
        assert f"the token in SLACK_BOT_TOKEN {says}" in failed["error"]
        assert "Bot User OAuth Token" in failed["error"]
    assert TOKEN not in f.err + json.dumps(out)


def test_a_wrong_token_is_named_by_its_variable_not_its_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], slack: FakeSlack
) -> None:
    wrong = "xoxb-999-888-WRONGPLANTEDTOKEN"
    f = slack_flow(tmp_path, capsys, slack, token=wrong)
    code, out = f("plan", "--plan", str(f.plan))
    assert code == 3
    assert all("SLACK_BOT_TOKEN" in x["error"] for x in out["failed"])
    assert wrong not in f.err + json.dumps(out)
    assert "hie-notify: error:" in f.err and "NOT delivered" in f.err


@settings(max_examples=200, deadline=None)
@given(
    data=st.dictionaries(
        st.sampled_from(["error", "needed", "provided", "warning", "detail"]),
        st.one_of(st.text(max_size=400), st.integers(), st.none(), st.lists(st.text())),
    ),
    status=st.sampled_from([200, 400, 403, 404]),
)
def test_any_slack_refusal_is_one_bounded_line(data: dict[str, Any], status: int) -> None:
    from hie_notify.channels.slack import refusal

    text = refusal("#devops", status, data)
    assert text.startswith("Slack refused the message for #devops: ")
    assert len(text) < 1200


def test_teams_workflow_gone_names_the_variable_never_the_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = integration_policy(tmp_path, channels={"internal": ["teams"], "customer": ["outbox"]})
    with responses.RequestsMock() as rsps:
        rsps.post(
            TEAMS_URL,
            status=404,
            json={"error": {"code": "WorkflowNotFound", "message": f"{TEAMS_URL} not found"}},
        )
        f = Flow(tmp_path, capsys, DB, env={"TEAMS_WEBHOOK_URL": TEAMS_URL}, policy=policy)
        code, out = f("plan", "--plan", str(f.plan))
    assert code == 3
    assert out["failed"]
    for failed in out["failed"]:
        assert failed["channel"] == "teams"
        assert "HTTP 404 WorkflowNotFound" in failed["error"]
        assert "check TEAMS_WEBHOOK_URL" in failed["error"]
    assert "customer:EoE" in {e["audience"] for e in out["delivered"]}
    assert "logic.azure.com" not in f.err + json.dumps(out)
    assert "PLANTEDSIG123" not in f.err + json.dumps(out)


def test_smtp_login_refused_names_the_smtp_variables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = integration_policy(tmp_path, channels={"internal": ["outbox"], "customer": ["email"]})
    with SmtpServer(tmp_path) as smtp:
        env = {**smtp.env(), "SMTP_PASSWORD": "WRONG-PLANTED-PASSWORD"}
        f = Flow(tmp_path, capsys, DB, env=env, policy=policy)
        code, out = f("plan", "--plan", str(f.plan))
    assert code == 3
    [failed] = out["failed"]
    assert failed["audience"] == "customer:EoE" and failed["channel"] == "email"
    assert "refused the login (535" in failed["error"]
    assert "check SMTP_USERNAME and SMTP_PASSWORD" in failed["error"]
    assert {e["audience"] for e in out["delivered"]} >= {"slack:#devops"}
    for secret in ("WRONG-PLANTED-PASSWORD", PASSWORD):
        assert secret not in f.err + json.dumps(out)


def test_the_text_report_lists_every_audience_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], slack: FakeSlack
) -> None:
    from hie_notify.cli import main

    slack.state.refuse["chat.postMessage"] = {"ok": False, "error": "invalid_auth"}
    f = slack_flow(tmp_path, capsys, slack)
    args = [
        "--now",
        "2026-12-01T10:00:00+00:00",
        "--change",
        str(f.change),
        "--ledger",
        f"file:{tmp_path}/ledger.jsonl",
        "--outbox",
        str(tmp_path / "outbox"),
        "plan",
        "--plan",
        str(f.plan),
        "--terraform-report",
        str(tmp_path / "r.json"),
    ]
    code = main(args, env=f.env)
    out, err = capsys.readouterr()
    assert code == 3
    lines = out.splitlines()
    assert any(line.split()[:2] == ["sent", "customer:EoE"] for line in lines)
    not_sent = [line for line in lines if line.strip().startswith("NOT SENT")]
    assert len(not_sent) == 3 and all("SLACK_BOT_TOKEN" in line for line in not_sent)
    assert "merge request note written to" in out
    assert err.startswith("hie-notify: error:") and "a re-run of the same command" in err
    assert TOKEN not in out + err


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (401, "HIE_WEBHOOK_SECRET must be the secret the receiver checks"),
        (404, "check HIE_WEBHOOK_URL"),
    ],
)
def test_a_webhook_refusal_names_its_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], status: int, says: str
) -> None:
    url = "https://status.example.org/hooks/hie?token=PLANTEDHOOKTOKEN"
    policy = integration_policy(
        tmp_path, channels={"internal": ["outbox"], "customer": ["webhook"]}
    )
    env = {"HIE_WEBHOOK_URL": url, "HIE_WEBHOOK_SECRET": "whsec-PLANTED-0001"}
    with responses.RequestsMock() as rsps:
        rsps.post(url, status=status, json={"error": "no"})
        f = Flow(tmp_path, capsys, DB, env=env, policy=policy)
        code, out = f("plan", "--plan", str(f.plan))
    assert code == 3
    [failed] = out["failed"]
    assert failed["channel"] == "webhook" and says in failed["error"]
    assert "PLANTEDHOOKTOKEN" not in f.err + json.dumps(out)
    assert "whsec-PLANTED-0001" not in f.err + json.dumps(out)


# --- secrets, even when a service echoes them back -----------------------------------------------

_SECRET = st.text(
    alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789-_",
    min_size=16,
    max_size=40,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(jira_token=_SECRET, page_key=_SECRET, routing=_SECRET)
def test_no_refusal_message_carries_a_secret_even_when_the_service_echoes_it(
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    jira_token: str,
    page_key: str,
    routing: str,
) -> None:
    from tests.support.integration_fakes import JIRA, LINK_ENV, PAGE

    tmp = tmp_path_factory.mktemp("echo")
    env = {
        "JIRA_URL": JIRA,
        "JIRA_USER": "bot@example.org",
        "JIRA_API_TOKEN": jira_token,
        "STATUSPAGE_API_KEY": page_key,
        "PAGERDUTY_ROUTING_KEY": routing,
        **LINK_ENV,
    }
    policy = integration_policy(
        tmp,
        jira={"enabled": True},
        statuspage={"page_id": PAGE, "components": {"EoE": ["y6ssccsqgy8s"]}},
        pagerduty={},
    )

    def echo(request: Any) -> tuple[int, dict[str, str], str]:
        # A misconfigured proxy that quotes the request back, credentials and all.
        said = f"{request.headers.get('Authorization')} {request.body!r}"
        return (
            403,
            {"Content-Type": "application/json"},
            json.dumps({"errorMessages": [said], "error": said, "errors": [said], "message": said}),
        )

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        for method in ("GET", "POST", "PATCH"):
            rsps.add_callback(method, re.compile(r"https://.*"), echo)
        f = Flow(tmp, capsys, DB, env=env, policy=policy)
        assert f("plan", "--plan", str(f.plan))[0] == 3
        code, out = f("apply", "--status", "failed", now="2026-12-08T19:10:00+00:00")
    assert code == 3
    assert {x["audience"].split(":")[0] for x in out["failed"]} >= {"jira", "pagerduty"}
    shown = f.err + json.dumps(out)
    basic = base64.b64encode(f"bot@example.org:{jira_token}".encode()).decode()
    for secret in (jira_token, page_key, routing, basic):
        assert secret not in shown


def test_remind_reports_a_refused_reminder_and_sends_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], slack: FakeSlack
) -> None:
    # Before: a refusal inside `remind` was counted as "skipped" and the job exited 0.
    f = slack_flow(tmp_path, capsys, slack)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    slack.state.refuse["chat.postMessage"] = {"ok": False, "error": "token_expired"}
    code, out = f("remind", now="2026-12-07T19:00:00+00:00")
    assert code == 3
    [failed] = out["failed"]
    assert failed.startswith("FFAPP-4458: ") and "NOT delivered: slack:#devops via slack" in failed
    assert "the token in SLACK_BOT_TOKEN has expired" in failed
    assert out["skipped"] == []
    del slack.state.refuse["chat.postMessage"]
    code, out = f("remind", now="2026-12-07T19:05:00+00:00")
    assert code == 0, f.err
    assert {r["audience"] for r in out["sent"]} >= {"slack:#devops"}
