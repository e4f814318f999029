"""`hie-notify classify`: print the classification of a plan; sends nothing."""

from __future__ import annotations

import argparse
from typing import Any

from hie_notify import output, plan_source
from hie_notify.audiences import told_by_digest
from hie_notify.context import Prepared, prepare
from hie_notify.errors import InputError
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
    if prep.change is not None:
        data["acknowledgements"] = _acknowledgements(prep, options)
    output.emit(options, data, output.classification_text(prep.result, prep.policy))
    return 0


def _acknowledgements(prep: Prepared, options: Options) -> list[dict[str, Any]]:
    """Per audience: who acknowledged the change's notices, open objections, resolutions (read
    from the ledger; none when there is no ledger yet)."""
    from hie_notify.context import acknowledgements
    from hie_notify.ledger import open_ledger

    assert prep.change is not None
    try:
        ledger = open_ledger(options.ledger, options.env, must_exist=True)
        entries = ledger.read(prep.change.id)
    except InputError:
        return []
    return acknowledgements(options, prep, entries).to_json()
