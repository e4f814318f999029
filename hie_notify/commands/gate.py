"""`hie-notify gate`: may the apply go ahead now? Exit 1 with every reason when it may not.

The gate fails closed: the dotenv file says HIE_GATE_ALLOWED=false until a decision allows the
apply, so a gate that cannot read its policy, change record, plan or ledger blocks.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from hie_notify import output, plan_source, stagerun
from hie_notify.calendar import BusinessCalendar
from hie_notify.gate import TRIAL_BANNER, GateDecision
from hie_notify.options import Options
from hie_notify.switches import in_gitlab_ci


def add_arguments(parser: argparse.ArgumentParser) -> None:
    plan_source.add_arguments(parser, required=True)
    parser.add_argument(
        "--dotenv",
        type=Path,
        default=Path("hie-notify-gate.env"),
        metavar="FILE",
        help="dotenv file for later jobs (default hie-notify-gate.env)",
    )


def run(args: argparse.Namespace, options: Options) -> int:
    # A dry run writes no file, the dotenv included. In GitLab CI the gate refuses --dry-run
    # (unless the policy declares a trial): the dotenv says blocked first, as for any failure.
    if not options.dry_run or in_gitlab_ci(options.env):
        output.write_dotenv(args.dotenv, {"HIE_GATE_ALLOWED": "false"})
    checked = stagerun.check_gate(options, plan_source.load(args, options.env))
    if not options.dry_run:
        output.write_dotenv(args.dotenv, checked.dotenv)
    # The log-section stamps: --now when given, else the machine clock, read through Options.
    text = render_text(checked.decision, checked.calendar, options.env, options.clock())
    text += f"\nPolicy: {checked.policy_source}"
    if checked.note:
        text += "\n" + checked.note
    if options.dry_run:
        text += f"\nDry run: {args.dotenv} not written"
    output.emit(options, checked.data, text)
    return 0 if checked.decision.allowed else 1


def render_text(
    decision: GateDecision, cal: BusinessCalendar, env: Mapping[str, str], now: datetime
) -> str:
    parts = [TRIAL_BANNER] if decision.trial else []
    if decision.allowed:
        parts += ["ALLOWED: the apply may go ahead."]
    else:
        parts += ["BLOCKED: the apply may not run."]
        parts.append(
            output.section(
                env,
                "hie_gate_reasons",
                f"Why it is blocked ({len(decision.reasons)}):",
                "\n".join(f"  - {r}" for r in decision.reasons),
                collapsed=False,
                now=now,
            )
        )
    if decision.warnings:
        parts.append(
            output.section(
                env,
                "hie_gate_warnings",
                f"Warnings ({len(decision.warnings)}):",
                "\n".join(f"  - {w}" for w in decision.warnings),
                collapsed=False,
                now=now,
            )
        )
    rows = []
    for r in decision.requirements:
        told = cal.moment(r.given_at) if r.given_at else "not told"
        mark = "ok" if r.met else "NO"
        only = "  (outbox only)" if r.outbox_only and r.given_at else ""
        rows.append(f"  {mark:3} {r.label:32} minimum {r.minimum:>5}  told: {told}{only}")
        # What the services answered (an outbox file's path is no receipt: JSON has it).
        rows.extend(
            f"        receipt: {receipt}"
            for receipt in r.receipts
            if not receipt.startswith("outbox ")
        )
    if rows:
        parts.append(
            output.section(
                env,
                "hie_gate_notices",
                "Notice by audience:",
                "\n".join(rows),
                collapsed=decision.allowed,
                now=now,
            )
        )
    if decision.earliest_start and not decision.allowed:
        parts.append(f"Earliest allowed start: {cal.moment(decision.earliest_start)}")
    parts.extend(f"Note: {note}" for note in decision.notes if note != TRIAL_BANNER)
    return "\n".join(parts)
