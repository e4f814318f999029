"""`hie-notify preview STAGE`: render every message of a stage, for every audience; send
nothing."""

from __future__ import annotations

import argparse

from hie_notify import output, plan_source, stagerun
from hie_notify.audiences import resolve
from hie_notify.channels import configured_kinds
from hie_notify.options import Options
from hie_notify.stages import PHASE_OF_STAGE, audiences_for

STAGES = ("plan", *PHASE_OF_STAGE, "cancelled")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=STAGES, help="plan (= announce), apply_started, ...")
    plan_source.add_arguments(parser, required=False)


def run(args: argparse.Namespace, options: Options) -> int:
    stage = "announce" if args.stage in ("plan", "announce") else args.stage
    run = stagerun.load(options, args, announce=stage == "announce")
    audiences = resolve(run.policy, run.result, run.change, run.environments)
    entries = run.ledger.read(run.change.id) if stage == "cancelled" else []
    messages = []
    blocks = []
    for audience in audiences_for(stage, audiences, entries):
        msg = run.renderer.render(stage, audience, run.context(audience))
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
                "email_html": msg.email_html,
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
