"""`hie-notify plan`: classify, post the plan summary to the merge request, send the
pre-deployment notices the policy requires, record them. Phase 1 before Phase 2: while any
check the gate can decide before the window fails (the change record's Phase 1 fields the
policy `requires`, customers unknown, the uptime budget, on call out of hours, Jira, conflicts)
nothing is sent to customers or stakeholders: the internal channels hear "planning incomplete"
once per set of missing items, the merge request note lists them, and it exits 2."""

from __future__ import annotations

import argparse
from pathlib import Path

from hie_notify import output, plan_source, stagerun
from hie_notify.errors import InputError
from hie_notify.options import Options
from hie_notify.stages import ANNOUNCE, window_problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    plan_source.add_arguments(parser, required=True)
    parser.add_argument(
        "--terraform-report",
        type=Path,
        default=Path("hie-notify-terraform-report.json"),
        metavar="FILE",
        help="GitLab artifacts:reports:terraform file to write (default %(default)s)",
    )


def run(args: argparse.Namespace, options: Options) -> int:
    run = stagerun.load(options, args, announce=True)
    result, change = run.result, run.change
    if not result.has_changes and result.declared_type is None:
        if not options.dry_run:
            stagerun.terraform_report(result, args.terraform_report)
        output.emit(
            options,
            {"stage": ANNOUNCE, "delivered": [], "reasons": list(result.reasons)},
            "Nothing to announce: " + result.reasons[0],
        )
        return 0
    with stagerun.holding(run):
        # An announcement the change's state refuses writes nothing (exit 2).
        transition = stagerun.begin(run, ANNOUNCE)
        if not options.dry_run:
            stagerun.terraform_report(result, args.terraform_report)
        # A re-run (the default branch's pipeline, at the window) re-announces nothing: only an
        # announcement that would go out now is held to the window rules.
        announced = _announced(run)
        problems = [] if announced else window_problems(run.policy, change, result, options.clock())
        if problems:
            raise InputError([f"{options.change}: {p}" for p in problems])
        # Phase 1 before Phase 2: while anything the gate can decide before the window blocks,
        # nobody outside is told (exit 2, naming each and where to fix it).
        missing = () if announced else stagerun.planning_check(run)
        if missing:
            stagerun.hold_back(run, missing)
        report = stagerun.send(run, ANNOUNCE, {}, transition)
    extra = [stagerun.summary_note(run, report)]
    data, lines = stagerun.notice_window(run, report, blocked="it")
    extra += lines
    return stagerun.emit_report(options, run, report, extra, data)


def _announced(run: stagerun.StageRun) -> bool:
    """Was this plan already announced for this window?"""
    window = run.change.window
    start, end = (window.start.isoformat(), window.end.isoformat()) if window else ("", "")
    return any(
        e.stage == ANNOUNCE
        and e.fingerprint == run.result.fingerprint
        and (e.window_start, e.window_end) == (start, end)
        for e in run.ledger.read(run.change.id)
    )
