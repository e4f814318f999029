"""HCP Terraform / Terraform Enterprise: read a run (one request), its plan JSON, a workspace.

Every request carries the token as `Authorization: Bearer`; 429 waits for `X-RateLimit-Reset`,
5xx and dropped connections back off, each a bounded number of times. The plan JSON is served
through a temporary signed URL (a 307 to another host): the token is never sent there, and that
URL is never logged nor put in an error.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn
from urllib.parse import urljoin, urlsplit

from hie_notify import limits, progress, safejson
from hie_notify.errors import InputError, ServiceError

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

DEFAULT_HOSTNAME = "app.terraform.io"
RUN_INCLUDE = "plan,apply,workspace,configuration_version,created_by"
JSONAPI = "application/vnd.api+json"
BACKOFF_CAP_SECONDS = 30.0
RATE_LIMIT_CAP_SECONDS = 60.0
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECT_HOPS = 3
_RUN_ID = re.compile(r"run-[A-Za-z0-9]+")
_PLAN_ID = re.compile(r"plan-[A-Za-z0-9]+")
_NAME = re.compile(r"[A-Za-z0-9_-]+")  # organization and workspace names
_RUN_LINK = re.compile(r"/runs/(run-[A-Za-z0-9]+)/?$")

# Run statuses: the documented table (api-docs/run.mdx "Run States") ...
DOCUMENTED_STATUSES = (
    "pending",
    "fetching",
    "fetching_completed",
    "pre_plan_running",
    "pre_plan_completed",
    "queuing",
    "plan_queued",
    "planning",
    "planned",
    "cost_estimating",
    "cost_estimated",
    "policy_checking",
    "policy_override",
    "policy_soft_failed",
    "policy_checked",
    "confirmed",
    "post_plan_running",
    "post_plan_completed",
    "planned_and_finished",
    "planned_and_saved",
    "apply_queued",
    "applying",
    "applied",
    "discarded",
    "errored",
    "canceled",
    "force_canceled",
)
# ... and those only go-tfe or its OpenAPI spec name.
EXTRA_STATUSES = (
    "pre_plan_awaiting_decision",
    "post_plan_awaiting_decision",
    "pre_apply_running",
    "pre_apply_completed",
    "queuing_apply",
    "post_apply_running",
    "post_apply_completed",
    "tf_policy_checked",
    "tf_policy_override",
    "assessing",
    "assessed",
)
KNOWN_STATUSES = frozenset(DOCUMENTED_STATUSES + EXTRA_STATUSES)
# The documented final states, plus those that end a run in practice.
FINAL_STATUSES = frozenset(
    {
        "policy_soft_failed",
        "planned_and_finished",
        "discarded",
        "errored",
        "canceled",
        "force_canceled",
        "applied",
        "assessed",
    }
)
APPLY_STARTED = "apply_started"
APPLY_SUCCEEDED = "apply_succeeded"
APPLY_FAILED = "apply_failed"
# Every known status, with the apply stage it means (None: not an apply stage). Post-apply run
# tasks only start after a successful apply, and cannot undo it.
APPLY_STAGE_FOR_STATUS: Mapping[str, str | None] = {
    **dict.fromkeys(KNOWN_STATUSES),
    "applying": APPLY_STARTED,
    "applied": APPLY_SUCCEEDED,
    "post_apply_running": APPLY_SUCCEEDED,
    "post_apply_completed": APPLY_SUCCEEDED,
    "errored": APPLY_FAILED,
    "canceled": APPLY_FAILED,
    "discarded": APPLY_FAILED,
    "force_canceled": APPLY_FAILED,
}


def stage_for_status(status: str | None, *, plan_only: bool = False) -> str | None:
    """The apply stage a run status means; None for other and unknown statuses.

    A plan-only (speculative) run never applies, so none of its statuses is an apply stage.
    """
    if plan_only or status is None:
        return None
    return APPLY_STAGE_FOR_STATUS.get(status)


def is_known_status(status: str | None) -> bool:
    """Is this a status the API documents (or go-tfe names)? Unknown ones are worth reporting."""
    return status in KNOWN_STATUSES


def is_final(status: str | None) -> bool:
    """Will a run in this status never change again?"""
    return status in FINAL_STATUSES


@dataclass(frozen=True)
class Run:
    """One HCP Terraform run, with what its plan, apply, workspace and creator add."""

    id: str
    status: str
    message: str | None
    is_destroy: bool
    plan_only: bool  # speculative: can never be applied
    source: str | None
    trigger_reason: str | None
    has_changes: bool
    created_at: str | None  # ISO 8601, as the API sends it
    status_timestamps: dict[str, str] = field(hash=False)
    created_by: str | None
    workspace_name: str | None
    workspace_id: str | None
    organization_name: str | None
    plan_id: str | None
    plan_status: str | None
    apply_id: str | None
    apply_status: str | None
    configuration_version_id: str | None
    run_url: str | None
    error_summary: str | None

    @property
    def stage(self) -> str | None:
        """The apply stage this run is at (None for a plan-only run and non-apply statuses)."""
        return stage_for_status(self.status, plan_only=self.plan_only)

    @property
    def final(self) -> bool:
        return is_final(self.status)

    @property
    def status_known(self) -> bool:
        return is_known_status(self.status)


class TfcOutputs(NamedTuple):
    """The dotenv outputs of hashicorp/tfc-workflows-gitlab jobs (lowercase by design there)."""

    run_id: str | None
    plan_id: str | None
    run_status: str | None
    run_link: str | None
    configuration_version_id: str | None


def tfc_outputs(env: Mapping[str, str]) -> TfcOutputs:
    """What an earlier `.tfc:create_run` / `.tfc:apply_run` job left in the dotenv report."""
    return TfcOutputs(
        *(
            env.get(k, "").strip() or None
            for k in ("run_id", "plan_id", "run_status", "run_link", "configuration_version_id")
        )
    )


def run_id_from_env(env: Mapping[str, str]) -> str | None:
    """The run to read: HIE_TFC_RUN_ID, else tfc-workflows-gitlab's `run_id` (or `run_link`)."""
    for name in ("HIE_TFC_RUN_ID", "run_id"):
        value = env.get(name, "").strip()
        if value:
            return check_run_id(value, name)
    for name in ("HIE_TFC_RUN_URL", "run_link"):
        match = _RUN_LINK.search(env.get(name, "").strip())
        if match:
            return match.group(1)
    return None


def check_run_id(value: str, source: str = "run id") -> str:
    """`value` if it looks like a run id (`run-` and letters or digits); InputError otherwise."""
    if not _RUN_ID.fullmatch(value):
        raise InputError(
            f"{source}: expected an HCP Terraform run id like run-CZcmD7eagjhyX0vN, got {value!r}"
        )
    return value


def parse_workspace(value: str, source: str = "workspace") -> tuple[str, str]:
    """Split `ORG/NAME` (e.g. `acme/eoe-prod`) into organization and workspace names."""
    parts = value.strip().split("/")
    if len(parts) != 2 or not all(_NAME.fullmatch(p) for p in parts):
        raise InputError(
            f"{source}: expected ORGANIZATION/WORKSPACE, each of letters, digits, - and _ "
            f"(like acme/eoe-prod), got {value!r}"
        )
    return parts[0], parts[1]


def parse_run(document: Any, base_url: str) -> Run:
    """Build a Run from a `GET /runs/:id?include=...` JSON:API document."""
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise ServiceError("HCP Terraform answered a run request without a run in `data`")
    included = document.get("included") if isinstance(document, dict) else None
    index = {
        (item.get("type"), item.get("id")): item
        for item in (included if isinstance(included, list) else [])
        if isinstance(item, dict)
    }
    attrs = _dict(data.get("attributes"))

    def related(name: str) -> tuple[str | None, dict[str, Any]]:
        ref = _dict(_dict(_dict(data.get("relationships")).get(name)).get("data"))
        rid = ref.get("id") if isinstance(ref.get("id"), str) else None
        return rid, _dict(index.get((ref.get("type"), rid)))

    ws_id, ws = related("workspace")
    plan_id, plan = related("plan")
    apply_id, apply = related("apply")
    cv_id, cv = related("configuration-version")
    _, user = related("created-by")
    org_ref = _dict(_dict(_dict(ws.get("relationships")).get("organization")).get("data"))
    org = _str(org_ref.get("id"))
    ws_name = _str(_dict(ws.get("attributes")).get("name"))
    run_id = data["id"]
    status = _str(attrs.get("status")) or "unknown"
    plan_status = _str(_dict(plan.get("attributes")).get("status"))
    apply_status = _str(_dict(apply.get("attributes")).get("status"))
    site = base_url.rstrip("/")
    return Run(
        id=run_id,
        status=status,
        message=_str(attrs.get("message")),
        is_destroy=attrs.get("is-destroy") is True,
        plan_only=attrs.get("plan-only") is True,
        source=_str(attrs.get("source")),
        trigger_reason=_str(attrs.get("trigger-reason")),
        has_changes=attrs.get("has-changes") is True,
        created_at=_str(attrs.get("created-at")),
        status_timestamps={
            str(k): v
            for k, v in _dict(attrs.get("status-timestamps")).items()
            if isinstance(v, str)
        },
        created_by=_str(_dict(user.get("attributes")).get("username")),
        workspace_name=ws_name,
        workspace_id=ws_id,
        organization_name=org,
        plan_id=plan_id,
        plan_status=plan_status,
        apply_id=apply_id,
        apply_status=apply_status,
        configuration_version_id=cv_id,
        run_url=f"{site}/app/{org}/workspaces/{ws_name}/runs/{run_id}" if org and ws_name else None,
        error_summary=_error_summary(
            status, plan_status, apply_status, _dict(cv.get("attributes"))
        ),
    )


def _error_summary(
    status: str, plan_status: str | None, apply_status: str | None, cv: dict[str, Any]
) -> str | None:
    cv_error = _str(cv.get("error-message")) or _str(cv.get("error"))
    if cv_error:
        return f"the configuration version failed: {cv_error[:200]}"
    if apply_status == "errored":
        return "the apply errored (see the apply log in HCP Terraform)"
    if plan_status == "errored":
        return "the plan errored (see the plan log in HCP Terraform)"
    return {
        "errored": "the run errored",
        "canceled": "the run was canceled",
        "force_canceled": "the run was force-canceled by a workspace admin",
        "discarded": "the run was discarded before it was applied",
        "policy_soft_failed": "a policy check soft-failed",
    }.get(status)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class HcpClient:
    """A small HCP Terraform API client: bounded retries, injected time, no secrets in errors."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] | None = None,
        rand: Callable[[], float] = random.random,
        max_retries: int = 4,
        timeout: float = 30,
        plan_wait_seconds: float = 300,
        poll_interval: float = 5,
    ) -> None:
        token = token.strip()
        if not token or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in token):
            # requests would put the whole header value, token included, in its error.
            raise InputError(
                "TF_API_TOKEN (or TFE_TOKEN): the token is empty or has spaces or control "
                "characters in it"
            )
        self.base_url = base_url.rstrip("/").removesuffix("/api/v2")
        self.api_url = self.base_url + "/api/v2"
        self._token = token
        self._session = session
        # Looked up now rather than at import, so a test can replace time.sleep.
        self._sleep = sleep or time.sleep
        self._monotonic = monotonic or time.monotonic
        self._rand = rand
        self.max_retries = max_retries
        self.timeout = timeout
        self.plan_wait_seconds = plan_wait_seconds
        self.poll_interval = poll_interval

    def __repr__(self) -> str:  # never show the token
        return f"HcpClient(base_url={self.base_url!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str], **kwargs: Any) -> HcpClient:
        """Token from TF_API_TOKEN or TFE_TOKEN; address from TFE_ADDRESS or TF_CLOUD_HOSTNAME."""
        token = (env.get("TF_API_TOKEN") or "").strip() or (env.get("TFE_TOKEN") or "").strip()
        if not token:
            raise InputError(
                "HCP Terraform needs a token: set TF_API_TOKEN (or TFE_TOKEN) to a user or "
                "team API token as a masked CI/CD variable"
            )
        address = (env.get("TFE_ADDRESS") or "").strip()
        if address:
            return cls(_check_address(address, "TFE_ADDRESS"), token, **kwargs)
        host = (env.get("TF_CLOUD_HOSTNAME") or "").strip() or DEFAULT_HOSTNAME
        if "://" in host:
            return cls(_check_address(host, "TF_CLOUD_HOSTNAME"), token, **kwargs)
        return cls(_check_address(f"https://{host}", "TF_CLOUD_HOSTNAME"), token, **kwargs)

    # -- what the commands use

    def get_run(self, run_id: str) -> Run:
        """The run with its plan, apply, workspace, configuration version and creator: 1 request."""
        check_run_id(run_id)
        url = f"{self.api_url}/runs/{run_id}?include={RUN_INCLUDE}"
        doc = self._get_document(url, f"read run {run_id}", f"run {run_id}")
        return parse_run(doc, self.base_url)

    def current_run(self, org: str, workspace: str) -> Run:
        """The workspace's current run (the one that holds or last held its lock), via get_run.

        `current-run` rather than `latest-run`: speculative plans and unconfirmed saved plans
        never become current, so this is the run whose apply stakeholders hear about.
        """
        for value in (org, workspace):
            if not _NAME.fullmatch(value):
                raise InputError(
                    f"workspace: expected ORGANIZATION/WORKSPACE names of letters, digits, - and "
                    f"_, got {org + '/' + workspace!r}"
                )
        where = f"workspace {org}/{workspace}"
        url = f"{self.api_url}/organizations/{org}/workspaces/{workspace}"
        doc = self._get_document(url, f"read {where}", where)
        data = _dict(_dict(doc).get("data"))
        ref = _dict(_dict(_dict(data.get("relationships")).get("current-run")).get("data"))
        run_id = _str(ref.get("id"))
        if run_id is None:
            raise InputError(f"HCP Terraform: {where} has no current run yet")
        return self.get_run(run_id)

    def plan_json(self, plan_id: str) -> dict[str, Any]:
        """The plan's `terraform show -json` document, decoded (feed it to `parse_plan`).

        Waits up to `plan_wait_seconds` while the plan is not finished (204), then follows the
        temporary download link by hand.
        """
        if not _PLAN_ID.fullmatch(plan_id):
            raise InputError(f"plan id: expected like plan-8F5JFydVYAmtTjET, got {plan_id!r}")
        return self._json_output(f"{self.api_url}/plans/{plan_id}/json-output", f"plan {plan_id}")

    def run_plan_json(self, run_id: str) -> dict[str, Any]:
        """Like `plan_json`, addressed by the run (`/runs/:id/plan/json-output`)."""
        check_run_id(run_id)
        return self._json_output(
            f"{self.api_url}/runs/{run_id}/plan/json-output", f"the plan of run {run_id}"
        )

    # -- transport

    def _json_output(self, url: str, thing: str) -> dict[str, Any]:
        what = f"read the JSON of {thing}"
        started = self._monotonic()
        while True:
            resp = self._request(url, what)
            if resp.status_code != 204:
                break
            waited = self._monotonic() - started
            if waited >= self.plan_wait_seconds:
                raise ServiceError(
                    f"HCP Terraform: {thing} has not finished after {waited:.0f} s "
                    f"(json-output kept answering 204); run again once the plan has finished"
                )
            pause = min(self.poll_interval, self.plan_wait_seconds - waited)
            why = f"HCP Terraform is still making {thing} ({waited:.0f} s so far, at most "
            with progress.waiting(pause, f"{why}{self.plan_wait_seconds:.0f} s)"):
                self._sleep(pause)
        hops = 0
        while resp.status_code in _REDIRECTS:
            location = resp.headers.get("Location")
            hops += 1
            if not location or hops > _MAX_REDIRECT_HOPS:
                raise ServiceError(f"HCP Terraform: bad redirect while trying to {what}")
            # The signed URL itself is a credential for a minute: it goes nowhere but here.
            target = urljoin(resp.url or url, location)
            same_host = _origin(target) == _origin(self.api_url)
            log.debug("HCP Terraform: following the plan JSON redirect (same host: %s)", same_host)
            what = f"download the JSON of {thing}"
            resp = self._request(target, what, auth=same_host)
            if resp.status_code not in (200, *_REDIRECTS):
                raise ServiceError(
                    f"HCP Terraform: the temporary download link for the JSON of {thing} was "
                    f"refused (HTTP {resp.status_code}); it lives one minute: run again"
                )
        if resp.status_code == 422:
            raise InputError(
                f"HCP Terraform: {thing} has no JSON plan (422): it was made with Terraform "
                "older than 0.12; give the plan file with --plan instead"
            )
        if resp.status_code != 200:
            hint = _JSON_OUTPUT_TOKEN_HINT if resp.status_code in (403, 404) else ""
            self._refused(resp, what, thing, extra=hint)
        plan = self._decode(resp, what)
        if not isinstance(plan, dict):
            raise ServiceError(f"HCP Terraform: the JSON of {thing} is not a JSON object")
        return plan

    def _get_document(self, url: str, what: str, thing: str) -> dict[str, Any]:
        resp = self._request(url, what)
        if resp.status_code != 200:
            self._refused(resp, what, thing)
        doc = self._decode(resp, what)
        if not isinstance(doc, dict):
            raise ServiceError(
                f"HCP Terraform answered with a JSON {type(doc).__name__} while "
                f"trying to {what}, not a JSON:API document"
            )
        return doc

    def _request(self, url: str, what: str, *, auth: bool = True) -> requests.Response:
        """One GET, retried on 429, 5xx and dropped connections; never follows redirects."""
        import requests

        if self._session is None:
            self._session = requests.Session()
        session = self._session
        headers = {"Accept": JSONAPI}
        if auth:
            headers["Authorization"] = f"Bearer {self._token}"
            headers["Content-Type"] = JSONAPI
        attempt = 0
        while True:
            wait: float
            try:
                resp = session.get(
                    url, headers=headers, timeout=self.timeout, allow_redirects=False
                )
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                last = f"{type(exc).__name__}, no answer"
                wait = self._backoff(attempt)
            except requests.RequestException as exc:
                raise ServiceError(
                    f"HCP Terraform: request failed while trying to {what} ({type(exc).__name__})"
                ) from None
            else:
                status = resp.status_code
                if status == 429:
                    last = "HTTP 429, rate limited"
                    wait = self._rate_limit_wait(resp, attempt)
                elif status >= 500:
                    last = f"HTTP {status}" + (", an HTML error page" if _is_html(resp) else "")
                    wait = self._backoff(attempt)
                else:
                    return resp
            if attempt >= self.max_retries:
                raise ServiceError(
                    f"HCP Terraform still failing after {self.max_retries} retries while trying "
                    f"to {what} (last: {last})"
                )
            log.debug("HCP Terraform: %s while trying to %s; retrying in %.1f s", last, what, wait)
            with progress.waiting(wait, f"HCP Terraform, to {what} ({last})"):
                self._sleep(wait)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        return min(BACKOFF_CAP_SECONDS, 2.0**attempt) + self._rand()

    def _rate_limit_wait(self, resp: requests.Response, attempt: int) -> float:
        for name in ("X-RateLimit-Reset", "Retry-After"):
            try:
                seconds = float(resp.headers.get(name, ""))
            except ValueError:
                continue
            if seconds >= 0:
                return min(RATE_LIMIT_CAP_SECONDS, seconds) + self._rand()
        return self._backoff(attempt)

    def _decode(self, resp: requests.Response, what: str) -> Any:
        if _is_html(resp):
            raise ServiceError(
                f"HCP Terraform answered HTTP {resp.status_code} with an HTML page, not JSON, "
                f"while trying to {what}: check TFE_ADDRESS / TF_CLOUD_HOSTNAME"
            )
        need = limits.json_memory_estimate(resp.content)
        if need > limits.DEFAULT_MEMORY_BUDGET:
            raise InputError(
                f"HCP Terraform: the JSON read to {what} could take about {need >> 20} MiB of "
                f"memory, over the budget of {limits.DEFAULT_MEMORY_BUDGET >> 20} MiB"
            )
        try:
            return safejson.loads(resp.content)
        except (ValueError, UnicodeDecodeError):
            raise ServiceError(
                f"HCP Terraform answered HTTP {resp.status_code} with malformed JSON while "
                f"trying to {what}"
            ) from None

    def _refused(self, resp: requests.Response, what: str, thing: str, extra: str = "") -> NoReturn:
        status = resp.status_code
        if resp.content.strip():
            self._decode(resp, what)  # an HTML page or malformed JSON is the service failing
        detail = _jsonapi_errors(resp)
        if status == 401:
            raise InputError(
                f"HCP Terraform refused the token (401): check TF_API_TOKEN (or TFE_TOKEN) "
                f"(while trying to {what})"
            )
        if status == 404:
            raise InputError(
                f"HCP Terraform: {thing} not found (404): it does not exist, or this token "
                f"cannot see it (HCP Terraform answers 404 for both){extra}"
            )
        if status == 403:
            raise InputError(
                f"HCP Terraform: the token may not {what} (403){extra}"
                + (f": {detail}" if detail else "")
            )
        raise ServiceError(
            f"HCP Terraform answered HTTP {status} while trying to {what}"
            + (f": {detail}" if detail else "")
        )


_JSON_OUTPUT_TOKEN_HINT = (
    ". The plan JSON needs a user or team token with admin access to the workspace; "
    "organization tokens are refused"
)


def _jsonapi_errors(resp: requests.Response) -> str | None:
    """The titles and details of a JSON:API error document, or None when the body is not one."""
    try:
        doc = safejson.loads(resp.content)
    except (ValueError, UnicodeDecodeError):
        return None
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return None
    texts = []
    for err in errors:
        if isinstance(err, dict):
            parts = [_str(err.get("title")), _str(err.get("detail"))]
            texts.append(" - ".join(p for p in parts if p))
        elif isinstance(err, str):
            texts.append(err)
    return "; ".join(t for t in texts if t)[:300]


def _is_html(resp: requests.Response) -> bool:
    kind = resp.headers.get("Content-Type", "").lower()
    return "html" in kind or resp.content[:512].lstrip()[:1] == b"<"


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _check_address(address: str, source: str) -> str:
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise InputError(
            f"{source}: expected an address like https://tfe.example.org (or a host name for "
            f"TF_CLOUD_HOSTNAME), got {address!r}"
        )
    return address.rstrip("/")
