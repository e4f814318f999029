"""The policy file as a validated model: unknown keys, wrong types and bad values are refused."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import time, timedelta
from typing import Annotated, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    PlainValidator,
    field_validator,
    model_validator,
)

from hie_notify.durations import NoticePeriod, format_duration, parse_duration, parse_notice
from hie_notify.records import CHANGE_TYPES as CHANGE_TYPES

ChangeTypeName = Literal[
    "emergency_fix",
    "planned_infra_update",
    "application_update",
    "scheduled_maintenance",
    "iam_permission_change",
    "cost_optimization",
]
Stage = Literal["pre_deployment", "during", "post_deployment"]
ExternalAudience = Literal[
    "affected_customers", "all_customers", "critical_stakeholders", "business_stakeholders", "none"
]
RuleAction = Literal["create", "update", "replace", "delete", "forget", "state"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# What a planned change's record must hold before anyone outside is told (the seed's Phase 1):
# each a change record field, but `on_call_out_of_hours` (`on_call`, for a window outside
# working hours). The window is always required.
Phase1Field = Literal[
    "risk", "monitoring", "approvers", "rollback", "downtime", "on_call_out_of_hours"
]
PHASE1_FIELDS: tuple[Phase1Field, ...] = (
    "risk",
    "monitoring",
    "approvers",
    "rollback",
    "downtime",
    "on_call_out_of_hours",
)

Notice = Annotated[NoticePeriod, PlainValidator(parse_notice), PlainSerializer(str)]
_SLACK_CHANNEL = re.compile(r"^#[a-z0-9][a-z0-9._-]{0,79}$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"expected an email address, got {value!r}")
    return value


EmailAddress = Annotated[str, AfterValidator(_email)]


def _slack_channels(value: list[str]) -> list[str]:
    for name in value:
        if not _SLACK_CHANNEL.match(name):
            raise ValueError(f"expected Slack channel names like '#devops', got {name!r}")
    return value


SlackChannels = Annotated[list[str], AfterValidator(_slack_channels)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoticeRule(_Strict):
    minimum: Notice
    recommended: Notice

    @model_validator(mode="after")
    def _recommended_not_below_minimum(self) -> NoticeRule:
        if self.minimum.kind != self.recommended.kind:
            raise ValueError("minimum and recommended must use the same unit (hours or bd)")
        if (self.recommended.elapsed, self.recommended.business_days) < (
            self.minimum.elapsed,
            self.minimum.business_days,
        ):
            raise ValueError(
                f"recommended ({self.recommended}) must not be shorter than minimum "
                f"({self.minimum})"
            )
        return self


class MatchRule(_Strict):
    """Which resource changes a rule covers.

    `types` are glob patterns on the resource type. `actions` limits the rule to some actions
    (default: all). `attributes` limits it to changes that touch one of these attribute paths;
    `ignore_attributes` drops changes that touch nothing but these.
    """

    description: str = ""
    types: list[str] = Field(min_length=1)
    actions: list[RuleAction] | None = None
    attributes: list[str] | None = None
    ignore_attributes: list[str] = []


Offset = Annotated[timedelta, PlainValidator(parse_duration), PlainSerializer(format_duration)]


class Reminders(_Strict):
    """How long before the window starts `hie-notify remind` reminds each kind of audience that
    was told (real elapsed time, e.g. 24h, 1h, 7d)."""

    internal: list[Offset] = [timedelta(hours=24), timedelta(hours=1)]
    customer: list[Offset] = []
    stakeholder: list[Offset] = []
    # The matrix's "Weekly/Bi-weekly reminder": from the announcement until the window, internal
    # channels are reminded every week (or fortnight) before the window (7d, 14d, ... before),
    # until the offsets above take over.
    internal_cadence: Literal["none", "weekly", "biweekly"] = "none"

    @property
    def cadence(self) -> timedelta | None:
        """The period of the internal cadence (None: no cadence)."""
        return {"weekly": timedelta(days=7), "biweekly": timedelta(days=14)}.get(
            self.internal_cadence
        )


_DIGEST_AUDIENCES = ("business_stakeholders", "critical_stakeholders")
# Who must acknowledge a notice (`acknowledgements.required_from`): every customer told,
# every stakeholder group told, the critical ones (the critical stakeholders, and customers with
# a contact marked critical), or one audience by its id.
ACK_GROUPS = ("customers", "stakeholders", "critical")


def _ack_selector(value: str) -> str:
    kind, _, name = value.partition(":")
    if value in ACK_GROUPS or (kind in ("customer", "stakeholders") and name):
        return value
    raise ValueError(
        f"expected one of {', '.join(ACK_GROUPS)}, or an audience like customer:EoE or "
        f"stakeholders:critical, got {value!r}"
    )


class EscalationStep(_Strict):
    """One rung of the ladder: `after` the announcement (e.g. 1bd) with no acknowledgement,
    remind the audience's `contact` again, tell the customer's `account_owner`, or open a
    `pagerduty` incident for the change's owner. Each rung is taken once."""

    after: Notice
    to: Literal["contact", "account_owner", "pagerduty"]


class Acknowledgements(_Strict):
    """Whose acknowledgement of the announcement the gate waits for, and by when (counted from
    the announcement, e.g. 2bd): until each has acknowledged, and while any objection is
    unresolved, the apply may not go ahead."""

    required_from: list[Annotated[str, AfterValidator(_ack_selector)]] = []
    by: Notice = NoticePeriod("business_days", business_days=2)
    # What `remind` does while a required acknowledgement is missing, rung by rung.
    escalation: list[EscalationStep] = []


# What raises an alert: an emergency announced, an apply or a rollback that failed, a window
# that ended with the work unfinished (`remind`'s overrun).
AlertEvent = Literal["announce", "apply_failed", "rollback_failed", "overrun"]
# The Slack mention an alert carries: `<!here>` (active members), `<!channel>` (everyone), none.
Mention = Literal["here", "channel", "none"]
# The variable's name ends in _ROUTING_KEY: every such variable is masked (masking.Masker).
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,87}_ROUTING_KEY$")


def _env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError(
            "expected the name of a CI/CD variable holding the key, ending in _ROUTING_KEY "
            f"(e.g. PAGERDUTY_EMERGENCY_ROUTING_KEY), never the key itself; got {value[:4]!r}..."
        )
    return value


class Alerts(_Strict):
    """Emergencies, failed applies, failed rollbacks and overruns: the internal channels' Slack
    post mentions the channel (`mention`, per channel in `channels`), and, where
    `incident_routing_key_env` names the variable holding an Events API v2 integration key, a
    PagerDuty incident is triggered (resolved when the change completes, is rolled back or is
    cancelled). The protected policy's alone: a branch cannot remove an alert or a page."""

    events: list[AlertEvent] = ["apply_failed", "rollback_failed", "overrun"]
    mention: Mention = "here"
    channels: dict[str, Mention] = {}  # e.g. {"#product": none}: one internal channel's own
    incident_routing_key_env: Annotated[str | None, AfterValidator(_env_name)] = None

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict[str, str]) -> dict[str, str]:
        _slack_channels(list(value))
        return value

    def mention_for(self, channel: str | None) -> str:
        """`here`, `channel` or `none` for one internal Slack channel."""
        if channel is None:
            return "none"
        return self.channels.get(channel, self.mention)


class ChangeType(_Strict):
    title: str
    lead: str
    rank: int = Field(ge=0, le=1000)
    description: str = ""
    declared_only: bool = False
    requires_justification: bool = False
    # When declared, its notice replaces every other category's (an emergency has no lead time).
    notice_overrides_others: bool = False
    match: list[MatchRule] = []
    internal_channels: SlackChannels
    internal_notice: NoticeRule
    internal_stages: list[Stage]
    external_audience: ExternalAudience
    # `digest`: the external audience hears of it in the weekly digest (`hie-notify digest`),
    # not at each stage, so the gate does not wait for them.
    external_when: Literal["always", "service_impacting", "digest"] = "service_impacting"
    external_notice: NoticeRule
    external_stages: list[Stage]
    # The sprint update: internal channels (some of `internal_channels`) that hear of this type
    # in the weekly digest (`hie-notify digest`) instead of at each stage, e.g. ["#product"] for
    # application updates; the others (#devops) still hear each change.
    internal_digest: SlackChannels = []
    # Internal channels (some of `internal_channels`) whose messages show, per IAM policy
    # document the plan changes, the actions, resource ARNs and principals each statement gains
    # and loses (a document marked sensitive says "(sensitive)"). The Jira comment always does.
    iam_detail: SlackChannels = []
    meetings: list[str] = []
    post_mortem: Literal["always", "on_failure", "significant"] = "on_failure"
    reminders: Reminders = Reminders()
    # Slack mentions and PagerDuty incidents for emergencies, failures and overruns.
    alerts: Alerts = Alerts()
    acknowledgements: Acknowledgements = Acknowledgements()
    # Phase 1: what the change record must hold before `plan` (or `announce`) tells anyone
    # outside and before the gate lets the apply go ahead (default: all of the seed's Phase 1).
    # An emergency keeps its own rules (a justification, a rollback plan) and is never held back.
    requires: list[Phase1Field] = list(PHASE1_FIELDS)

    @model_validator(mode="after")
    def _units(self) -> ChangeType:
        stray_alerts = [c for c in self.alerts.channels if c not in self.internal_channels]
        if stray_alerts:
            raise ValueError(
                f"alerts.channels: {', '.join(stray_alerts)} is not one of internal_channels "
                f"({', '.join(self.internal_channels)})"
            )
        for side, rule in (("internal_notice", self.internal_notice),):
            if rule.minimum.kind != "elapsed":
                raise ValueError(f"{side} is counted in hours (e.g. 24h), not business days")
        if self.external_notice.minimum.kind != "business_days" and not (
            self.external_notice.minimum.is_zero() and self.external_notice.recommended.is_zero()
        ):
            raise ValueError("external_notice is counted in business days (e.g. 3bd)")
        if self.declared_only and self.match:
            raise ValueError("a declared_only change type cannot have match rules")
        stray = [c for c in self.iam_detail if c not in self.internal_channels]
        if stray:
            raise ValueError(
                f"iam_detail: {', '.join(stray)} is not one of internal_channels "
                f"({', '.join(self.internal_channels)})"
            )
        if self.internal_digest:
            unknown = [c for c in self.internal_digest if c not in self.internal_channels]
            if unknown:
                raise ValueError(
                    f"internal_digest: {', '.join(unknown)} is not one of internal_channels "
                    f"({', '.join(self.internal_channels)}): only a channel that hears of the "
                    "type can hear of it in the weekly digest instead"
                )
            if not self.per_change_channels:
                raise ValueError(
                    "internal_digest: at least one internal channel must still hear of each "
                    "change (e.g. #devops); the digest is the sprint update, not the only notice"
                )
            if self.notice_overrides_others:
                raise ValueError(
                    "internal_digest cannot apply to a type whose notice overrides the others "
                    "(an emergency is told as soon as identified)"
                )
        if self.external_when == "digest":
            if self.external_audience not in _DIGEST_AUDIENCES:
                raise ValueError(
                    "external_when: digest is for stakeholder groups (external_audience "
                    f"{' or '.join(_DIGEST_AUDIENCES)}), got {self.external_audience}"
                )
            if self.notice_overrides_others:
                raise ValueError(
                    "external_when: digest cannot apply to a type whose notice overrides the "
                    "others (an emergency is told as soon as identified)"
                )
        return self

    @property
    def per_change_channels(self) -> list[str]:
        """The internal channels told at each stage (not in `internal_digest`)."""
        return [c for c in self.internal_channels if c not in self.internal_digest]


class Contact(_Strict):
    name: str | None = None
    email: EmailAddress | None = None
    critical: bool = False


def _zone(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected an IANA time zone name like Europe/London, got {value!r}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"expected an IANA time zone name like Europe/London, got {value!r}"
        ) from None
    return value


TimeZoneName = Annotated[str, PlainValidator(_zone)]


ChannelKind = Literal["slack", "email", "teams", "webhook", "outbox"]


class Customer(_Strict):
    name: str
    contacts: list[Contact] = []
    # Our person for this customer: told when its acknowledgement is overdue (escalation).
    account_owner: Contact | None = None
    environments: list[str] = []
    time_zone: TimeZoneName | None = None
    # Overrides `channels.customer` for this customer (e.g. [email, webhook] for a portal).
    channels: list[ChannelKind] | None = None


class Channels(_Strict):
    """Which channels carry each kind of audience's messages (each falls back to the outbox
    when its credentials are not set)."""

    internal: list[ChannelKind] = ["slack"]
    customer: list[ChannelKind] = ["email"]
    stakeholder: list[ChannelKind] = ["email"]
    meeting: list[ChannelKind] = ["outbox"]

    @model_validator(mode="after")
    def _non_empty(self) -> Channels:
        for kind in ("internal", "customer", "stakeholder", "meeting"):
            if not getattr(self, kind):
                raise ValueError(f"channels.{kind} needs at least one channel (outbox is one)")
        return self


_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")


def _notice_shorthand(value: object) -> object:
    # `notice: 2bd` is `notice: {minimum: 2bd, recommended: 2bd}`.
    if isinstance(value, str):
        return {"minimum": value, "recommended": value}
    return value


class ContactRule(_Strict):
    """Which resource changes concern a direct contact: every criterion given must hold.
    `addresses` and `types` are glob patterns on the resource address and type; `tags` maps a
    tag name to a glob its value must match, read from the plan's before and after `tags` and
    `tags_all` (a resource tagged before or after the change)."""

    addresses: list[str] = []
    types: list[str] = []
    tags: dict[str, str] = {}

    @model_validator(mode="after")
    def _something(self) -> ContactRule:
        if not (self.addresses or self.types or self.tags):
            raise ValueError(
                "a rule needs at least one of addresses, types or tags (e.g. "
                "addresses: ['aws_s3_bucket.qa_reports*'])"
            )
        return self


class Checklist(_Strict):
    """A checklist the team follows (the seed's Customer Checklist and DevOps Checklist): its
    title, where it lives (Confluence), and the items the merge request description's GitLab
    task list must tick (`- [x] item`) per change type before the gate lets the apply go."""

    title: str = Field(min_length=1, max_length=120)
    link: str = Field(default="", pattern=r"^(https://\S+)?$")
    items: dict[ChangeTypeName, list[Annotated[str, Field(min_length=1, max_length=200)]]] = {}


class DirectContact(_Strict):
    """A person told directly of changes to the integration or data provider they depend on
    (the seed: "coordinate directly with individuals"), with only the resources that concern
    them, at the announcement and at completion (and of a cancellation if they were told).
    They count as an audience: the gate waits for their own notice period."""

    name: str = Field(min_length=1, max_length=100)
    email: EmailAddress | None = None
    # A Slack member id (U...): told by direct message (chat.postMessage to the user).
    slack_user: str | None = None
    teams: bool = False  # also through the Teams webhook (channels: teams)
    about: str = Field(default="", max_length=200)  # e.g. "QA reports (S3 access)"
    notice: Annotated[NoticeRule, BeforeValidator(_notice_shorthand)]
    match: list[ContactRule] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if value != value.strip() or any(c in value for c in ":\n\r\t"):
            raise ValueError(f"expected a plain name (no ':' or line breaks), got {value!r}")
        return value

    @field_validator("slack_user")
    @classmethod
    def _member_id(cls, value: str | None) -> str | None:
        if value is not None and not _SLACK_USER.match(value):
            raise ValueError(f"expected a Slack member id like U0123ABCD, got {value!r}")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> DirectContact:
        if not (self.email or self.slack_user or self.teams):
            raise ValueError(f"{self.name}: give email, slack_user or teams: true")
        return self

    @property
    def channels(self) -> list[ChannelKind]:
        """The channels that tell this person: email, a Slack DM, Teams."""
        out: list[ChannelKind] = []
        if self.email:
            out.append("email")
        if self.slack_user:
            out.append("slack")
        if self.teams:
            out.append("teams")
        return out


class StakeholderGroup(_Strict):
    name: str
    contacts: list[Contact] = []


# The regions DESIGN.md names, whose bank holidays tests/test_calendar.py checks against gov.uk.
_UK_REGIONS = frozenset({("GB", "ENG"), ("GB", "WLS"), ("GB", "SCT"), ("GB", "NIR")})


class Holidays(_Strict):
    country: str = "GB"
    subdivision: str | None = "ENG"

    @model_validator(mode="after")
    def _known_region(self) -> Holidays:
        if (self.country, self.subdivision) in _UK_REGIONS:
            return self  # no need to load every country `holidays` knows (~80 ms) to say so
        import holidays as _holidays

        supported = _holidays.list_supported_countries()
        if self.country not in supported:
            raise ValueError(f"unknown holiday country {self.country!r} (expected e.g. GB)")
        subdivisions = supported[self.country]
        if self.subdivision is not None and self.subdivision not in subdivisions:
            raise ValueError(
                f"unknown subdivision {self.subdivision!r} for {self.country} "
                f"(expected one of: {', '.join(sorted(subdivisions))})"
            )
        return self


class WorkingHours(_Strict):
    start: time = time(9, 0)
    end: time = time(17, 30)
    days: list[Weekday] = Field(default=["mon", "tue", "wed", "thu", "fri"], min_length=1)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hhmm(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted 09:00 as the sexagesimal integer 540.
        if isinstance(value, int) and not isinstance(value, bool):
            return time(value // 60, value % 60) if 0 <= value < 24 * 60 else value
        return value

    @model_validator(mode="after")
    def _ordered(self) -> WorkingHours:
        if self.end <= self.start:
            raise ValueError("working_hours.end must be after working_hours.start")
        return self


class Calendar(_Strict):
    time_zone: TimeZoneName = "Europe/London"
    holidays: Holidays = Holidays()
    working_hours: WorkingHours = WorkingHours()


class Sla(_Strict):
    uptime_percent: float = Field(gt=0, le=100)
    # The gate warns when a change would bring a customer's month to this share of its
    # downtime budget, and blocks beyond 100% (unless an emergency).
    warn_at_percent: float = Field(default=80.0, gt=0, le=100)
    description: str = ""


class Classification(_Strict):
    fallback: ChangeTypeName = "planned_infra_update"
    service_impact: list[MatchRule] = []
    # Plans that only move, import or forget resources change nothing people can notice:
    # `none` owes no notice for them, `notice` classifies them like any other change.
    state_only: Literal["notice", "none"] = "none"


class Jira(_Strict):
    """The change's Jira ticket (the change record's `id`). With `enabled`, and JIRA_URL set,
    each stage adds one comment and remote links to it, the gate checks it exists (and is in a
    ready status when `ready_statuses` lists some), and `complete` moves it through
    `done_transition`."""

    # Where people open a ticket (the key is appended). Empty: JIRA_URL's /browse/ when that
    # is set (context.load_policy_for), else messages name the key without a link.
    browse_url: str = ""
    enabled: bool = False
    ready_statuses: list[str] = []
    done_transition: str | None = None
    # Fields the done transition's screen requires, sent as the transition's `fields`
    # (e.g. {resolution: {name: Done}}).
    done_fields: dict[str, JsonValue] = {}
    # Restrict who can read the comments (Cloud: a project role or group name).
    comment_visibility: dict[str, str] = {}

    @field_validator("browse_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError(f"expected an http(s) address, got {value!r}")
        return value

    def link(self, key: str) -> str:
        """The ticket's address for people ("" when there is nowhere to link)."""
        return self.browse_url + key if self.browse_url else ""

    @field_validator("comment_visibility")
    @classmethod
    def _one(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 1 or not set(value) <= {"role", "group"}:
            raise ValueError("expected one of role: NAME or group: NAME")
        return value


_STATUSPAGE_ID = re.compile(r"^[a-z0-9]{6,32}$")


class Statuspage(_Strict):
    """Scheduled maintenance on an Atlassian Statuspage for customer-facing, service-impacting
    changes: one per change, on the components mapped to the affected customers (by customer
    name) or environments (by HCP workspace / GitLab environment name)."""

    page_id: str
    components: dict[str, list[str]] = Field(min_length=1)
    remind_prior: bool = True  # subscribers reminded 60 minutes before the window
    auto_in_progress: bool = True
    auto_completed: bool = False  # `complete` says when the work is done
    deliver_notifications: bool = True

    @field_validator("page_id")
    @classmethod
    def _page_id(cls, value: str) -> str:
        if not _STATUSPAGE_ID.match(value):
            raise ValueError(f"expected a Statuspage page id like 8m2l51279rpl, got {value!r}")
        return value

    @field_validator("components")
    @classmethod
    def _component_ids(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, ids in value.items():
            bad = [i for i in ids if not _STATUSPAGE_ID.match(i)]
            if not ids or bad:
                raise ValueError(
                    f"components.{name}: expected a list of component ids like y6ssccsqgy8s, "
                    f"got {ids!r}"
                )
        return value


class Pagerduty(_Strict):
    """PagerDuty change events (Events API v2) at apply start, success and failure and at
    rollback; the routing key is the PAGERDUTY_ROUTING_KEY variable, never the policy."""

    source: str = "hie-notify"


class Support(_Strict):
    """Who customers and stakeholders are told to contact."""

    name: str = "the DevOps team"
    email: EmailAddress | None = None
    url: str | None = None
    phone: str | None = None

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"expected an http(s) address, got {value!r}")
        return value

    @property
    def reachable(self) -> bool:
        return bool(self.email or self.url or self.phone)


class CustomerImpact(_Strict):
    """Phase 2: affected customers hear of every planned service-impacting change, whatever its
    type, this far ahead (for types whose own external audience is not customers)."""

    notice: NoticeRule
    stages: list[Stage] = ["pre_deployment", "during", "post_deployment"]

    @model_validator(mode="after")
    def _business_days(self) -> CustomerImpact:
        if self.notice.minimum.kind != "business_days" and not self.notice.minimum.is_zero():
            raise ValueError("customer_impact.notice is counted in business days (e.g. 3bd)")
        return self


def _hhmm(value: object) -> object:
    # YAML 1.1 reads an unquoted 10:00 as the sexagesimal integer 600.
    if isinstance(value, int) and not isinstance(value, bool):
        return time(value // 60, value % 60) if 0 <= value < 24 * 60 else value
    return value


_Clock = Annotated[time, BeforeValidator(_hhmm)]
_TEN = time(10, 0)


class Meeting(_Strict):
    """The weekly meeting whose agenda `hie-notify digest` writes, dated for its next sitting
    (a bank holiday moves it to the next business day, same time). `channel` carries it: a
    GitLab issue in the register project, a Slack post to `slack_channel`, Teams, the webhook,
    or the outbox."""

    name: str = Field(default="Wednesday meeting", min_length=1, max_length=100)
    weekday: Weekday = "wed"
    time: _Clock = _TEN
    channel: Literal["gitlab_issue", "slack", "teams", "webhook", "outbox"] = "gitlab_issue"
    slack_channel: str | None = None
    # How long before the sitting the agenda goes out (so it lists the week's outcomes): from
    # Sunday 10:00 for a Wednesday 10:00 meeting by default; a weekly job on Monday sends it.
    agenda_ahead: Offset = timedelta(days=3)

    @field_validator("agenda_ahead")
    @classmethod
    def _within_a_week(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(days=7):
            raise ValueError(
                f"expected a lead time between 1m and 7d (e.g. 3d), got {format_duration(value)}"
            )
        return value

    @field_validator("slack_channel")
    @classmethod
    def _slack_name(cls, value: str | None) -> str | None:
        if value is not None and not _SLACK_CHANNEL.match(value):
            raise ValueError(f"expected a Slack channel name like '#devops', got {value!r}")
        return value

    @model_validator(mode="after")
    def _slack_needs_channel(self) -> Meeting:
        if self.channel == "slack" and self.slack_channel is None:
            raise ValueError("channel: slack needs slack_channel (e.g. '#devops')")
        return self


class Digest(_Strict):
    """`hie-notify digest`, weekly: the summary of last week's changes and this week's to the
    Slack channels in `summary_to`, the meeting's agenda, and the stakeholder groups' update
    for change types with `external_when: digest`. Weeks run Monday to Sunday in the policy's
    time zone."""

    summary_to: SlackChannels = Field(default=["#devops"], min_length=1)
    meeting: Meeting = Meeting()


class Postmortems(_Strict):
    """When a post-mortem owed is overdue: `due` after the change ended (a notice period: `5bd`,
    `72h`). The seed asks for a post-mortem after significant changes and failures but names no
    time, so the default is 5 business days. `hie-notify remind` tells the lead once it passes
    with no closing recorded (`hie-notify postmortem --closed`)."""

    due: Notice = NoticePeriod("business_days", business_days=5)


class LedgerPolicy(_Strict):
    # Entries must carry an HMAC under HIE_LEDGER_KEY (which must then be set).
    signed: bool = False


class Policy(_Strict):
    version: Literal[1]
    organisation: str
    service_name: str = "the service"
    support: Support = Support()
    calendar: Calendar = Calendar()
    sla: Sla
    jira: Jira = Jira()
    statuspage: Statuspage | None = None
    pagerduty: Pagerduty | None = None
    customers: dict[str, Customer]
    stakeholders: dict[Literal["critical", "business"], StakeholderGroup] = {}
    # People told directly of changes to the resources their integration depends on.
    direct_contacts: list[DirectContact] = []
    # Checklists whose required items the merge request's task list must tick (the gate).
    checklists: list[Checklist] = []
    change_types: dict[ChangeTypeName, ChangeType]
    customer_impact: CustomerImpact | None = None
    classification: Classification = Classification()
    channels: Channels = Channels()
    # Replace any built-in message template by name, e.g. `announce.external.j2: "..."`.
    templates: dict[str, str] = {}
    # Overlapping windows touching the same customer or environment, or a window in a deploy
    # freeze (from the change register): the gate blocks or warns.
    conflicts: Literal["block", "warn"] = "warn"
    # Keys a repository's own policy file may change when the protected policy is in force
    # (dotted paths, `*` for any one key); notice periods may only ever get longer.
    overridable: list[str] = []
    # A trial: in GitLab CI outbox files count as notices, and every gate output says that
    # nobody was told. Only the protected policy can set it.
    trial: bool = False
    ledger: LedgerPolicy = LedgerPolicy()
    digest: Digest = Digest()
    postmortems: Postmortems = Postmortems()

    @model_validator(mode="after")
    def _complete(self) -> Policy:
        missing = [name for name in CHANGE_TYPES if name not in self.change_types]
        if missing:
            raise ValueError(f"change_types is missing {', '.join(missing)}")
        from hie_notify.template_files import template_names

        unknown = sorted(set(self.templates) - set(template_names()))
        if unknown:
            raise ValueError(
                f"templates: unknown template {', '.join(unknown)} "
                f"(expected one of: {', '.join(template_names())})"
            )
        told = [c.name for c in self.customers.values() if c.contacts] + [
            g.name for g in self.stakeholders.values() if g.contacts
        ]
        told += [c.name for c in self.direct_contacts]
        names = [c.name for c in self.direct_contacts]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"direct_contacts: {', '.join(twice)} is listed more than once")
        if told and not self.support.reachable:
            raise ValueError(
                "support: customers and stakeholders are told whom to contact about a change: "
                "give support.email, support.url or support.phone"
            )
        if self.statuspage is not None:
            known = set(self.customers) | {
                e for c in self.customers.values() for e in c.environments
            }
            unknown = sorted(set(self.statuspage.components) - known)
            if unknown:
                raise ValueError(
                    f"statuspage.components: {', '.join(unknown)} is neither a customer nor an "
                    "environment a customer lists (expected one of: "
                    f"{', '.join(sorted(known))})"
                )
        fallback = self.change_types[self.classification.fallback]
        if fallback.declared_only:
            raise ValueError(
                f"classification.fallback {self.classification.fallback!r} is declared_only"
            )
        return self

    def internal_digest_channels(self, categories: Iterable[str]) -> list[str]:
        """The internal channels that hear of a change with these categories only in the
        weekly digest (the sprint update): digested by one category, told each change by none."""
        types = [self.change_type(c) for c in categories if c in self.change_types]
        per_change = {c for ct in types for c in ct.per_change_channels}
        digested = [c for ct in types for c in ct.internal_digest if c not in per_change]
        return list(dict.fromkeys(digested))

    def direct_contact(self, name: str) -> DirectContact | None:
        """The direct contact called `name`, or None."""
        return next((c for c in self.direct_contacts if c.name == name), None)

    def change_type(self, name: str) -> ChangeType:
        """The change type called `name` (a KeyError for a name that is not one)."""
        return self.change_types[cast(ChangeTypeName, name)]

    def impact_notice_for(self, name: str) -> NoticeRule | None:
        """The customer notice a service-impacting change of type `name` owes under
        `customer_impact`, when its own external audience does not already reach customers."""
        ct = self.change_type(name)
        if self.customer_impact is None or ct.notice_overrides_others:
            return None
        if ct.external_audience in ("affected_customers", "all_customers"):
            return None
        return self.customer_impact.notice

    def rank(self, name: str) -> int:
        return self.change_type(name).rank
