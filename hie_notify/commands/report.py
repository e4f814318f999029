"""`hie-notify report --from DATE --to DATE [--format html|csv|json] [--output FILE]`: was the
policy followed? Every change in the range from the register, with the notice each audience
needed and got, breaches, emergencies, post-mortems and downtime against the uptime promise."""

from __future__ import annotations

import argparse
import sys

from hie_notify import progress
from hie_notify.calendar import BusinessCalendar
from hie_notify.commands.calendar import when
from hie_notify.context import load_policy_for
from hie_notify.errors import InputError
from hie_notify.masking import Masker
from hie_notify.options import Options
from hie_notify.register.store import register_of
from hie_notify.report.generate import FORMATS, generate

# `--format`, before or after the command (the first is the default).
OUTPUT_FORMATS = FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="start",
        metavar="DATE",
        required=True,
        help="first day (local, from 00:00) or a time with offset",
    )
    parser.add_argument(
        "--to",
        dest="end",
        metavar="DATE",
        required=True,
        help="last day (included) or a time with offset",
    )
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE")


def run(args: argparse.Namespace, options: Options) -> int:
    policy = load_policy_for(options).policy
    calendar = BusinessCalendar.from_policy(policy)
    start = when(args.start, "--from", calendar, end=False)
    end = when(args.end, "--to", calendar, end=True)
    if end <= start:
        raise InputError(
            f"--to ({calendar.moment(end)}) must be after --from ({calendar.moment(start)})"
        )
    register = register_of(options, policy, required_by="report", only_reads=True)
    assert register is not None
    kind = options.format if options.format in FORMATS else FORMATS[0]
    report, text = generate(
        register,
        policy=policy,
        calendar=calendar,
        start=start,
        end=end,
        clock=options.clock,
        kind=kind,
    )
    text = Masker.from_env(options.env)(text)
    progress.current().finish()  # a live progress line is cleared before the report
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        except OSError as exc:
            raise InputError(f"--output {args.output}: cannot write ({exc.strerror})") from None
        counts = {r.metric: int(r.value) for r in report.tables["summary"]}
        print(
            f"report ({kind}) written to {args.output}: {counts['changes']} changes, "
            f"{counts['breaches']} breaches, {counts['postmortems_overdue']} post-mortems "
            f"overdue, {counts['customer_months_over_budget']} customer-months over budget",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
    return 0
