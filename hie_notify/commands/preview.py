"""`hie-notify preview STAGE`: render every message of a stage, for every audience; send nothing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hie_notify import output
from hie_notify.audiences import resolve
from hie_notify.channels import configured_kinds
from hie_notify.commands import _stage
from hie_notify.context import environments, links
from hie_notify.render import context
from hie_notify.stages import PHASE_OF_STAGE, audiences_for

STAGES = ("plan", *PHASE_OF_STAGE, "cancelled")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=STAGES, help="plan (= announce), apply_started, ...")
    parser.add_argument(
        "--plan",
        type=Path,
        metavar="FILE",
        help="`terraform show -json` output (default: the plan last announced)",
    )


def run(args: argparse.Namespace, options: Any) -> int:
    stage = "announce" if args.stage in ("plan", "announce") else args.stage
    run = _stage.load(options, args.plan)
    now = options.clock()
    audiences = resolve(run.policy, run.result, run.change, environments(options.env))
    entries = run.ledger.read(run.change.id) if stage == "cancelled" else []
    messages = []
    blocks = []
    for audience in audiences_for(stage, audiences, entries):
        ctx = context(
            policy=run.policy,
            result=run.result,
            change=run.change,
            audience=audience,
            now=now,
            links=links(options.env),
            status={"error": "", "detail": ""},
        )
        msg = run.renderer.render(stage, audience, ctx)
        kinds = configured_kinds(run.policy, audience)
        fmt = "slack" if "slack" in kinds and audience.slack_channel else "text"
        messages.append(
            {
                "audience": audience.id,
                "channels": kinds,
                "subject": msg.subject,
                "text": msg.body("text"),
                "slack": msg.body("slack"),
                "html": msg.body("html"),
                "markdown": msg.body("markdown"),
            }
        )
        rule = "=" * 78
        blocks.append(
            f"{rule}\n{audience.label} ({audience.id}) via {', '.join(kinds)}\n"
            f"Subject: {msg.subject}\n{'-' * 78}\n{msg.body(fmt).rstrip()}"
        )
    if not blocks:
        blocks.append(f"No audience hears {stage} for this change.")
    output.emit(options, {"stage": stage, "messages": messages}, "\n".join(blocks))
    return 0
