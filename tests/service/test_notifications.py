"""The notification path of the service, called as a WSGI app: signatures, payloads, limits."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from hie_notify import receiver
from hie_notify.errors import InputError
from hie_notify.receiver import Event, parse_notification, sign
from hie_notify.service.app import make_app as service_app
from hie_notify.service.settings import Settings
from tests.support.hcp_fake import RUN_ID, fixture_bytes

SECRET = "nc-token-PLANTED-6d2f"


class Recorder:
    """Stands in for the service's notification handler: records each event it is handed."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle


def make_app(token: str, on_event: Any, *, max_body: int = 1024 * 1024) -> Any:
    env = {"HIE_TFC_NOTIFICATION_TOKEN": token, "HIE_SERVICE_MAX_BODY": str(max(max_body, 1024))}
    settings = Settings.from_env(env)
    if max_body < 1024:  # below what the settings accept: only the test goes this low
        from dataclasses import replace

        settings = replace(settings, max_body=max_body)
    return service_app(settings, None, Recorder(lambda e: on_event(e) or ""))  # type: ignore[arg-type]


def signature(body: bytes, token: str = SECRET) -> str:
    # Computed here, independently of the receiver: hex HMAC-SHA512 keyed with the token.
    return hmac.new(token.encode(), body, hashlib.sha512).hexdigest()


class Reply:
    def __init__(self) -> None:
        self.status = ""
        self.headers: dict[str, str] = {}
        self.body = b""

    @property
    def code(self) -> int:
        return int(self.status.split()[0])

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class NoRead(io.BytesIO):
    def read(self, size: int | None = -1) -> bytes:
        raise AssertionError("the body must not be read")


def call(
    app: Any,
    body: bytes = b"",
    *,
    sig: str | None = None,
    method: str = "POST",
    length: str | None = None,
    stream: io.BytesIO | None = None,
) -> Reply:
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ["REQUEST_METHOD"] = method
    environ["PATH_INFO"] = "/notifications"
    environ["CONTENT_TYPE"] = "application/json"
    environ["CONTENT_LENGTH"] = str(len(body)) if length is None else length
    environ["wsgi.input"] = stream if stream is not None else io.BytesIO(body)
    if sig is not None:
        environ["HTTP_X_TFE_NOTIFICATION_SIGNATURE"] = sig
    reply = Reply()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        reply.status = status
        reply.headers = dict(headers)
        return lambda data: None

    reply.body = b"".join(app(environ, start_response))
    return reply


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def app(events: list[Event]) -> Any:
    return make_app(SECRET, events.append)


@pytest.mark.parametrize(
    ("name", "trigger", "status", "stage"),
    [
        ("notification_applying.json", "run:applying", "applying", "apply_started"),
        ("notification_completed_applied.json", "run:completed", "applied", "apply_succeeded"),
        (
            "notification_completed_no_changes.json",
            "run:completed",
            "planned_and_finished",
            None,
        ),
        ("notification_errored_canceled.json", "run:errored", "canceled", "apply_failed"),
    ],
)
def test_signed_run_notifications_are_delivered_with_their_stage(
    app: Any, events: list[Event], name: str, trigger: str, status: str, stage: str | None
) -> None:
    body = fixture_bytes(name)
    reply = call(app, body, sig=signature(body))
    assert reply.code == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert len(events) == 1
    event = events[0]
    assert (event.trigger, event.run_status, event.stage) == (trigger, status, stage)
    assert (event.workspace_name, event.organization_name) == ("eoe-prod", "hie-sde")
    assert event.workspace_id == "ws-Hk3vT8pRcY2nWq6D"
    assert event.run_url is not None and event.run_url.endswith(event.run_id or "?")
    assert event.payload_version == 1


def test_applying_event_in_full(app: Any, events: list[Event]) -> None:
    body = fixture_bytes("notification_applying.json")
    call(app, body, sig=signature(body))
    assert events == [
        Event(
            trigger="run:applying",
            stage="apply_started",
            run_id=RUN_ID,
            run_status="applying",
            workspace_name="eoe-prod",
            workspace_id="ws-Hk3vT8pRcY2nWq6D",
            organization_name="hie-sde",
            run_url=f"https://app.terraform.io/app/hie-sde/eoe-prod/runs/{RUN_ID}",
            run_message="FFAPP-4458: resize the EKS general worker nodes to m6i.xlarge",
            message="Applying",
            run_updated_at="2026-12-08T19:05:31.000Z",
            run_updated_by="leon",
            payload_version=1,
        )
    ]


def test_the_verification_request_is_accepted(app: Any, events: list[Event]) -> None:
    # HCP Terraform will not enable a configuration whose verification request gets no 2xx.
    body = fixture_bytes("notification_verification.json")
    reply = call(app, body, sig=signature(body))
    assert reply.code == 200
    assert [(e.trigger, e.stage, e.run_id, e.workspace_name) for e in events] == [
        ("verification", None, None, None)
    ]


def test_a_workspace_notification_v2_is_delivered_without_stage(
    app: Any, events: list[Event]
) -> None:
    body = fixture_bytes("notification_assessment_drifted.json")
    assert call(app, body, sig=signature(body)).code == 200
    assert [(e.trigger, e.stage, e.workspace_name, e.payload_version) for e in events] == [
        ("assessment:drifted", None, "eoe-prod", 2)
    ]


def test_several_notifications_in_one_request(app: Any, events: list[Event]) -> None:
    payload = json.loads(fixture_bytes("notification_applying.json"))
    done = json.loads(fixture_bytes("notification_completed_applied.json"))["notifications"][0]
    payload["notifications"].append(done)
    body = json.dumps(payload).encode()
    reply = call(app, body, sig=signature(body))
    assert reply.code == 200 and "2 event(s)" in reply.json["status"]
    assert [e.stage for e in events] == ["apply_started", "apply_succeeded"]


@pytest.mark.parametrize(
    "sig",
    [
        None,
        "",
        "0" * 128,
        signature(b"another body"),
        signature(fixture_bytes("notification_applying.json"), token="someone-elses-token"),
        hashlib.sha512(fixture_bytes("notification_applying.json")).hexdigest(),  # no key
        "é" * 128,
    ],
)
def test_missing_or_wrong_signature_is_refused(
    app: Any, events: list[Event], sig: str | None
) -> None:
    body = fixture_bytes("notification_applying.json")
    reply = call(app, body, sig=sig)
    assert reply.code == 401
    assert events == []
    assert SECRET not in reply.body.decode()


def test_signature_uppercase_hex_and_the_sign_helper(app: Any, events: list[Event]) -> None:
    body = fixture_bytes("notification_applying.json")
    assert sign(SECRET, body) == signature(body)
    assert call(app, body, sig=signature(body).upper()).code == 200
    assert len(events) == 1


def test_the_signature_is_compared_in_constant_time(
    app: Any, events: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return True  # the receiver must take compare_digest's word, whatever the inputs

    monkeypatch.setattr(hmac, "compare_digest", spy)
    body = fixture_bytes("notification_applying.json")
    assert call(app, body, sig="not-the-signature").code == 200
    assert seen == [(signature(body).encode(), b"not-the-signature")]
    assert len(events) == 1


def test_bad_json_is_400_after_the_signature(app: Any, events: list[Event]) -> None:
    for body in (b'{"payload_version": 1, "notifications": [', b"\xff\xfe", b"[1, 2]"):
        reply = call(app, body, sig=signature(body))
        assert reply.code == 400, body
    for payload in ({"payload_version": 3}, {"payload_version": 1, "notifications": "x"}):
        body = json.dumps(payload).encode()
        assert call(app, body, sig=signature(body)).code == 400
    # Unsigned garbage is refused as unsigned, before anyone parses it.
    assert call(app, b"{", sig="0" * 128).code == 401
    assert events == []


def test_an_oversize_body_is_413_and_never_read(events: list[Event]) -> None:
    app = make_app(SECRET, events.append)
    reply = call(app, sig="x", length=str(1024 * 1024 + 1), stream=NoRead())
    assert reply.code == 413
    small = make_app(SECRET, events.append, max_body=100)
    body = fixture_bytes("notification_applying.json")
    assert len(body) > 100
    assert call(small, body, sig=signature(body)).code == 413
    assert call(app, body, sig=signature(body)).code == 200  # 1 MiB is plenty for the real one
    assert len(events) == 1


def test_get_is_405(app: Any, events: list[Event]) -> None:
    reply = call(app, method="GET", stream=NoRead())
    assert reply.code == 405
    assert reply.headers["Allow"] == "POST"
    assert events == []


def test_length_is_required(app: Any) -> None:
    assert call(app, b"{}", sig="x", length="", stream=NoRead()).code == 411
    assert call(app, b"{}", sig="x", length="-1", stream=NoRead()).code == 400


def test_a_failing_handler_is_500(caplog: pytest.LogCaptureFixture) -> None:
    def boom(event: Event) -> None:
        raise RuntimeError("slack is down")

    app = make_app(SECRET, boom)
    body = fixture_bytes("notification_applying.json")
    assert call(app, body, sig=signature(body)).code == 500
    assert "run:applying" in caplog.text


def test_an_empty_or_short_token_is_refused() -> None:
    with pytest.raises(InputError, match="HIE_TFC_NOTIFICATION_TOKEN"):
        Settings.from_env({})
    with pytest.raises(InputError, match="at least 16 characters"):
        Settings.from_env({"HIE_TFC_NOTIFICATION_TOKEN": "short"})


def test_parse_notification_directly() -> None:
    payload = json.loads(fixture_bytes("notification_errored_canceled.json"))
    (event,) = parse_notification(payload)
    assert (event.trigger, event.run_status, event.stage) == (
        "run:errored",
        "canceled",
        "apply_failed",
    )
    assert receiver.stage_for_trigger("run:needs_attention", "planned") is None
    assert receiver.stage_for_trigger("run:planning", "planning") is None
    assert receiver.stage_for_trigger("run:created", "pending") is None
    with pytest.raises(ValueError, match="payload_version"):
        parse_notification({"notifications": []})
