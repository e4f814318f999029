"""POST to a webhook-style service with bounded retries, never printing the address.

Webhook addresses (Teams, a status portal) are secrets: they appear in no message or error.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from hie_notify import progress
from hie_notify.errors import InputError, ServiceError

MAX_RETRIES = 4
TIMEOUT = 20


def retry_after(headers: Mapping[str, str], attempt: int, rand: Callable[[], float]) -> float:
    """Seconds to wait: the service's Retry-After when it gives one, else backoff with jitter."""
    value: str | None = headers.get("Retry-After")
    if value is not None:
        try:
            return min(float(value), 300.0)
        except ValueError:
            pass
    return min(0.5 * 2.0**attempt, 30.0) * (1 + rand())


# Headers in which webhook-style services name the request or run they accepted.
_ID_HEADERS = ("x-ms-workflow-run-id", "x-ms-request-id", "x-request-id", "request-id")


def receipt(response: Any) -> dict[str, str]:
    """What a webhook service answered: its HTTP status and whatever id it gave (a header, or
    `id` in a JSON body)."""
    out = {"status": str(response.status_code)}
    headers = {str(k).lower(): str(v) for k, v in dict(response.headers or {}).items()}
    for name in _ID_HEADERS:
        if headers.get(name):
            out["id"] = headers[name][:200]
            break
    else:
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("id"), (str, int)):
            out["id"] = str(data["id"])[:200]
    return out


def error_code(response: Any) -> str:
    """The short error code a webhook service gives (Power Automate: `error.code`, e.g.
    WorkflowNotFound); never its message, which may quote the address."""
    try:
        data = response.json()
    except ValueError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, str) and code.isidentifier() and len(code) <= 60:
        return f" {code}"
    return ""


def post(
    session: Any,
    url: str,
    *,
    what: str,
    body: bytes,
    headers: Mapping[str, str],
    sleep: Callable[[float], None] | None = None,
    rand: Callable[[], float] = random.random,
    max_retries: int = MAX_RETRIES,
    fix: Callable[[int], str] | None = None,
) -> Any:
    """POST `body`; retry 429 (honouring Retry-After), 5xx and connection errors, bounded.

    4xx other than 429 is a refusal (InputError), saying what `fix` says for its status (which
    variable to check); after the last retry a ServiceError. Neither names the address.
    """
    import requests

    sleep = sleep or time.sleep
    last = ""
    for attempt in range(max_retries + 1):
        try:
            response = session.post(url, data=body, headers=dict(headers), timeout=TIMEOUT)
        except requests.RequestException as exc:
            last = type(exc).__name__
        else:
            code = response.status_code
            if code < 400:
                return response
            last = f"HTTP {code}"
            if code != 429 and code < 500:
                hint = fix(code) if fix else ""
                raise InputError(
                    f"{what}: the service refused the request ({last}{error_code(response)})"
                    + (f": {hint}" if hint else "")
                )
            if attempt < max_retries:
                wait = retry_after(response.headers, attempt, rand)
                with progress.waiting(wait, f"{what} answered {last}"):
                    sleep(wait)
                continue
            break
        if attempt < max_retries:
            wait = retry_after({}, attempt, rand)
            with progress.waiting(wait, f"{what}: {last}"):
                sleep(wait)
    raise ServiceError(f"{what}: still failing after {max_retries} retries ({last})")
