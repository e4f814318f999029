"""Standard output and error whose reader may leave early (`hie-notify ... | head`).

A Unix tool whose reader closes the pipe stops writing and says nothing about it. hie-notify
does the same, except that its work goes on: a stage left half sent (or sent and not recorded)
because `head` had read enough would be worse than any output lost. What it would still print
is dropped, and the command exits with its own code.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO, cast


class ReaderMayLeave:
    """A text stream that drops what it is given once its reader has gone (EPIPE)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.reader_left = False

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._drop_the_rest()
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._drop_the_rest()

    def _drop_the_rest(self) -> None:
        self.reader_left = True
        # What is still buffered, and everything after it, goes to /dev/null: so the
        # interpreter's own last flush at exit cannot fail on the closed pipe either.
        try:
            fd = self.stream.fileno()
        except (OSError, ValueError, io.UnsupportedOperation):
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
        with contextlib.suppress(BrokenPipeError):
            self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def reader_may_leave() -> Iterator[None]:
    """sys.stdout and sys.stderr as ReaderMayLeave streams while the block runs."""
    saved = sys.stdout, sys.stderr
    sys.stdout = cast(TextIO, ReaderMayLeave(saved[0])) if saved[0] is not None else saved[0]
    sys.stderr = cast(TextIO, ReaderMayLeave(saved[1])) if saved[1] is not None else saved[1]
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, ReaderMayLeave):
                stream.flush()
        sys.stdout, sys.stderr = saved
