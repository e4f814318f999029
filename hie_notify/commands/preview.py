"""`hie-notify preview STAGE`: render every message of a stage, for every audience; send
nothing. STAGE is a command name (`plan`, `apply --status started`, `rollback --status failed`,
`complete`, `cancel`) or a stage name (`announce`, `apply_started`, ..., `cancelled`). The
messages are those of the transition as it would happen now, from the change's state replayed
from its ledger; a stage the state refuses is refused as its command would refuse it (exit 2)."""

from __future__ import annotations

import argparse
import json

from hie_notify import output, plan_source, stagerun
from hie_notify.audiences import resolve
from hie_notify.channels import Outgoing, configured_kinds
from hie_notify.errors import InputError
from hie_notify.lifecycle import TRANSITIONS
from hie_notify.options import Options
from hie_notify.stages import audiences_for

STAGE_NAMES = TRANSITIONS
COMMANDS = {"plan": "announce", "complete": "complete", "cancel": "cancelled"}
WITH_STATUS = ("apply", "rollback")
STATUSES = ("started", "succeeded", "failed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "stage",
        choices=(*COMMANDS, *WITH_STATUS, *STAGE_NAMES),
        metavar="STAGE",
        help="plan, apply --status S, rollback --status S, complete or cancel (the commands), "
        f"or a stage name: {', '.join(STAGE_NAMES)}",
    )
    parser.add_argument(
        "--status", choices=STATUSES, help="with apply or rollback: which of its stages"
    )
    plan_source.add_arguments(parser, required=False)


def stage_of(name: str, status: str | None) -> str:
    """The stage a command name (with --status) or a stage name means."""
    if name in WITH_STATUS:
        if status is None:
            raise InputError(f"preview {name} needs --status started, succeeded or failed")
        return f"{name}_{status}"
    if status is not None:
        raise InputError(f"preview {name}: --status goes with apply or rollback only")
    return COMMANDS.get(name, name)


def run(args: argparse.Namespace, options: Options) -> int:
    stage = stage_of(args.stage, args.status)
    run = stagerun.load(options, args, announce=stage == "announce")
    transition = stagerun.begin(run, stage)  # as the command would: refused, exit 2
    life = transition.facts
    # What the command puts in `status` that the lifecycle decides (`complete` after a rollback
    # is the withdrawn notice).
    status = {"rolled_back": transition.after.rolled_back} if stage == "complete" else {}
    audiences = resolve(run.policy, run.result, run.change, run.environments)
    entries = run.ledger.read(run.change.id) if stage == "cancelled" else []
    messages = []
    blocks = []
    for audience in audiences_for(stage, audiences, entries):
        msg = run.renderer.render(stage, audience, run.context(audience, status, lifecycle=life))
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
    entries = run.ledger.read(run.change.id) if stage == "cancelled" else []
    payloads = stagerun.stage_channels(run, {}).payloads()
    window = (run.change.window.start, run.change.window.end) if run.change.window else None
    for audience in stagerun.integrations(run, stage, entries):
        kind = configured_kinds(run.policy, audience)[0]
        msg = run.renderer.render(stage, audience, run.context(audience, status, lifecycle=life))
        outgoing = Outgoing(run.change.id, msg, "(key)", kind, (), None, window, life["state"])
        payload = payloads[kind](outgoing)
        messages.append({"audience": audience.id, "channels": [kind], "request": payload})
        blocks.append(
            f"{'=' * 78}\n{audience.label} ({audience.id}) via {kind}\n{'-' * 78}\n"
            + json.dumps(payload, indent=2, ensure_ascii=False)
        )
    if not blocks:
        blocks.append(f"No audience hears {stage} for this change.")
    state = f"{transition.before.state.value} -> {transition.step.after.value}"
    if transition.step.kind != "new":
        state += f" ({transition.step.kind})"
    output.emit(
        options,
        {"stage": stage, "lifecycle": life, "messages": messages},
        f"{run.change.id}: {stage.replace('_', ' ')}: {state}\n" + "\n".join(blocks),
    )
    return 0
