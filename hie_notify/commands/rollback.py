"""`hie-notify rollback --status started|succeeded|failed`: stage notices for a rollback."""

from __future__ import annotations

import argparse

from hie_notify.commands.apply import STATUSES, add_stage_arguments, run_status_stage
from hie_notify.options import Options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser, STATUSES, required=True)


def run(args: argparse.Namespace, options: Options) -> int:
    return run_status_stage("rollback", args, options)
