"""The ledger's seal, entry by entry (ledger/seal.py): what is chained, what is signed, and what
a read counts, warns about or finds tampered (the mutation bench's `seal` target)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace

import pytest

from hie_notify.errors import InputError
from hie_notify.ledger.seal import content_digest, ledger_key, seal, verify
from hie_notify.records import Entry
from tests.support.ledger_entries import entry

KEY = b"the-projects-ledger-key-0123"


def _where(entries: list[Entry]) -> list[tuple[Entry, str]]:
    return [(e, f"l.jsonl:{i}") for i, e in enumerate(entries, 1)]


def test_the_key_is_read_from_hie_ledger_key_and_must_look_like_one() -> None:
    assert ledger_key({}) is None
    assert ledger_key({"HIE_LEDGER_KEY": ""}) is None
    assert ledger_key({"HIE_LEDGER_KEY": "k" * 12}) == b"k" * 12
    with pytest.raises(
        InputError, match=r"^HIE_LEDGER_KEY: expected at least 12 characters, got 11$"
    ):
        ledger_key({"HIE_LEDGER_KEY": "k" * 11})
    with pytest.raises(InputError) as raised:
        ledger_key({}, required=True)
    assert str(raised.value) == (
        "HIE_LEDGER_KEY is not set, and the protected policy says ledger: {signed: true}: set it "
        "as a masked, protected CI/CD variable (32+ random characters)"
    )
    with pytest.raises(InputError, match="HIE_LEDGER_KEY is not set"):
        ledger_key({"HIE_LEDGER_KEY": ""}, required=True)
    assert ledger_key({"HIE_LEDGER_KEY": "k" * 12}, required=True) == b"k" * 12


def test_the_digest_is_sha256_of_the_canonical_json_without_digest_and_mac() -> None:
    e = replace(entry(1), prev="p" * 64)
    data = e.to_json()
    data.pop("digest")
    data.pop("mac")
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert content_digest(e) == hashlib.sha256(raw.encode()).hexdigest()
    # Neither its own digest nor its signature is part of what it covers; prev and all else is.
    assert content_digest(replace(e, digest="d" * 64, mac="m" * 64)) == content_digest(e)
    assert content_digest(replace(e, prev="")) != content_digest(e)
    assert content_digest(replace(e, recipient="#ops")) != content_digest(e)
    # Non-ASCII text is escaped, as the canonical form says.
    e2 = replace(e, recipient="#dévops")
    data = e2.to_json()
    data.pop("digest")
    data.pop("mac")
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert content_digest(e2) == hashlib.sha256(raw.encode()).hexdigest()


def test_seal_chains_each_change_after_its_last_entry_and_signs_with_the_key() -> None:
    last = {"FFAPP-1": "a" * 64, "FFAPP-2": ""}
    asked: list[str] = []

    def last_of(change: str) -> str:
        asked.append(change)
        return last[change]

    first, other, second = seal([entry(1), entry(2, change="FFAPP-2"), entry(3)], last_of, KEY)
    assert first.prev == "a" * 64
    assert other.prev == ""
    assert second.prev == first.digest  # after the one sealed just before, not the stored last
    for e in (first, other, second):
        assert e.digest == content_digest(e)
        assert e.mac == hmac.new(KEY, e.digest.encode(), hashlib.sha256).hexdigest()
    assert sorted(set(asked)) == ["FFAPP-1", "FFAPP-2"]
    # A stale digest or signature on what is sealed is replaced, never kept.
    [again] = seal([replace(entry(1), digest="x", mac="y", prev="z")], lambda _: "", None)
    assert again.prev == "" and again.mac == ""
    assert again.digest == content_digest(again) != "x"


def test_a_sealed_ledger_verifies_whole_with_nothing_to_say() -> None:
    sealed = seal([entry(1), entry(2), entry(3)], lambda _: "", KEY)
    found = verify(_where(sealed), KEY)
    assert found.entries == sealed
    assert (found.problems, found.warnings) == ([], [])
    assert found.last == sealed[-1].digest
    # Without a key nothing is checked against a signature, and an unsigned ledger is whole.
    unsigned = seal([entry(1), entry(2)], lambda _: "", None)
    found = verify(_where(unsigned), None)
    assert (found.entries, found.problems, found.warnings) == (unsigned, [], [])
    assert verify([], KEY).last == ""


def test_an_entry_with_no_digest_is_a_problem_and_does_not_count() -> None:
    sealed = seal([entry(1)], lambda _: "", KEY)
    bare = entry(2)
    found = verify(_where([*sealed, bare]), KEY)
    assert found.entries == sealed
    assert found.problems == [
        "l.jsonl:2: announce to slack:#devops via outbox is not sealed (no digest; written by hand "
        "or by an older hie-notify): it does not count"
    ]
    assert found.warnings == []
    assert found.last == sealed[0].digest
    # What follows it is still read.
    [after] = seal([entry(3)], lambda _: sealed[0].digest, KEY)
    found = verify(_where([*sealed, bare, after]), KEY)
    assert found.entries == [*sealed, after] and len(found.problems) == 1


def test_an_edited_entry_is_a_problem_does_not_count_and_is_still_chained_to() -> None:
    a, b, c = seal([entry(1), entry(2), entry(3)], lambda _: "", KEY)
    edited = replace(b, recipient="#nobody")
    found = verify(_where([a, edited, c]), KEY)
    assert found.entries == [a, c]  # c follows b's digest, which was seen: no second problem
    assert found.problems == [
        "l.jsonl:2: announce to slack:#devops via outbox was edited after it was recorded (its "
        "content no longer matches its digest): it does not count, and the gate blocks until "
        "the ledger is restored"
    ]
    found = verify(_where([a, edited]), KEY)
    assert found.last == b.digest  # the next entry chains to the edited one's recorded digest


@pytest.mark.parametrize("mac", ["", "0" * 64, "forged"])
def test_with_a_key_an_unsigned_or_badly_signed_entry_is_warned_about_and_not_counted(
    mac: str,
) -> None:
    a, b = seal([entry(1), entry(2)], lambda _: "", KEY)
    found = verify(_where([a, replace(b, mac=mac)]), KEY)
    assert found.entries == [a]
    assert found.problems == []
    said = (
        "is not signed with HIE_LEDGER_KEY" if not mac else "has a wrong HIE_LEDGER_KEY signature"
    )
    assert found.warnings == [f"l.jsonl:2: announce to slack:#devops via outbox {said}: ignored"]
    assert found.last == a.digest
    # Its only entry so signed: nothing counts, nothing to chain to.
    found = verify(_where([replace(a, mac=mac)]), KEY)
    assert (found.entries, found.last) == ([], "")
    # An entry that follows the ignored one was not chained after a counted entry: tampering.
    c = seal([entry(3)], lambda _: b.digest, KEY)[0]
    found = verify(_where([a, replace(b, mac=mac), c]), KEY)
    assert found.entries == [a, c]
    assert len(found.problems) == 1 and "does not follow any entry before it" in found.problems[0]


def test_signed_under_another_key_counts_only_under_its_own() -> None:
    other = b"a-key-the-branch-made-up-01"
    sealed = seal([entry(1)], lambda _: "", other)
    assert verify(_where(sealed), other).entries == sealed
    assert verify(_where(sealed), None).entries == sealed  # no key: signatures are not read
    found = verify(_where(sealed), KEY)
    assert found.entries == [] and len(found.warnings) == 1


def test_an_entry_that_follows_nothing_before_it_is_a_problem_but_counts() -> None:
    a, b, c = seal([entry(1), entry(2), entry(3)], lambda _: "", None)
    found = verify(_where([a, c]), None)  # b removed
    assert found.entries == [a, c]
    assert found.problems == [
        "l.jsonl:2: announce to slack:#devops via outbox does not follow any entry before it: an "
        "entry was removed or the entries were reordered; the gate blocks until the ledger is "
        "restored"
    ]
    assert found.last == c.digest
    found = verify(_where([b, a]), None)  # reordered: b's prev (a) is not before it
    assert len(found.problems) == 1 and found.problems[0].startswith("l.jsonl:1: ")
    # Two writers that both followed `a` (a fork) is not tampering.
    [fork] = seal([entry(4)], lambda _: a.digest, None)
    found = verify(_where([a, b, fork]), None)
    assert found.problems == [] and found.entries == [a, b, fork]
