"""`hie-notify update --message TEXT`: an ad-hoc progress or delay update during a change, to the
audiences that hear "during" updates (customers only when their service is impacted). Each
distinct message is sent once: a retried job sends nothing twice."""

from __future__ import annotations

import argparse

from hie_notify import plan_source, stagerun
from hie_notify.options import Options
from hie_notify.register.jobs import send_update


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--message", required=True, metavar="TEXT", help="the update, as sent")
    plan_source.add_arguments(parser, required=False)


def run(args: argparse.Namespace, options: Options) -> int:
    run, report = send_update(options, args, args.message)
    return stagerun.emit_report(options, run, report, [])
