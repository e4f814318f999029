"""Microsoft Teams through a Workflows (Power Automate) webhook carrying an Adaptive Card."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from hie_notify import http
from hie_notify.channels import Delivery, Outgoing
from hie_notify.render import escape_teams

LIMIT_BYTES = 28_000  # Teams refuses messages over about 28 KB


def card(outgoing: Outgoing) -> dict[str, Any]:
    """The Workflows webhook body: a message with one Adaptive Card attachment."""
    message = outgoing.rendered
    body_text = message.body("teams")
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": escape_teams(message.subject),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        },
        {"type": "TextBlock", "text": f"Status: {outgoing.state}", "isSubtle": True, "wrap": True},
        {"type": "TextBlock", "text": body_text, "wrap": True},
    ]
    doc = {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                },
            }
        ],
    }
    size = len(json.dumps(doc).encode())
    if size > LIMIT_BYTES:
        keep = max(0, len(body_text) - (size - LIMIT_BYTES) - 200)
        body[2]["text"] = body_text[:keep] + "\n\n…shortened to fit Teams' message size limit."
    return doc


def _fix(status: int) -> str:
    """What a refusal of the Workflows webhook means (the address itself is never shown)."""
    if status in (401, 403, 404):
        return (
            "check TEAMS_WEBHOOK_URL: the address is wrong or its workflow was turned off or "
            "deleted; copy it again from the workflow's 'When a Teams webhook request is "
            "received' trigger (the workflow must allow anyone to trigger it)"
        )
    if status == 413:
        return "the card is over Teams' size limit"
    return "Teams would not take the card (the workflow's trigger or its Post card step)"


class TeamsChannel:
    kind = "teams"

    def __init__(
        self, webhook_url: str, *, session: Any = None, sleep: Callable[[float], None] | None = None
    ) -> None:
        import requests

        self._url = webhook_url
        self.session = session or requests.Session()
        self.sleep = sleep or time.sleep  # looked up now, so tests can replace it

    def __repr__(self) -> str:  # the webhook address is a secret
        return "TeamsChannel()"

    def send(self, outgoing: Outgoing) -> Delivery:
        response = http.post(
            self.session,
            self._url,
            what="Teams webhook",
            body=json.dumps(card(outgoing)).encode(),
            headers={"Content-Type": "application/json"},
            sleep=self.sleep,
            fix=_fix,
        )
        return Delivery("teams", "Teams workflow", outgoing.key, receipt=http.receipt(response))
