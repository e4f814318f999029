"""`hie-notify cancel`: tell everyone who was told that the change will not go ahead
(calendar invites are withdrawn with METHOD:CANCEL)."""

from __future__ import annotations

import argparse

from hie_notify import plan_source, stagerun
from hie_notify.options import Options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    plan_source.add_arguments(parser, required=False)
    parser.add_argument("--detail", metavar="TEXT", help="why, for internal audiences")


def run(args: argparse.Namespace, options: Options) -> int:
    run = stagerun.load(options, args)
    report = stagerun.send(run, "cancelled", {"error": "", "detail": args.detail or ""})
    extra = [stagerun.summary_note(run, report)]
    return stagerun.emit_report(options, run, report, extra)
