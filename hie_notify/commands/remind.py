"""`hie-notify remind`: run by a scheduled pipeline (hourly), sends what the register owes now:
reminders before each window at the policy's offsets, "window opens" to the internal channels,
and overrun notices when a window ended with no completion or rollback recorded. Each is sent
once however often the job runs; after a missed day only the latest one due goes out."""

from __future__ import annotations

import argparse

from hie_notify import output
from hie_notify.errors import ServiceError
from hie_notify.options import Options
from hie_notify.register.jobs import remind


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # the global options say it all (--register, --now, --outbox, --dry-run)


def run(args: argparse.Namespace, options: Options) -> int:
    report = remind(options)
    data = report.to_json()
    failed = (
        ServiceError(f"{len(report.failed)} change(s) not fully reminded; a re-run sends the rest")
        if report.failed
        else None
    )
    if failed is not None:  # one JSON object under --format json, saying the error too
        data.update(error=f"error: {failed}", exit_code=failed.exit_code)
    output.emit(options, data, "\n".join(report.lines()))
    if failed is not None:
        raise failed
    return 0
