"""`hie-notify complete`: completion notices, and the post-mortem where the policy owes one."""

from __future__ import annotations

import argparse
from typing import Any

from hie_notify import plan_source, stagerun
from hie_notify.options import Options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    plan_source.add_arguments(parser, required=False)
    parser.add_argument("--detail", metavar="TEXT", help="a line of detail for every audience")


def run(args: argparse.Namespace, options: Options) -> int:
    run = stagerun.load(options, args)
    status: dict[str, Any] = {"error": "", "detail": args.detail or ""}
    extra = stagerun.owe_postmortem(run, "complete", status)
    report = stagerun.send(run, "complete", status)
    extra.append(stagerun.publish_summary(run, "done"))
    stagerun.emit_report(options, run, report, extra, {"postmortem": status.get("postmortem", [])})
    return 0
