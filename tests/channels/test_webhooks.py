"""Teams (Workflows webhook, Adaptive Card) and the generic signed webhook, over `responses`."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone

import pytest
import responses

from hie_notify.audiences import Audience
from hie_notify.channels import Outgoing
from hie_notify.channels.teams import LIMIT_BYTES, TeamsChannel
from hie_notify.channels.webhook import WebhookChannel
from hie_notify.durations import parse_notice
from hie_notify.errors import InputError, ServiceError
from hie_notify.render import Rendered

TEAMS_URL = "https://prod-42.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=PLANTEDSIG123"
HOOK_URL = "https://status.example.org/hooks/hie?token=PLANTEDHOOKTOKEN"
SECRET = "whsec-PLANTED-0001"
ZERO = parse_notice("0")
AUD = Audience(
    "customer:EoE",
    "customer",
    "East of England",
    "Europe/London",
    frozenset({"pre_deployment"}),
    ZERO,
    ZERO,
    ("planned_infra_update",),
    emails=("desk@eoe.example.org",),
)
START = datetime(2026, 12, 8, 19, tzinfo=timezone.utc)
END = datetime(2026, 12, 8, 21, tzinfo=timezone.utc)


def outgoing(text: str = "Hello **there**", stage: str = "announce") -> Outgoing:
    msg = Rendered(
        stage,
        AUD,
        "Planned change (ref FFAPP-1)",
        {"text": text, "markdown": text, "html": f"<p>{text}</p>", "slack": text, "teams": text},
    )
    return Outgoing("FFAPP-1", msg, "key-123", "teams", (), None, (START, END))


@responses.activate
def test_teams_posts_an_adaptive_card(waits: list[float]) -> None:
    responses.post(TEAMS_URL, status=202)
    delivery = TeamsChannel(TEAMS_URL).send(outgoing())
    assert delivery.channel == "teams" and delivery.message_id == "key-123"
    call = responses.calls[0]
    assert call.request.method == "POST"
    assert call.request.headers["Content-Type"] == "application/json"
    body = json.loads(call.request.body)
    assert body["type"] == "message"
    att = body["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][0]["text"] == "Planned change (ref FFAPP-1)"
    assert card["body"][2]["text"] == "Hello **there**" and card["body"][2]["wrap"] is True


@responses.activate
def test_teams_429_then_success_honours_retry_after(waits: list[float]) -> None:
    responses.post(TEAMS_URL, status=429, headers={"Retry-After": "9"})
    responses.post(TEAMS_URL, status=202)
    TeamsChannel(TEAMS_URL).send(outgoing())
    assert len(responses.calls) == 2 and waits == [9.0]


@responses.activate
def test_teams_size_limit() -> None:
    responses.post(TEAMS_URL, status=202)
    TeamsChannel(TEAMS_URL).send(outgoing("x" * 60_000))
    assert len(responses.calls[0].request.body) <= LIMIT_BYTES
    assert "shortened to fit" in responses.calls[0].request.body.decode()


@responses.activate
def test_teams_failure_never_shows_the_address(waits: list[float]) -> None:
    for _ in range(5):
        responses.post(TEAMS_URL, status=503, body="<html>Service Unavailable</html>")
    with pytest.raises(ServiceError) as info:
        TeamsChannel(TEAMS_URL).send(outgoing())
    assert "still failing after 4 retries (HTTP 503)" in str(info.value)
    assert "PLANTEDSIG" not in str(info.value) and "logic.azure" not in str(info.value)
    assert "PLANTEDSIG" not in repr(TeamsChannel(TEAMS_URL))
    assert len(responses.calls) == 5 and len(waits) == 4


@responses.activate
def test_teams_refusal_is_a_configuration_error() -> None:
    responses.post(TEAMS_URL, status=400, json={"error": {"code": "InvalidRequestContent"}})
    with pytest.raises(InputError, match="Teams webhook: the service refused the request"):
        TeamsChannel(TEAMS_URL).send(outgoing())


@responses.activate
def test_webhook_is_signed(waits: list[float]) -> None:
    responses.post(HOOK_URL, status=200)
    WebhookChannel(HOOK_URL, SECRET, clock=lambda: 1796119200.0).send(outgoing())
    req = responses.calls[0].request
    raw = req.body
    assert req.headers["X-HIE-Timestamp"] == "1796119200"
    assert req.headers["X-HIE-Idempotency-Key"] == "key-123"
    expected = hmac.new(SECRET.encode(), b"1796119200." + raw, hashlib.sha256).hexdigest()
    assert req.headers["X-HIE-Signature"] == f"sha256={expected}"
    body = json.loads(raw)
    assert body["change_id"] == "FFAPP-1" and body["stage"] == "announce"
    assert body["window"] == {"start": START.isoformat(), "end": END.isoformat()}
    assert body["audience"]["id"] == "customer:EoE"
    assert SECRET not in raw.decode()


@responses.activate
def test_webhook_5xx_then_success(waits: list[float]) -> None:
    responses.post(HOOK_URL, status=502)
    responses.post(HOOK_URL, status=200)
    WebhookChannel(HOOK_URL, SECRET).send(outgoing())
    assert len(responses.calls) == 2 and len(waits) == 1
    # the same idempotency key both times, so the receiver can drop a repeat
    keys = {c.request.headers["X-HIE-Idempotency-Key"] for c in responses.calls}
    assert keys == {"key-123"}
