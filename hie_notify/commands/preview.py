"""`hie-notify preview STAGE`: render every message of a stage, for every audience; send
nothing. STAGE is a command name (`plan`, `apply --status started`, `rollback --status failed`,
`complete`, `cancel`) or a stage name (`announce`, `apply_started`, ..., `cancelled`). The
messages are those of the transition as it would happen now, from the change's state replayed
from its ledger; a stage the state refuses is refused as its command would refuse it (exit 2).

The notices that are no transition are previewed too, as they would read now: `reminder`,
`window_opens` and `overrun` (what `remind` sends), and `update --message TEXT`."""

from __future__ import annotations

import argparse
import json
from datetime import datetime

from hie_notify import output, plan_source, stagerun
from hie_notify.audiences import resolve
from hie_notify.channels import Outgoing, configured_kinds
from hie_notify.channels.alerts import mention
from hie_notify.errors import InputError
from hie_notify.lifecycle import TRANSITIONS, LifecycleError, as_it_is
from hie_notify.notify import told_before_now, told_window
from hie_notify.options import Options
from hie_notify.records import Audience, Entry
from hie_notify.register import reminders
from hie_notify.register.jobs import UPDATE
from hie_notify.render import Rendered
from hie_notify.stages import audiences_for

STAGE_NAMES = TRANSITIONS
# Notices that change no state: what `remind` sends, and `update`.
NOTICES = (reminders.REMINDER, reminders.WINDOW_OPENS, reminders.OVERRUN, UPDATE)
COMMANDS = {"plan": "announce", "complete": "complete", "cancel": "cancelled"}
WITH_STATUS = ("apply", "rollback")
STATUSES = ("started", "succeeded", "failed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "stage",
        choices=(*COMMANDS, *WITH_STATUS, *STAGE_NAMES, *NOTICES),
        metavar="STAGE",
        help="plan, apply --status S, rollback --status S, complete or cancel (the commands), "
        f"a stage name: {', '.join(STAGE_NAMES)}; or a notice: {', '.join(NOTICES)}",
    )
    parser.add_argument("--message", metavar="TEXT", help="with update: the update's text")
    parser.add_argument(
        "--status", choices=STATUSES, help="with apply or rollback: which of its stages"
    )
    plan_source.add_arguments(parser, required=False)


def no_plan(args: argparse.Namespace, options: Options) -> bool:
    """Neither a plan file nor an HCP run is given."""
    return args.plan is None and not plan_source.wants_hcp(args, options.env)


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
    if stage in NOTICES:
        return _notice(args, options, stage)
    if args.message is not None:
        raise InputError(f"preview {args.stage}: --message goes with update only")
    if stage == "announce" and args.stage == "announce" and no_plan(args, options):
        run = stagerun.load_planless(options)  # as `hie-notify announce` (no plan) would
    else:
        run = stagerun.load(options, args, announce=stage == "announce")
    transition = stagerun.begin(run, stage)  # as the command would: refused, exit 2
    life = transition.facts
    # What the command puts in `status` that the lifecycle decides (`complete` after a rollback
    # is the withdrawn notice).
    status: dict[str, object] = {}
    if stage == "complete":
        status = {
            "rolled_back": transition.after.rolled_back,
            # who checked the key user flows, as `complete` takes it by default
            "verified_by": options.env.get("GITLAB_USER_LOGIN", "").strip(),
        }
    audiences = resolve(run.policy, run.result, run.change, run.environments)
    entries = run.ledger.read(run.change.id) if stage == "cancelled" else []
    messages = []
    blocks = []
    told = run.ledger.read(run.change.id) if stage == "announce" else []
    for audience in audiences_for(stage, audiences, entries):
        facts = life
        if stage == "announce":  # as `plan` tells each audience: from what it was told before
            history = sorted((e for e in told if e.audience == audience.id), key=_when)
            facts = {
                **life,
                "moved_from": told_window(history, run.window),
                "told_before": told_before_now(history),
            }
        msg = run.renderer.render(stage, audience, run.context(audience, status, lifecycle=facts))
        message, block = _shown(run, audience, msg)
        messages.append(message)
        blocks.append(block)
    entries = run.ledger.read(run.change.id) if stage == "cancelled" else []
    payloads = stagerun.stage_channels(run, {}).payloads()
    window = (run.change.window.start, run.change.window.end) if run.change.window else None
    for audience in stagerun.integrations(run, stage, entries):
        kind = configured_kinds(run.policy, audience)[0]
        msg = run.renderer.render(stage, audience, run.context(audience, status, lifecycle=life))
        outgoing = Outgoing(run.change.id, msg, "(key)", kind, (), None, window, life["state"])
        payload = payloads[kind](outgoing)
        messages.append(
            {
                "audience": audience.id,
                "kind": audience.kind,
                "channels": [kind],
                "request": payload,
            }
        )
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


def _notice(args: argparse.Namespace, options: Options, stage: str) -> int:
    """A notice that makes no transition, as it would read now: the change's state stays as its
    ledger replays it (`lifecycle.as_it_is`), and its audiences are those `remind` (or `update`)
    would choose for that state."""
    text = " ".join((args.message or "").split())
    if stage == UPDATE and not text:
        raise InputError("preview update needs --message TEXT (the update, as it would be sent)")
    if stage != UPDATE and args.message is not None:
        raise InputError(f"preview {stage}: --message goes with update only")
    run = stagerun.load(options, args)
    life = stagerun.lifecycle_now(run)
    if life.ended:
        raise LifecycleError(
            f"`{stage}`: {run.change.id} is {life.state.value}: it has ended, nothing would be sent"
        )
    facts = as_it_is(life, stage)
    now = options.clock()
    resolved = resolve(run.policy, run.result, run.change, run.environments)
    window = run.change.window
    status: dict[str, object] = {"register_status": life.state.value, "starts_in": "now"}
    chosen: list[Audience]
    if stage == UPDATE:
        chosen = resolved.for_phase("during")
        status = {"detail": text}
    elif stage == reminders.OVERRUN:
        chosen = [a for a in resolved.audiences if reminders.hears_overrun(a, life.started)]
    elif stage == reminders.WINDOW_OPENS:
        chosen = [a for a in resolved.audiences if a.kind == "internal"]
    else:
        kind = run.result.change_type
        rules = run.policy.change_type(kind).reminders if kind else None
        offsets = {
            "internal": rules.internal if rules else [],
            "customer": rules.customer if rules else [],
            "stakeholder": rules.stakeholder if rules else [],
        }
        chosen = [a for a in resolved.audiences if reminders.hears_reminder(a, offsets)]
        if window is not None:
            status["starts_in"] = reminders.time_left(window.start - now)
    if stage != UPDATE and window is None:
        raise InputError(
            f"preview {stage}: {run.change.id} has no window: `remind` sends no {stage} for it"
        )
    messages, blocks = [], []
    for audience in chosen:
        msg = run.renderer.render(stage, audience, run.context(audience, status, lifecycle=facts))
        message, block = _shown(run, audience, msg)
        messages.append(message)
        blocks.append(block)
    if not blocks:
        blocks.append(f"No audience hears {stage} for this change.")
    output.emit(
        options,
        {"stage": stage, "lifecycle": facts, "messages": messages},
        f"{run.change.id}: {stage.replace('_', ' ')}: {life.state.value} (no transition)\n"
        + "\n".join(blocks),
    )
    return 0


def _shown(
    run: stagerun.StageRun, audience: Audience, msg: Rendered
) -> tuple[dict[str, object], str]:
    """A rendered message as the JSON lists it, and as the text output shows it."""
    kinds = configured_kinds(run.policy, audience)
    fmt = "slack" if "slack" in kinds and audience.slack_channel else "text"
    message: dict[str, object] = {
        "audience": audience.id,
        "kind": audience.kind,
        "channels": kinds,
        "subject": msg.subject,
        "text": msg.body("text"),
        "slack": msg.body("slack"),
        "html": msg.body("html"),
        "email_html": msg.email_html,
        "markdown": msg.body("markdown"),
    }
    # An alert's Slack post mentions the channel (channels.alerts): say so.
    alert = (
        mention(run.policy, run.result.change_type, msg.stage, audience) if fmt == "slack" else ""
    )
    if alert:
        message["alert"] = alert
    block = (
        f"{'=' * 78}\n{audience.label} ({audience.id}) via {', '.join(kinds)}\n"
        + (f"Alert: {alert}\n" if alert else "")
        + f"Subject: {msg.subject}\n{'-' * 78}\n{msg.body(fmt).rstrip()}"
    )
    return message, block


def _when(entry: Entry) -> datetime:
    return entry.delivered_at
