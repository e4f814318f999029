"""Slack announcements carry an Acknowledge button; `/slack/interactions` records a click only
from a request Slack signed (`X-Slack-Signature` v0 with the app's signing secret, timestamp
within 5 minutes), once, as the Slack user who clicked."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hie_notify import acks
from tests.support.ack_harness import KEY, AckHarness

SECRET = "slack-signing-secret-8f2a61c0"
USER = {"id": "U0LEON", "username": "leon", "name": "leon", "team_id": "T0HIE"}


@pytest.fixture
def h(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[AckHarness]:
    harness = AckHarness(tmp_path, capsys)
    harness.announce()
    harness.start(SLACK_SIGNING_SECRET=SECRET)
    try:
        yield harness
    finally:
        harness.stop()


def button(h: AckHarness, channel: str = "devops") -> dict[str, Any]:
    payload = json.loads((h.tmp / f"outbox/FFAPP-4458/announce/slack-{channel}.json").read_text())
    (actions,) = [b for b in payload["blocks"] if b["type"] == "actions"]
    (element,) = actions["elements"]
    return dict(element)


def click(token: str, user: dict[str, str] = USER) -> bytes:
    """The form Slack posts for a block_actions interaction (the shape of Slack's payload)."""
    payload = {
        "type": "block_actions",
        "user": user,
        "team": {"id": "T0HIE", "domain": "hie"},
        "channel": {"id": "C0DEVOPS", "name": "devops"},
        "message": {"ts": "1764583200.000100", "type": "message"},
        "response_url": "https://hooks.slack.com/actions/T0HIE/1/abc",
        "trigger_id": "1.2.3",
        "actions": [
            {
                "type": "button",
                "action_id": "hie_ack",
                "block_id": "hie_ack",
                "value": token,
                "action_ts": "1764583300.000200",
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def post(h: AckHarness, body: bytes, *, age: int = 0, secret: str = SECRET) -> tuple[int, str]:
    ts = str(int(h.now.timestamp()) - age)
    signature = (
        "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    )
    code, _, text = h.request(
        "POST",
        "/slack/interactions",
        raw=body,
        **{
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature,
        },
    )
    return code, json.loads(text)["status"]


def answers(h: AckHarness) -> list[dict[str, Any]]:
    return [e for e in map(json.loads, h.ledger_lines()) if e["stage"] == "ack"]


def test_the_announcement_carries_a_button_and_a_signed_click_is_recorded_once(
    h: AckHarness,
) -> None:
    element = button(h)
    assert (element["action_id"], element["text"]["text"]) == ("hie_ack", "Acknowledge")
    claim = acks.read(KEY.encode(), element["value"], h.now)
    assert (claim.audience, claim.contact) == ("slack:#devops", "slack")
    code, text = post(h, click(element["value"]))
    assert (code, text) == (200, "acknowledged")
    (entry,) = answers(h)
    assert entry["audience"] == "slack:#devops" and entry["recipient"] == "leon (Slack U0LEON)"
    code, text = post(h, click(element["value"]))  # Slack retries, or a second click
    assert (code, text) == (200, "already acknowledged") and len(answers(h)) == 1
    code, out = h.flow("gate", "--plan", str(h.flow.plan), now="2026-12-08T19:30:00+00:00")
    rows = {r["audience"]: r for r in out["acknowledgements"]}
    assert rows["slack:#devops"]["acknowledged"][0]["contact"] == "leon (Slack U0LEON)"


def test_bad_signatures_old_timestamps_and_forged_tokens_are_refused(h: AckHarness) -> None:
    token = button(h)["value"]
    body = click(token)
    assert post(h, body, secret="not-the-signing-secret")[0] == 401
    assert post(h, body, age=301)[0] == 401  # older than 5 minutes: a replay
    assert post(h, body + b"&x=1")[0] == 200  # signed as sent: the body is what is signed
    code, _, _ = h.request(
        "POST", "/slack/interactions", raw=body, **{"X-Slack-Request-Timestamp": "abc"}
    )
    assert code == 401
    forged = acks.sign(b"not-our-key-0123456789", acks.read(KEY.encode(), token, h.now))
    assert post(h, click(forged))[0] == 403
    other = acks.sign(
        KEY.encode(),
        acks.Claim(**{**acks.read(KEY.encode(), token, h.now).__dict__, "audience": "slack:#ops"}),
    )
    assert post(h, click(other))[0] == 403  # #ops was never told of this change
    assert post(h, b"payload=not-json")[0] == 400
    assert len(answers(h)) == 1


def test_a_slack_token_does_not_work_on_the_web_page(h: AckHarness) -> None:
    token = button(h)["value"]
    code, _, page = h.request("GET", f"/ack/{token}")
    assert code == 403 and "acknowledge with the button in Slack" in page
    h.now += timedelta(days=30)
    assert post(h, click(token))[0] == 410  # expired with the link
    assert answers(h) == []
