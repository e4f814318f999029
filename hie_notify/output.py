"""Where results go: one JSON object on stdout with `--format json`, human text otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from hie_notify import progress
from hie_notify.classify import Classification
from hie_notify.options import Options
from hie_notify.policy import Policy
from hie_notify.switches import in_gitlab_ci


def emit(options: Options, data: dict[str, Any], text: str) -> None:
    """JSON on stdout and the text on stderr for `--format json`; the text on stdout otherwise.
    Both are masked: no secret from the environment is ever printed."""
    from hie_notify.masking import Masker

    mask = Masker.from_env(options.env)
    progress.current().finish()  # a live progress line is cleared before the output
    if options.format == "json":
        sys.stdout.write(mask(json.dumps(data, indent=2, sort_keys=False)) + "\n")
        sys.stderr.write(mask(text) + "\n")
    else:
        sys.stdout.write(mask(text) + "\n")


def failure(options: Options, message: str) -> int:
    """After the report was printed: say on stderr, masked, that some of it failed; exit 3.
    (Not an exception: the report is the output, and nothing else goes to stdout.)"""
    from hie_notify.errors import EXIT_SERVICE
    from hie_notify.masking import Masker

    progress.current().finish()
    sys.stderr.write(f"hie-notify: error:\n  {Masker.from_env(options.env)(message)}\n")
    return EXIT_SERVICE


def classification_text(result: Classification, policy: Policy) -> str:
    s = result.summary
    if result.change_type is None:
        head = "No change to announce."
    else:
        title = policy.change_type(result.change_type).title
        impact = "service-impacting" if result.service_impacting else "not service-impacting"
        head = f"Change type: {result.change_type} ({title}), {impact}"
    lines = [
        head,
        f"Plan: {s['add']} to add, {s['change']} to change, {s['destroy']} to destroy, "
        f"{s['replace']} to replace, {s['import']} to import, {s['move']} moved, "
        f"{s['forget']} to forget ({s['no_op']} unchanged, {s['read']} read)",
    ]
    if len(result.categories) > 1:
        lines.append(f"Categories: {', '.join(result.categories)}")
    for n in result.notice:
        who = "internal channels" if n.audience == "internal" else "customers/stakeholders"
        lines.append(
            f"Notice to {who}: at least {n.minimum.describe()}, "
            f"{n.recommended.describe()} recommended ({n.change_type})"
        )
    for c in result.contacts:
        lines.append(
            f"Notice to {c.name} (direct contact): at least {c.minimum.describe()}, "
            f"{c.recommended.describe()} recommended, of {', '.join(c.resources)}"
        )
    lines.append("Why:")
    lines.extend(f"  - {r}" for r in result.reasons)
    return "\n".join(lines)


def section(
    env: Mapping[str, str], name: str, header: str, body: str, collapsed: bool, now: datetime
) -> str:
    """A GitLab collapsible log section when running in GitLab CI; plain text elsewhere.

    The markers' timestamp is `now` (the command's time, `--now` when given): the section is
    printed at once, so start and end carry the same stamp and no clock needs reading here."""
    if not in_gitlab_ci(env):
        return f"{header}\n{body}" if body else header
    stamp = int(now.timestamp())
    opt = "[collapsed=true]" if collapsed else ""
    return (
        f"\x1b[0Ksection_start:{stamp}:{name}{opt}\r\x1b[0K{header}\n{body}\n"
        f"\x1b[0Ksection_end:{stamp}:{name}\r\x1b[0K"
    )


def write_dotenv(path: Path, values: Mapping[str, str]) -> None:
    """A dotenv artifact for later jobs (artifacts:reports:dotenv): KEY=value, one per line."""
    lines = []
    for key, value in values.items():
        clean = " ".join(str(value).split())
        lines.append(f"{key}={clean}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
