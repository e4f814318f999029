"""The WSGI application: `/run-task`, `/notifications`, `/healthz`, and the acknowledgement pages
(`/ack/<token>`, `/portal/<customer>/<token>`: hie_notify/service/ackpages.py).

Every POST is size-limited before it is read and signature-checked before it is parsed; a body
nested deeper than any real payload is refused (400) before the JSON parser sees it.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hie_notify.errors import HieError, InputError
from hie_notify.receiver import SIGNATURE_HEADER as NOTIFICATION_SIGNATURE
from hie_notify.receiver import parse_notification
from hie_notify.terraform.runtask import SIGNATURE_HEADER as TASK_SIGNATURE
from hie_notify.terraform.runtask import is_verification, parse_request, verify

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from hie_notify.service.ackpages import AckPages
    from hie_notify.service.notifications import Notifications
    from hie_notify.service.runtask import RunTasks
    from hie_notify.service.settings import Settings

log = logging.getLogger(__name__)

MAX_DEPTH = 32  # real payloads nest 4 or 5 deep
RUN_TASK_PATH = "/run-task"
NOTIFICATIONS_PATH = "/notifications"
HEALTH_PATH = "/healthz"
SLACK_PATH = "/slack/interactions"
MAX_FORM = 16 * 1024  # an answer's form: a reason of at most 2,000 characters, encoded


class TooDeep(ValueError):
    pass


def check_depth(body: bytes, limit: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than `limit` without parsing it (the parser would recurse)."""
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                raise TooDeep(f"nested more than {limit} deep")
        elif byte in (0x5D, 0x7D):
            depth -= 1


def decode(body: bytes) -> Any:
    """JSON from a body, or ValueError saying why not (never RecursionError)."""
    check_depth(body)
    try:
        return json.loads(body)
    except RecursionError:
        raise TooDeep("nested too deep") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 ({exc.reason})") from None


def make_app(
    settings: Settings,
    run_tasks: RunTasks | None,
    notifications: Notifications | None,
    pages: AckPages | None = None,
) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        path = str(environ.get("PATH_INFO") or "/")
        fields: dict[str, Any] = {"path": path}

        def answer(status: str, text: str, *extra: tuple[str, str]) -> list[bytes]:
            body = json.dumps({"status": text}).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response(status, [*headers, *extra])
            fields["code"] = int(status.split()[0])
            fields["ms"] = round((time.monotonic() - started) * 1000, 1)
            level = logging.INFO if fields["code"] < 500 else logging.ERROR
            log.log(level, "%s %s: %s", environ.get("REQUEST_METHOD"), path, text, extra=fields)
            return [body]

        method = environ.get("REQUEST_METHOD")
        if path == HEALTH_PATH:
            if method not in ("GET", "HEAD"):
                return answer("405 Method Not Allowed", "GET only", ("Allow", "GET"))
            pending = run_tasks.pending if run_tasks is not None else 0
            return answer("200 OK", f"ok; {pending} run task(s) pending")
        if pages is not None and path == SLACK_PATH and settings.slack_signing_secret:
            if method != "POST":
                return answer("405 Method Not Allowed", "POST only", ("Allow", "POST"))
            try:
                length = int(environ.get("CONTENT_LENGTH") or "")
            except ValueError:
                return answer("411 Length Required", "Content-Length required")
            if not 0 <= length <= MAX_FORM:
                return answer("413 Content Too Large", f"body over {MAX_FORM} bytes")
            body = _read(environ["wsgi.input"], length)
            code, text = pages.slack(
                body,
                str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")),
                str(environ.get("HTTP_X_SLACK_SIGNATURE", "")),
            )
            return answer(_status(code), text)
        if pages is not None and path.startswith(("/ack/", "/portal/")):
            return _page(pages, environ, method, path, start_response, fields, started)
        handlers = {RUN_TASK_PATH: run_tasks, NOTIFICATIONS_PATH: notifications}
        if path not in handlers or handlers[path] is None:
            return answer("404 Not Found", "no such endpoint")
        if method != "POST":
            return answer("405 Method Not Allowed", "POST only", ("Allow", "POST"))
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return answer("411 Length Required", "Content-Length required")
        if length < 0:
            return answer("400 Bad Request", "bad Content-Length")
        if length > settings.max_body:
            return answer("413 Content Too Large", f"body over {settings.max_body} bytes")
        body = _read(environ["wsgi.input"], length)
        if path == RUN_TASK_PATH:
            assert run_tasks is not None
            given = str(environ.get(TASK_SIGNATURE, ""))
            if not verify(settings.run_task_key, body, given):
                return answer("401 Unauthorized", "missing or wrong X-TFC-Task-Signature")
            try:
                payload = decode(body)
                if is_verification(payload):
                    return answer("200 OK", "verification request: the task URL and key work")
                request = parse_request(payload)
            except (ValueError, InputError) as exc:
                return answer("400 Bad Request", f"not a run task request: {exc}")
            fields.update(task_result_id=request.task_result_id, run_id=request.run_id)
            fields["stage"] = request.stage
            repo = payload.get("vcs_repo_url")
            code, text = run_tasks.accept(request, repo if isinstance(repo, str) else None)
            reason = {200: "OK", 503: "Service Unavailable"}[code]
            extra = [("Retry-After", "30")] if code == 503 else []
            return answer(f"{code} {reason}", text, *extra)
        assert notifications is not None
        given = str(environ.get(NOTIFICATION_SIGNATURE, ""))
        if not verify(settings.notification_token, body, given):
            return answer("401 Unauthorized", "missing or wrong X-TFE-Notification-Signature")
        try:
            events = parse_notification(decode(body))
        except ValueError as exc:
            return answer("400 Bad Request", f"not a notification: {exc}")
        for event in events:
            fields.update(run_id=event.run_id, trigger=event.trigger)
            try:
                notifications.handle(event)
            except HieError as exc:
                log.error("%s of %s: %s", event.trigger, event.run_id, exc, extra=fields)
                return answer("500 Internal Server Error", "handling the notification failed")
            except Exception:
                log.exception("%s of %s failed", event.trigger, event.run_id, extra=fields)
                return answer("500 Internal Server Error", "handling the notification failed")
        return answer("200 OK", f"{len(events)} event(s) received")

    return app


def _page(
    pages: AckPages,
    environ: WSGIEnvironment,
    method: Any,
    path: str,
    start_response: StartResponse,
    fields: dict[str, Any],
    started: float,
) -> list[bytes]:
    """An acknowledgement or portal page: GET (and HEAD) read, POST only to `/ack/`; a form
    body is size-limited before it is read. Every answer carries the strict headers."""
    from hie_notify.service.ackpages import SECURITY_HEADERS, Page

    form: dict[str, str] = {}
    allowed = "GET, HEAD, POST" if path.startswith("/ack/") else "GET, HEAD"
    if method not in allowed.split(", "):
        page = Page(405, "method not allowed\n", "text/plain; charset=utf-8", (("Allow", allowed),))
    elif method == "POST":
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            length = -1
        kind = str(environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if length < 0 or length > MAX_FORM:
            page = Page(413, "form too large\n", "text/plain; charset=utf-8")
        elif kind != "application/x-www-form-urlencoded":
            page = Page(415, "expected a form\n", "text/plain; charset=utf-8")
        else:
            raw = _read(environ["wsgi.input"], length).decode("utf-8", "replace")
            parsed = urllib.parse.parse_qs(raw, keep_blank_values=True, max_num_fields=10)
            form = {k: v[0] for k, v in parsed.items()}
            page = _handled(pages, "POST", path, form)
    else:
        page = _handled(pages, "GET", path, form)
    body = page.body.encode()
    headers = [
        ("Content-Type", page.content_type),
        ("Content-Length", str(len(body))),
        *SECURITY_HEADERS,
        *page.headers,
    ]
    start_response(_status(page.status), headers)
    # The token is never logged: a log line must not be a working link.
    fields.update(path=path.split("/", 2)[1], code=page.status)
    fields["ms"] = round((time.monotonic() - started) * 1000, 1)
    log.info("%s /%s/...: %d", method, fields["path"], page.status, extra=fields)
    return [] if method == "HEAD" else [body]


# The status lines the pages and the Slack path answer with (RFC 9110's reason phrases).
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    503: "Service Unavailable",
}


def _status(code: int) -> str:
    """`410 Gone`: a WSGI status line."""
    return f"{code} {_REASONS.get(code, 'Error')}"


def _handled(pages: AckPages, method: str, path: str, form: dict[str, str]) -> Any:
    """The page, or a plain 500 (logged without the link) when building it failed."""
    from hie_notify.service.ackpages import Page

    try:
        return pages.handle(method, path, form)
    except Exception:
        log.exception("%s /%s/... failed", method, path.split("/", 2)[1])
        return Page(500, "something went wrong; please try again later\n", "text/plain")


def _read(stream: Any, length: int) -> bytes:
    chunks = []
    while length > 0:
        chunk = stream.read(min(length, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        length -= len(chunk)
    return b"".join(chunks)
