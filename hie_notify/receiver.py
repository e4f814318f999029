"""An optional receiver for HCP Terraform "generic" notification webhooks (a WSGI app).

HCP Terraform signs each request body with HMAC-SHA512 keyed with the notification token and
sends the hex digest in `X-TFE-Notification-Signature`. Requests without a valid signature are
refused before their body is parsed. Run notifications (payload_version 1) become one `Event`
per entry of `notifications`, with the apply stage it means, if any.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hie_notify import safejson
from hie_notify.errors import InputError
from hie_notify.terraform.hcp import APPLY_FAILED, APPLY_STARTED, APPLY_SUCCEEDED, stage_for_status

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
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


def make_app(
    token: str, on_event: Callable[[Event], None], *, max_body: int = MAX_BODY_BYTES
) -> WSGIApplication:
    """A WSGI app that verifies, parses and hands each notification's events to `on_event`."""
    if not token:
        raise InputError("the notification token is empty: anyone could sign a notification")
    key = token.encode()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def answer(status: str, text: str, *extra: tuple[str, str]) -> list[bytes]:
            body = json.dumps({"status": text}).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response(status, [*headers, *extra])
            return [body]

        if environ.get("REQUEST_METHOD") != "POST":
            return answer("405 Method Not Allowed", "POST only", ("Allow", "POST"))
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return answer("411 Length Required", "Content-Length required")
        if length < 0:
            return answer("400 Bad Request", "bad Content-Length")
        if length > max_body:
            return answer("413 Content Too Large", f"body over {max_body} bytes")
        body = _read(environ["wsgi.input"], length)
        given = str(environ.get(SIGNATURE_HEADER, "")).strip().lower()
        expected = hmac.new(key, body, hashlib.sha512).hexdigest()
        if not hmac.compare_digest(expected.encode(), given.encode("latin-1", "replace")):
            log.warning("HCP Terraform notification refused: missing or wrong signature")
            return answer("401 Unauthorized", "missing or wrong X-TFE-Notification-Signature")
        try:
            events = parse_notification(safejson.loads(body))
        except (ValueError, UnicodeDecodeError) as exc:
            return answer("400 Bad Request", f"not a notification: {exc}")
        for event in events:
            try:
                on_event(event)
            except Exception:
                log.exception(
                    "handling the %s notification of %s failed", event.trigger, event.run_id
                )
                return answer("500 Internal Server Error", "handling the notification failed")
        return answer("200 OK", f"{len(events)} event(s) received")

    return app


def make_server(host: str, port: int, token: str, on_event: Callable[[Event], None]) -> WSGIServer:
    """A `wsgiref` server for the receiver (call `serve_forever`, `shutdown` to stop)."""
    from wsgiref.simple_server import make_server as wsgi_server

    return wsgi_server(host, port, make_app(token, on_event))


def serve(host: str, port: int, token: str, on_event: Callable[[Event], None]) -> None:
    """Serve the receiver until interrupted. Put TLS in front of it (a proxy) outside a lab."""
    with make_server(host, port, token, on_event) as server:
        server.serve_forever()


def _read(stream: Any, length: int) -> bytes:
    chunks = []
    while length > 0:
        chunk = stream.read(min(length, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        length -= len(chunk)
    return b"".join(chunks)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
