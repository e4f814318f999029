"""`hie-notify validate`: check the policy and change files, and render every message template
the policy uses; exit 2 with every problem found."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping

from hie_notify import acks, stagerun, tokens
from hie_notify.change import ChangeRecord, load_change
from hie_notify.context import load_policy_for
from hie_notify.errors import InputError
from hie_notify.options import Options
from hie_notify.policy import Policy, load_policy
from hie_notify.policy.model import PHASE1_FIELDS, Alerts, ContactRule
from hie_notify.template_check import check_templates


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options of its own: it checks --policy and --change


def policy_rules(policy: Policy) -> list[str]:
    """The rules of the policy people most often ask about: who hears of a type only in the
    weekly digest, who gets IAM policy detail, the internal reminder cadence, and what Phase 1
    requires before anyone outside is told."""
    lines = []
    for name, ct in policy.change_types.items():
        if ct.internal_digest:
            each = ", ".join(ct.per_change_channels)
            verb = "hears" if len(ct.internal_digest) == 1 else "hear"
            lines.append(
                f"{name}: {', '.join(ct.internal_digest)} {verb} of it in the weekly digest "
                f"(internal_digest, the sprint update); {each} of each change"
            )
        if ct.external_when == "digest":
            lines.append(f"{name}: {ct.external_audience} hear of it in the weekly digest")
        if ct.iam_detail:
            lines.append(
                f"{name}: {', '.join(ct.iam_detail)} and the Jira comment get each IAM policy "
                "statement's actions and resource ARNs added and removed (iam_detail)"
            )
        if ct.reminders.internal_cadence != "none":
            lines.append(
                f"{name}: internal channels reminded {ct.reminders.internal_cadence} until the "
                "window (reminders.internal_cadence)"
            )
        lines.extend(alert_rules(name, ct.alerts))
        if not ct.notice_overrides_others:
            lines.append(
                f"{name}: nobody outside is told until the change record has its window and "
                f"{', '.join(ct.requires) or 'nothing more'} (requires, Phase 1)"
            )
    for contact in policy.direct_contacts:
        rules = "; or ".join(_rule_text(r) for r in contact.match)
        lines.append(
            f"direct contact {contact.name} ({', '.join(contact.channels)}; "
            f"{contact.notice.minimum} notice, {contact.notice.recommended} recommended): "
            f"told of changes to {rules} (direct_contacts)"
        )
    return lines


def _rule_text(rule: ContactRule) -> str:
    parts = []
    if rule.addresses:
        parts.append("addresses " + ", ".join(rule.addresses))
    if rule.types:
        parts.append("types " + ", ".join(rule.types))
    if rule.tags:
        parts.append("tags " + ", ".join(f"{k}={v}" for k, v in rule.tags.items()))
    return " and ".join(parts)


def alert_rules(name: str, alerts: Alerts) -> list[str]:
    """What alerts for a change type: its Slack mentions and where its incidents go (only
    where the policy differs from the default: failures and overruns mention `<!here>`)."""
    if alerts == Alerts():
        return []
    events = ", ".join(alerts.events) or "nothing"
    mentions = [f"{'@' + alerts.mention if alerts.mention != 'none' else 'no mention'}"]
    mentions += [
        f"{channel} {'@' + m if m != 'none' else 'no mention'}"
        for channel, m in alerts.channels.items()
    ]
    page = (
        f"a PagerDuty incident to the key in {alerts.incident_routing_key_env}"
        if alerts.incident_routing_key_env
        else "no PagerDuty incident"
    )
    return [f"{name}: alerts on {events}: Slack {', '.join(mentions)}; {page} (alerts)"]


def ack_line(env: Mapping[str, str]) -> str:
    """Whether notices to customers and stakeholders carry acknowledgement links, and why not."""
    key, base = acks.ack_key(env), acks.public_url(env)
    if key is not None and base is not None:
        return f"acknowledgement links: on ({base}/ack/...; HIE_ACK_KEY set)"
    missing = [n for n, v in ((acks.KEY_VARIABLE, key), (acks.URL_VARIABLE, base)) if v is None]
    return (
        f"acknowledgement links: off ({' and '.join(missing)} not set): notices to customers "
        "and stakeholders carry no link to acknowledge or object"
    )


def run(args: argparse.Namespace, options: Options) -> int:
    problems: list[str] = []
    policy: Policy | None = None
    source = ""
    change: ChangeRecord | None = None
    try:
        loaded = load_policy_for(options)
        policy, source = loaded.policy, loaded.source
    except InputError as exc:
        problems.extend(exc.problems)
    else:
        problems.extend(check_templates(policy))
    if options.change is not None:
        try:
            change = load_change(options.change, policy or load_policy())
        except InputError as exc:
            problems.extend(exc.problems)
        else:
            if policy is not None and not stagerun.outbox_counts(policy, options):
                problems.extend(stagerun.unrouted_declared(policy, change, options))
            kind = policy.change_type(change.type) if policy and change.type else None
            emergency = bool(kind and kind.notice_overrides_others)
            # What the declared type's policy `requires` (an emergency: its own rules).
            requires = None if emergency else (kind.requires if kind else list(PHASE1_FIELDS))
            for gap in change.phase1_gaps(requires):
                print(
                    f"warning: {options.change}: {gap} is missing; `plan` tells nobody outside "
                    "and the gate blocks until it is given (policy requires)",
                    file=sys.stderr,
                )
    lines, token_problems = tokens.report(options.env, options.ledger, options.settings)
    problems.extend(token_problems)
    try:
        lines.append(ack_line(options.env))
    except InputError as exc:
        problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    out = sys.stderr if options.format == "json" else sys.stdout
    print(f"ok: policy: {source}", file=out)
    assert policy is not None  # no problems: it loaded
    for line in policy_rules(policy):
        print(f"  {line}", file=out)
    if options.change is not None:
        print(f"ok: change record: {options.change}", file=out)
        if change is not None and change.owner:
            print(f"owner (responsible for its communication): {change.owner}", file=out)
    print("credentials:", file=out)
    for line in lines:
        print(f"  {line}", file=out)
    if options.format == "json":
        print(
            json.dumps(
                {
                    "valid": True,
                    "policy_source": source,
                    "credentials": lines,
                    "rules": policy_rules(policy),
                }
            )
        )
    return 0
