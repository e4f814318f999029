"""`hie-notify classify`: print the classification of a plan; sends nothing."""

from __future__ import annotations

import argparse

from hie_notify import output, plan_source
from hie_notify.audiences import told_by_digest
from hie_notify.context import prepare
from hie_notify.options import Options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    plan_source.add_arguments(parser, required=True)


def run(args: argparse.Namespace, options: Options) -> int:
    prep = prepare(options, plan_source.load(args, options.env), need_change=False)
    data = prep.result.to_json()
    # Audiences the weekly digest tells instead of each stage (`external_when: digest`).
    data["told_by_digest"] = told_by_digest(prep.policy, prep.result.categories)
    if prep.run is not None:
        data["run"] = {
            "id": prep.run.id,
            "status": prep.run.status,
            "workspace": prep.run.workspace_name,
            "plan_only": prep.run.plan_only,
            "is_destroy": prep.run.is_destroy,
        }
    output.emit(options, data, output.classification_text(prep.result, prep.policy))
    return 0
