"""HCP Terraform run tasks: the request HCP sends, its signature, and the result we PATCH back.

The request (payload_version 1) is parsed tolerantly: unknown keys are ignored, the fields the
gate needs are checked. The callback is a JSON:API `task-results` document with one outcome per
reason, kept inside the limits of HCP's schema (message 1000 chars, body 10,000, 250 outcomes).
It is retried on dropped connections, 429 and 5xx (honouring Retry-After), never on 401 or 422;
409 means a result was already final. The access token goes only to the HCP host.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hie_notify.errors import InputError, ServiceError
from hie_notify.http import retry_after
from hie_notify.terraform.hcp import DEFAULT_HOSTNAME, HcpClient, Run

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "HTTP_X_TFC_TASK_SIGNATURE"
VERIFICATION_TOKEN = "test-token"  # HCP's deliberately invalid token on the create/update check
STAGES = ("pre_plan", "post_plan", "pre_apply", "post_apply")
JSONAPI = "application/vnd.api+json"
MAX_MESSAGE = 1000
MAX_DESCRIPTION = 1000
MAX_BODY = 10_000
MAX_URL = 500
MAX_OUTCOMES = 250
_JIRA_KEY = re.compile(r"\b([A-Z][A-Z0-9]{1,9}-[1-9][0-9]{0,6})\b")
_SHA = re.compile(r"\b([0-9a-f]{40})\b")
_PLAN_PATH = re.compile(r"/api/v2/plans/(plan-[A-Za-z0-9]+)/json-output$")


@dataclass(frozen=True)
class RunTaskRequest:
    """What HCP Terraform sent to the task URL (the fields hie-notify uses)."""

    stage: str
    access_token: str
    task_result_id: str
    callback_url: str
    run_id: str
    run_message: str
    is_speculative: bool
    outcomes: bool  # HCP accepts detailed outcomes
    enforcement: str  # mandatory | advisory
    plan_json_api_url: str | None
    run_app_url: str | None
    run_created_at: str | None
    run_created_by: str | None
    organization_name: str | None
    workspace_id: str | None
    workspace_name: str | None
    vcs_branch: str | None
    vcs_commit: str | None

    @property
    def jira_key(self) -> str | None:
        """The change's Jira key: the first one the run message names."""
        return jira_key(self.run_message)

    def as_run(self) -> Run:
        """The run as the rest of hie-notify knows one (for audiences and messages)."""
        return Run(
            id=self.run_id,
            status="post_plan_running" if self.stage == "post_plan" else "pre_apply_running",
            message=self.run_message or None,
            is_destroy=False,  # the plan's own deletes say so
            plan_only=self.is_speculative,
            source=None,
            trigger_reason=None,
            has_changes=True,
            created_at=self.run_created_at,
            status_timestamps={},
            created_by=self.run_created_by,
            workspace_name=self.workspace_name,
            workspace_id=self.workspace_id,
            organization_name=self.organization_name,
            plan_id=None,
            plan_status="finished",
            apply_id=None,
            apply_status=None,
            configuration_version_id=None,
            run_url=self.run_app_url,
            error_summary=None,
        )


def jira_key(message: str | None) -> str | None:
    """The first Jira key (like FFAPP-4458) a run message names."""
    match = _JIRA_KEY.search(message or "")
    return match.group(1) if match else None


def commit_in(message: str | None) -> str | None:
    """A full commit SHA written in a run message (how runs started by API name their commit)."""
    match = _SHA.search(message or "")
    return match.group(1) if match else None


def is_verification(payload: Any) -> bool:
    """HCP's test request when a task is created or updated (its deliberately invalid token):
    answered 200 once signed, never called back. It need carry none of a run's fields."""
    return isinstance(payload, dict) and payload.get("access_token") == VERIFICATION_TOKEN


def verify(key: str, body: bytes, given: str) -> bool:
    """Is `given` the hex HMAC-SHA512 of `body` keyed with `key`? Compared in constant time."""
    expected = hmac.new(key.encode(), body, hashlib.sha512).hexdigest()
    given_bytes = given.strip().lower().encode("latin-1", "replace")
    return hmac.compare_digest(expected.encode(), given_bytes)


def parse_request(payload: Any) -> RunTaskRequest:
    """The request from a decoded body; InputError naming the field when it is not one."""
    if not isinstance(payload, dict):
        raise InputError("run task request: expected a JSON object")
    if payload.get("payload_version") != 1:
        raise InputError(
            f"run task request: payload_version: expected 1, got {payload.get('payload_version')!r}"
        )

    def text(name: str, *, required: bool = True) -> str | None:
        value = payload.get(name)
        if isinstance(value, str) and value:
            return value
        if value is None and not required:
            return None
        if required and value is None:
            raise InputError(f"run task request: {name}: missing")
        if not required and value == "":
            return None
        raise InputError(f"run task request: {name}: expected a string, got {type(value).__name__}")

    stage = text("stage")
    if stage not in STAGES:
        raise InputError(f"run task request: stage: expected one of {', '.join(STAGES)}")
    caps = payload.get("capabilities")
    caps = caps if isinstance(caps, dict) else {}
    # go-tfe's struct tag misspells it: accept both.
    outcomes = caps.get("outcomes") is True or caps.get("capabilitites") is True
    commit = text("vcs_commit_hash", required=False)
    if commit is None:
        url = text("vcs_commit_url", required=False) or ""
        found = _SHA.search(url.rsplit("/", 1)[-1])
        commit = found.group(1) if found else None
    commit = commit or commit_in(str(payload.get("run_message") or ""))
    return RunTaskRequest(
        stage=stage,
        access_token=text("access_token") or "",
        task_result_id=text("task_result_id") or "",
        callback_url=text("task_result_callback_url") or "",
        run_id=text("run_id") or "",
        run_message=text("run_message", required=False) or "",
        is_speculative=payload.get("is_speculative") is True,
        outcomes=outcomes,
        enforcement=text("task_result_enforcement_level", required=False) or "mandatory",
        plan_json_api_url=text("plan_json_api_url", required=False),
        run_app_url=text("run_app_url", required=False),
        run_created_at=text("run_created_at", required=False),
        run_created_by=text("run_created_by", required=False),
        organization_name=text("organization_name", required=False),
        workspace_id=text("workspace_id", required=False),
        workspace_name=text("workspace_name", required=False),
        vcs_branch=text("vcs_branch", required=False),
        vcs_commit=commit,
    )


@dataclass(frozen=True)
class Outcome:
    """One line of the result in HCP's UI: a reason, its severity and the details."""

    outcome_id: str
    description: str
    body: str
    level: str  # none | info | warning | error
    label: str  # Passed, Failed, Warning, Info
    severity: str  # High, Medium, Low, None


@dataclass(frozen=True)
class TaskResult:
    status: str  # passed | failed | running
    message: str
    url: str = ""
    outcomes: tuple[Outcome, ...] = field(default_factory=tuple)


def _cut(text: str, limit: int) -> str:
    text = text or "-"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def callback_document(result: TaskResult, *, with_outcomes: bool) -> dict[str, Any]:
    """The JSON:API body of the callback PATCH, inside the limits of HCP's schema."""
    attributes: dict[str, Any] = {
        "status": result.status,
        "message": _cut(" ".join(result.message.split()), MAX_MESSAGE),
    }
    if result.url and len(result.url) <= MAX_URL:
        attributes["url"] = result.url
    data: dict[str, Any] = {"type": "task-results", "attributes": attributes}
    if with_outcomes and result.outcomes:
        outcomes = list(result.outcomes)
        if len(outcomes) > MAX_OUTCOMES:
            rest = len(outcomes) - MAX_OUTCOMES + 1
            outcomes = [
                *outcomes[: MAX_OUTCOMES - 1],
                Outcome("more", f"{rest} more", f"{rest} more reasons", "info", "Info", "None"),
            ]
        data["relationships"] = {
            "outcomes": {
                "data": [
                    {
                        "type": "task-result-outcomes",
                        "attributes": {
                            "outcome-id": _cut(o.outcome_id, 64),
                            "description": _cut(o.description, MAX_DESCRIPTION),
                            "body": _cut(o.body, MAX_BODY),
                            **({"url": result.url} if "url" in attributes else {}),
                            "tags": {
                                "Status": [{"label": _cut(o.label, 32), "level": o.level}],
                                "Severity": [{"label": _cut(o.severity, 32), "level": o.level}],
                            },
                        },
                    }
                    for o in outcomes
                ]
            }
        }
    return {"data": data}


def hcp_origin(env: Mapping[str, str]) -> tuple[str, str]:
    """The HCP Terraform (or TFE) origin the service trusts: TFE_ADDRESS or TF_CLOUD_HOSTNAME."""
    address = (env.get("TFE_ADDRESS") or "").strip()
    if not address:
        host = (env.get("TF_CLOUD_HOSTNAME") or "").strip() or DEFAULT_HOSTNAME
        address = host if "://" in host else f"https://{host}"
    return _origin(address)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def check_hcp_url(url: str, origin: tuple[str, str], name: str) -> None:
    """The token is only ever sent to the HCP host the service was configured for."""
    if _origin(url) != origin:
        raise InputError(
            f"run task request: {name}: not on {origin[0]}://{origin[1]} (set TFE_ADDRESS or "
            "TF_CLOUD_HOSTNAME for Terraform Enterprise); the access token is not sent there"
        )


def fetch_plan(
    request: RunTaskRequest,
    origin: tuple[str, str],
    *,
    sleep: Callable[[float], None] | None = None,
    session: Any = None,
) -> dict[str, Any]:
    """The run's plan JSON from `plan_json_api_url` with the request's access token; the
    redirect to the archive host is followed without it (HcpClient's own download)."""
    url = request.plan_json_api_url
    if not url:
        raise InputError(f"run task request: plan_json_api_url: missing at {request.stage}")
    check_hcp_url(url, origin, "plan_json_api_url")
    match = _PLAN_PATH.search(urlsplit(url).path)
    if not match:
        raise InputError(
            "run task request: plan_json_api_url: expected /api/v2/plans/<plan id>/json-output"
        )
    client = HcpClient(
        f"{origin[0]}://{origin[1]}",
        request.access_token,
        session=session,
        sleep=sleep,
        plan_wait_seconds=120,
    )
    return client.plan_json(match.group(1))


def send_callback(
    request: RunTaskRequest,
    result: TaskResult,
    origin: tuple[str, str],
    *,
    session: Any = None,
    sleep: Callable[[float], None] | None = None,
    rand: Callable[[], float] = random.random,
    max_retries: int = 5,
    timeout: float = 20,
    budget: float = 300,
) -> int:
    """PATCH the result to HCP; the HTTP status it finally answered (409: already final).

    Retries dropped connections, 429 and 5xx with backoff (Retry-After when given): at most
    `max_retries` times and `budget` seconds of waiting, inside HCP's 10-minute window.
    ServiceError when it still fails; InputError on 401, 422 and other refusals.
    """
    import requests

    check_hcp_url(request.callback_url, origin, "task_result_callback_url")
    session = session or requests.Session()
    sleep = sleep or time.sleep
    body = json.dumps(callback_document(result, with_outcomes=request.outcomes)).encode()
    headers = {"Authorization": f"Bearer {request.access_token}", "Content-Type": JSONAPI}
    last = ""
    waited = 0.0
    for attempt in range(max_retries + 1):
        wait = retry_after({}, attempt, rand)
        try:
            resp = session.patch(request.callback_url, data=body, headers=headers, timeout=timeout)
        except requests.RequestException as exc:
            last = type(exc).__name__
        else:
            code = int(resp.status_code)
            if code < 300 or code == 409:
                return code
            last = f"HTTP {code}"
            if code != 429 and code < 500:
                raise InputError(f"HCP Terraform refused the run task result ({last})")
            wait = retry_after(resp.headers, attempt, rand)
        if attempt == max_retries or waited + wait > budget:
            break
        log.info(
            "run task callback for %s: %s; retrying in %.1f s", request.task_result_id, last, wait
        )
        sleep(wait)
        waited += wait
    raise ServiceError(
        f"HCP Terraform: the run task result for {request.task_result_id} could not be "
        f"delivered (last: {last}, after {waited:.0f} s of retries)"
    )
