"""An organisation for the gate service: many GitLab projects, HCP workspaces, replicas.

GitLab is faked at the HTTP layer (`responses`) for any number of projects, addressed by id or
by URL-encoded path as the REST API allows (`/projects/hie%2Finfra`), with the routes the
service uses: the token's user, a project, a repository file's raw content, a commit's merge
requests, a merge request and its notes (paginated with Link headers, `sort`/`order_by` as
documented). Each token is its own user: the pipelines' bot, the service's own user, a human.
Every request is counted, by project. HCP Terraform is
`tests/support/hcp_fake.py`'s, plus a callback
endpoint that records when each task result was called back. Used by tests/service/test_org.py
and bench/service_org_bench.py; it holds no tests.
"""

from __future__ import annotations

import json
import re
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlparse

import responses

from hie_notify.cli import main
from hie_notify.options import Options
from hie_notify.service.server import Service
from hie_notify.service.settings import Settings
from tests.support.hcp_fake import PLANS, TOKEN, FakeHcp
from tests.support.paths import EXAMPLES

API = "https://gitlab.example.com/api/v4"
ORG = "hie-sde"
HMAC_KEY = "runtask-hmac-PLANTED-key-8c1d"
NOW = datetime(2026, 12, 8, 19, 5, tzinfo=timezone.utc)  # inside the example change's window
EARLY = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)  # enough notice
LATE = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)  # too little for the customers


def _user(uid: int, name: str) -> dict[str, Any]:
    return {
        "id": uid,
        "username": name,
        "name": name,
        "state": "active",
        "avatar_url": None,
        "web_url": f"https://gitlab.example.com/{name}",
    }


PIPELINE_BOT = _user(901, "group_7_bot_hie")  # the bot the pipelines write the ledger as
SERVICE_USER = _user(950, "hie_notify_service")  # the gate service's own token's user
MALLORY = _user(17, "mallory")  # a developer of a project: may write notes
TOKENS = {
    "glpat-PIPELINE-bot-PLANTED-1": PIPELINE_BOT,
    "glpat-SERVICE-own-PLANTED-22": SERVICE_USER,
    "glpat-MALLORY-PLANTED-333": MALLORY,
}
PIPELINE_TOKEN, SERVICE_TOKEN, MALLORY_TOKEN = TOKENS


def sign(body: bytes, key: str = HMAC_KEY) -> str:
    import hashlib
    import hmac

    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


@dataclass
class OrgGitLab:
    rsps: responses.RequestsMock
    clock: datetime = EARLY
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)  # by path
    files: dict[tuple[str, str, str], bytes] = field(default_factory=dict)  # (path, ref, file)
    commit_mrs: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    notes: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)  # project path ("" = none) -> requests
    routes: Counter[str] = field(default_factory=Counter)  # "GET notes" -> requests
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_id: int = 1000

    def install(self) -> OrgGitLab:
        p = r"/projects/([^/?]+)"
        routes = [
            ("GET", r"/user", self._me),
            ("GET", p, self._project),
            ("GET", p + r"/repository/files/([^/?]+)/raw", self._raw),
            ("GET", p + r"/repository/commits/([0-9a-f]+)/merge_requests", self._commit_mrs),
            ("GET", p + r"/merge_requests/(\d+)", self._mr),
            ("GET", p + r"/merge_requests/(\d+)/notes", self._list),
            ("POST", p + r"/merge_requests/(\d+)/notes", self._post),
            ("PUT", p + r"/merge_requests/(\d+)/notes/(\d+)", self._put),
        ]
        for method, pattern, handler in routes:
            regex = re.compile("^" + re.escape(API) + pattern + r"(\?.*)?$")
            self.rsps.add_callback(method, regex, callback=self._counted(regex, handler))
        return self

    def add_project(self, path: str, pid: int) -> None:
        self.projects[path] = {
            "id": pid,
            "path_with_namespace": path,
            "default_branch": "main",
            "web_url": f"https://gitlab.example.com/{path}",
        }

    def project_calls(self, path: str) -> int:
        return self.calls[path]

    # -- plumbing

    def _counted(self, regex: re.Pattern[str], handler: Any) -> Any:
        def callback(request: Any) -> tuple[int, dict[str, str], str]:
            user = TOKENS.get(request.headers.get("PRIVATE-TOKEN", ""))
            match = regex.match(request.url)
            assert match is not None
            groups = match.groups()[:-1]
            project = self._resolve(groups[0]) if groups else None
            with self.lock:
                self.calls[project or ""] += 1
                self.routes[f"{request.method} {handler.__name__.strip('_')}"] += 1
            if user is None:
                return 401, {}, json.dumps({"message": "401 Unauthorized"})
            if groups and project is None:
                return 404, {}, json.dumps({"message": "404 Project Not Found"})
            with self.lock:
                return handler(request, user, project, *groups[1:])  # type: ignore[no-any-return]

        return callback

    def _resolve(self, raw: str) -> str | None:
        name = unquote(raw)
        if name in self.projects:
            return name
        for path, data in self.projects.items():
            if str(data["id"]) == name:
                return path
        return None

    def _json(self, data: Any, code: int = 200, **headers: str) -> tuple[int, dict, str]:
        return code, {"Content-Type": "application/json", **headers}, json.dumps(data)

    # -- routes

    def _me(self, request: Any, user: dict[str, Any], project: None) -> tuple[int, dict, str]:
        return self._json(user)

    def _project(self, request: Any, user: Any, project: str) -> tuple[int, dict, str]:
        return self._json(self.projects[project])

    def _raw(self, request: Any, user: Any, project: str, path: str) -> tuple[int, dict, str]:
        ref = parse_qs(urlparse(request.url).query).get("ref", [""])[0]
        data = self.files.get((project, ref, unquote(path)))
        if data is None:
            return self._json({"message": "404 File Not Found"}, 404)
        return 200, {"Content-Type": "text/plain"}, data.decode()

    def _commit_mrs(self, request: Any, user: Any, project: str, sha: str) -> tuple[int, dict, str]:
        pid = self.projects[project]["id"]
        iids = self.commit_mrs.get((project, sha), [])
        return self._json(
            [{"id": pid * 100 + i, "iid": i, "project_id": pid, "sha": sha} for i in iids]
        )

    def _mr(self, request: Any, user: Any, project: str, iid: str) -> tuple[int, dict, str]:
        data = self.projects[project]
        return self._json(
            {
                "id": data["id"] * 100 + int(iid),
                "iid": int(iid),
                "project_id": data["id"],
                "title": "A change",
                "state": "opened",
                "author": MALLORY,
                "web_url": f"{data['web_url']}/-/merge_requests/{iid}",
            }
        )

    def add_note(self, project: str, iid: int, body: str, author: dict[str, Any]) -> dict:
        self.next_id += 1
        self.clock += timedelta(seconds=1)
        stamp = self.clock.isoformat().replace("+00:00", "Z")
        note = {
            "id": self.next_id,
            "body": body,
            "author": author,
            "created_at": stamp,
            "updated_at": stamp,
            "system": False,
            "noteable_type": "MergeRequest",
            "noteable_iid": iid,
            "project_id": self.projects[project]["id"],
        }
        self.notes.setdefault((project, iid), []).append(note)
        return note

    def _post(self, request: Any, user: Any, project: str, iid: str) -> tuple[int, dict, str]:
        body = json.loads(request.body)["body"]
        return self._json(self.add_note(project, int(iid), body, user), 201)

    def _put(
        self, request: Any, user: Any, project: str, iid: str, note_id: str
    ) -> tuple[int, dict, str]:
        notes = self.notes.get((project, int(iid)), [])
        note = next((n for n in notes if n["id"] == int(note_id)), None)
        if note is None:
            return self._json({"message": "404 Not found"}, 404)
        if note["author"]["id"] != user["id"]:  # only its author edits a note (a Developer)
            return self._json({"message": "403 Forbidden"}, 403)
        self.clock += timedelta(seconds=1)
        note["body"] = json.loads(request.body)["body"]
        note["updated_at"] = self.clock.isoformat().replace("+00:00", "Z")
        return self._json(note)

    def _list(self, request: Any, user: Any, project: str, iid: str) -> tuple[int, dict, str]:
        query = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
        order_by, sort = query.get("order_by", "created_at"), query.get("sort", "desc")
        page = max(1, int(query.get("page", "1")))
        per_page = min(max(1, int(query.get("per_page", "20"))), 100)
        items = sorted(
            self.notes.get((project, int(iid)), []),
            key=lambda n: (n[order_by], n["id"]),
            reverse=sort == "desc",
        )
        pages = max(1, -(-len(items) // per_page))
        headers = {"X-Page": str(page), "X-Total-Pages": str(pages), "X-Total": str(len(items))}
        headers["X-Next-Page"] = str(page + 1) if page < pages else ""
        if page < pages:
            nxt = urlencode({**query, "page": str(page + 1), "per_page": str(per_page)})
            headers["Link"] = f'<{request.url.split("?")[0]}?{nxt}>; rel="next"'
        return self._json(items[(page - 1) * per_page : page * per_page], **headers)


@dataclass
class CallbackTimes:
    """HCP's callback endpoint for every task result, with when each arrived (monotonic)."""

    rsps: responses.RequestsMock
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    at: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> CallbackTimes:
        self.rsps.add_callback(
            responses.PATCH,
            re.compile(r"^https://app\.terraform\.io/api/v2/task-results/([^/]+)/callback$"),
            callback=self._patch,
        )
        return self

    def _patch(self, request: Any) -> tuple[int, dict[str, str], str]:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {}, ""
        task = request.url.split("/")[-2]
        with self.lock:
            if task in self.received:  # a final result cannot be updated
                self.received[task].append(json.loads(request.body)["data"])
                return 409, {}, ""
            self.received[task] = [json.loads(request.body)["data"]]
            self.at[task] = time.monotonic()
        return 200, {}, ""


@dataclass
class Workspace:
    name: str
    project: str  # group/project
    key: str  # the change's Jira key
    sha: str
    mr: int


class World:
    """An organisation: `n` projects, each with a workspace, a change and its merge request."""

    def __init__(self, tmp: Path, rsps: responses.RequestsMock, n: int = 3) -> None:
        self.tmp = tmp
        self.rsps = rsps
        self.gitlab = OrgGitLab(rsps).install()
        self.hcp = FakeHcp(rsps).install()
        self.callbacks = CallbackTimes(rsps).install()
        self.services: list[tuple[Service, threading.Thread]] = []
        self.policy_text = (EXAMPLES / "policy.yaml").read_text() + "trial: true\n"
        self.workspaces: list[Workspace] = []
        for i in range(n):
            path = f"hie/team-{i:02d}/infra"
            self.gitlab.add_project(path, 100 + i)
            ws = Workspace(f"team-{i:02d}-prod", path, f"FFAPP-{5000 + i}", f"{i:02x}" * 20, 3 + i)
            change = (EXAMPLES / "change.yaml").read_text().replace("FFAPP-4458", ws.key)
            self.gitlab.files[(path, ws.sha, "deploy/change.yaml")] = change.encode()
            self.gitlab.files[(path, "main", ".hie-notify/policy.yaml")] = self.policy_text.encode()
            self.gitlab.commit_mrs[(path, ws.sha)] = [ws.mr]
            self.workspaces.append(ws)
        self.config = tmp / "service.yaml"
        self.write_config({f"{ORG}/{w.name}": w.project for w in self.workspaces})

    def write_config(self, workspaces: dict[str, str], authors: list[str] | None = None) -> None:
        data = {"workspaces": workspaces, "ledger_authors": authors or [PIPELINE_BOT["username"]]}
        self.config.write_text(json.dumps(data))

    def env(self, token: str = SERVICE_TOKEN, **extra: str) -> dict[str, str]:
        return {
            "HIE_GITLAB_TOKEN": token,
            "CI_API_V4_URL": API,
            "HIE_RUN_TASK_HMAC_KEY": HMAC_KEY,
            "HIE_LISTEN": "127.0.0.1:0",
            "HIE_SERVICE_IDLE_TIMEOUT": "5",
            "HIE_SERVICE_CONFIG": str(self.config),
            **extra,
        }

    def announce(self, ws: Workspace, at: datetime, token: str = PIPELINE_TOKEN) -> None:
        """`hie-notify plan` in the project's merge request pipeline, as the pipelines' bot."""
        self.gitlab.clock = at
        work = self.tmp / "announce" / ws.name
        work.mkdir(parents=True, exist_ok=True)
        change, policy = work / "change.yaml", work / "policy.yaml"
        change.write_bytes(self.gitlab.files[(ws.project, ws.sha, "deploy/change.yaml")])
        policy.write_text(self.policy_text)
        env = {
            "HIE_GITLAB_TOKEN": token,
            "CI_API_V4_URL": API,
            "CI_PROJECT_ID": ws.project,
            "CI_MERGE_REQUEST_IID": str(ws.mr),
            "HIE_ENVIRONMENT": ws.name,
        }
        args = ["--policy", str(policy), "--change", str(change), "--ledger", f"gitlab:mr:{ws.mr}"]
        args += ["--outbox", str(work / "outbox"), "--now", at.isoformat(), "plan"]
        args += ["--plan", str(PLANS / "s3.json"), "--terraform-report", str(work / "r.json")]
        assert main(args, env=env) == 0

    def start(self, instance: str, workers: int = 4, **env: str) -> Service:
        full = self.env(HIE_SERVICE_WORKERS=str(workers), **env)
        options = Options(outbox=self.tmp / "outbox", env=full)
        service = Service(
            Settings.from_env(full),
            options,
            clock=lambda: NOW,
            sleep=lambda s: None,
            workdir=self.tmp / f"work-{instance}",
            instance=instance,
        )
        thread = threading.Thread(target=service.run, daemon=True)
        thread.start()
        self.services.append((service, thread))
        return service

    def stop(self) -> None:
        for service, _ in self.services:
            service.close(timeout=30)
        for _, thread in self.services:
            thread.join(timeout=30)

    def entries(self, ws: Workspace, stage: str) -> list[dict[str, Any]]:
        from hie_notify.ledger.gitlab import decode_marker

        found = []
        for note in self.gitlab.notes.get((ws.project, ws.mr), []):
            for item in decode_marker(note["body"], "note") or []:
                if item["stage"] == stage:
                    found.append(item)
        return found


def payload(ws: Workspace, task: str, stage: str = "pre_apply", **over: Any) -> dict[str, Any]:
    """A run task request as HCP sends it for a run of `ws` (payload_version 1)."""
    run = over.pop("run_id", "run-" + task.removeprefix("taskrs-"))
    data: dict[str, Any] = {
        "payload_version": 1,
        "stage": stage,
        "access_token": TOKEN,
        "capabilities": {"outcomes": True},
        "configuration_version_id": "cv-ntv3HbhJqvFzamy7",
        "is_speculative": False,
        "organization_name": ORG,
        "plan_json_api_url": "https://app.terraform.io/api/v2/plans/plan-Rb2cY7nVhM4kLx9S/json-output",
        "run_app_url": f"https://app.terraform.io/app/{ORG}/{ws.name}/runs/{run}",
        "run_created_at": "2026-12-08T18:52:11.036Z",
        "run_created_by": "project_bot_tfc",
        "run_id": run,
        "run_message": f"{ws.key}: resize the EKS general worker nodes",
        "task_result_callback_url": f"https://app.terraform.io/api/v2/task-results/{task}/callback",
        "task_result_enforcement_level": "mandatory",
        "task_result_id": task,
        "vcs_branch": "main",
        "vcs_commit_url": f"https://gitlab.example.com/{ws.project}/-/commit/{ws.sha}",
        "vcs_pull_request_url": None,
        "vcs_repo_url": f"https://gitlab.example.com/{ws.project}",
        "workspace_app_url": f"https://app.terraform.io/app/{ORG}/{ws.name}",
        "workspace_id": "ws-" + quote(ws.name, safe=""),
        "workspace_name": ws.name,
    }
    data.update(over)
    return data


def post(service: Service, data: dict[str, Any], timeout: float = 30) -> tuple[int, str]:
    import http.client

    body = json.dumps(data).encode()
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=timeout)
    try:
        conn.request(
            "POST",
            "/run-task",
            body=body,
            headers={"Content-Type": "application/json", "X-TFC-Task-Signature": sign(body)},
        )
        resp = conn.getresponse()
        answer = json.loads(resp.read() or b"{}")
    finally:
        conn.close()
    return resp.status, str(answer.get("status", ""))


def drain(*services: Service, timeout: float = 120) -> None:
    for service in services:
        assert service.run_tasks is not None and service.run_tasks.drain(timeout)


def run_organisation(
    tmp: Path, *, projects: int = 20, tasks: int = 200, replicas: int = 3
) -> dict[str, Any]:
    """`tasks` run tasks across `projects` projects (half announced in time, half late) and
    `replicas` replicas behind one address (round robin); the first task is delivered to two
    replicas. Returns what was measured: callback times from the request's acceptance, GitLab
    requests per decision, and whether every task was decided and called back exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        world = World(tmp, rsps, n=projects)
        try:
            for i, ws in enumerate(world.workspaces):
                world.announce(ws, EARLY if i % 2 == 0 else LATE)
            before = sum(world.gitlab.calls.values())
            routes_before = Counter(world.gitlab.routes)
            services = [world.start(chr(ord("a") + r)) for r in range(replicas)]
            jobs = []
            for t in range(tasks):
                ws = world.workspaces[t % projects]
                stage = "pre_apply" if (t // projects) % 2 == 0 else "post_plan"
                task = f"taskrs-{t:04d}x{ws.name.replace('-', '')}"
                jobs.append((ws, task, stage, services[t % replicas]))
            accepted: dict[str, float] = {}
            answers: list[tuple[int, str]] = []

            def send(job: tuple[Workspace, str, str, Service]) -> None:
                ws, task, stage, service = job
                data = payload(ws, task, stage)
                accepted.setdefault(task, time.monotonic())
                answers.append(post(service, data))

            started = time.monotonic()
            duplicate = (*jobs[0][:3], services[1 % replicas])
            with ThreadPoolExecutor(8) as pool:  # HCP sends many at once
                list(pool.map(send, [*jobs, duplicate]))
            drain(*services, timeout=600)
            elapsed = time.monotonic() - started
            requests = sum(world.gitlab.calls.values()) - before
            times = sorted(world.callbacks.at[t] - accepted[t] for _, t, _, _ in jobs)
            once = all(len(world.callbacks.received.get(t, [])) == 1 for _, t, _, _ in jobs)
            expected = True
            decided: dict[str, int] = {}
            for ws, task, stage, _ in jobs:
                got = world.callbacks.received[task][0]["attributes"]["status"]
                late = world.workspaces.index(ws) % 2 == 1
                expected &= got == ("failed" if stage == "pre_apply" and late else "passed")
            for ws in world.workspaces:
                for entry in world.entries(ws, "run_task"):
                    tid = entry["extra"]["task_result_id"]
                    decided[tid] = decided.get(tid, 0) + 1
            return {
                "projects": projects,
                "replicas": replicas,
                "tasks": len(jobs),
                "deliveries": len(jobs) + 1,
                "answered_200": sum(code == 200 for code, _ in answers),
                "callbacks": sum(len(v) == 1 for v in world.callbacks.received.values()),
                "duplicate_callbacks": sum(len(v) - 1 for v in world.callbacks.received.values()),
                "called_back_once": once,
                "decided_once": all(decided.get(t) == 1 for _, t, _, _ in jobs),
                "statuses_as_expected": expected,
                "median_s": round(statistics.median(times), 3),
                "worst_s": round(times[-1], 3),
                "all_decided_s": round(elapsed, 2),
                "gitlab_requests": requests,
                "gitlab_requests_per_decision": round(requests / len(jobs), 1),
                "gitlab_requests_per_decision_by_route": {
                    route: round(count / len(jobs), 2)
                    for route, count in sorted((world.gitlab.routes - routes_before).items())
                },
            }
        finally:
            world.stop()
