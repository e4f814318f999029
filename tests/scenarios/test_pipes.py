"""A reader that leaves early (`hie-notify ... | head`): the command finishes its work, says
nothing about the closed pipe and exits with its own code (never "an outside service failed",
exit 3 or a traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hie_notify.pipes import ReaderMayLeave
from tests.support.paths import EXAMPLES

ARGS = [
    "--policy",
    str(EXAMPLES / "policy.yaml"),
    "--change",
    str(EXAMPLES / "change.yaml"),
    "--now",
    "2026-12-02T10:00:00+00:00",
]
PLAN = str(EXAMPLES / "plan.json")
NOISE = ("outside service", "Traceback", "BrokenPipe", "Broken pipe", "Exception ignored")


def run(cwd: Path, *args: str, reader: str = "gone", both: bool = False) -> tuple[int, str]:
    """hie-notify in a process of its own, its stdout (and stderr with `both`) a real pipe
    whose reader closed before the first byte was written, or a file (`reader="file"`)."""
    command = [sys.executable, "-m", "hie_notify", *args]
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONIOENCODING": "utf-8"}
    if reader == "file":
        with open(cwd / "stdout.txt", "wb") as out:
            done = subprocess.run(
                command, cwd=cwd, env=env, stdout=out, stderr=subprocess.PIPE, timeout=120
            )
        return done.returncode, done.stderr.decode()
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -c 0`, or a head that had enough before we wrote
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            stdout=write_end,
            stderr=write_end if both else subprocess.PIPE,
            timeout=120,
        )
    finally:
        os.close(write_end)
    return done.returncode, (done.stderr or b"").decode()


def ledger(cwd: Path) -> list[tuple[str, str]]:
    lines = (cwd / ".hie-notify/ledger.jsonl").read_text().splitlines()
    return sorted((e["stage"], e["audience"]) for e in map(json.loads, lines))


@pytest.mark.parametrize("both", [False, True], ids=["stdout", "stdout-and-stderr"])
def test_a_stage_whose_reader_left_still_sends_and_records_everything(
    tmp_path: Path, both: bool
) -> None:
    piped, read = tmp_path / "piped", tmp_path / "read"
    piped.mkdir()
    read.mkdir()
    code, err = run(piped, *ARGS, "plan", "--plan", PLAN, both=both)
    assert code == 0, err
    assert not any(word in err for word in NOISE), err
    # The same as with a reader that reads everything: every notice sent and recorded.
    assert run(read, *ARGS, "plan", "--plan", PLAN, reader="file")[0] == 0
    assert ledger(piped) == ledger(read) and len(ledger(piped)) >= 4
    sent = sorted(p.name for p in (piped / "hie-notify-outbox").rglob("*") if p.is_file())
    assert sent == sorted(p.name for p in (read / "hie-notify-outbox").rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("args", "expected", "both"),
    [
        ((*ARGS, "gate", "--plan", PLAN), 1, False),  # blocked stays blocked
        ((*ARGS, "--format", "json", "classify", "--plan", PLAN), 0, False),
        ((*ARGS, "preview", "plan", "--plan", PLAN), 0, False),
        (("--help",), 0, False),
        # `2>&1 | head`: the error message has nowhere to go, the exit code still says it.
        ((*ARGS, "--policy", "absent.yaml", "classify", "--plan", PLAN), 2, True),
    ],
    ids=["gate", "classify-json", "preview", "help", "bad-input"],
)
def test_a_reader_that_left_changes_no_exit_code_and_prints_nothing(
    tmp_path: Path, args: tuple[str, ...], expected: int, both: bool
) -> None:
    code, err = run(tmp_path, *args, both=both)
    assert code == expected, err
    assert not any(word in err for word in NOISE), err


class ClosesAfter:
    """A pipe whose reader reads `limit` characters, then leaves."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = ""
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        return len(text)

    def flush(self) -> None:
        if len(self.taken) + len(self.pending) > self.limit:
            self.taken += self.pending[: self.limit - len(self.taken)]
            self.pending = ""
            raise BrokenPipeError(32, "Broken pipe")
        self.taken, self.pending = self.taken + self.pending, ""

    def fileno(self) -> int:
        raise OSError("not a file")


@given(
    limit=st.integers(0, 200),
    calls=st.lists(st.one_of(st.text(max_size=40), st.none()), max_size=30),
)
def test_whatever_the_reader_takes_no_write_or_flush_raises(
    limit: int, calls: list[str | None]
) -> None:
    pipe = ClosesAfter(limit)
    stream = ReaderMayLeave(pipe)  # type: ignore[arg-type]
    written = ""
    for call in calls:
        if call is None:
            stream.flush()
        else:
            assert stream.write(call) == len(call)
            written += call
            stream.flush()
    assert written.startswith(pipe.taken)
    assert stream.reader_left == (len(written) > limit)
