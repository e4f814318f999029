"""A fake of GitLab's issues, issue notes and labels API at the HTTP layer (`responses`), for
the GitLab register. Shapes follow the REST API documentation: GET/POST /projects/:id/issues,
GET/PUT /projects/:id/issues/:iid, GET/POST /projects/:id/issues/:iid/notes, with GitLab's
pagination headers (Link, X-Page, X-Next-Page, X-Per-Page, X-Total, X-Total-Pages) and
`order_by=due_date` sorting issues without a due date last in both directions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import responses

from tests.support.gitlab_fake import API, BOT, ENV, HUMAN, PROJECT

__all__ = ["API", "BOT", "ENV", "HUMAN", "PROJECT", "RegisterFake"]

_JSON = {"Content-Type": "application/json"}


def _z(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class RegisterFake:
    rsps: responses.RequestsMock
    clock: datetime = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    max_per_page: int = 100
    freeze_periods: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 5000

    def install(self) -> RegisterFake:
        base = re.escape(f"{API}/projects/{PROJECT}/issues")
        q = r"(\?.*)?$"
        self.rsps.add_callback(responses.GET, f"{API}/user", callback=self._user)
        self.rsps.add_callback(responses.GET, re.compile(base + q), callback=self._list)
        self.rsps.add_callback(responses.POST, re.compile(base + q), callback=self._create)
        one = base + r"/(\d+)"
        self.rsps.add_callback(responses.GET, re.compile(one + q), callback=self._get)
        self.rsps.add_callback(responses.PUT, re.compile(one + q), callback=self._update)
        notes = one + r"/notes"
        self.rsps.add_callback(responses.GET, re.compile(notes + q), callback=self._notes)
        self.rsps.add_callback(responses.POST, re.compile(notes + q), callback=self._add_note)
        freezes = re.escape(f"{API}/projects/{PROJECT}/freeze_periods") + q
        self.rsps.add_callback(responses.GET, re.compile(freezes), callback=self._freezes)
        return self

    def add_freeze(self, start: str, end: str, zone: str = "UTC") -> None:
        """A freeze period as GET /projects/:id/freeze_periods returns it."""
        now = _z(self.clock)
        self.freeze_periods.append(
            {
                "id": len(self.freeze_periods) + 1,
                "freeze_start": start,
                "freeze_end": end,
                "cron_timezone": zone,
                "created_at": now,
                "updated_at": now,
            }
        )

    def _freezes(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self._authorised(request):
            return 401, _JSON, json.dumps({"message": "401 Unauthorized"})
        return self._page(request, self.freeze_periods)

    # -- helpers for tests ------------------------------------------------------------------

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def add_issue(self, title: str, description: str, author: dict[str, Any], **kw: Any) -> int:
        iid = len(self.issues) + 1
        self.next_id += 1
        now = _z(self.tick())
        self.issues[iid] = {
            "id": self.next_id,
            "iid": iid,
            "project_id": PROJECT,
            "title": title,
            "description": description,
            "state": "opened",
            "created_at": now,
            "updated_at": now,
            "closed_at": None,
            "labels": kw.get("labels", []),
            "milestone": None,
            "assignees": [],
            "author": author,
            "due_date": kw.get("due_date"),
            "confidential": False,
            "web_url": f"https://gitlab.example.com/g/p/-/issues/{iid}",
            "user_notes_count": 0,
        }
        return iid

    def requests(self, method: str | None = None) -> list[Any]:
        return [c.request for c in self.rsps.calls if method in (None, c.request.method)]

    # -- endpoints --------------------------------------------------------------------------

    def _authorised(self, request: Any) -> bool:
        return bool(request.headers.get("PRIVATE-TOKEN") == ENV["HIE_GITLAB_TOKEN"])

    def _user(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self._authorised(request):
            return 401, _JSON, json.dumps({"message": "401 Unauthorized"})
        return 200, _JSON, json.dumps(BOT)

    def _page(self, request: Any, items: list[dict[str, Any]]) -> tuple[int, dict[str, str], str]:
        query = parse_qs(urlparse(request.url).query)
        page = int(query.get("page", ["1"])[0])
        per_page = min(int(query.get("per_page", ["20"])[0]), self.max_per_page)
        pages = max(1, -(-len(items) // per_page))
        headers = {
            **_JSON,
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(items)),
            "X-Total-Pages": str(pages),
            "X-Next-Page": str(page + 1) if page < pages else "",
        }
        if page < pages:
            q = {k: v[0] for k, v in query.items()}
            q["page"] = str(page + 1)
            headers["Link"] = f'<{request.url.split("?")[0]}?{urlencode(q)}>; rel="next"'
        return 200, headers, json.dumps(items[(page - 1) * per_page : page * per_page])

    def _list(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self._authorised(request):
            return 401, _JSON, json.dumps({"message": "401 Unauthorized"})
        query = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
        found = list(self.issues.values())
        state = query.get("state", "all")
        if state != "all":
            found = [i for i in found if i["state"] == state]
        for label in filter(None, query.get("labels", "").split(",")):
            found = [i for i in found if label in i["labels"]]
        # not[labels]=a,b: issues with none of them (GitLab's "not" filter).
        for label in filter(None, query.get("not[labels]", "").split(",")):
            found = [i for i in found if label not in i["labels"]]
        if "search" in query:
            fields = query.get("in", "title,description").split(",")
            term = query["search"].lower()
            found = [i for i in found if any(term in (i[f] or "").lower() for f in fields)]
        order = query.get("order_by", "created_at")
        desc = query.get("sort", "desc") == "desc"
        if order == "due_date":
            dated = sorted(
                (i for i in found if i["due_date"]),
                key=lambda i: (i["due_date"], i["id"]),
                reverse=desc,
            )
            found = dated + [i for i in found if not i["due_date"]]  # NULLS LAST
        else:
            found.sort(key=lambda i: (i[order], i["id"]), reverse=desc)
        return self._page(request, found)

    def _create(self, request: Any) -> tuple[int, dict[str, str], str]:
        data = json.loads(request.body)
        if not data.get("title"):
            return 400, _JSON, json.dumps({"message": {"title": ["can't be blank"]}})
        iid = self.add_issue(
            data["title"],
            data.get("description") or "",
            BOT,
            labels=[x for x in str(data.get("labels") or "").split(",") if x],
            due_date=data.get("due_date"),
        )
        return 201, _JSON, json.dumps(self.issues[iid])

    def _issue(self, request: Any) -> dict[str, Any] | None:
        iid = int(urlparse(request.url).path.split("/issues/")[1].split("/")[0])
        return self.issues.get(iid)

    def _get(self, request: Any) -> tuple[int, dict[str, str], str]:
        issue = self._issue(request)
        if issue is None:
            return 404, _JSON, json.dumps({"message": "404 Not found"})
        return 200, _JSON, json.dumps(issue)

    def _update(self, request: Any) -> tuple[int, dict[str, str], str]:
        issue = self._issue(request)
        if issue is None:
            return 404, _JSON, json.dumps({"message": "404 Not found"})
        data = json.loads(request.body)
        for key in ("title", "description", "due_date"):
            if key in data:
                issue[key] = data[key]
        if "labels" in data:
            issue["labels"] = [x for x in str(data["labels"]).split(",") if x]
        event = data.get("state_event")
        if event == "close":
            issue["state"], issue["closed_at"] = "closed", _z(self.clock)
        elif event == "reopen":
            issue["state"], issue["closed_at"] = "opened", None
        issue["updated_at"] = _z(self.tick())
        return 200, _JSON, json.dumps(issue)

    def _notes(self, request: Any) -> tuple[int, dict[str, str], str]:
        issue = self._issue(request)
        if issue is None:
            return 404, _JSON, json.dumps({"message": "404 Not found"})
        query = parse_qs(urlparse(request.url).query)
        items = sorted(self.notes.get(issue["iid"], []), key=lambda n: (n["created_at"], n["id"]))
        if query.get("sort", ["desc"])[0] == "desc":
            items.reverse()
        return self._page(request, items)

    def add_note(self, iid: int, body: str, author: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        now = _z(self.tick())
        note = {
            "id": self.next_id,
            "type": None,
            "body": body,
            "attachment": None,
            "author": author,
            "created_at": now,
            "updated_at": now,
            "system": False,
            "noteable_id": self.issues[iid]["id"],
            "noteable_type": "Issue",
            "project_id": PROJECT,
            "noteable_iid": iid,
            "resolvable": False,
            "confidential": False,
            "internal": False,
        }
        self.notes.setdefault(iid, []).append(note)
        self.issues[iid]["user_notes_count"] += 1
        return note

    def edit_note(self, iid: int, note_id: int, body: str) -> dict[str, Any]:
        """What GitLab does when someone (a maintainer may edit any note) edits a note: the
        body changes and `updated_at` moves; `created_at` and the author stay."""
        note = next(n for n in self.notes[iid] if n["id"] == note_id)
        note["body"] = body
        note["updated_at"] = _z(self.tick())
        return note

    def _add_note(self, request: Any) -> tuple[int, dict[str, str], str]:
        issue = self._issue(request)
        if issue is None:
            return 404, _JSON, json.dumps({"message": "404 Not found"})
        note = self.add_note(issue["iid"], json.loads(request.body)["body"], BOT)
        return 201, _JSON, json.dumps(note)


# An organisation's register: 20,000 changes are three years of it (about 18 a day, one every
# 79 minutes). A register of fewer changes is a shorter history at the same pace, ending at the
# same place (8 weeks after `now`), so the weeks around `now` hold the same changes whatever
# its size.
PACE = timedelta(minutes=79)
AHEAD = timedelta(weeks=8)
CUSTOMERS = ("EoE", "CUH", "MKUH", "NNUH")


def history(count: int, now: datetime) -> list[Any]:
    """`count` registered changes (newest first), as `Registered` records: every seventh past
    one left unfinished (announced, never completed: open for ever), the others completed;
    those still ahead announced. Projects alternate between two teams."""
    from hie_notify.register.model import Registered

    out = []
    for i in range(count):
        start = now + AHEAD - PACE * i
        past = start < now
        status = ("announced" if i % 7 == 0 else "completed") if past else "announced"
        cid = f"ORG-{count - i}"
        out.append(
            Registered(
                change_id=cid,
                status=status,
                change_type="planned_infra_update",
                purpose=f"Change {cid}",
                window_start=start,
                window_end=start + timedelta(hours=2),
                customers=(CUSTOMERS[i % 4],),
                environments=(f"ws-{i % 7}",),
                change={"id": cid, "purpose": f"Change {cid}"},
                updated_at=start - timedelta(days=3),
                project=("team-a/infra", "team-b/platform")[i % 2],
            )
        )
    return out


def fill(fake: RegisterFake, records: list[Any]) -> None:
    """The issues `GitLabRegister.put` would have left for `records` (labels, due date, record,
    closed when ended), added straight to the fake: 20,000 in seconds."""
    from hie_notify.register.gitlab import BY_MONTH, LABEL, encode_record, months

    for r in records:
        labels = [LABEL, f"change-status::{r.status}", f"change-type::{r.change_type}", BY_MONTH]
        labels += months(r.window_start, r.window_end)
        iid = fake.add_issue(
            f"[{r.change_id}] {r.purpose}",
            encode_record(r, []),
            BOT,
            labels=labels,
            due_date=r.window_start.date().isoformat(),
        )
        if r.ended:
            fake.issues[iid]["state"] = "closed"
