"""A fake HCP Terraform API at the HTTP layer (`responses`), shaped like the documented one.

- `GET /api/v2/runs/:id` answers the JSON:API document of `tests/fixtures/hcp/`, with `included`
  plan, apply, workspace, configuration version and user;
- `GET /api/v2/organizations/:org/workspaces/:name` the workspace, with its `current-run`;
- `GET /api/v2/plans/:id/json-output` (and `/runs/:id/plan/json-output`) 204 while the plan is
  "running", then a 307 to a signed archivist URL on another host, as HCP Terraform does;
- the signed URL refuses a request that carries an Authorization header (a signed URL is its
  own credential; object stores reject a second one).

Every API route checks the bearer token. `script(kind, ...)` queues replies (status, headers,
body or an exception) to send before the normal answer, to inject failures.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import responses

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hcp"
PLANS = Path(__file__).resolve().parents[1] / "fixtures" / "plans"
SITE = "https://app.terraform.io"
API = f"{SITE}/api/v2"
ARCHIVIST = "https://archivist.terraform.io"
TOKEN = "tfc-PLANTED-TOKEN-3b9e7a1c.atlasv1.zZq8"
ENV = {"TF_API_TOKEN": TOKEN}
RUN_ID = "run-Qx7bN2eKpL4mRw9T"
PLAN_ID = "plan-Rb2cY7nVhM4kLx9S"
ORG = "hie-sde"
WORKSPACE = "eoe-prod"
SIGNED_SECRET = "dmF1bHQ6djI6SIGNED-URL-CANARY-5f1e2d"
HTML_502 = (FIXTURES / "proxy_502.html").read_text()

Reply = tuple[int, dict[str, str], str] | Exception
Handler = Callable[[Any], tuple[int, dict[str, str], str]]
JSON_HEADERS = {"Content-Type": "application/vnd.api+json"}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def run_document(
    status: str = "planned",
    *,
    plan_only: bool = False,
    plan_status: str = "finished",
    apply_status: str = "unreachable",
    cv_error: str | None = None,
) -> dict[str, Any]:
    """The run fixture, in another status."""
    doc = copy.deepcopy(fixture("run_with_includes.json"))
    doc["data"]["attributes"]["status"] = status
    doc["data"]["attributes"]["plan-only"] = plan_only
    for item in doc["included"]:
        if item["type"] == "plans":
            item["attributes"]["status"] = plan_status
        elif item["type"] == "applies":
            item["attributes"]["status"] = apply_status
        elif item["type"] == "configuration-versions" and cv_error:
            item["attributes"]["error"] = "unprocessable"
            item["attributes"]["error-message"] = cv_error
    return doc


class FakeClock:
    """Injected time: `sleep` records each wait and moves `monotonic` on; nothing really waits."""

    def __init__(self, start: float = 5000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@dataclass
class FakeHcp:
    rsps: responses.RequestsMock
    site: str = SITE
    download_host: str = ARCHIVIST
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    workspaces: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    polls_before_ready: int = 0
    scripted: dict[str, list[Reply]] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"{self.site}/api/v2"

    @property
    def signed_url(self) -> str:
        return f"{self.download_host}/v1/object/{SIGNED_SECRET}?expires=60"

    def install(self) -> FakeHcp:
        self.runs.setdefault(RUN_ID, fixture("run_with_includes.json"))
        self.workspaces.setdefault((ORG, WORKSPACE), fixture("workspace.json"))
        if not self.plan:
            self.plan = json.loads((PLANS / "s3.json").read_text())
        routes: list[tuple[str, str, Handler]] = [
            ("run", rf"{self.api}/runs/(run-[A-Za-z0-9]+)", self._run),
            ("workspace", rf"{self.api}/organizations/([^/?]+)/workspaces/([^/?]+)", self._ws),
            ("json_output", rf"{self.api}/plans/(plan-[A-Za-z0-9]+)/json-output", self._output),
            ("json_output", rf"{self.api}/runs/(run-[A-Za-z0-9]+)/plan/json-output", self._output),
            ("download", rf"{self.download_host}/v1/object/([^?]+)", self._download),
        ]
        for kind, pattern, handler in routes:
            self.rsps.add_callback(
                responses.GET, _anchored(pattern), callback=self._scripted(kind, handler)
            )
        return self

    def script(self, kind: str, *replies: Reply) -> None:
        """Send these replies to the next requests of `kind` before answering normally."""
        self.scripted.setdefault(kind, []).extend(replies)

    @property
    def requests(self) -> list[Any]:
        return [c.request for c in self.rsps.calls]

    def _scripted(self, kind: str, handler: Handler) -> Handler:
        def callback(request: Any) -> tuple[int, dict[str, str], str]:
            queue = self.scripted.get(kind)
            if queue:
                reply = queue.pop(0)
                if isinstance(reply, Exception):
                    raise reply
                return reply
            return handler(request)

        return callback

    def _authorised(self, request: Any) -> bool:
        return bool(request.headers.get("Authorization") == f"Bearer {TOKEN}")

    def _run(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self._authorised(request):
            return 401, JSON_HEADERS, json.dumps(fixture("error_unauthorized.json"))
        run_id = request.path_url.split("?")[0].rsplit("/", 1)[1]
        doc = self.runs.get(run_id)
        if doc is None:
            return 404, JSON_HEADERS, json.dumps(fixture("error_not_found.json"))
        return 200, JSON_HEADERS, json.dumps(doc)

    def _ws(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self._authorised(request):
            return 401, JSON_HEADERS, json.dumps(fixture("error_unauthorized.json"))
        parts = request.path_url.split("?")[0].split("/")
        doc = self.workspaces.get((parts[-3], parts[-1]))
        if doc is None:
            return 404, JSON_HEADERS, json.dumps(fixture("error_not_found.json"))
        return 200, JSON_HEADERS, json.dumps(doc)

    def _output(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self._authorised(request):
            return 401, JSON_HEADERS, json.dumps(fixture("error_unauthorized.json"))
        if self.polls_before_ready > 0:
            self.polls_before_ready -= 1
            return 204, {}, ""
        return 307, {"Location": self.signed_url}, ""

    def _download(self, request: Any) -> tuple[int, dict[str, str], str]:
        if "Authorization" in request.headers and self.download_host != self.site:
            body = "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed"
            body += "</Message></Error>"
            return 400, {"Content-Type": "application/xml"}, body
        return 200, {"Content-Type": "application/json"}, json.dumps(self.plan)


def _anchored(pattern: str) -> re.Pattern[str]:
    # The patterns hold no regex dots: every dot is a literal one of a host name.
    return re.compile("^" + pattern.replace(".", r"\.") + r"(\?.*)?$")
