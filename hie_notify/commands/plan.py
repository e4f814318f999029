"""`hie-notify plan`: classify, send the pre-deployment notices the policy requires, record them."""

from __future__ import annotations

import argparse
from pathlib import Path

from hie_notify import output
from hie_notify.audiences import Audience
from hie_notify.channels import Channel
from hie_notify.channels.outbox import Outbox
from hie_notify.context import links, prepare, sender
from hie_notify.gate import ANNOUNCE
from hie_notify.ledger import open_ledger
from hie_notify.notify import run_stage
from hie_notify.options import Options
from hie_notify.render import Renderer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plan", required=True, type=Path, metavar="FILE", help="`terraform show -json` output"
    )


def run(args: argparse.Namespace, options: Options) -> int:
    prep = prepare(options, args.plan, need_change=True)
    change = prep.change
    assert change is not None
    now = options.clock()
    result = prep.result
    if not result.has_changes and result.declared_type is None:
        output.emit(
            options,
            {"stage": ANNOUNCE, "delivered": [], "reasons": list(result.reasons)},
            "Nothing to announce: " + result.reasons[0],
        )
        return 0
    outbox = Outbox(options.outbox, change.id, now, sender(options.env))

    def channel_for(audience: Audience) -> Channel:
        return outbox

    report = run_stage(
        stage=ANNOUNCE,
        policy=prep.policy,
        change=change,
        result=result,
        audiences=prep.audiences.for_phase("pre_deployment"),
        ledger=open_ledger(options.ledger, options.env),
        channel_for=channel_for,
        renderer=Renderer(),
        now=now,
        links=links(options.env),
        dry_run=options.dry_run,
    )
    earliest = max(
        (
            prep.calendar.earliest_start(e.delivered_at, a.minimum)
            for a in prep.audiences.for_phase("pre_deployment")
            for e in report.delivered + report.already
            if e.audience == a.id
        ),
        default=None,
    )
    data = report.to_json()
    data["change_type"] = result.change_type
    data["earliest_start"] = earliest.isoformat() if earliest else None
    data["problems"] = list(prep.audiences.problems)
    lines = [f"{change.id}: {result.change_type} — pre-deployment notices"]
    for e in report.delivered:
        lines.append(f"  sent      {e.audience:28} via {e.channel}: {e.message_id}")
    for e in report.already:
        lines.append(
            f"  already   {e.audience:28} told {e.delivered_at.isoformat()} (not sent again)"
        )
    for r in report.previews:
        lines.append(f"  dry run   {r.audience.id:28} would send: {r.subject}")
    for problem in prep.audiences.problems:
        lines.append(f"  PROBLEM   {problem}")
    data["window_too_early"] = False
    if earliest:
        local = prep.calendar.local(earliest)
        lines.append(f"These notices allow a window from {local:%a %d %b %Y %H:%M %Z}.")
        if change.window is not None and change.window.start < earliest:
            data["window_too_early"] = True
            lines.append(
                "WARNING: the change record's window starts "
                f"{prep.calendar.local(change.window.start):%a %d %b %Y %H:%M %Z}, before that: "
                "the gate will block it. Move the window, or see `hie-notify earliest`."
            )
    output.emit(options, data, "\n".join(lines))
    return 0
