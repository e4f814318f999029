"""`hie-notify apply --status started|succeeded|failed`: stage notices for the apply."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hie_notify.commands import _stage
from hie_notify.options import Options

STATUSES = ("started", "succeeded", "failed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser, STATUSES)


def add_stage_arguments(parser: argparse.ArgumentParser, statuses: tuple[str, ...]) -> None:
    parser.add_argument("--status", choices=statuses, required=True, help="what happened")
    parser.add_argument(
        "--plan",
        type=Path,
        metavar="FILE",
        help="the plan applied (default: the plan last announced, from the ledger)",
    )
    parser.add_argument("--error", metavar="TEXT", help="error summary for internal audiences")
    parser.add_argument("--detail", metavar="TEXT", help="a line of detail for every audience")


def run(args: argparse.Namespace, options: Options) -> int:
    return run_status_stage("apply", args, options)


def run_status_stage(prefix: str, args: argparse.Namespace, options: Options) -> int:
    stage = f"{prefix}_{args.status}"
    run = _stage.load(options, args.plan)
    status: dict[str, Any] = {"error": args.error or "", "detail": args.detail or ""}
    extra = []
    if args.status == "failed" or prefix == "rollback":
        extra += _stage.owe_postmortem(run, stage, status)
    report = _stage.send(run, stage, status)
    extra.append(_stage.publish_summary(run, stage.replace("_", " ")))
    _stage.emit_report(options, run, report, extra)
    return 0
