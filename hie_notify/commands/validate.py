"""`hie-notify validate`: check the policy and change files, and render every message template
the policy uses; exit 2 with every problem found."""

from __future__ import annotations

import argparse
import json
import sys

from hie_notify import stagerun, tokens
from hie_notify.change import ChangeRecord, load_change
from hie_notify.context import load_policy_for
from hie_notify.errors import InputError
from hie_notify.options import Options
from hie_notify.policy import Policy, load_policy
from hie_notify.template_check import check_templates


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options of its own: it checks --policy and --change


def run(args: argparse.Namespace, options: Options) -> int:
    problems: list[str] = []
    policy: Policy | None = None
    source = ""
    change: ChangeRecord | None = None
    try:
        loaded = load_policy_for(options)
        policy, source = loaded.policy, loaded.source
    except InputError as exc:
        problems.extend(exc.problems)
    else:
        problems.extend(check_templates(policy))
    if options.change is not None:
        try:
            change = load_change(options.change, policy or load_policy())
        except InputError as exc:
            problems.extend(exc.problems)
        else:
            if policy is not None and not stagerun.outbox_counts(policy, options):
                problems.extend(stagerun.unrouted_declared(policy, change, options))
            for gap in change.phase1_gaps():
                print(
                    f"warning: {options.change}: {gap} is missing; the gate will block until "
                    "it is given",
                    file=sys.stderr,
                )
    lines, token_problems = tokens.report(options.env, options.ledger)
    problems.extend(token_problems)
    if problems:
        raise InputError(problems)
    out = sys.stderr if options.format == "json" else sys.stdout
    print(f"ok: policy: {source}", file=out)
    if options.change is not None:
        print(f"ok: change record: {options.change}", file=out)
        if change is not None and change.owner:
            print(f"owner (responsible for its communication): {change.owner}", file=out)
    print("credentials:", file=out)
    for line in lines:
        print(f"  {line}", file=out)
    if options.format == "json":
        print(json.dumps({"valid": True, "policy_source": source, "credentials": lines}))
    return 0
