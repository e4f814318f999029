"""Channels deliver messages that are already rendered; one module per channel.

A channel has a `kind` and `send(outgoing) -> Delivery`. Which channels serve an audience is
the policy's choice (`channels:`); a channel whose credentials are not set is replaced by the
outbox, which writes what the real one would have received, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from hie_notify.durations import NoticePeriod
from hie_notify.lifecycle import TRANSITIONS, target
from hie_notify.policy.model import Policy
from hie_notify.records import Audience, Entry
from hie_notify.render import Rendered

# What a register notice adds to the change's state on the Slack parent (and in the state the
# integrations carry): a reminder or an update changes nothing of it.
NOTICE_FLAGS = {
    "window_opens": "window open",
    "overrun": "overrunning",
    "postmortem_overdue": "post-mortem overdue",
}


@dataclass(frozen=True)
class Outgoing:
    """One message for one audience, with what the channel needs to thread or update it."""

    change_id: str
    rendered: Rendered
    key: str  # the delivery's idempotency key
    channel_kind: str  # the channel the policy asked for (the outbox writes its form)
    history: tuple[Entry, ...]  # earlier deliveries of this change to this audience
    parent: Rendered | None = None  # the announcement, refreshed in place where possible
    window: tuple[datetime, datetime] | None = None
    # The change's lifecycle state once this notice's transition is made (lifecycle.State's
    # value); empty for what is not a change's notice (a digest).
    lifecycle_state: str = ""
    # The Slack mention an alert carries (`<!here>`, `<!channel>`), or "" (channels.alerts).
    alert: str = ""
    # A signed acknowledgement token (hie_notify/acks.py) for a Slack announcement's
    # Acknowledge button; empty when HIE_ACK_KEY is not set.
    ack_token: str = ""

    @property
    def stage(self) -> str:
        return self.rendered.stage

    @property
    def state(self) -> str:
        """The change's state as the parent message and the integrations show it."""
        base = self.lifecycle_state or target(self.stage)
        flag = NOTICE_FLAGS.get(self.stage)
        return f"{base}, {flag}" if flag else base


@dataclass(frozen=True)
class Delivery:
    """A message a service accepted. It counts from the time this process saw that (the
    caller's clock), never from a time the service reports."""

    channel: str  # slack | email | teams | webhook | outbox
    recipient: str
    message_id: str
    note: str = ""  # e.g. why the outbox was used instead
    # What the service answered (Slack channel id, ts, permalink; SMTP reply, Message-ID; HTTP
    # status and id): the proof the gate shows.
    receipt: Mapping[str, str] = field(default_factory=dict)


class Channel(Protocol):
    kind: str

    def send(self, outgoing: Outgoing) -> Delivery: ...


# The tools the policy's readers already use: each is one audience of its own, heard at the
# stages below, never one the gate counts as told.
INTEGRATIONS = ("jira", "statuspage", "pagerduty", "pagerduty_incident")
_PAGERDUTY_STAGES = (
    "apply_started",
    "apply_succeeded",
    "apply_failed",
    "rollback_started",
    "rollback_succeeded",
    "rollback_failed",
)
# The maintenance on the page follows the work: scheduled, in progress from the apply's start
# (and through a failure and rollback), completed at completion, deleted on cancellation.
_STATUSPAGE_STAGES = ("announce", "apply_started", *_PAGERDUTY_STAGES[2:], "complete", "cancelled")


def integration_audiences(
    policy: Policy,
    stage: str,
    change_id: str,
    *,
    customer_facing: bool,
    affected: Sequence[str],
    has_window: bool,
) -> list[Audience]:
    """The integrations the policy turns on that hear `stage` of this change.

    Statuspage hears only a customer-facing, service-impacting change with a window whose
    customers or environments (`affected`) the policy maps to components.
    """
    zero = NoticePeriod("elapsed")
    home = policy.calendar.time_zone
    phases = frozenset({"pre_deployment", "during", "post_deployment"})

    def audience(aid: str, kind: str, label: str) -> Audience:
        return Audience(aid, kind, label, home, phases, zero, zero, ())

    out = []
    if policy.jira.enabled and stage in TRANSITIONS:
        out.append(audience(f"jira:{change_id}", "internal", f"Jira {change_id}"))
    page = policy.statuspage
    if (
        page is not None
        and stage in _STATUSPAGE_STAGES
        and customer_facing
        and has_window
        and any(page.components.get(name) for name in affected)
    ):
        out.append(audience(f"statuspage:{page.page_id}", "stakeholder", "customers"))
    if policy.pagerduty is not None and stage in _PAGERDUTY_STAGES:
        out.append(audience("pagerduty", "internal", "PagerDuty"))
    return out


def configured_kinds(policy: Policy, audience: Audience) -> list[str]:
    """The channel kinds the policy names for an audience."""
    integration = audience.id.split(":", 1)[0]
    if integration in INTEGRATIONS:
        return [integration]
    if audience.kind == "contact":
        contact = policy.direct_contact(audience.id.split(":", 1)[1])
        return list(contact.channels) if contact is not None else ["outbox"]
    if audience.kind == "customer":
        customer = policy.customers.get(audience.id.split(":", 1)[1])
        if customer is not None and customer.channels:
            return list(customer.channels)
    return list(getattr(policy.channels, audience.kind))


class Channels:
    """Builds each channel once per run; a channel without credentials becomes the outbox."""

    def __init__(
        self,
        policy: Policy,
        env: Mapping[str, str],
        outbox: Path,
        change_id: str,
        now: datetime,
        *,
        links: Mapping[str, str] | None = None,
        affected: Sequence[str] = (),
        change_type: str | None = None,
        incidents: Sequence[Entry] = (),
    ) -> None:
        from hie_notify.channels.outbox import Outbox

        self.policy = policy
        self.env = env
        self.now = now
        # Integrations link the merge request, the run, the Jira ticket and the post-mortem.
        self.links = {**(links or {}), "jira": policy.jira.link(change_id)}
        self.affected = tuple(affected)  # customers and environments (Statuspage components)
        self.change_type = change_type  # whose alerts route PagerDuty incidents
        # The change's incident deliveries, wherever recorded (the register keeps an overrun's).
        self.incidents = tuple(incidents)
        self.outbox = Outbox(outbox, change_id, now, sender(env))
        self.outbox.payloads = self.payloads()
        self._built: dict[str, Channel | None] = {}
        self.fallbacks: dict[str, str] = {}

    def payloads(self) -> dict[str, Any]:
        """What each integration would receive, for the outbox to write in its place."""
        from hie_notify.channels import alerts, jira, pagerduty, statuspage

        policy, links = self.policy, self.links
        version = jira.api_version(self.env)
        page = policy.statuspage
        components = statuspage.components_for(page, self.affected, ()) if page else []
        source = policy.pagerduty.source if policy.pagerduty else ""
        return {
            "jira": lambda o: jira.comment_body(o, version, links, policy.jira.comment_visibility),
            "statuspage": lambda o: statuspage.incident(o, page, components) if page else {},
            "pagerduty": lambda o: pagerduty.event(
                o, "$PAGERDUTY_ROUTING_KEY", links, self.now, source
            ),
            "pagerduty_incident": lambda o: pagerduty.incident_payload(
                o,
                alerts.routing_key_env(policy, self.change_type) or "",
                links,
                self.now,
                source or "hie-notify",
                self.incidents,
            ),
        }

    def for_audience(self, audience: Audience) -> list[tuple[str, Channel]]:
        """(configured kind, channel that will carry it) for each channel the policy names."""
        out: list[tuple[str, Channel]] = []
        for kind in configured_kinds(self.policy, audience):
            channel = self._channel(kind)
            if kind == "slack" and not audience.slack_channel:
                channel = None
            if kind == "email" and not audience.emails:
                self.fallbacks.setdefault(
                    f"email:{audience.id}", f"{audience.label} has no email contacts in the policy"
                )
                channel = None
            out.append((kind, channel or self.outbox))
        return out

    def _channel(self, kind: str) -> Channel | None:
        if kind not in self._built:
            self._built[kind] = self._build(kind)
        return self._built[kind]

    def _build(self, kind: str) -> Channel | None:
        env = self.env
        if kind == "outbox":
            return self.outbox
        if kind == "slack":
            if not env.get("SLACK_BOT_TOKEN"):
                self.fallbacks["slack"] = "SLACK_BOT_TOKEN is not set"
                return None
            from hie_notify.channels.slack import SlackChannel

            return SlackChannel.from_env(env)
        if kind == "email":
            if not env.get("SMTP_HOST"):
                self.fallbacks["email"] = "SMTP_HOST is not set"
                return None
            from hie_notify.channels.email import EmailChannel

            return EmailChannel.from_env(env, self.now)
        if kind == "teams":
            if not env.get("TEAMS_WEBHOOK_URL"):
                self.fallbacks["teams"] = "TEAMS_WEBHOOK_URL is not set"
                return None
            from hie_notify.channels.teams import TeamsChannel

            return TeamsChannel(env["TEAMS_WEBHOOK_URL"])
        if kind == "webhook":
            if not env.get("HIE_WEBHOOK_URL"):
                self.fallbacks["webhook"] = "HIE_WEBHOOK_URL is not set"
                return None
            from hie_notify.channels.webhook import WebhookChannel

            return WebhookChannel(env["HIE_WEBHOOK_URL"], env.get("HIE_WEBHOOK_SECRET", ""))
        if kind in INTEGRATIONS:
            return self._integration(kind)
        raise AssertionError(kind)

    def _integration(self, kind: str) -> Channel | None:
        from hie_notify.masking import Masker

        env, policy = self.env, self.policy
        masker = Masker.from_env(env)
        if kind == "jira":
            from hie_notify.channels import jira

            why = jira.configured(env)
            if why:
                self.fallbacks["jira"] = why
                return None
            return jira.JiraChannel(
                jira.JiraClient.from_env(env), self.links, masker, policy.jira.comment_visibility
            )
        if kind == "statuspage":
            from hie_notify.channels.statuspage import StatuspageChannel, components_for

            if not env.get("STATUSPAGE_API_KEY"):
                self.fallbacks["statuspage"] = "STATUSPAGE_API_KEY is not set"
                return None
            assert policy.statuspage is not None
            ids = components_for(policy.statuspage, self.affected, ())
            return StatuspageChannel.from_env(env, policy.statuspage, ids)
        from hie_notify.channels.pagerduty import BASE, PagerdutyChannel

        if kind == "pagerduty_incident":
            return self._incidents(masker)
        if not env.get("PAGERDUTY_ROUTING_KEY"):
            self.fallbacks["pagerduty"] = "PAGERDUTY_ROUTING_KEY is not set"
            return None
        assert policy.pagerduty is not None
        return PagerdutyChannel(
            env["PAGERDUTY_ROUTING_KEY"],
            self.links,
            masker,
            self.now,
            policy.pagerduty.source,
            base=env.get("PAGERDUTY_EVENTS_URL") or BASE,
        )

    def _incidents(self, masker: Any) -> Channel | None:
        """PagerDuty incidents, to the integration key in the variable the type's alerts name."""
        from hie_notify.channels.alerts import routing_key_env
        from hie_notify.channels.pagerduty import BASE, PagerdutyIncidentChannel

        variable = routing_key_env(self.policy, self.change_type)
        if variable is None:  # nothing pages for this type (the audience is not chosen)
            return None
        key = self.env.get(variable, "")
        if not key:
            self.fallbacks["pagerduty_incident"] = f"{variable} is not set"
            return None
        source = self.policy.pagerduty.source if self.policy.pagerduty else "hie-notify"
        return PagerdutyIncidentChannel(
            variable,
            key,
            self.links,
            masker,
            self.now,
            source,
            base=self.env.get("PAGERDUTY_EVENTS_URL") or BASE,
            incidents=self.incidents,
        )


def sender(env: Mapping[str, str]) -> str:
    return env.get("SMTP_FROM") or "hie-notify <hie-notify@localhost>"


def thread_parent(history: Sequence[Entry], channel: str) -> Entry | None:
    """The first announcement this audience received through `channel`, if any."""
    for entry in history:
        if entry.stage == "announce" and entry.channel == channel and not entry.dry_run:
            return entry
    return None
