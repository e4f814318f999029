"""Alerts: for emergencies, failed applies, failed rollbacks and overruns, the internal Slack
channels' post mentions the channel (`<!here>` by default) and, where the change type's policy
names the variable holding a PagerDuty integration key, an incident is triggered; it is
resolved when the change completes, is rolled back or is cancelled.

Which events alert, which mention each channel gets and where incidents go are the change
type's `alerts` (the protected policy's alone). Incidents are deliveries like any other: one
ledger entry per trigger or resolve, so a re-run never pages twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hie_notify.durations import NoticePeriod
from hie_notify.policy.model import Alerts, Policy
from hie_notify.records import Audience, Entry

ALERT_STAGES = ("announce", "apply_failed", "rollback_failed", "overrun")
# The change is over, one way or the other: its open incidents are resolved.
RESOLVE_STAGES = ("complete", "rollback_succeeded", "cancelled")
INCIDENT = "pagerduty_incident"  # the audience (and channel kind) of PagerDuty incidents
MENTIONS = {"here": "<!here>", "channel": "<!channel>"}


def alerts_of(policy: Policy, change_type: str | None) -> Alerts | None:
    if not change_type or change_type not in policy.change_types:
        return None
    return policy.change_types[change_type].alerts


def alerting(policy: Policy, change_type: str | None, stage: str) -> bool:
    """Does `stage` of a change of this type raise an alert?"""
    alerts = alerts_of(policy, change_type)
    return alerts is not None and stage in alerts.events


def mention(policy: Policy, change_type: str | None, stage: str, audience: Audience) -> str:
    """The Slack mention (`<!here>`, `<!channel>` or "") the post to `audience` carries."""
    alerts = alerts_of(policy, change_type)
    if alerts is None or stage not in alerts.events or audience.kind != "internal":
        return ""
    return MENTIONS.get(alerts.mention_for(audience.slack_channel), "")


def routing_key_env(policy: Policy, change_type: str | None) -> str | None:
    """The variable holding the integration key incidents of this type go to, if any."""
    alerts = alerts_of(policy, change_type)
    return alerts.incident_routing_key_env if alerts is not None else None


def open_incidents(history: Iterable[Entry]) -> list[str]:
    """The stages whose incidents were triggered and not resolved since, in order."""
    out: list[str] = []
    for entry in sorted(history, key=lambda e: e.delivered_at):
        if entry.audience != INCIDENT or entry.dry_run:
            continue
        if entry.stage in RESOLVE_STAGES:
            out = []
        elif entry.stage in ALERT_STAGES and entry.stage not in out:
            out.append(entry.stage)
    return out


def incident_audience(
    policy: Policy, change_type: str | None, stage: str, history: Sequence[Entry]
) -> list[Audience]:
    """The PagerDuty incident audience when `stage` pages (or resolves what was paged)."""
    if routing_key_env(policy, change_type) is None:
        return []
    if stage in RESOLVE_STAGES and open_incidents(history):
        pass
    elif not alerting(policy, change_type, stage):
        return []
    zero = NoticePeriod("elapsed")
    phases = frozenset({"pre_deployment", "during", "post_deployment"})
    return [
        Audience(
            INCIDENT,
            "internal",
            "PagerDuty on-call",
            policy.calendar.time_zone,
            phases,
            zero,
            zero,
            (),
        )
    ]
