"""A fake GitLab REST API at the HTTP layer (`responses`), shaped like the documented one.

Notes follow GET/POST /projects/:id/(merge_requests|issues)/:iid/notes (docs.gitlab.com, REST
API, "Notes"): the list is sorted by `order_by` (`created_at`, the default, or `updated_at`) in
`sort` order, `desc` by default, so without `sort=asc` the newest note comes first; any other
value is a 400. It is paginated as the REST API's "Pagination" page says: `page` (default 1) and
`per_page` (default 20, at most 100), with Link (rel next/prev/first/last), X-Page, X-Next-Page,
X-Prev-Page, X-Per-Page, X-Total and X-Total-Pages headers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlparse

import responses

API = "https://gitlab.example.com/api/v4"
PROJECT = 42
BOT = {
    "id": 901,
    "username": "project_42_bot_hie",
    "name": "hie-notify bot",
    "state": "active",
    "avatar_url": None,
    "web_url": "https://gitlab.example.com/project_42_bot_hie",
}
HUMAN = {
    "id": 17,
    "username": "mallory",
    "name": "Mallory",
    "state": "active",
    "avatar_url": None,
    "web_url": "https://gitlab.example.com/mallory",
}

JOB_TOKEN = "glcbt-PLANTED-JOBTOKEN-55"
ENV = {
    "HIE_GITLAB_TOKEN": "glpat-SECRET-TOKEN-123",
    "CI_API_V4_URL": API,
    "CI_PROJECT_ID": str(PROJECT),
}


@dataclass
class FakeGitLab:
    rsps: responses.RequestsMock
    clock: datetime = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)
    notes: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    commit_mrs: dict[str, list[int]] = field(default_factory=dict)
    per_page: int = 20  # GitLab's default page size
    fail_posts: int = 0
    fail_posts_after_store: int = 0
    next_id: int = 1000
    issues: list[dict[str, Any]] = field(default_factory=list)
    # repository files: (project id or path, ref, file path) -> bytes
    files: dict[tuple[str, str, str], bytes] = field(default_factory=dict)
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_scopes: list[str] = field(default_factory=lambda: ["api"])
    approved_by: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    mr_author: dict[str, Any] = field(default_factory=lambda: dict(HUMAN))
    # The merge request's description (its GitLab task list ticks the policy's checklists).
    mr_description: str = ""
    # answers to give repository file reads first: (status, headers)
    file_failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    # The token's role may read but not write (a Guest or Reporter: notes and issues are 403).
    forbid_writes: bool = False

    def install(self) -> FakeGitLab:
        self.rsps.add_callback(responses.GET, f"{API}/user", callback=self._user)
        for kind in ("merge_requests", "issues"):
            url = f"{API}/projects/{PROJECT}/{kind}/"
            self.rsps.add_callback(responses.GET, _re(url + r"(\d+)/notes"), callback=self._list)
            self.rsps.add_callback(responses.POST, _re(url + r"(\d+)/notes"), callback=self._post)
            self.rsps.add_callback(
                responses.PUT, _re(url + r"(\d+)/notes/(\d+)"), callback=self._put
            )
        self.rsps.add_callback(
            responses.GET,
            _re(f"{API}/projects/{PROJECT}/repository/commits/([0-9a-f]+)/merge_requests"),
            callback=self._commit_mrs,
        )
        self.rsps.add_callback(
            responses.GET,
            re.compile(
                rf"{re.escape(API)}/projects/([^/?]+)/repository/files/"
                r"([^/?]+)/raw(\?.*)?$"
            ),
            callback=self._raw_file,
        )
        self.rsps.add_callback(
            responses.GET,
            re.compile(rf"{re.escape(API)}/projects/([^/?]+)(\?.*)?$"),
            callback=self._project,
        )
        self.rsps.add_callback(
            responses.GET, f"{API}/personal_access_tokens/self", callback=self._token_self
        )
        mrs = rf"{re.escape(API)}/projects/{PROJECT}/merge_requests/(\d+)"
        self.rsps.add_callback(responses.GET, re.compile(mrs + r"(\?.*)?$"), callback=self._mr)
        self.rsps.add_callback(
            responses.GET, re.compile(mrs + r"/approvals(\?.*)?$"), callback=self._approvals
        )
        issues = _re(f"{API}/projects/{PROJECT}/issues")
        self.rsps.add_callback(responses.GET, issues, callback=self._list_issues)
        self.rsps.add_callback(responses.POST, issues, callback=self._create_issue)
        return self

    def add_note(
        self,
        kind: str,
        iid: int,
        body: str,
        author: dict[str, Any],
        created_at: datetime,
        system: bool = False,
    ) -> dict[str, Any]:
        self.next_id += 1
        note = {
            "id": self.next_id,
            "type": None,
            "body": body,
            "attachment": None,
            "author": author,
            "created_at": created_at.isoformat().replace("+00:00", "Z"),
            "updated_at": created_at.isoformat().replace("+00:00", "Z"),
            "system": system,
            "noteable_id": 5000 + iid,
            "noteable_type": "MergeRequest" if kind == "merge_requests" else "Issue",
            "project_id": PROJECT,
            "noteable_iid": iid,
            "resolvable": False,
            "confidential": False,
            "internal": False,
        }
        self.notes.setdefault((kind, iid), []).append(note)
        return note

    def _user(self, request: Any) -> tuple[int, dict[str, str], str]:
        if request.headers.get("PRIVATE-TOKEN") != ENV["HIE_GITLAB_TOKEN"]:
            return 401, {}, json.dumps({"message": "401 Unauthorized"})
        return 200, {"Content-Type": "application/json"}, json.dumps(BOT)

    def _where(self, request: Any) -> tuple[str, int]:
        parts = urlparse(request.url).path.split("/")
        return parts[-3], int(parts[-2])

    def _list(self, request: Any) -> tuple[int, dict[str, str], str]:
        kind, iid = self._where(request)
        query = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
        order_by = query.get("order_by", "created_at")
        sort = query.get("sort", "desc")
        if order_by not in ("created_at", "updated_at"):
            return 400, {}, json.dumps({"error": "order_by does not have a valid value"})
        if sort not in ("asc", "desc"):
            return 400, {}, json.dumps({"error": "sort does not have a valid value"})
        try:
            page = max(1, int(query.get("page", "1")))
            per_page = int(query.get("per_page", self.per_page))
        except ValueError:
            return 400, {}, json.dumps({"error": "page is invalid"})
        per_page = min(max(1, per_page), 100)
        items = sorted(
            self.notes.get((kind, iid), []),
            key=lambda n: (n[order_by], n["id"]),
            reverse=sort == "desc",
        )
        pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {
            "Content-Type": "application/json",
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(items)),
            "X-Total-Pages": str(pages),
            "X-Next-Page": str(page + 1) if page < pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
        base = request.url.split("?")[0]

        def link(to: int, rel: str) -> str:
            target = urlencode({**query, "page": str(to), "per_page": str(per_page)})
            return f'<{base}?{target}>; rel="{rel}"'

        links = [link(page + 1, "next")] if page < pages else []
        links += [link(page - 1, "prev")] if page > 1 else []
        links += [link(1, "first"), link(pages, "last")]
        headers["Link"] = ", ".join(links)
        return 200, headers, json.dumps(chunk)

    def _post(self, request: Any) -> tuple[int, dict[str, str], str]:
        kind, iid = self._where(request)
        if self.forbid_writes:
            return (
                403,
                {"Content-Type": "application/json"},
                json.dumps({"message": "403 Forbidden"}),
            )
        if self.fail_posts:
            self.fail_posts -= 1
            return 502, {}, "<html><body>502 Bad Gateway</body></html>"
        body = json.loads(request.body)["body"]
        self.clock += timedelta(seconds=5)
        note = self.add_note(kind, iid, body, BOT, self.clock)
        if self.fail_posts_after_store:
            self.fail_posts_after_store -= 1
            return 502, {}, "<html><body>502 Bad Gateway</body></html>"
        return 201, {"Content-Type": "application/json"}, json.dumps(note)

    def _put(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.forbid_writes:
            return (
                403,
                {"Content-Type": "application/json"},
                json.dumps({"message": "403 Forbidden"}),
            )
        parts = urlparse(request.url).path.split("/")
        kind, iid, note_id = parts[-4], int(parts[-3]), int(parts[-1])
        note = next(n for n in self.notes[(kind, iid)] if n["id"] == note_id)
        if note["author"]["id"] != BOT["id"]:
            return 403, {}, json.dumps({"message": "403 Forbidden"})
        note["body"] = json.loads(request.body)["body"]
        # GitLab moves updated_at on every edit (created_at stays).
        self.clock += timedelta(seconds=5)
        note["updated_at"] = self.clock.isoformat().replace("+00:00", "Z")
        return 200, {"Content-Type": "application/json"}, json.dumps(note)

    def _list_issues(self, request: Any) -> tuple[int, dict[str, str], str]:
        query = parse_qs(urlparse(request.url).query)
        search = query.get("search", [""])[0]
        found = [i for i in self.issues if search in i["title"] and i["state"] == "opened"]
        return (
            200,
            {
                "Content-Type": "application/json",
                "X-Page": "1",
                "X-Total-Pages": "1",
                "X-Next-Page": "",
            },
            json.dumps(found),
        )

    def _create_issue(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.forbid_writes:
            return (
                403,
                {"Content-Type": "application/json"},
                json.dumps({"message": "403 Forbidden"}),
            )
        data = json.loads(request.body)
        iid = len(self.issues) + 1
        issue = {
            "id": 9000 + iid,
            "iid": iid,
            "project_id": PROJECT,
            "title": data["title"],
            "description": data.get("description"),
            "state": "opened",
            "labels": data.get("labels", "").split(","),
            "author": BOT,
            "web_url": f"https://gitlab.example.com/g/p/-/issues/{iid}",
        }
        self.issues.append(issue)
        return 201, {"Content-Type": "application/json"}, json.dumps(issue)

    def _authorised(self, request: Any) -> bool:
        return (
            request.headers.get("PRIVATE-TOKEN") == ENV["HIE_GITLAB_TOKEN"]
            or request.headers.get("JOB-TOKEN") == JOB_TOKEN
        )

    def _raw_file(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.file_failures:
            status, headers = self.file_failures.pop(0)
            return status, headers, json.dumps({"message": f"{status} Service Unavailable"})
        if not self._authorised(request):
            return 401, {}, json.dumps({"message": "401 Unauthorized"})
        parts = urlparse(request.url).path.split("/")
        project, path = unquote(parts[-5]), unquote(parts[-2])
        ref = parse_qs(urlparse(request.url).query).get("ref", [""])[0]
        known = {p for p, _, _ in self.files} | set(self.projects) | {str(PROJECT)}
        if project not in known:
            return 404, {}, json.dumps({"message": "404 Project Not Found"})
        data = self.files.get((project, ref, path))
        if data is None:
            return 404, {}, json.dumps({"message": "404 File Not Found"})
        return 200, {"Content-Type": "text/plain"}, data.decode()

    def _project(self, request: Any) -> tuple[int, dict[str, str], str]:
        name = unquote(urlparse(request.url).path.split("/")[-1])
        project = self.projects.get(name)
        if project is None:
            return 404, {}, json.dumps({"message": "404 Project Not Found"})
        return 200, {"Content-Type": "application/json"}, json.dumps(project)

    def _mr(self, request: Any) -> tuple[int, dict[str, str], str]:
        iid = int(urlparse(request.url).path.split("/")[-1])
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps(
                {
                    "id": 7000 + iid,
                    "iid": iid,
                    "project_id": PROJECT,
                    "title": "Emergency fix",
                    "state": "opened",
                    "author": self.mr_author,
                    "description": self.mr_description,
                    "sha": "ab" * 20,
                }
            ),
        )

    def _approvals(self, request: Any) -> tuple[int, dict[str, str], str]:
        iid = int(urlparse(request.url).path.split("/")[-2])
        users = self.approved_by.get(iid, [])
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps(
                {
                    "id": 7000 + iid,
                    "iid": iid,
                    "project_id": PROJECT,
                    "approved": bool(users),
                    "approved_by": [{"user": u} for u in users],
                }
            ),
        )

    def _token_self(self, request: Any) -> tuple[int, dict[str, str], str]:
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps(
                {
                    "id": 77,
                    "name": "hie-notify",
                    "revoked": False,
                    "active": True,
                    "scopes": self.token_scopes,
                    "user_id": BOT["id"],
                    "expires_at": "2027-06-30",
                }
            ),
        )

    def _commit_mrs(self, request: Any) -> tuple[int, dict[str, str], str]:
        sha = urlparse(request.url).path.split("/")[-2]
        mrs = [
            {
                "id": 7000 + i,
                "iid": i,
                "project_id": PROJECT,
                "state": "opened",
                "title": f"MR {i}",
                "sha": sha,
            }
            for i in self.commit_mrs.get(sha, [])
        ]
        return 200, {"Content-Type": "application/json"}, json.dumps(mrs)


def _re(pattern: str) -> Any:
    import re

    return re.compile(pattern.replace(".", r"\.").replace(r"(\d+)", r"(\d+)") + r"(\?.*)?$")
