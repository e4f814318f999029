"""`hie-notify gate`: may the apply go ahead now? Exit 1 with every reason when it may not.

The gate fails closed: the dotenv file says HIE_GATE_ALLOWED=false until a decision allows the
apply, so a gate that cannot read its policy, change record, plan or ledger blocks.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from hie_notify import output, plan_source
from hie_notify.calendar import UTC, BusinessCalendar
from hie_notify.commands import _stage
from hie_notify.context import Prepared, prepare
from hie_notify.errors import HieError
from hie_notify.gate import Approval, Decision, decide
from hie_notify.ledger import open_ledger
from hie_notify.options import Options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    plan_source.add_arguments(parser, required=True)
    parser.add_argument(
        "--dotenv",
        type=Path,
        default=Path("hie-notify-gate.env"),
        metavar="FILE",
        help="dotenv file for later jobs (default hie-notify-gate.env)",
    )


def freeze_of(env: Mapping[str, str]) -> str | None:
    """Which deploy freeze is on, when GitLab says one is (CI_DEPLOY_FREEZE)."""
    if not env.get("CI_DEPLOY_FREEZE"):
        return None
    from hie_notify.gitlab_api import describe_freeze

    return describe_freeze(env)


def run(args: argparse.Namespace, options: Options) -> int:
    output.write_dotenv(args.dotenv, {"HIE_GATE_ALLOWED": "false"})
    prep = prepare(options, plan_source.load(args, options.env), need_change=False)
    change = prep.change
    ledger = open_ledger(options.ledger, options.env)
    entries = ledger.read(change.id) if change else []
    now = options.clock()
    decision = decide(
        policy=prep.policy,
        calendar=prep.calendar,
        result=prep.result,
        change=change,
        audiences=prep.audiences,
        entries=entries,
        now=now,
        freeze=freeze_of(options.env),
        speculative=bool(prep.run and prep.run.plan_only),
        approval=_approval(prep, options) if _is_emergency(prep) else None,
    )
    data = decision.to_json(prep.calendar)
    data["change_type"] = prep.result.change_type
    data["policy_source"] = prep.policy_source
    data["fingerprint"] = prep.result.fingerprint
    window = change.window if change else None
    output.write_dotenv(
        args.dotenv,
        {
            "HIE_GATE_ALLOWED": "true" if decision.allowed else "false",
            "HIE_CHANGE_ID": change.id if change else "",
            "HIE_CHANGE_TYPE": prep.result.change_type or "",
            "HIE_SERVICE_IMPACTING": "true" if prep.result.service_impacting else "false",
            "HIE_EMERGENCY": "true" if decision.emergency else "false",
            "HIE_PLAN_FINGERPRINT": prep.result.fingerprint,
            "HIE_EARLIEST_START": data["earliest_start"] or "",
            "HIE_WINDOW_START": window.start.isoformat() if window else "",
            "HIE_WINDOW_END": window.end.isoformat() if window else "",
        },
    )
    text = render_text(decision, prep.calendar, options.env, now)
    text += f"\nPolicy: {prep.policy_source}"
    if change is not None:
        run = _stage.StageRun(
            options,
            prep.policy,
            change,
            prep.result,
            prep.calendar,
            ledger,
            _stage.renderer(prep.policy, options),
            prep.run,
        )
        try:
            text += "\n" + _stage.publish_summary(run, "gate", data)
        except HieError as exc:  # the decision stands whether or not the note could be updated
            text += f"\nwarning: the merge request note was not updated: {exc}"
    output.emit(options, data, text)
    return 0 if decision.allowed else 1


def _is_emergency(prep: Prepared) -> bool:
    kind = prep.result.change_type
    return bool(kind and prep.policy.change_type(kind).notice_overrides_others)


def _approval(prep: Prepared, options: Options) -> Approval | None:
    """Break-glass: an emergency needs an approval by someone other than the MR's author."""
    if not _stage.gitlab_configured(options.env):
        return None
    from hie_notify.gitlab_api import NoteTarget, other_approvers

    where = NoteTarget.from_env(options.env, "the emergency approval", allow_issue=False)
    others, author = other_approvers(where)
    if others:
        return Approval(True, f"approved by {', '.join(others)}")
    return Approval(False, f"author {author}; no other approver yet")


def _when(cal: BusinessCalendar, when: Any) -> str:
    return f"{cal.local(when):%a %d %b %Y %H:%M %Z} ({when.astimezone(UTC):%Y-%m-%dT%H:%MZ})"


def render_text(
    decision: Decision, cal: BusinessCalendar, env: Mapping[str, str], now: datetime
) -> str:
    if decision.allowed:
        parts = ["ALLOWED: the apply may go ahead."]
    else:
        parts = ["BLOCKED: the apply may not run."]
        parts.append(
            output.section(
                env,
                "hie_gate_reasons",
                f"Why it is blocked ({len(decision.reasons)}):",
                "\n".join(f"  - {r}" for r in decision.reasons),
                collapsed=False,
                now=now,
            )
        )
    if decision.warnings:
        parts.append(
            output.section(
                env,
                "hie_gate_warnings",
                f"Warnings ({len(decision.warnings)}):",
                "\n".join(f"  - {w}" for w in decision.warnings),
                collapsed=False,
                now=now,
            )
        )
    rows = []
    for r in decision.requirements:
        told = _when(cal, r.given_at) if r.given_at else "not told"
        mark = "ok" if r.met else "NO"
        rows.append(f"  {mark:3} {r.label:32} minimum {r.minimum:>5}  told: {told}")
    if rows:
        parts.append(
            output.section(
                env,
                "hie_gate_notices",
                "Notice by audience:",
                "\n".join(rows),
                collapsed=decision.allowed,
                now=now,
            )
        )
    if decision.earliest_start and not decision.allowed:
        parts.append(f"Earliest allowed start: {_when(cal, decision.earliest_start)}")
    parts.extend(f"Note: {note}" for note in decision.notes)
    return "\n".join(parts)
