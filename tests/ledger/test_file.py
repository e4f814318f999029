"""The local ledger: append-only JSON lines, safe with concurrent writers, refuses corruption."""

from __future__ import annotations

import multiprocessing
from dataclasses import replace
from pathlib import Path

import pytest

from hie_notify.errors import InputError
from hie_notify.ledger import idempotency_key, open_ledger
from hie_notify.ledger.file import FileLedger
from tests.support.ledger_entries import entry


def test_round_trip_and_filter_by_change(tmp_path: Path) -> None:
    ledger = FileLedger(tmp_path / "l.jsonl")
    assert ledger.read("FFAPP-1") == []
    ledger.record([entry(1), entry(2, change="FFAPP-2")])
    ledger.record([entry(3)])
    assert [e.message_id for e in ledger.read("FFAPP-1")] == ["msg-1", "msg-3"]
    stored = ledger.read("FFAPP-1")[0]
    assert replace(stored, prev="", digest="", mac="") == entry(1)
    assert stored.prev == "" and len(stored.digest) == 64


def test_idempotency_key_depends_on_each_part() -> None:
    base = idempotency_key("A-1", "announce", "slack:#devops", "sha256:1")
    assert base == idempotency_key("A-1", "announce", "slack:#devops", "sha256:1")
    others = {
        idempotency_key("A-2", "announce", "slack:#devops", "sha256:1"),
        idempotency_key("A-1", "complete", "slack:#devops", "sha256:1"),
        idempotency_key("A-1", "announce", "slack:#ops", "sha256:1"),
        idempotency_key("A-1", "announce", "slack:#devops", "sha256:2"),
    }
    assert base not in others and len(others) == 4


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json}\n", ":1: not a JSON ledger entry; the ledger was left as it is"),
        (b'{"change_id": "FFAPP-1"}\n', ":1: ledger entry has no 'delivered_at'"),
        (b"[1, 2]\n", ":1: expected a ledger entry object"),
    ],
)
def test_corrupt_ledger_is_refused_and_left_alone(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "l.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError, match=expected):
        FileLedger(path).read("FFAPP-1")
    assert path.read_bytes() == content


def test_cut_short_last_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    FileLedger(path).record([entry(1)])
    good = path.read_bytes()
    path.write_bytes(good + good[:40])
    with pytest.raises(InputError, match=":2: the last line has no newline"):
        FileLedger(path).read("FFAPP-1")


def test_an_entry_sealed_under_another_key_is_warned_about_and_not_counted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.jsonl"
    key, made_up = b"the-projects-ledger-key-0123", b"a-key-the-branch-made-up-01"
    FileLedger(path, key).record([entry(1)])
    # Someone who can write the file, without the key, appends an entry sealed under theirs.
    FileLedger(path, made_up).record([entry(2, audience="customer:EoE")])
    found = FileLedger(path, key).verified("FFAPP-1")
    assert [e.message_id for e in found.entries] == ["msg-1"]
    assert found.warnings == [
        f"{path}:2: announce to customer:EoE via outbox has a wrong HIE_LEDGER_KEY signature: "
        "ignored"
    ]
    assert found.problems == []
    assert found.last == found.entries[0].digest  # the next entry chains to the one that counts
    assert [e.message_id for e in FileLedger(path, key).read("FFAPP-1")] == ["msg-1"]


def _append_many(path: str, worker: int, count: int) -> None:
    ledger = FileLedger(Path(path))
    for i in range(count):
        ledger.record([entry(worker * 1000 + i, audience=f"w{worker}")])


def test_two_processes_appending_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(path), w, 200)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    entries = FileLedger(path).read("FFAPP-1")
    assert len(entries) == 400
    assert {e.message_id for e in entries} == {
        f"msg-{w * 1000 + i}" for w in (1, 2) for i in range(200)
    }


def _hold_lock_and_record(path: str, started: object, release: object) -> None:
    ledger = FileLedger(Path(path))
    with ledger.lock():
        started.set()  # type: ignore[attr-defined]
        release.wait(10)  # type: ignore[attr-defined]
        ledger.record([entry(1)])


def test_stage_lock_makes_a_second_run_wait_for_the_first(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    ctx = multiprocessing.get_context("fork")
    started, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock_and_record, args=(str(path), started, release))
    proc.start()
    assert started.wait(10)
    release.set()
    ledger = FileLedger(path)
    with ledger.lock():
        # Inside the lock the first run has finished: its record is visible.
        assert [e.message_id for e in ledger.read("FFAPP-1")] == ["msg-1"]
    proc.join(10)


def test_open_ledger_uris(tmp_path: Path) -> None:
    led = open_ledger(f"file:{tmp_path}/x.jsonl", {})
    assert isinstance(led, FileLedger) and led.path == tmp_path / "x.jsonl"
    assert isinstance(open_ledger(None, {}), FileLedger)
    with pytest.raises(InputError, match="expected file:PATH or gitlab"):
        open_ledger("s3://bucket", {})
    with pytest.raises(InputError, match="HIE_GITLAB_TOKEN"):
        open_ledger("gitlab", {"CI_MERGE_REQUEST_IID": "1"})
