"""Progress of long work on stderr, never stdout (so `--format json` output stays one object).

In a CI log (stderr not a terminal, or `CI` set) each step is one line, prefixed
`hie-notify:`; on a terminal one live line is rewritten in place and cleared at the end.
Counts (`count`) are throttled: on a terminal at most every REFRESH seconds, in a log only at
each quarter of the way, so a loop may call it every time round at no cost. Silent until a
command turns it on (`start`): library use, the tests' direct calls and the `receive` service
(which logs) print nothing. Every line is masked like all other output.

Written here rather than with a progress-bar library: what is needed is a status line, not a
bar, with the CI/terminal split and masking above, and no new dependency for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TextIO

REFRESH = 0.1  # seconds between two updates of the live line
WIDTH = 120  # the live line is cut to this many characters (it must fit on one line)


class Progress:
    def __init__(
        self,
        stream: TextIO | None,
        *,
        live: bool = False,
        mask: Callable[[str], str] = str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.live = live
        self.mask = mask
        self.clock = clock
        self._shown = False  # a live line is on screen
        self._last = float("-inf")  # when the live line was last written
        self._quarter: dict[str, int] = {}  # per count label, the last quarter logged

    def step(self, text: str) -> None:
        """Say what the command is doing now."""
        if self.stream is None:
            return
        line = self.mask(" ".join(text.split()))
        if self.live:
            self.stream.write("\r\x1b[2K" + line[:WIDTH])
            self._shown = True
            self._last = self.clock()
        else:
            self.stream.write(f"hie-notify: {line}\n")
        self.stream.flush()

    def count(self, label: str, done: int, total: int) -> None:
        """`done` of `total` items of `label` so far (cheap to call for every item)."""
        if self.stream is None or total <= 0:
            return
        if self.live:
            if done < total and self.clock() - self._last < REFRESH:
                return
            self.step(f"{label}: {done:,} of {total:,}")
            return
        quarter = 4 * done // total
        if quarter > self._quarter.get(label, 0):
            self._quarter[label] = quarter
            self.step(f"{label}: {done:,} of {total:,}")

    def wait(self, seconds: float, why: str) -> None:
        """Say that the command waits before trying again, how long, and why."""
        self.step(f"waiting {_seconds(seconds)} before trying again: {why}")

    @contextmanager
    def waiting(self, seconds: float, why: str) -> Iterator[None]:
        """`wait`, for the time the block sleeps; a live line is cleared when it ends."""
        self.wait(seconds, why)
        try:
            yield
        finally:
            self.finish()

    def finish(self) -> None:
        """Clear the live line (a log keeps its lines)."""
        if self.stream is not None and self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = False


def _seconds(value: float) -> str:
    if value < 10:
        return f"{value:.1f} s"
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.0f} min"


_current = Progress(None)


def current() -> Progress:
    return _current


def start(stream: TextIO, env: Mapping[str, str], mask: Callable[[str], str]) -> Progress:
    """Turn progress on for this process: live on a terminal, lines in a CI log."""
    global _current
    live = _is_terminal(stream) and not env.get("CI")
    _current = Progress(stream, live=live, mask=mask)
    return _current


def stop() -> None:
    """Clear any live line and turn progress off again."""
    global _current
    _current.finish()
    _current = Progress(None)


def step(text: str) -> None:
    _current.step(text)


def count(label: str, done: int, total: int) -> None:
    _current.count(label, done, total)


def wait(seconds: float, why: str) -> None:
    _current.wait(seconds, why)


def waiting(seconds: float, why: str) -> AbstractContextManager[None]:
    return _current.waiting(seconds, why)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
