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
    data = report.to_json()
    failed = (
        ServiceError(f"{len(report.failed)} digest(s) not fully sent; a re-run sends the rest")
        if report.failed
        else None
    )
    if failed is not None:  # one JSON object under --format json, saying the error too
        data.update(error=f"error: {failed}", exit_code=failed.exit_code)
    output.emit(options, data, "\n".join(report.lines()))
    if failed is not None:
        raise failed
    return 0
