"""Fakes of Jira (Cloud v3 / Data Center v2), Statuspage and PagerDuty Events v2 at the HTTP
layer (`responses`), answering with the shapes of ../shared/reference/jira-cloud.md and
statuspage-pagerduty.md. Each keeps state, so a retried job can be checked for duplicates,
and takes planned failures: `fail(method, suffix, status, headers, applied=False)`."""

from __future__ import annotations

import base64
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import responses
import yaml

from tests.support.paths import EXAMPLES

JIRA = "https://fitfile.atlassian.net"
EMAIL = "deploy-bot@fitfile.example"
JIRA_TOKEN = "ATATT3xFfGF0-planted-jira-token"
PAT = "NjY0-planted-datacenter-pat"
SP_KEY = "planted-statuspage-key-0001"
PD_KEY = "e93facc04764012d7bfb0025planted1"  # 32 characters, an Events API v2 integration key
PAGE = "8m2l51279rpl"
COMPONENT = "y6ssccsqgy8s"
MR = "https://gitlab.example/acme/infra/-/merge_requests/7"
RUN = "https://app.terraform.io/app/acme/workspaces/eoe-prod/runs/run-abc123"

Reply = tuple[int, dict[str, str], str]


@dataclass
class Failure:
    method: str
    suffix: str
    status: int
    headers: dict[str, str]
    applied: bool  # the service did the work but still answered with an error


@dataclass
class _Base:
    failures: list[Failure] = field(default_factory=list)
    calls: list[tuple[str, str, Any]] = field(default_factory=list)

    def fail(
        self,
        method: str,
        suffix: str,
        status: int,
        headers: dict[str, str] | None = None,
        *,
        times: int = 1,
        applied: bool = False,
    ) -> None:
        for _ in range(times):
            self.failures.append(Failure(method, suffix, status, headers or {}, applied))

    def _planned(self, method: str, path: str) -> Failure | None:
        for f in self.failures:
            if f.method == method and path.endswith(f.suffix):
                self.failures.remove(f)
                return f
        return None

    def bodies(self) -> str:
        """Every request body sent, as one text (for leak checks)."""
        return "\n".join(json.dumps(b) for _, _, b in self.calls if b is not None)


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(data)


@dataclass
class Issue:
    key: str
    status: str = "Approved"
    comments: list[dict[str, Any]] = field(default_factory=list)
    remote_links: dict[str, dict[str, Any]] = field(default_factory=dict)


def _jira_error(status: int) -> dict[str, Any]:
    """Jira's error body for a planned failure (ErrorCollection: errorMessages and errors)."""
    words = {
        400: "The request is invalid.",
        409: "The issue was changed by someone else: retry the update.",
        413: "The maximum number of comments on this issue has been reached.",
        429: "Rate limit exceeded.",
    }.get(status, "Internal server error" if status >= 500 else f"HTTP {status}")
    return {"errorMessages": [words], "errors": {}}


# What Jira Cloud says when the user lacks the project permission a write needs.
_FORBIDDEN = {
    "comment": "You do not have the permission to comment on this issue.",
    "remotelink": "You do not have permission to link issues.",
    "transitions": "You do not have permission to transition this issue.",
}


class JiraFake(_Base):
    """Issues by key; `transitions` lists (id, name, to-status) available from any status."""

    def __init__(self, version: str = "3", *, auth: str | None = None) -> None:
        super().__init__()
        self.version = version
        self.issues: dict[str, Issue] = {}
        self.transitions = [("21", "Deploy", "In Progress"), ("31", "Close", "Done")]
        self.hidden: set[str] = set()  # exist, but this user may not browse them
        self.auth = auth or (
            "Basic " + base64.b64encode(f"{EMAIL}:{JIRA_TOKEN}".encode()).decode()
            if version == "3"
            else f"Bearer {PAT}"
        )
        self.forbidden: set[str] = set()  # path suffixes answered 403
        # Fields a transition's screen requires: transition id -> field id -> allowed names.
        self.screens: dict[str, dict[str, list[str]]] = {}
        self._ids = itertools.count(10000)

    def add(self, key: str, status: str = "Approved") -> Issue:
        self.issues[key] = Issue(key, status)
        return self.issues[key]

    def register(self, rsps: Any = responses) -> None:
        pattern = re.compile(rf"{re.escape(JIRA)}/rest/api/{self.version}/.*")
        for method in ("GET", "POST", "PUT", "DELETE"):
            rsps.add_callback(method, pattern, callback=self._handle)

    def _handle(self, request: Any) -> Reply:
        path = request.path_url.split("?")[0]
        body = json.loads(request.body) if request.body else None
        self.calls.append((request.method, path, body))
        if request.headers.get("Authorization") != self.auth:
            return _json(401, {"errorMessages": ["You are not authenticated."], "errors": {}})
        planned = self._planned(request.method, path)
        if planned and not planned.applied:
            return _json(planned.status, _jira_error(planned.status), planned.headers)
        # Jira answers 403 to writes the user lacks the permission for; a read it may not make
        # is a 404 ("does not exist or you do not have permission to see it").
        if request.method != "GET" and any(path.endswith(s) for s in self.forbidden):
            return _json(
                403, {"errorMessages": [_FORBIDDEN[path.rsplit("/", 1)[-1]]], "errors": {}}
            )
        m = re.match(rf"/rest/api/{self.version}/issue/([^/]+)(/.*)?$", path)
        assert m, path
        key, rest = m.group(1), m.group(2) or ""
        issue = self.issues.get(key)
        if issue is None or key in self.hidden:
            return _json(
                404,
                {
                    "errorMessages": [
                        "Issue does not exist or you do not have permission to see it."
                    ],
                    "errors": {},
                },
            )
        reply = self._route(request.method, issue, rest, body)
        if planned:  # applied, and still answered with an error
            return _json(planned.status, _jira_error(planned.status), planned.headers)
        return reply

    def _route(self, method: str, issue: Issue, rest: str, body: Any) -> Reply:
        base = f"{JIRA}/rest/api/{self.version}/issue/{issue.key}"
        if method == "GET" and rest == "":
            return _json(
                200,
                {
                    "id": "10042",
                    "key": issue.key,
                    "self": base,
                    "fields": {
                        "summary": "Resize EKS nodes",
                        "status": {"name": issue.status, "id": "3"},
                    },
                },
            )
        if rest == "/comment" and method == "GET":
            return _json(
                200,
                {
                    "startAt": 0,
                    "maxResults": 100,
                    "total": len(issue.comments),
                    "comments": issue.comments,
                },
            )
        if rest == "/comment" and method == "POST":
            if self.version == "3" and not isinstance(body["body"], dict):
                return _json(400, {"errorMessages": ["Comment body is not valid!"], "errors": {}})
            cid = str(next(self._ids))
            comment = {"id": cid, "self": f"{base}/comment/{cid}", "body": body["body"]}
            if "visibility" in body:
                comment["visibility"] = body["visibility"]
            issue.comments.append(comment)
            return _json(201, comment)
        if rest == "/remotelink" and method == "POST":
            target = body.get("object") or {}
            if not target.get("url") or not target.get("title"):
                return _json(400, {"errorMessages": [], "errors": {"object": "required"}})
            created = body["globalId"] not in issue.remote_links
            issue.remote_links[body["globalId"]] = body
            return _json(201 if created else 200, {"id": 10000, "self": f"{base}/remotelink/1"})
        if rest == "/transitions" and method == "GET":
            return _json(
                200,
                {
                    "transitions": [
                        {
                            "id": tid,
                            "name": name,
                            "to": {"id": "1" + tid, "name": to, "statusCategory": {}},
                            "hasScreen": tid in self.screens,
                            "isAvailable": True,
                            "fields": {
                                fid: {
                                    "required": True,
                                    "name": fid.capitalize(),
                                    "key": fid,
                                    "hasDefaultValue": False,
                                    "allowedValues": [
                                        {"id": str(10000 + i), "name": n}
                                        for i, n in enumerate(names)
                                    ],
                                }
                                for fid, names in self.screens.get(tid, {}).items()
                            },
                        }
                        for tid, name, to in self.transitions
                        if to != issue.status
                    ]
                },
            )
        if rest == "/transitions" and method == "POST":
            tid = body["transition"]["id"]
            match = [t for t in self.transitions if t[0] == tid and t[2] != issue.status]
            if not match:
                return _json(400, {"errorMessages": ["Transition is not valid."], "errors": {}})
            given = body.get("fields") or {}
            problems = {
                fid: f"{fid.capitalize()} is required."
                if fid not in given
                else f"Could not find valid '{fid}' with name {given[fid]!r}."
                for fid, names in self.screens.get(tid, {}).items()
                if not isinstance(given.get(fid), dict) or given[fid].get("name") not in names
            }
            if problems:
                return _json(400, {"errorMessages": [], "errors": problems})
            issue.status = match[0][2]
            return 204, {}, ""
        raise AssertionError((method, rest))


class StatuspageFake(_Base):
    BASE = "https://api.statuspage.io/v1"

    def __init__(self) -> None:
        super().__init__()
        self.incidents: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.components = {COMPONENT, "k4ml2cbmb7t9"}  # the page's components
        self.forbidden = False  # the key's user has no role on the page that may write

    def register(self, rsps: Any = responses) -> None:
        pattern = re.compile(rf"{re.escape(self.BASE)}/pages/.*")
        for method in ("GET", "POST", "PATCH", "DELETE"):
            rsps.add_callback(method, pattern, callback=self._handle)

    def _handle(self, request: Any) -> Reply:
        path = request.path_url.split("?")[0]
        body = json.loads(request.body) if request.body else None
        self.calls.append((request.method, request.path_url, body))
        if request.headers.get("Authorization") != f"OAuth {SP_KEY}":
            return _json(401, {"error": "Could not authenticate"})
        planned = self._planned(request.method, path)
        if planned and not planned.applied:
            return _json(planned.status, _statuspage_error(planned.status), planned.headers)
        m = re.match(rf"/v1/pages/{PAGE}/incidents(?:/([^/]+))?$", path)
        if not m:
            return _json(404, {"error": "Not found"})
        if self.forbidden and request.method != "GET":
            return _json(403, {"error": "You are not authorized to access this resource."})
        iid = m.group(1)
        invalid = _invalid_incident(request.method, iid, body, self.components)
        if invalid:
            return _json(422, {"error": invalid})
        reply = self._route(request.method, iid, request, body)
        if planned:
            return _json(planned.status, _statuspage_error(planned.status), planned.headers)
        return reply

    def _route(self, method: str, iid: str | None, request: Any, body: Any) -> Reply:
        if iid is None and method == "GET":
            q = request.params.get("q", "")
            found = [
                i
                for i in self.incidents.values()
                if q in i["name"] or q in json.dumps(i["incident_updates"])
            ]
            return _json(200, found)
        if iid is None and method == "POST":
            fields = body["incident"]
            new_id = f"p31zjtct2jer{next(self._ids)}"[:12]
            incident = {
                "id": new_id,
                "name": fields["name"],
                "status": fields["status"],
                "impact": fields.get("impact_override", "none"),
                "shortlink": f"https://stspg.io/{new_id}",
                "scheduled_for": fields.get("scheduled_for"),
                "scheduled_until": fields.get("scheduled_until"),
                "components": [{"id": c, "status": "operational"} for c in fields["component_ids"]],
                "incident_updates": [
                    {"id": "u1", "status": fields["status"], "body": fields["body"]}
                ],
                "metadata": fields.get("metadata", {}),
                "page_id": PAGE,
            }
            self.incidents[new_id] = incident
            return _json(201, incident)
        incident = self.incidents.get(iid or "")
        if incident is None:
            return _json(404, {"error": "Incident not found"})
        if method == "PATCH":
            fields = body["incident"]
            for k in ("name", "status", "scheduled_for", "scheduled_until"):
                if k in fields:
                    incident[k] = fields[k]
            if "body" in fields:
                incident["incident_updates"].insert(
                    0,
                    {
                        "id": f"u{len(incident['incident_updates']) + 1}",
                        "status": incident["status"],
                        "body": fields["body"],
                    },
                )
            for cid, status in (fields.get("components") or {}).items():
                for c in incident["components"]:
                    if c["id"] == cid:
                        c["status"] = status
            return _json(200, incident)
        if method == "DELETE":
            del self.incidents[iid or ""]
            return _json(200, incident)
        raise AssertionError(method)


_SCHEDULED = ("scheduled", "in_progress", "verifying", "completed")
_COMPONENT_STATUSES = (
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
)


def _statuspage_error(status: int) -> dict[str, Any]:
    words = {
        401: "Could not authenticate",
        403: "You are not authorized to access this resource.",
        404: "The requested resource could not be found.",
        420: "Rate limit exceeded",
        422: ["Scheduled for can't be blank"],
        429: "Rate limit exceeded",
    }.get(status, "Internal server error" if status >= 500 else f"HTTP {status}")
    return {"error": words}


def _invalid_incident(method: str, iid: str | None, body: Any, components: set[str]) -> Any:
    """Statuspage's 422 for an incident it will not take (None when it takes it)."""
    if method not in ("POST", "PATCH"):
        return None
    fields = (body or {}).get("incident")
    if not isinstance(fields, dict):
        return ["Incident is missing"]
    errors = []
    if method == "POST" and not fields.get("name"):
        errors.append("Name can't be blank")
    if len(str(fields.get("name", ""))) > 255:
        errors.append("Name is too long (maximum is 255 characters)")
    if "status" in fields and fields["status"] not in _SCHEDULED:
        errors.append(f"Status {fields['status']!r} is not a scheduled maintenance status")
    if method == "POST":
        start, end = fields.get("scheduled_for"), fields.get("scheduled_until")
        if not start or not end:
            errors.append("Scheduled for can't be blank")
        elif end <= start:  # both ISO 8601 in UTC ("...Z"): text order is time order
            errors.append("Scheduled until must be after scheduled for")
    unknown = [c for c in fields.get("component_ids") or [] if c not in components]
    unknown += [c for c in (fields.get("components") or {}) if c not in components]
    if unknown:
        errors.append(f"Components {', '.join(unknown)} do not belong to this page")
    if any(v not in _COMPONENT_STATUSES for v in (fields.get("components") or {}).values()):
        errors.append("Component status is not valid")
    return errors or None


class PagerdutyFake(_Base):
    URL = "https://events.pagerduty.com/v2/change/enqueue"

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def register(self, rsps: Any = responses) -> None:
        rsps.add_callback("POST", self.URL, callback=self._handle)

    def _handle(self, request: Any) -> Reply:
        body = json.loads(request.body)
        self.calls.append(("POST", request.path_url, body))
        planned = self._planned("POST", request.path_url)
        if planned and not planned.applied:
            words = (
                {"status": "invalid event", "message": "Event object is invalid", "errors": []}
                if planned.status == 400
                else {"status": "throttled", "message": "Requests for this service are throttled"}
                if planned.status == 429
                else {"status": "error", "message": "Internal server error"}
            )
            return _json(planned.status, words, planned.headers)
        payload = body.get("payload") or {}
        if not payload.get("summary") or len(payload["summary"]) > 1024:
            return _json(
                400,
                {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": ["'payload.summary' is missing or blank"],
                },
            )
        if body.get("routing_key") != PD_KEY:
            return _json(
                400,
                {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": ["Invalid routing key"],
                },
            )
        self.events.append(body)
        return _json(202, {"status": "success", "message": "Change event processed"})


def integration_policy(tmp: Path, **sections: Any) -> Path:
    """The example policy with Jira, Statuspage and PagerDuty sections as given."""
    data = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


JIRA_ENV = {"JIRA_URL": JIRA, "JIRA_USER": EMAIL, "JIRA_API_TOKEN": JIRA_TOKEN}
LINK_ENV = {
    "CI_MERGE_REQUEST_IID": "7",
    "CI_MERGE_REQUEST_PROJECT_URL": "https://gitlab.example/acme/infra",
    "CI_PIPELINE_URL": "https://gitlab.example/acme/infra/-/pipelines/12345",
}
