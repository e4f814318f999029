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

from hie_notify import safejson
from hie_notify.errors import InputError
from hie_notify.gitlab_api import NoteTarget, call, gitlab_target
from hie_notify.ledger import Entry

MARKER = "hie-notify-ledger:v1:"
MAX_MARKER_BYTES = 4 << 20  # a note holds at most 1,000,000 characters; entries compress well


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
        # Bounded: a note of a few kilobytes must not inflate to gigabytes (a zip bomb).
        inflate = zlib.decompressobj()
        raw = inflate.decompress(base64.b64decode(blob, validate=True), MAX_MARKER_BYTES)
        if inflate.unconsumed_tail:
            raise ValueError("the ledger marker inflates past its limit")
        data = safejson.loads(raw)
    except (ValueError, zlib.error):
        raise InputError(f"{where}: the ledger marker cannot be read") from None
    if not isinstance(data, list):
        raise InputError(f"{where}: the ledger marker is not a list of entries")
    return data


class GitLabLedger:
    def __init__(self, where: NoteTarget) -> None:
        self.where = where

    @property
    def description(self) -> str:
        return self.where.description

    @classmethod
    def from_env(cls, uri: str, env: Mapping[str, str]) -> GitLabLedger:
        parts = uri.split(":")
        if len(parts) == 3 and parts[1] in ("mr", "issue") and parts[2].isdigit():
            target = gitlab_target(env, "the GitLab ledger")
            return cls(NoteTarget(target, parts[1], int(parts[2]), None))
        if uri != "gitlab":
            raise InputError(
                f"--ledger: expected gitlab, gitlab:mr:IID or gitlab:issue:IID, got {uri!r}"
            )
        return cls(NoteTarget.from_env(env, "the GitLab ledger"))

    def read(self, change_id: str) -> list[Entry]:
        entries: list[Entry] = []
        for note in self.where.own_notes("read the ledger notes"):
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
        noteable = self.where.noteable()
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
