"""The GitLab ledger: one note per recording on the merge request (or a change issue).

Each note carries its entries in a hidden marker. Only notes written by the notifier's own user
count, and the note's server `created_at` is the delivery time: nothing written in a body, by
anyone, can make a notice look earlier than GitLab says it was posted.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from hie_notify.errors import InputError
from hie_notify.gitlab_api import GitLabTarget, call, connect, gitlab_target
from hie_notify.ledger import Entry

MARKER = "hie-notify-ledger:v1:"


def encode_marker(entries: list[Entry]) -> str:
    raw = json.dumps([e.to_json() for e in entries], sort_keys=True).encode()
    return f"<!-- {MARKER}{base64.b64encode(zlib.compress(raw)).decode()} -->"


def decode_marker(body: str, where: str) -> list[dict[str, Any]] | None:
    start = body.find("<!-- " + MARKER)
    if start < 0:
        return None
    end = body.find(" -->", start)
    blob = body[start + len("<!-- " + MARKER) : end]
    try:
        data = json.loads(zlib.decompress(base64.b64decode(blob, validate=True)))
    except (ValueError, zlib.error):
        raise InputError(f"{where}: the ledger marker cannot be read") from None
    if not isinstance(data, list):
        raise InputError(f"{where}: the ledger marker is not a list of entries")
    return data


class GitLabLedger:
    def __init__(self, target: GitLabTarget, noteable: str, iid: int | None, sha: str | None):
        self.target = target
        self.noteable = noteable  # "mr" or "issue"
        self._iid = iid
        self._sha = sha
        self._gl: Any = None
        self._me: int | None = None
        self.description = f"gitlab:{noteable}:{iid if iid is not None else '(from commit)'}"

    @classmethod
    def from_env(cls, uri: str, env: Mapping[str, str]) -> GitLabLedger:
        target = gitlab_target(env, "the GitLab ledger")
        parts = uri.split(":")
        if len(parts) == 3 and parts[1] in ("mr", "issue") and parts[2].isdigit():
            return cls(target, parts[1], int(parts[2]), None)
        if uri != "gitlab":
            raise InputError(
                f"--ledger: expected gitlab, gitlab:mr:IID or gitlab:issue:IID, got {uri!r}"
            )
        issue = env.get("HIE_CHANGE_ISSUE_IID")
        if issue:
            if not issue.isdigit():
                raise InputError(f"HIE_CHANGE_ISSUE_IID: expected an issue number, got {issue!r}")
            return cls(target, "issue", int(issue), None)
        mr = env.get("CI_MERGE_REQUEST_IID")
        if mr:
            return cls(target, "mr", int(mr), None)
        sha = env.get("CI_COMMIT_SHA")
        if not sha:
            raise InputError(
                "the GitLab ledger needs CI_MERGE_REQUEST_IID, CI_COMMIT_SHA or "
                "HIE_CHANGE_ISSUE_IID to know where the notes live"
            )
        return cls(target, "mr", None, sha)

    def _client(self) -> Any:
        if self._gl is None:
            self._gl = connect(self.target)
        return self._gl

    def _project(self) -> Any:
        return self._client().projects.get(self.target.project_id, lazy=True)

    def _my_id(self) -> int:
        if self._me is None:
            gl = self._client()
            call("identify the notifier's user", gl.auth)
            self._me = int(gl.user.id)
        return self._me

    def _noteable(self) -> Any:
        project = self._project()
        if self._iid is None:
            sha = self._sha
            mrs = call(
                "find the merge request of the commit",
                lambda: project.commits.get(sha, lazy=True).merge_requests(),
            )
            if not mrs:
                raise InputError(
                    f"no merge request contains commit {sha}: the GitLab ledger needs one "
                    "(or set HIE_CHANGE_ISSUE_IID to keep the ledger on a change issue)"
                )
            self._iid = int(mrs[0]["iid"])
            self.description = f"gitlab:mr:{self._iid}"
        manager = project.mergerequests if self.noteable == "mr" else project.issues
        return manager.get(self._iid, lazy=True)

    def read(self, change_id: str) -> list[Entry]:
        me = self._my_id()
        noteable = self._noteable()
        notes = call(
            "read the ledger notes",
            lambda: list(noteable.notes.list(iterator=True, sort="asc", order_by="created_at")),
        )
        entries: list[Entry] = []
        for note in notes:
            if note.attributes.get("system") or int(note.attributes["author"]["id"]) != me:
                continue
            where = f"{self.description} note {note.id}"
            raw = decode_marker(str(note.attributes.get("body", "")), where)
            if raw is None:
                continue
            created = _server_time(note.attributes.get("created_at"), where)
            for item in raw:
                entry = Entry.from_json(item, where)
                if entry.change_id == change_id:
                    entries.append(replace(entry, delivered_at=created))
        return entries

    def record(self, entries: list[Entry]) -> list[Entry]:
        if not entries:
            return []
        noteable = self._noteable()
        lines = [
            f"**hie-notify** recorded {len(entries)} notice(s) for {entries[0].change_id}:",
            "",
        ]
        lines += [f"- {e.stage}: {e.audience} via {e.channel}" for e in entries]
        body = "\n".join(lines) + "\n\n" + encode_marker(entries)
        note = call("record notices in a note", lambda: noteable.notes.create({"body": body}))
        created = _server_time(note.attributes.get("created_at"), f"{self.description} new note")
        return [replace(e, delivered_at=created) for e in entries]

    @contextmanager
    def lock(self) -> Iterator[None]:
        # GitLab has no lock to take; CI's resource_group keeps two stage jobs from overlapping.
        yield


def _server_time(value: object, where: str) -> datetime:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{where}: created_at {value!r} is not a time") from None
    if when.tzinfo is None:
        raise InputError(f"{where}: created_at {value!r} has no offset")
    return when
