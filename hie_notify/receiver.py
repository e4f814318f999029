"""HCP Terraform "generic" notification webhooks: the signature and the payload.

HCP Terraform signs each request body with HMAC-SHA512 keyed with the notification token and
sends the hex digest in `X-TFE-Notification-Signature`. Run notifications (payload_version 1)
become one `Event` per entry of `notifications`, with the apply stage it means, if any. The
service (`hie_notify.service`) serves them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from hie_notify.terraform.hcp import APPLY_FAILED, APPLY_STARTED, APPLY_SUCCEEDED, stage_for_status

SIGNATURE_HEADER = "HTTP_X_TFE_NOTIFICATION_SIGNATURE"


@dataclass(frozen=True)
class Event:
    """One notification: what happened to which run, and the apply stage it means (or None)."""

    trigger: str
    stage: str | None
    run_id: str | None
    run_status: str | None
    workspace_name: str | None
    workspace_id: str | None
    organization_name: str | None
    run_url: str | None
    run_message: str | None
    message: str | None
    run_updated_at: str | None
    run_updated_by: str | None
    payload_version: int


def stage_for_trigger(trigger: str, run_status: str | None) -> str | None:
    """The apply stage a run notification means: applying, completed-and-applied, errored."""
    if trigger == "run:applying":
        return APPLY_STARTED
    if trigger == "run:completed":
        # "completed" is also a plan with nothing to apply (planned_and_finished).
        return APPLY_SUCCEEDED if stage_for_status(run_status) == APPLY_SUCCEEDED else None
    if trigger == "run:errored":  # errors and cancellations alike
        return APPLY_FAILED
    return None


def parse_notification(payload: Any) -> list[Event]:
    """Events from a decoded notification body; ValueError when it is not one."""
    if not isinstance(payload, dict):
        raise ValueError("expected a JSON object")
    version = str(payload.get("payload_version"))
    if version == "1":
        entries = payload.get("notifications")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ValueError("notifications: expected a list of objects")
        return [_run_event(payload, entry) for entry in entries]
    if version == "2":  # workspace events (health assessments, auto-destroy): no apply stage
        details = _dict(payload.get("details"))
        return [
            Event(
                trigger=_text(payload.get("trigger")) or "unknown",
                stage=None,
                run_id=_text(details.get("run_external_id")),
                run_status=_text(details.get("run_status")),
                workspace_name=_text(details.get("workspace_name")),
                workspace_id=_text(details.get("workspace_id")),
                organization_name=_text(details.get("organization_name")),
                run_url=None,
                run_message=None,
                message=_text(payload.get("message")),
                run_updated_at=None,
                run_updated_by=None,
                payload_version=2,
            )
        ]
    raise ValueError(f"payload_version: expected 1 or 2, got {payload.get('payload_version')!r}")


def _run_event(payload: dict[str, Any], entry: dict[str, Any]) -> Event:
    trigger = _text(entry.get("trigger")) or "unknown"
    status = _text(entry.get("run_status"))
    return Event(
        trigger=trigger,
        stage=stage_for_trigger(trigger, status),
        run_id=_text(payload.get("run_id")),
        run_status=status,
        workspace_name=_text(payload.get("workspace_name")),
        workspace_id=_text(payload.get("workspace_id")),
        organization_name=_text(payload.get("organization_name")),
        run_url=_text(payload.get("run_url")),
        run_message=_text(payload.get("run_message")),
        message=_text(entry.get("message")),
        run_updated_at=_text(entry.get("run_updated_at")),
        run_updated_by=_text(entry.get("run_updated_by")),
        payload_version=1,
    )


def sign(token: str, body: bytes) -> str:
    """The signature HCP Terraform sends for `body`: hex HMAC-SHA512 keyed with the token."""
    return hmac.new(token.encode(), body, hashlib.sha512).hexdigest()


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
