"""The report from the register to its text: read, compute, render (JSON, CSV or HTML)."""

from __future__ import annotations

import contextlib
import gc
import json
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from hie_notify import progress, timetext
from hie_notify.calendar import BusinessCalendar
from hie_notify.policy.model import Policy
from hie_notify.register.store import Register
from hie_notify.report import compute, export, source
from hie_notify.report.model import Report

FORMATS = ("html", "csv", "json")
# How long the page waits for charts drawn elsewhere before it draws them itself.
PAINTER_WAIT_S = 120.0


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """A report of 10,000 changes makes millions of small objects and no garbage cycles worth
    collecting before the process ends; the cyclic collector would walk them all, again and
    again as they pile up (a third of the run). Reference counting still frees what is let go."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def generate(
    register: Register,
    *,
    policy: Policy,
    calendar: BusinessCalendar,
    start: datetime,
    end: datetime,
    clock: Callable[[], datetime],
    kind: str,
    painter: bool = True,
) -> tuple[Report, str]:
    """The report of changes whose window overlaps [start, end), and its text in `kind`. The
    clock is read once, after the register (a register that cannot be read fails first). For
    HTML, with `painter` and a second CPU, the charts are drawn by a forked process (see
    `_Painter`)."""
    with _no_cycle_collection():
        helper = _Painter.start() if kind == "html" and painter else None
        try:
            progress.step(
                f"report: reading the change register ({register.description}), "
                f"{timetext.period(start, end, calendar.zone)}"
            )
            records = source.whole_months(register, start, end, calendar)
            progress.step(
                f"report: {len(records):,} changes read; working out notice, breaches, "
                "post-mortems and downtime"
            )
            report = compute.build(
                policy=policy,
                calendar=calendar,
                records=records,
                start=start,
                end=end,
                now=clock(),
            )
            del records
            progress.step(f"report: writing the {kind.upper()}")
            if kind == "json":
                # One line: the C encoder (indenting takes the pure-Python one, 20x slower).
                return report, json.dumps(export.to_json(report)) + "\n"
            if kind == "csv":
                return report, export.to_csv(report)
            from hie_notify.report import html

            drawn: Callable[[], list[str] | None] = lambda: None  # noqa: E731
            if helper is not None:
                drawn = helper.draw(html.chart_data(report))
            return report, html.render(report, drawn)
        finally:
            if helper is not None:
                helper.stop()


class _Painter:
    """The charts drawn in a forked process: it imports matplotlib while this one reads the
    register and computes, and draws while this one makes the tables, so about a second of
    the page's work is off its path where a second CPU is free. The same functions draw the
    same SVG there; whenever the helper cannot be had or fails in any way (not Linux, one CPU,
    an error, no answer within PAINTER_WAIT_S) the page draws them itself."""

    def __init__(self, process: Any, rows: Connection, svgs: Connection) -> None:
        self._process = process
        self._rows = rows
        self._svgs = svgs

    @classmethod
    def start(cls) -> _Painter | None:
        # Linux only: fork is its default and safe there (macOS's system libraries are not
        # fork-safe; Windows has no fork); and only with a second CPU this process may use.
        if not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2:
            return None
        context = multiprocessing.get_context("fork")
        # One-way pipes (not socket pairs): rows go to the helper, SVG comes back.
        rows_in, rows_out = context.Pipe(duplex=False)
        svgs_in, svgs_out = context.Pipe(duplex=False)
        try:
            process = context.Process(target=_paint, args=(rows_in, svgs_out), daemon=True)
            process.start()
        except OSError:
            return None
        rows_in.close()
        svgs_out.close()
        return cls(process, rows_out, svgs_in)

    def draw(self, data: tuple[dict[str, list[Any]], float]) -> Callable[[], list[str] | None]:
        """Send the charts' rows now; the returned call waits for the SVG (None: failed)."""
        try:
            self._rows.send(data)
        except (OSError, ValueError):
            return lambda: None

        def drawn() -> list[str] | None:
            try:
                if not self._svgs.poll(PAINTER_WAIT_S):
                    return None
                answer = self._svgs.recv()
            except (OSError, EOFError, ValueError):
                return None
            ok = isinstance(answer, list) and all(isinstance(s, str) for s in answer)
            return answer if ok else None

        return drawn

    def stop(self) -> None:
        for end in (self._rows, self._svgs):
            end.close()
        self._process.join(1)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()


def _paint(rows: Connection, svgs: Connection) -> None:
    """The helper: import what drawing needs at once, then draw what it is sent."""
    answer = None
    try:
        from hie_notify.report import charts, html

        charts.warm_up()
        answer = html.draw(*rows.recv())
    except BaseException:  # whatever it was, the page draws the charts itself
        answer = None
    with contextlib.suppress(OSError, ValueError):  # the page stopped waiting
        svgs.send(answer)
