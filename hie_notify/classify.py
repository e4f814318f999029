"""Plan + change record + policy -> what kind of change this is, and why (pure)."""

from __future__ import annotations

import fnmatch
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

from hie_notify.change import ChangeRecord
from hie_notify.durations import NoticePeriod, describe_timedelta
from hie_notify.policy.model import DirectContact, MatchRule, Policy
from hie_notify.records import Entry
from hie_notify.terraform.iam import DocumentChange
from hie_notify.terraform.plan import DriftEntry, OutputChange, Plan, ResourceChange

_SHOWN = 5
_STATE_WORDS = {"move": "moved", "import": "imported", "forget": "forgotten"}


class ResourceResult(NamedTuple):
    address: str
    type: str
    action: str
    actions: tuple[str, ...]
    categories: tuple[str, ...]
    service_impacting: bool


@dataclass(frozen=True, slots=True)
class Notice:
    """The notice an audience needs, and which change type asks for it."""

    audience: str
    minimum: NoticePeriod
    recommended: NoticePeriod
    change_type: str


@dataclass(frozen=True, slots=True)
class ContactHit:
    """A direct contact the change concerns, and the resources (addresses) that concern them."""

    name: str
    resources: tuple[str, ...]
    minimum: NoticePeriod
    recommended: NoticePeriod
    categories: tuple[str, ...] = ()  # the change types of those resources


@dataclass(frozen=True, slots=True)
class Classification:
    change_type: str | None
    declared_type: str | None
    categories: tuple[str, ...]
    service_impacting: bool
    summary: dict[str, int]
    reasons: tuple[str, ...]
    resources: tuple[ResourceResult, ...]
    drift: tuple[DriftEntry, ...]
    outputs: tuple[OutputChange, ...]
    fingerprint: str
    has_changes: bool
    impacting_categories: tuple[str, ...]
    notice: tuple[Notice, ...]
    # Each IAM policy document's statements added and removed (the plan's `iam`).
    iam: tuple[DocumentChange, ...] = ()
    # The policy's direct contacts this change concerns (`direct_contacts`).
    contacts: tuple[ContactHit, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "change_type": self.change_type,
            "declared_type": self.declared_type,
            "categories": list(self.categories),
            "service_impacting": self.service_impacting,
            "impacting_categories": list(self.impacting_categories),
            "has_changes": self.has_changes,
            "summary": dict(self.summary),
            "reasons": list(self.reasons),
            "notice": [
                {
                    "audience": n.audience,
                    "minimum": str(n.minimum),
                    "recommended": str(n.recommended),
                    "change_type": n.change_type,
                }
                for n in self.notice
            ],
            "fingerprint": self.fingerprint,
            "resources": [
                {
                    "address": r.address,
                    "type": r.type,
                    "action": r.action,
                    "actions": list(r.actions),
                    "categories": list(r.categories),
                    "service_impacting": r.service_impacting,
                }
                for r in self.resources
            ],
            "drift": [
                {"address": d.address, "type": d.type, "action": d.action} for d in self.drift
            ],
            "outputs": [{"name": o.name, "action": o.action} for o in self.outputs],
            "iam_changes": [
                {
                    "address": d.address,
                    "attribute": d.attribute,
                    "action": d.action,
                    "sensitive": d.sensitive,
                    "known_after_apply": d.unknown,
                    "statements": [s._asdict() for s in d.statements],
                }
                for d in self.iam
            ],
            "contacts": [
                {
                    "name": c.name,
                    "resources": list(c.resources),
                    "notice": {"minimum": str(c.minimum), "recommended": str(c.recommended)},
                }
                for c in self.contacts
            ],
        }


class _CompiledRule:
    __slots__ = ("actions", "attributes", "description", "ignore", "pattern")

    def __init__(self, rule: MatchRule) -> None:
        self.pattern = re.compile("|".join(fnmatch.translate(t) for t in rule.types))
        self.actions = frozenset(rule.actions) if rule.actions is not None else None
        self.attributes = tuple(rule.attributes) if rule.attributes is not None else None
        self.ignore = tuple(rule.ignore_attributes)
        self.description = rule.description or "matches " + ", ".join(rule.types)

    def matches(self, rc: ResourceChange, action: str) -> bool:
        if self.actions is not None and action not in self.actions:
            return False
        changed = rc.changed_attributes
        if self.attributes is not None and not any(_touches(changed, a) for a in self.attributes):
            return False
        return not (
            self.ignore
            and action == "update"
            and changed
            and all(any(_within(c, ig) for ig in self.ignore) for c in changed)
        )


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _touches(changed: frozenset[str], path: str) -> bool:
    return path in changed or any(c.startswith(path + ".") for c in changed)


def _rule_action(rc: ResourceChange) -> str:
    return "state" if rc.action == "no-op" else rc.action


class _ContactRule:
    __slots__ = ("address", "tags", "type")

    def __init__(self, addresses: list[str], types: list[str], tags: dict[str, str]) -> None:
        self.address = _glob(addresses)
        self.type = _glob(types)
        self.tags = [(name, re.compile(fnmatch.translate(value))) for name, value in tags.items()]

    def matches(self, address: str, rtype: str, tags: Iterable[tuple[str, str]]) -> bool:
        if self.address is not None and not self.address.match(address):
            return False
        if self.type is not None and not self.type.match(rtype):
            return False
        return all(any(n == name and value.match(v) for n, v in tags) for name, value in self.tags)


def _glob(patterns: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(fnmatch.translate(p) for p in patterns)) if patterns else None


def _compile_contact(contact: DirectContact) -> list[_ContactRule]:
    return [_ContactRule(r.addresses, r.types, dict(r.tags)) for r in contact.match]


def match_contacts(
    policy: Policy, resources: Iterable[tuple[str, str, tuple[tuple[str, str], ...]]]
) -> dict[str, list[str]]:
    """For each direct contact, the addresses of the (address, type, tags) resources its rules
    match (globs, case-sensitive), in plan order; contacts no resource concerns are left out."""
    if not policy.direct_contacts:
        return {}
    compiled = [(c.name, _compile_contact(c)) for c in policy.direct_contacts]
    found: dict[str, list[str]] = {}
    for address, rtype, tags in resources:
        for name, rules in compiled:
            if any(rule.matches(address, rtype, tags) for rule in rules):
                found.setdefault(name, []).append(address)
    return found


def contact_hits(
    policy: Policy, found: dict[str, list[str]], categories: dict[str, tuple[str, ...]]
) -> tuple[ContactHit, ...]:
    """The ContactHit of each contact in `found` (policy order), with its notice."""
    out = []
    for contact in policy.direct_contacts:
        addresses = found.get(contact.name)
        if not addresses:
            continue
        cats = list(dict.fromkeys(c for a in addresses for c in categories.get(a, ())))
        out.append(
            ContactHit(
                contact.name,
                tuple(dict.fromkeys(addresses)),
                contact.notice.minimum,
                contact.notice.recommended,
                tuple(cats),
            )
        )
    return tuple(out)


# Where an announcement's ledger entry for a direct contact keeps the resources it was told of,
# so stages that run without a plan (complete, cancel) tell them of the same ones.
CONTACT_RESOURCES = "contact_resources"


def contacts_from_entries(
    policy: Policy, entries: Iterable[Entry], categories: tuple[str, ...]
) -> tuple[ContactHit, ...]:
    """The direct contacts an announcement told (its `contact:NAME` entries), with the
    resources each was told of, for stages that run without a plan."""
    found: dict[str, list[str]] = {}
    for entry in entries:
        if not entry.audience.startswith("contact:"):
            continue
        name = entry.audience.split(":", 1)[1]
        listed = entry.extra.get(CONTACT_RESOURCES, "")
        found[name] = [a for a in listed.split("\n") if a]
    hits = contact_hits(policy, found, {})
    return tuple(
        ContactHit(h.name, h.resources, h.minimum, h.recommended, categories) for h in hits
    )


class _Rules:
    """The policy's match rules, compiled once, with per-type lookups cached."""

    def __init__(self, policy: Policy) -> None:
        self.by_type: list[tuple[str, list[_CompiledRule]]] = [
            (name, [_CompiledRule(r) for r in ct.match])
            for name, ct in policy.change_types.items()
            if ct.match
        ]
        self.impact = [_CompiledRule(r) for r in policy.classification.service_impact]
        self._category_cache: dict[str, list[tuple[str, list[_CompiledRule]]]] = {}
        self._impact_cache: dict[str, list[_CompiledRule]] = {}

    def category_candidates(self, rtype: str) -> list[tuple[str, list[_CompiledRule]]]:
        found = self._category_cache.get(rtype)
        if found is None:
            found = []
            for name, rules in self.by_type:
                hits = [r for r in rules if r.pattern.match(rtype)]
                if hits:
                    found.append((name, hits))
            self._category_cache[rtype] = found
        return found

    def impact_candidates(self, rtype: str) -> list[_CompiledRule]:
        found = self._impact_cache.get(rtype)
        if found is None:
            found = [r for r in self.impact if r.pattern.match(rtype)]
            self._impact_cache[rtype] = found
        return found


def classify(
    plan: Plan, policy: Policy, change: ChangeRecord | None = None, *, destroy: bool = False
) -> Classification:
    """Classify a plan under a policy; `change` may declare a stricter type and downtime, and
    `destroy` (an HCP Terraform destroy run) makes every category service-impacting.

    Every resource that changes gets the change types whose match rules claim it (the policy's
    fallback type when none does). The primary type is the strictest present; a declared type
    replaces it only when stricter. Reasons name the resources behind each decision.
    """
    rules = _Rules(policy)
    fallback = policy.classification.fallback
    rank: dict[str, int] = {name: ct.rank for name, ct in policy.change_types.items()}
    results: list[ResourceResult] = []
    claimed: dict[tuple[str, str], list[str]] = defaultdict(list)
    impacting: dict[str, list[str]] = defaultdict(list)
    state_only: Counter[str] = Counter()
    ignore_state_only = policy.classification.state_only == "none"
    for rc in plan.resource_changes:
        if not rc.is_change:
            continue
        if ignore_state_only and rc.action in ("no-op", "forget"):
            # Moved, imported or forgotten: the state changes, the infrastructure does not.
            state_only[rc.effective_action] += 1
            results.append(
                ResourceResult(rc.address, rc.type, rc.effective_action, rc.actions, (), False)
            )
            continue
        action = _rule_action(rc)
        cats: list[str] = []
        for name, candidates in rules.category_candidates(rc.type):
            for rule in candidates:
                if rule.matches(rc, action):
                    cats.append(name)
                    claimed[(name, rule.description)].append(rc.address)
                    break
        if not cats:
            cats.append(fallback)
            claimed[(fallback, "")].append(rc.address)
        elif len(cats) > 1:
            cats.sort(key=lambda n: -rank[n])
        hit = False
        for rule in rules.impact_candidates(rc.type):
            if rule.matches(rc, action):
                impacting[rule.description].append(_what_happens(rc))
                hit = True
                break
        results.append(
            ResourceResult(rc.address, rc.type, rc.effective_action, rc.actions, tuple(cats), hit)
        )

    reasons: list[str] = []
    present = sorted({c for r in results for c in r.categories}, key=lambda n: -rank[n])
    infrastructure_changes = any(r.categories for r in results)
    if not results:
        reasons.append(_no_changes(plan))
    elif state_only:
        counted = ", ".join(
            f"{n} {_STATE_WORDS[a]}" for a, n in sorted(state_only.items(), key=lambda kv: kv[0])
        )
        if infrastructure_changes:
            reasons.append(f"state only, owes no notice of its own: {counted}")
        else:
            reasons.append(
                f"state only: {counted}; nothing changes in the real infrastructure, so no "
                "notice is owed (policy classification.state_only: none)"
            )
    for (name, description), addresses in sorted(
        claimed.items(), key=lambda kv: (-rank[kv[0][0]], kv[0][1])
    ):
        title = policy.change_type(name).title
        why = (
            f"claimed by no other rule, so {title.lower()}"
            if not description
            else f"rule: {description}"
        )
        reasons.append(f"{name}: {names(addresses)} ({why})")

    downtime = change.downtime if change is not None else None
    service_impacting = bool(impacting) or bool(downtime and downtime > timedelta(0)) or destroy
    if destroy:
        reasons.append(
            "service-impacting: this is a destroy run (is-destroy): everything in the workspace "
            "is removed"
        )
    for description, whats in impacting.items():
        reasons.append(f"service-impacting: {names(whats)} ({description})")
    if downtime and downtime > timedelta(0):
        expected = describe_timedelta(downtime)
        reasons.append(f"service-impacting: the change record expects {expected} of downtime")
    if infrastructure_changes and not service_impacting:
        reasons.append(
            "not service-impacting: no change touches a resource the policy marks as "
            "impacting, and no downtime is declared"
        )

    primary = present[0] if present else None
    if len(present) > 1:
        reasons.append(
            f"mixed plan: {', '.join(present)}; the strictest, {primary}, sets the primary type "
            "and every category's audiences and notice apply"
        )
    declared = change.type if change is not None else None
    categories = list(present)
    if declared is not None:
        if declared not in categories:
            categories.append(declared)
            categories.sort(key=lambda n: -rank[n])
        if primary is None or rank[declared] > rank[primary]:
            if primary is not None:
                reasons.append(f"declared {declared} is stricter than {primary}: using {declared}")
            else:
                reasons.append(f"declared {declared}: using it")
            primary = declared
        elif declared != primary:
            reasons.append(
                f"declared {declared} is less strict than {primary}, which the plan requires "
                f"({names(_addresses_of(results, primary))}): keeping {primary}; a declared "
                "type can only make the classification stricter"
            )
    if plan.drift:
        reasons.append(
            f"drift: {names([x.address for x in plan.drift])} changed outside Terraform since "
            "the last apply"
        )
    if plan.errored:
        reasons.append("the plan errored: Terraform could not finish planning")
    for name in categories:
        ct = policy.change_type(name)
        if ct.external_when == "digest":
            who = ct.external_audience.replace("_", " ")
            reasons.append(
                f"{name}: {who} hear of it in the weekly digest (external_when: digest), not at "
                "each stage: no per-change notice to them is owed or checked by the gate"
            )
    sprint = policy.internal_digest_channels(categories)
    for name in categories:
        ct = policy.change_type(name)
        mine = [c for c in ct.internal_digest if c in sprint]
        if mine:
            each = [c for c in ct.per_change_channels]
            reasons.append(
                f"{name}: {', '.join(mine)} {'hears' if len(mine) == 1 else 'hear'} of it in "
                "the weekly digest (internal_digest: the sprint update), not at each stage; "
                f"{', '.join(each)} {'hears' if len(each) == 1 else 'hear'} of each change"
            )

    # A category owes its external notice "when service-impacting" only for its own impacting
    # resources: a tag-only infrastructure update riding along with an application rollout does
    # not make the rollout owe customers infrastructure notice. Declared downtime counts for all.
    declared_downtime = bool(downtime and downtime > timedelta(0)) or destroy
    impacting_categories = tuple(
        c
        for c in categories
        if declared_downtime
        or any(r.service_impacting and c in r.categories for r in results)
        or (c == declared and service_impacting)
    )
    contacts: tuple[ContactHit, ...] = ()
    if policy.direct_contacts:
        considered = [
            rc
            for rc in plan.resource_changes
            if rc.is_change and not (ignore_state_only and rc.action in ("no-op", "forget"))
        ]
        found = match_contacts(policy, ((rc.address, rc.type, rc.tags) for rc in considered))
        contacts = contact_hits(policy, found, {r.address: r.categories for r in results})
        for one in contacts:
            reasons.append(
                f"direct contact: {one.name} is told directly of {names(list(one.resources))} "
                f"(policy direct_contacts; {one.minimum} notice)"
            )
    return Classification(
        change_type=primary,
        declared_type=declared,
        categories=tuple(categories),
        service_impacting=service_impacting,
        summary=dict(plan.summary),
        reasons=tuple(reasons),
        resources=tuple(results),
        drift=plan.drift,
        outputs=tuple(o for o in plan.outputs if o.action not in ("no-op", "read")),
        fingerprint=plan.fingerprint(),
        has_changes=infrastructure_changes,
        impacting_categories=impacting_categories,
        notice=required_notice(policy, categories, impacting_categories),
        iam=plan.iam,
        contacts=contacts,
    )


def required_notice(
    policy: Policy, categories: Sequence[str], impacting: Sequence[str]
) -> tuple[Notice, ...]:
    """The strictest internal and external notice over every category present.

    External notice "when service-impacting" counts only for the categories in `impacting`.
    A category whose type overrides the others' notice (an emergency) alone sets the notice.
    """
    overriding = [n for n in categories if policy.change_type(n).notice_overrides_others]
    best: dict[str, Notice] = {}
    for name in overriding or categories:
        ct = policy.change_type(name)
        wanted = [("internal", ct.internal_notice.minimum, ct.internal_notice.recommended)]
        told_per_stage = ct.external_audience != "none" and ct.external_when != "digest"
        if told_per_stage and (ct.external_when == "always" or name in impacting):
            wanted.append(("external", ct.external_notice.minimum, ct.external_notice.recommended))
        impact = policy.impact_notice_for(name) if name in impacting else None
        if impact is not None:
            wanted.append(("external", impact.minimum, impact.recommended))
        for audience, minimum, recommended in wanted:
            current = best.get(audience)
            if (
                current is None
                or minimum.longer_than(current.minimum)
                or (minimum == current.minimum and recommended.longer_than(current.recommended))
            ):
                best[audience] = Notice(audience, minimum, recommended, name)
    return tuple(best[a] for a in ("internal", "external") if a in best)


def _addresses_of(results: Iterable[ResourceResult], category: str) -> list[str]:
    return [r.address for r in results if category in r.categories]


def _what_happens(rc: ResourceChange) -> str:
    # Only resources a service-impact rule caught get here: rules name create, update, replace,
    # delete, forget and state, and the no-ops a `state` rule catches are imports or moves.
    verb = {
        "replace": "is replaced",
        "delete": "is destroyed",
        "update": "is updated in place",
        "create": "is created",
        "forget": "is removed from state",
        "import": "is imported into the Terraform state",
        "move": f"moves in the Terraform state (it was {rc.previous_address})",
    }.get(rc.effective_action, f"({rc.effective_action})")
    detail = ""
    if rc.action == "replace" and rc.replace_paths:
        detail = f": {', '.join(rc.replace_paths)} cannot change in place"
    elif rc.action_reason:
        detail = f": {rc.action_reason}"
    return f"{rc.address} {verb}{detail}"


def _no_changes(plan: Plan) -> str:
    unchanged = plan.summary.get("no_op", 0)
    read = plan.summary.get("read", 0)
    return (
        f"no changes: the plan changes no resource ({unchanged} unchanged, {read} data "
        "sources read); there is nothing to announce"
    )


def names(items: Sequence[str], limit: int = _SHOWN) -> str:
    """`a, b, c, d, e and 3 more`: a list short enough for a reason."""
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f" and {len(items) - limit} more"
    return shown
