"""`hie-notify earliest`: if notices went out now, the earliest start every audience allows."""

from __future__ import annotations

import argparse

from hie_notify import output, plan_source
from hie_notify.calendar import UTC
from hie_notify.context import prepare
from hie_notify.options import Options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    plan_source.add_arguments(parser, required=True)


def run(args: argparse.Namespace, options: Options) -> int:
    prep = prepare(options, plan_source.load(args, options.env), need_change=False)
    cal = prep.calendar
    now = options.clock()
    rows = []
    for a in prep.audiences.for_phase("pre_deployment"):
        minimum = cal.earliest_start(now, a.minimum)
        recommended = cal.earliest_start(now, a.recommended)
        rows.append((a, minimum, recommended))
    earliest = max((m for _, m, _ in rows), default=now.astimezone(UTC))
    recommended = max((r for _, _, r in rows), default=now.astimezone(UTC))
    data = {
        "now": now.isoformat(),
        "change_type": prep.result.change_type,
        "earliest_start": earliest.isoformat(),
        "earliest_start_local": cal.local(earliest).isoformat(),
        "recommended_start": recommended.isoformat(),
        "recommended_start_local": cal.local(recommended).isoformat(),
        "audiences": [
            {
                "audience": a.id,
                "minimum": str(a.minimum),
                "recommended": str(a.recommended),
                "earliest_start": m.isoformat(),
                "recommended_start": r.isoformat(),
            }
            for a, m, r in rows
        ],
        "problems": list(prep.audiences.problems),
    }
    lines = [
        f"If notices go out now ({cal.moment(now)}):",
        f"  earliest start     {cal.moment(earliest)}",
        f"  recommended start  {cal.moment(recommended)}",
    ]
    for a, m, _ in rows:
        lines.append(f"  {a.label:32} minimum {a.minimum!s:>5} -> {cal.moment(m)}")
    lines += [f"  PROBLEM {p}" for p in prep.audiences.problems]
    output.emit(options, data, "\n".join(lines))
    return 0
