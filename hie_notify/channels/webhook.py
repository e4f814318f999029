"""A generic signed webhook (a status portal, a ticket system): JSON, HMAC-SHA256 signed.

Receivers check `X-HIE-Signature: sha256=<hex>` = HMAC-SHA256(secret, timestamp + "." + body)
with `X-HIE-Timestamp`, and may use `X-HIE-Idempotency-Key` to drop a resend.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from hie_notify import http
from hie_notify.channels import Delivery, Outgoing


def body(outgoing: Outgoing) -> dict[str, Any]:
    message = outgoing.rendered
    return {
        "version": 1,
        "change_id": outgoing.change_id,
        "stage": outgoing.stage,
        "state": outgoing.state,
        "audience": {
            "id": message.audience.id,
            "kind": message.audience.kind,
            "label": message.audience.label,
        },
        "window": (
            {"start": outgoing.window[0].isoformat(), "end": outgoing.window[1].isoformat()}
            if outgoing.window
            else None
        ),
        "subject": message.subject,
        "text": message.body("text"),
        "html": message.body("html"),
        "idempotency_key": outgoing.key,
    }


def signature(secret: str, timestamp: str, raw: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def _fix(status: int) -> str:
    """What a refusal by the receiver means (the address and secret are never shown)."""
    if status in (401, 403):
        return (
            "the receiver did not accept the signature: HIE_WEBHOOK_SECRET must be the secret "
            "the receiver checks X-HIE-Signature with"
        )
    if status in (404, 405, 410):
        return "check HIE_WEBHOOK_URL: the receiver has nothing at that address"
    return "the receiver would not take the request (see its own logs)"


class WebhookChannel:
    kind = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        session: Any = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import requests

        self._url = url
        self._secret = secret
        self.session = session or requests.Session()
        self.sleep = sleep or time.sleep  # looked up now, so tests can replace it
        self.clock = clock

    def __repr__(self) -> str:  # address and secret are both secrets
        return "WebhookChannel()"

    def send(self, outgoing: Outgoing) -> Delivery:
        raw = json.dumps(body(outgoing), sort_keys=True).encode()
        stamp = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            "X-HIE-Timestamp": stamp,
            "X-HIE-Idempotency-Key": outgoing.key,
        }
        if self._secret:
            headers["X-HIE-Signature"] = signature(self._secret, stamp, raw)
        response = http.post(
            self.session,
            self._url,
            what="webhook",
            body=raw,
            headers=headers,
            sleep=self.sleep,
            fix=_fix,
        )
        return Delivery("webhook", "webhook", outgoing.key, receipt=http.receipt(response))
