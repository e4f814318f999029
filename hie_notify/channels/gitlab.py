"""GitLab: the plan summary as one merge-request note updated in place, and post-mortem issues.

Both look before they create: python-gitlab's own retry of a POST that failed with a 5xx can
leave a note behind, so creation is not retried blindly, and a failed create is followed by a
search for what may have gone through.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hie_notify.errors import ServiceError
from hie_notify.gitlab_api import NoteTarget, call, connect, gitlab_target

if TYPE_CHECKING:
    from hie_notify.settings import Settings

NOTE_LIMIT = 1_000_000  # GitLab's note body limit, in characters
MAX_ATTEMPTS = 3


def summary_marker(change_id: str) -> str:
    return f"<!-- hie-notify:summary:{change_id} -->"


def fit(body: str, limit: int, link: str) -> str:
    """Cut a body that is over the limit, saying where the rest is."""
    if len(body) <= limit:
        return body
    tail = f"\n\n…cut to fit GitLab's note limit. Full plan: {link or 'see the job log'}\n"
    return body[: limit - len(tail)] + tail


class MergeRequestSummary:
    def __init__(self, where: NoteTarget) -> None:
        self.where = where

    def _find(self, marker: str) -> Any | None:
        for note in self.where.own_notes("read the merge request notes"):
            if marker in str(note.attributes.get("body", "")):
                return note
        return None

    def publish(self, change_id: str, body: str, link: str = "") -> str:
        """Create or update the one summary note of a change; returns the note id."""
        marker = summary_marker(change_id)
        text = fit(body, NOTE_LIMIT - len(marker) - 2, link) + "\n\n" + marker
        for attempt in range(MAX_ATTEMPTS):
            note = self._find(marker)
            if note is not None:
                if note.attributes.get("body") != text:
                    note.body = text
                    call("update the summary note", note.save)
                return str(note.id)
            notes = self.where.noteable().notes
            try:
                created = call(
                    "create the summary note",
                    functools.partial(notes.create, {"body": text}, retry_transient_errors=False),
                )
                return str(created.id)
            except ServiceError:
                if attempt == MAX_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")


def open_issue(where: NoteTarget, title: str, description: str, labels: list[str]) -> str:
    """Open an issue unless one with this exact title is already open; returns its web URL."""
    project = where.project()

    def existing() -> Any | None:
        found = call(
            "look for the post-mortem issue",
            lambda: project.issues.list(search=title, in_="title", state="opened", get_all=False),
        )
        return next((i for i in found if i.attributes.get("title") == title), None)

    for attempt in range(MAX_ATTEMPTS):
        issue = existing()
        if issue is not None:
            return str(issue.attributes.get("web_url", issue.iid))
        try:
            created = call(
                "open the post-mortem issue",
                lambda: project.issues.create(
                    {"title": title, "description": description, "labels": ",".join(labels)},
                    retry_transient_errors=False,
                ),
            )
            return str(created.attributes.get("web_url", created.iid))
        except ServiceError:
            if attempt == MAX_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


_ISSUE_URL = re.compile(r"/-/issues/(\d+)$")


def issue_closed(env: Mapping[str, str], url: str, settings: Settings | None = None) -> str | None:
    """When the post-mortem issue at `url` (as `open_issue` returned it) was closed, GitLab's
    `closed_at`; None while it is open, or when `url` is not an issue of the configured project
    (its web URL must be the one GitLab reports for that issue number)."""
    found = _ISSUE_URL.search(url)
    if found is None:
        return None
    target = gitlab_target(env, "the post-mortem issue's state", settings)
    project = connect(target).projects.get(target.project_id, lazy=True)
    issue = call("read the post-mortem issue", lambda: project.issues.get(int(found.group(1))))
    attrs = issue.attributes
    if attrs.get("web_url") != url or attrs.get("state") != "closed":
        return None
    return str(attrs.get("closed_at") or "closed")
