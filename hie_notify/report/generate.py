"""The report from the register to its text: read, compute, render (JSON, CSV or HTML)."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from hie_notify.calendar import BusinessCalendar
from hie_notify.policy.model import Policy
from hie_notify.register.store import Register
from hie_notify.report import compute, export, source
from hie_notify.report.model import Report

FORMATS = ("html", "csv", "json")


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
) -> tuple[Report, str]:
    """The report of changes whose window overlaps [start, end), and its text in `kind`. The
    clock is read once, after the register (a register that cannot be read fails first)."""
    with _no_cycle_collection():
        records = source.whole_months(register, start, end, calendar)
        report = compute.build(
            policy=policy,
            calendar=calendar,
            records=records,
            start=start,
            end=end,
            now=clock(),
        )
        del records
        if kind == "json":
            # One line: the C encoder (indenting takes the pure-Python one, 20x slower on 25 MB).
            return report, json.dumps(export.to_json(report)) + "\n"
        if kind == "csv":
            return report, export.to_csv(report)
        from hie_notify.report import html

        return report, html.render(report)
