"""JSON calls to the ticket, status page and on-call services, with bounded retries.

429 (and Statuspage's older 420) and 5xx are retried, honouring Retry-After. A 401 names the
variables that hold the credential and what they must be; a 403 names the permission the call
needs; other 4xx are refused requests, with the service's own words and, where the service
says which setting is wrong, its variable. Each is an InputError: a stage reports it as a
failed delivery and still sends the rest (exit 3). No error holds the credential's value.
Writes that are not idempotent are sent once (`retries=0`) so the caller can look for its own
marker before sending again.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hie_notify import progress
from hie_notify.errors import InputError, ServiceError
from hie_notify.http import TIMEOUT, retry_after

MAX_RETRIES = 4
RETRYABLE = frozenset({420, 429})


class Transient(ServiceError):
    """The service is busy or failing; `wait` is how long it asked us to wait (seconds)."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class Api:
    """One service: its base address, its auth headers, and what each refusal means."""

    def __init__(
        self,
        name: str,
        base: str,
        headers: Mapping[str, str],
        *,
        permissions: str,
        credential: str = "",
        rejected: str = "",
        refused: Callable[[int, str], str] | None = None,
        secrets: Sequence[str] = (),
        session: Any = None,
        sleep: Callable[[float], None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        import requests

        self.name = name
        self.base = base.rstrip("/")
        self._headers = {"Accept": "application/json", **headers}
        self.permissions = permissions  # what a 403 says when the call names nothing
        self.credential = credential  # the variables a 401 names
        self.rejected = rejected  # what those variables must hold
        self.refused = refused  # (status, the service's words) -> the fix, for other 4xx
        # What a service that quotes the request back must not get into a message: the header
        # values (and their parts: "Basic <base64>") and the caller's own secrets.
        parts = [p for v in headers.values() for p in (v, *v.split())]
        self._secrets = sorted(
            {x for x in (*parts, *secrets) if len(x) >= 6}, key=len, reverse=True
        )
        self.session = session or requests.Session()
        self.sleep = sleep or time.sleep
        self.rand = rand

    def __repr__(self) -> str:  # the headers hold the credential
        return f"Api({self.name!r})"

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        expect: tuple[int, ...] = (),
        retries: int = MAX_RETRIES,
        need: str = "",
    ) -> Any:
        """The response (2xx, or a status listed in `expect`); errors as the module says.
        `need` is the permission this call needs (a 403 says it)."""
        import requests

        headers = dict(self._headers)
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        last, wait = "", 0.0
        for attempt in range(retries + 1):
            try:
                response = self.session.request(
                    method,
                    self.base + path,
                    data=data,
                    params=dict(params or {}),
                    headers=headers,
                    timeout=TIMEOUT,
                )
            except requests.RequestException as exc:
                last, wait = type(exc).__name__, retry_after({}, attempt, self.rand)
            else:
                code = response.status_code
                if code < 300 or code in expect:
                    return response
                last = f"HTTP {code}"
                if code not in RETRYABLE and code < 500:
                    words = detail(response)
                    for secret in self._secrets:
                        words = words.replace(secret, "[MASKED]")
                    raise InputError(self._refusal(what, code, words, need))
                wait = retry_after(response.headers, attempt, self.rand)
            if attempt < retries:
                with progress.waiting(wait, f"{self.name}: {what} ({last})"):
                    self.sleep(wait)
        raise Transient(
            f"{self.name}: {what}: still failing after {retries} retries ({last})", wait
        )

    def _refusal(self, what: str, code: int, words: str, need: str) -> str:
        """What a 4xx means and how to fix it, naming variables, never their values."""
        head = f"{self.name}: {what}"
        if code == 401:
            check = f": check {self.credential}" if self.credential else ""
            why = f" ({self.rejected})" if self.rejected else ""
            return f"{head}: the service rejected the credentials (HTTP 401){check}{why}"
        if code == 403:
            return (
                f"{head}: the service refused permission (HTTP 403{words}): "
                f"{need or self.permissions}"
            )
        fix = self.refused(code, words) if self.refused else ""
        return f"{head}: the service refused the request (HTTP {code}{words})" + (
            f": {fix}" if fix else ""
        )


def obj(response: Any, what: str) -> dict[str, Any]:
    """The response's JSON object; a service answering anything else is failing (exit 3)."""
    data = _parsed(response, what)
    if not isinstance(data, dict):
        raise ServiceError(
            f"{what}: expected a JSON object from the service, got {type(data).__name__}"
        )
    return data


def arr(response: Any, what: str) -> list[dict[str, Any]]:
    """The response's JSON list of objects; anything else is a failing service (exit 3)."""
    data = _parsed(response, what)
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise ServiceError(f"{what}: expected a JSON list of objects from the service")
    return data


def _parsed(response: Any, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ServiceError(
            f"{what}: the service answered HTTP {response.status_code} with something that is "
            "not JSON (a proxy or login page?)"
        ) from None


def detail(response: Any) -> str:
    """The service's own error words (Jira `errorMessages`, Statuspage `error`), short."""
    try:
        data = response.json()
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    words = data.get("errorMessages") or data.get("errors") or data.get("error") or ""
    if isinstance(words, dict):
        words = [f"{k}: {v}" for k, v in words.items()]
    if isinstance(words, list):
        words = "; ".join(str(w) for w in words)
    text = str(words)[:200]
    return f": {text}" if text else ""


def once(
    api: Api,
    find: Callable[[], Any],
    write: Callable[[], Any],
    *,
    retries: int = MAX_RETRIES,
    looked: bool = False,
) -> Any:
    """A write the service does not de-duplicate: look for it first (unless the caller just
    `looked`), send it, and after a failure look again before sending again (a 5xx may have
    been applied)."""
    last: Transient | None = None
    for attempt in range(retries + 1):
        found = None if looked and attempt == 0 else find()
        if found is not None:
            return found
        try:
            return write()
        except Transient as exc:
            last = exc
            if attempt < retries:
                with progress.waiting(exc.wait, str(exc)):
                    api.sleep(exc.wait)
    assert last is not None
    raise ServiceError(str(last).replace("after 0 retries", f"after {retries} retries"))
