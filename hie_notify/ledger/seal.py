"""The ledger's seal: every entry of a change is chained to the one before it, and signed when a
key is set, so an edited, removed or reordered entry is found instead of believed.

Each entry carries `prev` (the digest of the previous entry of the same change, "" for the
first), `digest` (SHA-256 of its own canonical JSON with `prev`, without `digest` and `mac`)
and, with HIE_LEDGER_KEY, `mac` (HMAC-SHA256 of the digest under that key).

An entry's `prev` must name an entry before it (or be "" ): two writers that appended at the
same time (the GitLab ledger has no lock) may both follow the same entry, which is a fork, not
tampering. An entry whose `prev` is nowhere before it had an entry removed or moved after it.

Without a key the chain finds an edit that did not recompute the digests, and any removal or
reordering before the last entry; someone who can write the ledger and recomputes every digest
is only stopped by the key. With a key, an entry without a valid `mac` is ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from hie_notify.errors import InputError
from hie_notify.records import Entry

KEY_VARIABLE = "HIE_LEDGER_KEY"


def ledger_key(env: Mapping[str, str], *, required: bool = False) -> bytes | None:
    """The signing key from HIE_LEDGER_KEY; InputError when the policy requires one and it is
    missing or too short to be a key."""
    value = env.get(KEY_VARIABLE) or ""
    if not value:
        if required:
            raise InputError(
                f"{KEY_VARIABLE} is not set, and the protected policy says ledger: "
                "{signed: true}: set it as a masked, protected CI/CD variable (32+ random "
                "characters)"
            )
        return None
    if len(value) < 12:
        raise InputError(f"{KEY_VARIABLE}: expected at least 12 characters, got {len(value)}")
    return value.encode()


def content_digest(entry: Entry) -> str:
    data = entry.to_json()
    data.pop("digest", None)
    data.pop("mac", None)
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(raw.encode()).hexdigest()


def _mac(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


def seal(entries: Sequence[Entry], last: Callable[[str], str], key: bytes | None) -> list[Entry]:
    """`entries`, each chained after the last entry of its change (`last(change_id)` is that
    entry's digest, "" for a change's first entry)."""
    out = []
    prev: dict[str, str] = {}
    for entry in entries:
        change = entry.change_id
        entry = replace(entry, prev=prev.get(change) or last(change), digest="", mac="")
        digest = content_digest(entry)
        entry = replace(entry, digest=digest, mac=_mac(key, digest) if key else "")
        out.append(entry)
        prev[change] = digest
    return out


@dataclass
class Verified:
    """What a read of one change's entries found."""

    entries: list[Entry] = field(default_factory=list)  # the entries that count
    problems: list[str] = field(default_factory=list)  # tampering found: the gate blocks
    warnings: list[str] = field(default_factory=list)  # entries ignored (unsigned, bad MAC)
    last: str = ""  # digest the next entry chains to


def verify(entries: Sequence[tuple[Entry, str]], key: bytes | None) -> Verified:
    """Check one change's entries in ledger order; each comes with where it was read."""
    out = Verified()
    before: set[str] = set()
    for entry, where in entries:
        what = f"{where}: {entry.stage} to {entry.audience} via {entry.channel}"
        if not entry.digest:
            out.problems.append(
                f"{what} is not sealed (no digest; written by hand or by an older hie-notify): "
                "it does not count"
            )
            continue
        if content_digest(entry) != entry.digest:
            out.problems.append(
                f"{what} was edited after it was recorded (its content no longer matches its "
                "digest): it does not count, and the gate blocks until the ledger is restored"
            )
            out.last = entry.digest
            before.add(entry.digest)
            continue
        if key is not None:
            if not entry.mac:
                out.warnings.append(f"{what} is not signed with HIE_LEDGER_KEY: ignored")
                continue
            if not hmac.compare_digest(entry.mac, _mac(key, entry.digest)):
                out.warnings.append(f"{what} has a wrong HIE_LEDGER_KEY signature: ignored")
                continue
        if entry.prev and entry.prev not in before:
            out.problems.append(
                f"{what} does not follow any entry before it: an entry was removed or the "
                "entries were reordered; the gate blocks until the ledger is restored"
            )
        out.entries.append(entry)
        out.last = entry.digest
        before.add(entry.digest)
    return out
