"""`hie-notify apply [--status started|succeeded|failed]`: stage notices for the apply.

Without --status the status is read from the HCP Terraform run (--run-id, HIE_TFC_RUN_ID or the
`run_id` that tfc-workflows-gitlab jobs export).
"""

from __future__ import annotations

import argparse

from hie_notify import output, plan_source, stagerun
from hie_notify.errors import InputError
from hie_notify.options import Options

STATUSES = ("started", "succeeded", "failed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser, STATUSES, required=False)


def add_stage_arguments(
    parser: argparse.ArgumentParser, statuses: tuple[str, ...], *, required: bool
) -> None:
    parser.add_argument("--status", choices=statuses, required=required, help="what happened")
    plan_source.add_arguments(parser, required=False)
    parser.add_argument("--error", metavar="TEXT", help="error summary for internal audiences")
    parser.add_argument("--detail", metavar="TEXT", help="a line of detail for every audience")


def run(args: argparse.Namespace, options: Options) -> int:
    return run_status_stage("apply", args, options)


def run_status_stage(prefix: str, args: argparse.Namespace, options: Options) -> int:
    run = stagerun.load(options, args)
    status_word = args.status
    error = args.error or ""
    if status_word is None:
        if run.run is None:
            raise InputError(
                "--status is needed, or an HCP Terraform run (--run-id, HIE_TFC_RUN_ID) to "
                "read it from"
            )
        stage = run.run.stage
        if stage is None:
            why = (
                "a speculative (plan-only) run is never an apply"
                if run.run.plan_only
                else f"status {run.run.status!r} is not one HCP Terraform documents"
                if not run.run.status_known
                else f"status {run.run.status!r} is not an apply stage"
            )
            output.emit(
                options,
                {"stage": None, "run_status": run.run.status, "delivered": [], "reason": why},
                f"{run.change.id}: run {run.run.id} is {run.run.status}: no notice ({why})",
            )
            return 0
        status_word = stage.removeprefix("apply_")
    if status_word == "failed" and run.run is not None and not error:
        error = run.run.error_summary or f"the HCP Terraform run ended {run.run.status}"
    report, extra = stagerun.send_status(run, f"{prefix}_{status_word}", error, args.detail or "")
    return stagerun.emit_report(options, run, report, extra)
