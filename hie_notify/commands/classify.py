"""`hie-notify classify`: print the classification of a plan; sends nothing."""

from __future__ import annotations

import argparse
from pathlib import Path

from hie_notify import output
from hie_notify.classify import classify
from hie_notify.context import load_inputs
from hie_notify.options import Options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plan", required=True, type=Path, metavar="FILE", help="`terraform show -json` output"
    )


def run(args: argparse.Namespace, options: Options) -> int:
    policy, change = load_inputs(options)
    from hie_notify.terraform.plan import load_plan

    result = classify(load_plan(args.plan), policy, change)
    output.emit(options, result.to_json(), output.classification_text(result, policy))
    return 0
