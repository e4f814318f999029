"""`hie-notify calendar [--from WHEN] [--to WHEN] [--format text|json|ics]`: registered changes
with their status, the project's deploy freezes and the bank holidays of the policy's region,
and the conflicts between them; `--format ics` is a feed calendar clients can subscribe to."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, time, timedelta

from hie_notify import output
from hie_notify.calendar import BusinessCalendar
from hie_notify.context import load_policy_for
from hie_notify.errors import InputError
from hie_notify.masking import Masker
from hie_notify.options import Options
from hie_notify.register import feed
from hie_notify.register.gitlab import freeze_periods
from hie_notify.register.store import register_of

DEFAULT_DAYS = 28
# `--format`, before or after the command (the first is the default).
OUTPUT_FORMATS = ("text", "json", "ics")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="start",
        metavar="WHEN",
        help="a date (local, from 00:00) or a time with offset (default: today)",
    )
    parser.add_argument(
        "--to",
        dest="end",
        metavar="WHEN",
        help=f"a date (included) or a time with offset (default: {DEFAULT_DAYS} days on)",
    )
    parser.add_argument(
        "--project",
        dest="projects",
        metavar="PATH",
        action="append",
        default=[],
        help="only the changes of this GitLab project (its CI_PROJECT_PATH, e.g. team-a/infra; "
        "repeatable), with their conflicts with any project's; default: every project's",
    )
    parser.add_argument(
        "--output", metavar="FILE", help="write the text, JSON or iCalendar feed to FILE"
    )


def when(value: str, option: str, calendar: BusinessCalendar, *, end: bool) -> datetime:
    """A date is local midnight in the policy's zone (an end date is included: its next
    midnight); a time needs an offset."""
    text = value.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        day += timedelta(days=1) if end else timedelta(0)
        return datetime.combine(day, time(0), calendar.zone)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InputError(
            f"{option}: expected a date like 2026-12-07 or a time with offset like "
            f"2026-12-07T09:00:00+00:00, got {value!r}"
        )
    return moment


def run(args: argparse.Namespace, options: Options) -> int:
    policy = load_policy_for(options).policy
    calendar = BusinessCalendar.from_policy(policy)
    now = options.clock()
    start = (
        when(args.start, "--from", calendar, end=False)
        if args.start
        else datetime.combine(calendar.local(now).date(), time(0), calendar.zone)
    )
    end = (
        when(args.end, "--to", calendar, end=True)
        if args.end
        else start + timedelta(days=DEFAULT_DAYS)
    )
    if end <= start:
        raise InputError(
            f"--to ({calendar.moment(end)}) must be after --from ({calendar.moment(start)})"
        )
    projects = [p.strip() for p in args.projects if p.strip()]
    if len(projects) != len(args.projects):
        raise InputError("--project: expected a project path like team-a/infra, got nothing")
    register = register_of(options, policy, only_reads=True)
    mask = Masker.from_env(options.env)
    notes = []
    changes = []
    if register is None:
        notes.append("no register (--register none, or a GitLab ledger without --register)")
    else:
        changes = register.between(start, end)
    periods = freeze_periods(options.env, options.settings)
    if periods is None:
        notes.append(
            "deploy freezes: GitLab is not configured (HIE_GITLAB_TOKEN, CI_API_V4_URL, "
            "CI_PROJECT_ID), none shown"
        )
    view = feed.build(
        changes,
        feed.freezes_between(periods or [], start, end),
        calendar,
        start,
        end,
        notes,
        projects,
    )
    if options.format == "ics":
        text = mask(feed.to_ics(view, calendar, f"Changes: {policy.organisation}", now))
        if args.output:
            _write(args.output, text)
        else:
            sys.stdout.write(text)
        return 0
    data = feed.to_json(view)
    text = feed.to_text(view, calendar)
    if args.output:
        import json

        _write(args.output, mask(json.dumps(data, indent=2) if options.format == "json" else text))
    output.emit(options, data, text)
    return 0


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    except OSError as exc:
        raise InputError(f"--output {path}: cannot write ({exc.strerror})") from None
