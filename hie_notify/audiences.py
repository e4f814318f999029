"""Who must hear about a change, when, and how early (pure).

An audience is one recipient the policy names: a Slack channel (internal), a customer, a
stakeholder group, or a meeting agenda. Its notice is the strictest over every category of the
change that names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hie_notify.change import ChangeRecord
from hie_notify.classify import Classification
from hie_notify.durations import NoticePeriod
from hie_notify.policy.model import Contact, Policy
from hie_notify.records import PHASES, Audience, Audiences

__all__ = ["PHASES", "Audience", "Audiences", "affected_customers", "resolve"]


def affected_customers(
    policy: Policy, change: ChangeRecord | None, environments: Iterable[str]
) -> list[str]:
    """Customers named in the change record, plus those served by the deployment's environment."""
    names = list(change.customers) if change else []
    envs = {e for e in environments if e}
    for name, customer in policy.customers.items():
        if name not in names and envs & set(customer.environments):
            names.append(name)
    return names


def downtime_customers(
    policy: Policy, named: Iterable[str], environments: Iterable[str], told: Iterable[str] = ()
) -> list[str]:
    """The customers a change's downtime is charged to (the report's and the gate's uptime
    budget alike): those it affects (named in its record, or served by the environments it
    touches), not every customer told of it; when none is known, those told (`customer:NAME`
    audience ids), as `resolve` then tells them all."""
    affected = list(dict.fromkeys(named))
    envs = {e for e in environments if e}
    affected += [
        name
        for name, customer in policy.customers.items()
        if name not in affected and envs & set(customer.environments)
    ]
    if affected:
        return affected
    names = [a.split(":", 1)[1] for a in told if a.startswith("customer:")]
    return list(dict.fromkeys(names))


@dataclass
class _Building:
    kind: str
    label: str
    time_zone: str
    minimum: NoticePeriod
    recommended: NoticePeriod
    slack_channel: str | None = None
    emails: tuple[str, ...] = ()
    phases: set[str] = field(default_factory=set)
    types: list[str] = field(default_factory=list)
    resources: tuple[str, ...] = ()

    def merge(
        self,
        phases: Iterable[str],
        minimum: NoticePeriod,
        recommended: NoticePeriod,
        source: str,
        emails: Iterable[str] = (),
    ) -> None:
        self.phases.update(phases)
        self.emails += tuple(e for e in emails if e not in self.emails)
        if minimum.longer_than(self.minimum):
            self.minimum = minimum
        if recommended.longer_than(self.recommended):
            self.recommended = recommended
        if source not in self.types:
            self.types.append(source)

    def build(self, aid: str) -> Audience:
        return Audience(
            aid,
            self.kind,
            self.label,
            self.time_zone,
            frozenset(self.phases),
            self.minimum,
            self.recommended,
            tuple(self.types),
            self.slack_channel,
            self.emails,
            self.resources,
        )


def resolve(
    policy: Policy,
    result: Classification,
    change: ChangeRecord | None,
    environments: Sequence[str] = (),
) -> Audiences:
    """Every audience the classification requires, with its notice and the phases it hears.

    While an emergency (a type whose notice overrides the others) is declared, every audience
    takes that type's notice: no lead time, but still told first.
    """
    found: dict[str, _Building] = {}
    problems: list[str] = []
    overriding = [c for c in result.categories if policy.change_type(c).notice_overrides_others]
    affected = affected_customers(policy, change, environments)
    if not affected and any(
        policy.change_type(c).external_audience == "all_customers"
        and _owed(policy, c, result.impacting_categories)
        for c in result.categories
    ):
        # Every customer is told anyway (scheduled maintenance): the affected ones are among them.
        affected = list(policy.customers)
    zero = NoticePeriod("elapsed")
    home = policy.calendar.time_zone

    def add(
        aid: str,
        phases: Iterable[str],
        minimum: NoticePeriod,
        recommended: NoticePeriod,
        source: str,
        **new: Any,
    ) -> None:
        emails = new.pop("emails", ())
        if aid not in found:
            found[aid] = _Building(minimum=minimum, recommended=recommended, **new)
        found[aid].merge(phases, minimum, recommended, source, emails)

    for name in result.categories:
        ct = policy.change_type(name)
        notice = policy.change_type(overriding[0]) if overriding else ct
        i_min, i_rec = notice.internal_notice.minimum, notice.internal_notice.recommended
        e_min, e_rec = notice.external_notice.minimum, notice.external_notice.recommended
        for channel in ct.per_change_channels:  # `internal_digest`: told in the digest
            add(
                f"slack:{channel}",
                ct.internal_stages,
                i_min,
                i_rec,
                name,
                kind="internal",
                label=channel,
                time_zone=home,
                slack_channel=channel,
            )
        for meeting in ct.meetings:
            add(
                f"meeting:{meeting}",
                ["pre_deployment"],
                zero,
                zero,
                name,
                kind="meeting",
                label=meeting,
                time_zone=home,
            )
        impact = policy.impact_notice_for(name) if name in result.impacting_categories else None
        if impact is not None and policy.customer_impact is not None:
            # Phase 2: a planned service-impacting change owes the affected customers notice,
            # whatever its type's own external audience.
            if not affected:
                problems.append(_no_customers(name, "is service-impacting, so it"))
            for cname in affected:
                customer = policy.customers[cname]
                add(
                    f"customer:{cname}",
                    policy.customer_impact.stages,
                    impact.minimum,
                    impact.recommended,
                    name,
                    kind="customer",
                    label=customer.name,
                    time_zone=customer.time_zone or home,
                    emails=_emails(customer.contacts),
                )
        if ct.external_audience == "none" or not _owed(policy, name, result.impacting_categories):
            continue
        phases = [
            p
            for p in ct.external_stages
            # Customers hear real-time updates only when their service is impacted.
            if p != "during" or name in result.impacting_categories
        ]
        if ct.external_audience in ("business_stakeholders", "critical_stakeholders"):
            key = "business" if ct.external_audience == "business_stakeholders" else "critical"
            group = policy.stakeholders.get(key)  # type: ignore[call-overload]
            add(
                f"stakeholders:{key}",
                phases,
                e_min,
                e_rec,
                name,
                kind="stakeholder",
                label=group.name if group else f"{key} stakeholders",
                time_zone=home,
                emails=_emails(group.contacts if group else []),
            )
            if ct.external_audience == "business_stakeholders":
                continue
        customers = list(policy.customers) if ct.external_audience == "all_customers" else affected
        if not customers and ct.external_audience != "critical_stakeholders":
            problems.append(_no_customers(name, ""))
        critical_only = ct.external_audience == "critical_stakeholders"
        for cname in customers:
            customer = policy.customers[cname]
            contacts = [c for c in customer.contacts if c.critical or not critical_only]
            add(
                f"customer:{cname}",
                phases,
                e_min,
                e_rec,
                name,
                kind="customer",
                label=customer.name,
                time_zone=customer.time_zone or home,
                emails=_emails(contacts),
            )
    # Direct coordination: each person the policy names for the resources this change touches
    # hears of it directly (only those resources), with their own notice, at the announcement
    # and at completion; an emergency's notice overrides theirs as it does everyone's.
    urgent = policy.change_type(overriding[0]).external_notice if overriding else None
    for hit in result.contacts:
        contact = policy.direct_contact(hit.name)
        if contact is None:
            continue
        add(
            f"contact:{hit.name}",
            ["pre_deployment", "post_deployment"],
            urgent.minimum if urgent else hit.minimum,
            urgent.recommended if urgent else hit.recommended,
            hit.categories[0] if hit.categories else (result.change_type or "direct_contacts"),
            kind="contact",
            label=contact.name,
            time_zone=home,
            slack_channel=contact.slack_user,
            emails=(contact.email,) if contact.email else (),
            resources=hit.resources,
        )
    return Audiences(tuple(b.build(aid) for aid, b in found.items()), tuple(problems))


def _owed(policy: Policy, name: str, impacting: Sequence[str]) -> bool:
    """Does a category of type `name` owe its external audience a notice at each stage? Not
    when the policy has the weekly digest tell them (`external_when: digest`)."""
    ct = policy.change_type(name)
    if ct.external_audience == "none" or ct.external_when == "digest":
        return False
    return ct.external_when == "always" or name in impacting


def digest_group(policy: Policy, name: str) -> str | None:
    """The stakeholder group (`business`, `critical`) that hears of a category of type `name`
    in the weekly digest instead of at each stage, or None."""
    ct = policy.change_type(name)
    if ct.external_when != "digest":
        return None
    return "business" if ct.external_audience == "business_stakeholders" else "critical"


def told_by_digest(policy: Policy, categories: Iterable[str]) -> list[str]:
    """The audiences (`stakeholders:business`, `slack:#product`, ...) the weekly digest tells of
    a change with these categories: owed no notice per stage, so the gate never waits for
    them."""
    categories = list(categories)
    groups = (digest_group(policy, name) for name in categories)
    told = [f"stakeholders:{g}" for g in groups if g]
    # The sprint update: internal channels that hear of this change only in the digest.
    told += [f"slack:{c}" for c in policy.internal_digest_channels(categories)]
    return list(dict.fromkeys(told))


def _no_customers(name: str, why: str) -> str:
    return (
        f"{name} {why + ' ' if why else ''}must tell the affected customers, but none is known: "
        "list them under `customers:` in the change record, or map this environment to them "
        "in the policy (customers.<name>.environments)"
    )


def _emails(contacts: Iterable[Contact]) -> tuple[str, ...]:
    return tuple(c.email for c in contacts if c.email)
