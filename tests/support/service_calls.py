"""Calls to the service's notification endpoint (moved from tests/test_service.py)."""

from __future__ import annotations

import json
from typing import Any

from tests.support.hcp_fake import fixture_bytes
from tests.support.runtask_harness import MR, Harness, post, sign

NOTIFY_TOKEN = "nc-token-PLANTED-6d2f-0000"


OLD_RUN = "run-Old7bN2eKpL4mR00"


def notification(name: str, **over: Any) -> bytes:
    data = json.loads(fixture_bytes(name))
    data.update(over)
    return json.dumps(data).encode()


def notify(service: Any, body: bytes) -> tuple[int, dict[str, Any]]:
    return post(
        service,
        body,
        signature=sign(body, NOTIFY_TOKEN),
        path="/notifications",
        header="X-TFE-Notification-Signature",
    )


def stages(h: Harness) -> list[str]:
    from hie_notify.ledger.gitlab import decode_marker

    return [
        item["stage"]
        for note in h.gitlab.notes.get(("merge_requests", MR), [])
        for item in decode_marker(note["body"], "note") or []
    ]
