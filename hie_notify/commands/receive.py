"""`hie-notify receive`: the service HCP Terraform calls: run tasks on `/run-task` (the gate,
where a branch cannot reach it), notification webhooks on `/notifications` (stage notices for
applies confirmed in HCP), `/healthz`. Settings from the environment only; see the run task guide
(the README's "From nothing to a mandatory run task", docs/run-task.md)."""

from __future__ import annotations

import argparse

from hie_notify.options import Options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default=None,
        metavar="HOST:PORT",
        help="address to listen on (default HIE_LISTEN, else 127.0.0.1:8080)",
    )
    parser.set_defaults(plan_required=False)


def run(args: argparse.Namespace, options: Options) -> int:
    from hie_notify.service import logs
    from hie_notify.service.server import Service
    from hie_notify.service.settings import Settings

    settings = Settings.from_env(options.env, args.listen, options.settings)
    refuse_trial_switches(options)
    logs.configure(settings.masker(options.env))
    Service(settings, options).serve()
    return 0


def refuse_trial_switches(options: Options) -> None:
    """The service enforces the gate where a branch cannot reach: a pinned clock would decide
    every run task at that time (a window that opens tomorrow would pass today) and a dry run
    would send nothing HCP's runs are owed. Both are refused at start (exit 2) unless the
    operator's policy declares a trial."""
    from hie_notify.errors import InputError
    from hie_notify.policy.protected import load_effective

    refused = []
    if options.now is not None:
        refused.append("--now / HIE_NOW")
    if options.dry_run:
        refused.append("--dry-run / HIE_DRY_RUN")
    if not refused:
        return
    loaded = load_effective(options.policy, options.env, options.settings)
    if loaded.policy.trial:
        return
    raise InputError(
        [
            f"{name}: refused by receive (the service decides real runs); the policy "
            f"({loaded.source}) does not declare trial: true"
            for name in refused
        ]
    )
