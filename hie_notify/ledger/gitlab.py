"""The GitLab ledger: one note per recording on the merge request (or a change issue).

Each note carries its entries in a hidden marker. Only dedicated ledger notes count: written by
the notifier's own user (or, outside GitLab CI, by a user HIE_LEDGER_AUTHORS names: the bot the
pipelines write as, when the gate service has its own token), not a system note, never edited
(`updated_at` equal to `created_at`), and whose whole body is exactly what `record` writes for
the entries in its marker (so the summary note, or any note quoting a marker, is never read).
A delivery counts from the later of the time this process saw it sent and the note's server
`created_at`: nothing written in a body, by anyone, can make a notice look earlier than
GitLab says it was posted.
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

from hie_notify import safejson
from hie_notify.errors import InputError
from hie_notify.gitlab_api import NoteTarget, call, gitlab_target
from hie_notify.ledger.seal import Verified, seal, verify
from hie_notify.lifecycle import LIFECYCLE
from hie_notify.records import Entry
from hie_notify.settings import Settings, refused_in_ci
from hie_notify.switches import in_gitlab_ci

MARKER = "hie-notify-ledger:v1:"
MAX_MARKER_BYTES = 4 << 20  # a note holds at most 1,000,000 characters; entries compress well


def pack(marker: str, data: object) -> str:
    """`data` as a hidden marker in a note or issue body: compressed JSON in an HTML comment."""
    raw = json.dumps(data, sort_keys=True).encode()
    return f"<!-- {marker}{base64.b64encode(zlib.compress(raw)).decode()} -->"


def unpack(body: str, marker: str, where: str, what: str) -> Any | None:
    """The data of the first `marker` in `body` (None when there is none); InputError when it
    cannot be read. Bounded: a body of a few kilobytes must not inflate to gigabytes."""
    start = body.find("<!-- " + marker)
    if start < 0:
        return None
    end = body.find(" -->", start)
    blob = body[start + len("<!-- " + marker) : end]
    try:
        inflate = zlib.decompressobj()
        raw = inflate.decompress(base64.b64decode(blob, validate=True), MAX_MARKER_BYTES)
        if inflate.unconsumed_tail:
            raise ValueError(f"the {what} inflates past its limit")
        return safejson.loads(raw)
    except (ValueError, zlib.error):
        raise InputError(f"{where}: the {what} cannot be read") from None


def encode_marker(entries: list[Entry]) -> str:
    return pack(MARKER, [e.to_json() for e in entries])


def decode_marker(body: str, where: str) -> list[dict[str, Any]] | None:
    data = unpack(body, MARKER, where, "ledger marker")
    if data is None:
        return None
    if not isinstance(data, list):
        raise InputError(f"{where}: the ledger marker is not a list of entries")
    return data


def note_body(entries: list[Entry]) -> str:
    """The whole body of a ledger note: a line per entry for people, the marker for the tool."""
    notices = sum(e.stage != LIFECYCLE for e in entries)
    what = f"{notices} notice(s)" if notices else "a step of the change"
    if notices and notices < len(entries):
        what += " and a step of the change"
    lines = [f"**hie-notify** recorded {what} for {entries[0].change_id}:", ""]
    lines += [entry_line(e) for e in entries]
    return "\n".join(lines) + "\n\n" + encode_marker(entries)


def entry_line(entry: Entry) -> str:
    """An entry as a note lists it for people: a delivery, or a transition the change made."""
    if entry.stage == LIFECYCLE:
        made = entry.extra.get("transition", "").replace("_", " ")
        return f"- {made}: the change is now {entry.extra.get('state', '')}"
    return f"- {entry.stage}: {entry.audience} via {entry.channel}"


def ledger_authors(env: Mapping[str, str]) -> frozenset[str]:
    """HIE_LEDGER_AUTHORS: usernames (comma-separated) whose ledger notes count besides the
    token's own user. Refused in GitLab CI, where a branch sets its own job variables and could
    name any user whose notes it can write."""
    raw = (env.get("HIE_LEDGER_AUTHORS") or "").strip()
    if not raw:
        return frozenset()
    if in_gitlab_ci(env):
        raise InputError(
            refused_in_ci("HIE_LEDGER_AUTHORS")
            + "; only the gate service (hie-notify receive) may accept other ledger authors"
        )
    return frozenset(name.strip() for name in raw.split(",") if name.strip())


class GitLabLedger:
    def __init__(
        self, where: NoteTarget, key: bytes | None = None, authors: frozenset[str] = frozenset()
    ) -> None:
        self.where = where
        self.key = key
        self.authors = authors  # usernames whose notes count besides the token's own user
        self._last: dict[str, str] = {}

    @property
    def description(self) -> str:
        return self.where.description

    @classmethod
    def from_env(
        cls,
        uri: str,
        env: Mapping[str, str],
        key: bytes | None = None,
        settings: Settings | None = None,
    ) -> GitLabLedger:
        parts = uri.split(":")
        authors = ledger_authors(env)
        if len(parts) == 3 and parts[1] in ("mr", "issue") and parts[2].isdigit():
            target = gitlab_target(env, "the GitLab ledger", settings)
            return cls(NoteTarget(target, parts[1], int(parts[2]), None), key, authors)
        if uri != "gitlab":
            raise InputError(
                f"--ledger: expected gitlab, gitlab:mr:IID or gitlab:issue:IID, got {uri!r}"
            )
        return cls(NoteTarget.from_env(env, "the GitLab ledger", settings=settings), key, authors)

    def _notes(self, what: str) -> list[Any]:
        """The notes that may be ledger notes: by our own user or an accepted author."""
        if not self.authors:
            return self.where.own_notes(what)
        me = self.where.my_id()
        noteable = self.where.noteable()
        notes = call(
            what,
            lambda: list(noteable.notes.list(iterator=True, sort="asc", order_by="created_at")),
        )
        found = []
        for n in notes:
            author = n.attributes.get("author") or {}
            if n.attributes.get("system"):
                continue
            if int(author.get("id", -1)) == me or author.get("username") in self.authors:
                found.append(n)
        return found

    def read(self, change_id: str) -> list[Entry]:
        return self.verified(change_id).entries

    def verified(self, change_id: str) -> Verified:
        found: list[tuple[Entry, str]] = []
        posted: dict[str, datetime] = {}  # entry digest -> its note's created_at
        for note in self._notes("read the ledger notes"):
            where = f"{self.description} note {note.id}"
            body = str(note.attributes.get("body", ""))
            raw = decode_marker(body, where)
            if raw is None:
                continue
            created = _server_time(note.attributes.get("created_at"), where)
            if note.attributes.get("updated_at") != note.attributes.get("created_at"):
                continue  # edited: a ledger note is never edited, so this one is not one
            items = [Entry.from_json(item, where) for item in raw]
            if not items or note_body(items) != body:
                continue  # a marker inside some other note (the summary, a quote): not ours
            for entry in items:
                if entry.change_id == change_id:
                    found.append((entry, where))
                    posted[entry.digest] = created
        checked = verify(found, self.key)
        # The seal covers the entry as written; the time it counts from is never before the
        # note's server time (a clock that ran early cannot backdate it).
        checked.entries = [
            replace(e, delivered_at=max(e.delivered_at, posted[e.digest])) for e in checked.entries
        ]
        self._last[change_id] = checked.last
        return checked

    def record(self, entries: list[Entry]) -> list[Entry]:
        if not entries:
            return []

        def last(change_id: str) -> str:
            if change_id not in self._last:
                self.verified(change_id)
            return self._last[change_id]

        entries = seal(entries, last, self.key)
        noteable = self.where.noteable()
        body = note_body(entries)
        note = call("record notices in a note", lambda: noteable.notes.create({"body": body}))
        created = _server_time(note.attributes.get("created_at"), f"{self.description} new note")
        for e in entries:
            self._last[e.change_id] = e.digest
        return [replace(e, delivered_at=max(e.delivered_at, created)) for e in entries]

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
