"""`hie-notify watch`: follow an HCP Terraform run until it is final, sending each apply stage
once (bounded by --timeout: giving up before the run is final is exit 3, so a pipeline can tell
"finished" from "gave up")."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from hie_notify import output, plan_source, stagerun
from hie_notify.errors import EXIT_OK, EXIT_SERVICE, InputError
from hie_notify.options import Options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    plan_source.add_arguments(parser, required=False)
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600,
        metavar="SECONDS",
        help="stop watching after this long; exit 3 if the run is not final by then "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=15,
        metavar="SECONDS",
        help="seconds between looks at the run (default %(default)s)",
    )


def run(args: argparse.Namespace, options: Options) -> int:
    if not plan_source.wants_hcp(args, options.env):
        raise InputError(
            "watch follows an HCP Terraform run: give --run-id, --workspace or HIE_TFC_RUN_ID"
        )
    from hie_notify.terraform.hcp import HcpClient

    stage_run = stagerun.load(options, args)
    assert stage_run.run is not None
    client = HcpClient.from_env(options.env)
    deadline = time.monotonic() + args.timeout
    lines: list[str] = []
    sent: list[str] = []
    failed: list[str] = []
    current = stage_run.run
    while True:
        stage = current.stage
        if stage is not None and stage not in sent:
            error = (
                current.error_summary or f"the run ended {current.status}"
                if stage == "apply_failed"
                else ""
            )
            report, extra = stagerun.send_status(replace(stage_run, run=current), stage, error)
            sent.append(stage)
            failed += [f"{stage}: {f.audience} via {f.channel}: {f.why}" for f in report.failed]
            lines += [
                f"{stage}:",
                *report.lines(stage_run.calendar.local),
                *(f"  {x}" for x in extra),
            ]
        elif not current.status_known:
            lines.append(
                f"run {current.id} is in status {current.status!r}, which HCP "
                "Terraform does not document: no notice for it"
            )
        if current.final or time.monotonic() >= deadline:
            break
        time.sleep(args.interval)
        current = client.get_run(current.id)
    final = current.final
    if not final:
        lines.append(
            f"stopped watching after {args.timeout:.0f} s; run {current.id} is still "
            f"{current.status}"
        )
    output.emit(
        options,
        {
            "run_id": current.id,
            "status": current.status,
            "final": final,
            "stages": sent,
            "failed": failed,
        },
        "\n".join(lines) or f"run {current.id}: {current.status}, nothing to send",
    )
    if failed:
        return output.failure(
            options,
            f"{len(failed)} delivery(ies) failed; a re-run sends only what is missing: "
            + "; ".join(failed),
        )
    # Gave up: the run's outcome is not known (like a service still failing, exit 3).
    return EXIT_OK if final else EXIT_SERVICE
