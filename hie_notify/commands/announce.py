"""`hie-notify announce`: announce a change that has no plan (an incident, an emergency "as soon
as identified", a change that is not Terraform) to the audiences the policy names for its
declared type, record it as plan-less and register it. A plan attached later (`hie-notify plan`
on the same change id) keeps this notice at the gate only while it is no more severe than what
was announced: its change type no stricter, not newly service-impacting, every audience it
needs told."""

from __future__ import annotations

import argparse

from hie_notify import stagerun
from hie_notify.errors import InputError
from hie_notify.options import Options
from hie_notify.stages import ANNOUNCE, window_problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # the change record (--change) says it all: its declared type, window, customers


def run(args: argparse.Namespace, options: Options) -> int:
    del args
    run = stagerun.load_planless(options)
    change = run.change
    with stagerun.holding(run):
        transition = stagerun.begin(run, ANNOUNCE)  # refused by the change's state: exit 2
        problems = window_problems(run.policy, change, run.result, options.clock())
        if problems:
            raise InputError([f"{options.change}: {p}" for p in problems])
        # Phase 1 before Phase 2, as `plan` (an emergency is never held back).
        missing = stagerun.planning_check(run)
        if missing:
            stagerun.hold_back(run, missing)
        report = stagerun.send(run, ANNOUNCE, {}, transition)
    extra = [stagerun.summary_note(run, report)]
    window, lines = stagerun.notice_window(run, report, blocked="its apply")
    data = {"planless": True, "service_impacting": run.result.service_impacting, **window}
    extra += lines
    extra.append(
        "Announced without a plan: a plan attached later (`hie-notify plan`) keeps this notice "
        "only while its change type is no stricter and it is not newly service-impacting."
    )
    return stagerun.emit_report(options, run, report, extra, data)
