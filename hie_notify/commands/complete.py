"""`hie-notify complete`: completion notices, once a person has checked the key user flows
(Phase 3), and the post-mortem issue where the policy owes one."""

from __future__ import annotations

import argparse

from hie_notify import plan_source, stagerun
from hie_notify.options import Options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    plan_source.add_arguments(parser, required=False)
    parser.add_argument("--detail", metavar="TEXT", help="a line of detail for every audience")
    parser.add_argument(
        "--verified-by",
        metavar="NAME",
        help="who tested the key user flows before completion is announced "
        "(default GITLAB_USER_LOGIN: who ran the manual job)",
    )


def run(args: argparse.Namespace, options: Options) -> int:
    run = stagerun.load(options, args)
    verified_by = (args.verified_by or options.env.get("GITLAB_USER_LOGIN") or "").strip()
    report, extra, status = stagerun.send_complete(run, args.detail or "", verified_by)
    return stagerun.emit_report(
        options,
        run,
        report,
        extra,
        {
            "postmortem": status.get("postmortem", []),
            "verified_by": verified_by or None,
            "rolled_back": status["rolled_back"],
        },
    )
