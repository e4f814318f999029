"""`hie-notify receive`: an HTTP endpoint for HCP Terraform notification webhooks, so applies
confirmed in the HCP UI also produce notices. Needs HIE_TFC_NOTIFICATION_TOKEN (the token set on
the workspace's notification configuration); bodies not signed with it are refused (401)."""

from __future__ import annotations

import argparse
import sys

from hie_notify import stagerun
from hie_notify.errors import HieError, InputError
from hie_notify.options import Options
from hie_notify.receiver import Event


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="address to listen on (default %(default)s)",
    )
    parser.set_defaults(plan_required=False)


def run(args: argparse.Namespace, options: Options) -> int:
    token = options.env.get("HIE_TFC_NOTIFICATION_TOKEN")
    if not token:
        raise InputError(
            "receive needs HIE_TFC_NOTIFICATION_TOKEN: the token of the "
            "workspace's notification configuration"
        )
    host, _, port = args.listen.rpartition(":")
    if not port.isdigit():
        raise InputError(f"--listen: expected HOST:PORT, got {args.listen!r}")
    from hie_notify.receiver import serve

    def on_event(event: Event) -> None:
        try:
            print(stagerun.handle_event(event, args, options), file=sys.stderr)
        except HieError as exc:
            print(f"{event.trigger}: {exc}", file=sys.stderr)

    print(f"listening on {host}:{port} for HCP Terraform notifications", file=sys.stderr)
    serve(host or "127.0.0.1", int(port), token, on_event)
    return 0
