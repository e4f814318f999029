"""`hie-notify receive`: the service HCP Terraform calls: run tasks on `/run-task` (the gate,
where a branch cannot reach it), notification webhooks on `/notifications` (stage notices for
applies confirmed in HCP), `/healthz`. Settings from the environment only; see the README's
"Where the gate is enforced"."""

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

    settings = Settings.from_env(options.env, args.listen)
    logs.configure(settings.masker(options.env))
    Service(settings, options).serve()
    return 0
