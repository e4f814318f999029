"""`hie-notify postmortem [--closed --link URL]`: the change's post-mortem (owed, opened,
closed, when due, overdue); with `--closed`, record that it was held, in the ledger and the
change register, so `remind` stops asking for it and the report counts it."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

from hie_notify import output, timetext
from hie_notify.errors import InputError
from hie_notify.options import Options
from hie_notify.register.jobs import postmortem


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--closed", action="store_true", help="record that the post-mortem was held and closed"
    )
    parser.add_argument(
        "--link",
        metavar="URL",
        help="with --closed: the post-mortem (its GitLab or Jira issue, or Confluence page)",
    )


def run(args: argparse.Namespace, options: Options) -> int:
    link = (args.link or "").strip()
    if args.link is not None and not _is_url(link):
        raise InputError(
            "--link: expected an http(s) URL of the post-mortem, like "
            "https://gitlab.example.com/group/project/-/issues/12"
        )
    if args.closed and not link:
        raise InputError("--closed: give --link URL, where the post-mortem is written up")
    if link and not args.closed:
        raise InputError("--link: only with --closed")
    state = postmortem(options, closed=args.closed, link=link)
    lines = [f"{state.change_id}: post-mortem {state.state}"]
    if state.owed:
        lines.append(f"  owed because {'; '.join(state.owed)}")
    if state.due:
        due = timetext.moment(state.due, state.time_zone)
        lines.append(f"  due {due}" + (" (OVERDUE)" if state.overdue else ""))
    if state.recorded:
        lines.append(f"  closing recorded: {state.link}")
    lines += [f"  {n}" for n in state.notes]
    output.emit(options, state.to_json(), "\n".join(lines))
    return 0


def _is_url(text: str) -> bool:
    if len(text) > 2000 or any(c.isspace() for c in text):
        return False
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
