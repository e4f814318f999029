"""`hie-notify digest`: run by a scheduled pipeline (weekly, or more often: each digest goes out
once a week however often it runs). Sends the weekly summary of last week's changes and this
week's, the meeting's agenda dated for its next sitting, and the stakeholder groups' weekly
update for change types whose policy says `external_when: digest`."""

from __future__ import annotations

import argparse

from hie_notify import output
from hie_notify.errors import ServiceError
from hie_notify.options import Options
from hie_notify.register.digest import digest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # the global options say it all (--register, --now, --outbox, --dry-run)


def run(args: argparse.Namespace, options: Options) -> int:
    report = digest(options)
    output.emit(options, report.to_json(), "\n".join(report.lines()))
    if report.failed:
        raise ServiceError(
            f"{len(report.failed)} digest(s) not fully sent; a re-run sends the rest"
        )
    return 0
