"""`hie-notify validate`: check the policy and change files; exit 2 with every problem found."""

from __future__ import annotations

import argparse
import sys

from hie_notify.change import load_change
from hie_notify.errors import InputError
from hie_notify.options import Options
from hie_notify.policy import Policy, load_policy
from hie_notify.policy.loader import DEFAULT_NAME


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options of its own: it checks --policy and --change


def run(args: argparse.Namespace, options: Options) -> int:
    problems: list[str] = []
    policy: Policy | None = None
    try:
        policy = load_policy(options.policy)
    except InputError as exc:
        problems.extend(exc.problems)
    if options.change is not None:
        try:
            change = load_change(options.change, policy or load_policy())
        except InputError as exc:
            problems.extend(exc.problems)
        else:
            for gap in change.phase1_gaps():
                print(
                    f"warning: {options.change}: {gap} is missing; the gate will block until "
                    "it is given",
                    file=sys.stderr,
                )
    if problems:
        raise InputError(problems)
    checked = [str(options.policy) if options.policy else DEFAULT_NAME]
    if options.change is not None:
        checked.append(str(options.change))
    print(f"ok: {', '.join(checked)}", file=sys.stderr if options.format == "json" else sys.stdout)
    if options.format == "json":
        print('{"valid": true}')
    return 0
