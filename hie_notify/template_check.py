"""Render every message template a policy uses, as `validate` does, so that a broken one fails
there and not in the middle of an incident.

Each template (the built-in ones and the policy's overrides) is compiled and rendered in the
sandbox, in every format, with contexts shaped as the commands build them: every stage and
document, for every change type and every audience kind that reads it, once with every optional
value given (a window, downtime, an error, a post-mortem, long resource lists) and once with
none of them, so that both sides of a template's `{% if %}` run. No clock is read: the sample
change sits at a fixed date.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from itertools import cycle
from typing import Any

from hie_notify.change import ChangeRecord
from hie_notify.classify import Classification, ResourceResult
from hie_notify.durations import NoticePeriod
from hie_notify.errors import InputError
from hie_notify.policy.model import Policy
from hie_notify.records import Audience
from hie_notify.register.digest import item, week_of
from hie_notify.register.model import Registered
from hie_notify.render import Renderer, context, service_context
from hie_notify.stages import planless
from hie_notify.template_files import template_names

_NOW = datetime(2026, 12, 1, 10, tzinfo=timezone.utc)
_START = _NOW + timedelta(days=7, hours=9)
_DOCUMENTS = ("merge_request_note.j2", "postmortem_issue.j2")
_DIGESTS: dict[str, tuple[str, ...]] = {
    "digest_summary": ("internal",),
    "digest_agenda": ("meeting",),
    "digest_stakeholders": ("stakeholder",),
}
# The audience kinds that read a stage's `.internal` and `.external` template.
_KINDS: dict[str, tuple[str, ...]] = {
    "internal": ("internal", "meeting"),
    "external": ("customer", "stakeholder"),
    "contact": ("contact",),  # a direct contact's own (announce, complete)
}
_TIMELINE = [f"{_NOW.isoformat()} announce → slack:#devops"]
# What the commands always put in `status` for these stages, however little there is to say.
_ALWAYS: dict[str, dict[str, Any]] = {
    "reminder": {"starts_in": "now", "register_status": "announced"},
    "window_opens": {"starts_in": "now", "register_status": "announced"},
    "overrun": {"starts_in": "now", "register_status": "in progress"},
    "postmortem_overdue": {
        "postmortem": ["the apply failed"],
        "postmortem_link": "",
        "postmortem_due": "Tue 08 Dec 2026 10:00 GMT",
        "register_status": "failed",
    },
    "update": {"detail": "Under way"},
    "planning_incomplete": {"missing": ["the change record has no risk: add it"]},
    "postmortem_issue": {"postmortem": ["the apply failed"], "timeline": _TIMELINE},
}
_FULL_STATUS: dict[str, Any] = {
    "error": "Error: creating EKS Node Group: ResourceInUseException",
    "detail": "Halfway through: the new nodes are joining the cluster",
    "postmortem": ["the apply failed", "the change is service-impacting"],
    "postmortem_link": "https://gitlab.example.org/group/project/-/issues/12",
    "postmortem_due": "Tue 08 Dec 2026 10:00 GMT",
    "timeline": _TIMELINE * 3,
    "verified_by": "ollie",
    "rolled_back": True,
    "starts_in": "24 hours",
    "register_status": "announced",
}


@dataclass(frozen=True)
class _Case:
    """One render: a template, the stage it is rendered for and a reader of it."""

    name: str
    stage: str
    change_type: str
    audience: Audience
    context: dict[str, Any]


def check_templates(policy: Policy, names: frozenset[str] | None = None) -> list[str]:
    """One problem per template that fails to compile or render (the first failure found),
    naming it and the line; empty when every template renders. `names`: only those."""
    # Kept by the policy's JSON: a process that validates the same policy twice renders once.
    key = (policy.model_dump_json(), names)
    if key not in _CHECKED:
        if len(_CHECKED) >= 16:
            _CHECKED.pop(next(iter(_CHECKED)))
        _CHECKED[key] = _check(policy, names)
    return list(_CHECKED[key])


_CHECKED: dict[tuple[str, frozenset[str] | None], tuple[str, ...]] = {}


def _check(policy: Policy, names: frozenset[str] | None) -> tuple[str, ...]:
    renderer = Renderer(policy.templates)
    problems: dict[str, str] = {}
    for case in _cases(policy):
        if case.name in problems or (names is not None and case.name not in names):
            continue
        try:
            if case.name in _DOCUMENTS:
                renderer.render_document(case.name, case.context)
            else:
                renderer.render(case.stage, case.audience, case.context)
        except InputError as exc:
            problems[case.name] = "; ".join(exc.problems) + _reader(case)
    return tuple(problems[name] for name in sorted(problems))


def _reader(case: _Case) -> str:
    kind = case.audience.kind
    article = "an" if kind[0] in "aeiou" else "a"
    return f" (rendering {case.stage} of {case.change_type} for {article} {kind} audience)"


def _cases(policy: Policy) -> Iterator[_Case]:
    """With every optional value: each template for every change type and audience kind.
    Without them: each template for every audience kind, the change types taking turns."""
    names = template_names()
    stages = sorted(
        {n.split(".")[0] for n in names if n.count(".") == 2 and n.split(".")[0] not in _DIGESTS}
    )
    types: list[str] = list(policy.change_types)
    turns = cycle(types)
    for full in (True, False):
        samples = {t: (_change(policy, t, full), _result(policy, t, full)) for t in types}

        for stage in stages:
            for side, kinds in _KINDS.items():
                name = f"{stage}.{side}.j2"
                if name not in names:
                    continue
                for kind in kinds:
                    audience = _audience(policy, kind)
                    for t in _types(types, turns, full):
                        change, result = samples[t]
                        ctx = _ctx(policy, result, change, audience, _status(stage, full), full)
                        yield _Case(name, stage, t, audience, ctx)
        document = _audience(policy, "internal")
        for t in _types(types, turns, full):
            change, result = samples[t]
            status = _status("postmortem_issue", full)
            ctx = _ctx(policy, result, change, document, status, full)
            yield _Case("postmortem_issue.j2", "postmortem_issue", t, document, ctx)
        for t in _types(types, turns, full):
            change, result = samples[t]
            ctx = _ctx(policy, result, change, document, _status("", full), full)
            ctx["note"] = _note(policy, result, full)
            yield _Case("merge_request_note.j2", "merge_request_note", t, document, ctx)
        for stage, kinds in _DIGESTS.items():
            for kind in kinds:
                audience = _audience(policy, kind)
                side = "external" if kind == "stakeholder" else "internal"
                ctx = _digest_context(policy, audience, full)
                yield _Case(f"{stage}.{side}.j2", stage, "digest", audience, ctx)


def _types(types: list[str], turns: Iterator[str], full: bool) -> list[str]:
    return types if full else [next(turns)]


def _change(policy: Policy, kind: str, full: bool) -> ChangeRecord:
    data: dict[str, Any] = {"id": "FFAPP-4458", "type": kind, "purpose": "Resize the EKS nodes"}
    if kind == "emergency_fix":  # the change record requires it
        data["justification"] = "A live incident"
    if full:
        data.update(
            window={"start": _START, "end": _START + timedelta(hours=2)},
            downtime="30m",
            customers=list(policy.customers)[:2],
            risk="high",
            rollback="Revert the merge request and re-apply",
            monitoring="Grafana EKS dashboard",
            on_call="Leon",
            approvers=["Ollie", "Priya"],
            justification="A live incident: the nodes are failing",
        )
    return ChangeRecord.model_validate(data)


def _result(policy: Policy, kind: str, full: bool) -> Classification:
    result = planless(policy, _change(policy, kind, full))
    if not full:
        return result
    actions = ("replace", "delete", "update", "create")
    resources = tuple(
        ResourceResult(
            f"module.eks.aws_eks_node_group.workers[{i}]",
            "aws_eks_node_group",
            actions[i % 4],
            (actions[i % 4],),
            result.categories,
            i % 2 == 0,
        )
        for i in range(4)
    )
    others = [c for c in policy.change_types if c not in result.categories][:1]
    summary = {**result.summary, "create": 8, "update": 7, "delete": 7, "replace": 8}
    return replace(
        result,
        categories=(*result.categories, *others),
        service_impacting=True,
        summary=summary,
        resources=resources,
        fingerprint="sha256:" + "0" * 64,
    )


def _audience(policy: Policy, kind: str) -> Audience:
    zero = NoticePeriod("elapsed")
    labels = {
        "internal": ("slack:#devops", "#devops"),
        "meeting": ("meeting:Wednesday meeting", "Wednesday meeting"),
        "customer": ("customer:EoE", "East of England"),
        "stakeholder": ("stakeholders:business", "Product and business stakeholders"),
        "contact": ("contact:Priya Shah", "Priya Shah"),
    }
    audience_id, label = labels[kind]
    phases = frozenset({"pre_deployment", "during", "post_deployment"})
    resources = ("aws_s3_bucket.qa_reports", "aws_s3_bucket_policy.qa") if kind == "contact" else ()
    return Audience(
        audience_id,
        kind,
        label,
        policy.calendar.time_zone,
        phases,
        zero,
        zero,
        (),
        resources=resources,
    )


def _status(stage: str, full: bool) -> dict[str, Any]:
    return dict(_FULL_STATUS) if full else dict(_ALWAYS.get(stage, {}))


def _ctx(
    policy: Policy,
    result: Classification,
    change: ChangeRecord,
    audience: Audience,
    status: Mapping[str, Any],
    full: bool,
) -> dict[str, Any]:
    links = {
        "run": "https://app.terraform.io/app/org/workspaces/prod/runs/run-1",
        "merge_request": "https://gitlab.example.org/group/project/-/merge_requests/7",
        "pipeline": "https://gitlab.example.org/group/project/-/pipelines/9",
        "job": "https://gitlab.example.org/group/project/-/jobs/11",
    }
    run = {
        "id": "run-1",
        "message": "Resize the EKS nodes",
        "created_by": "ollie",
        "url": links["run"],
        "status": "applied",
        "workspace": "prod",
    }
    ctx = context(
        policy=policy,
        result=result,
        change=change,
        audience=audience,
        now=_NOW,
        links=links if full else {},
        status=dict(status),
        run=run if full else None,
        # With everything: a window moved from the day before, after a rollback.
        lifecycle={
            "rolled_back": True,
            "started": True,
            "moved_from": {
                "start": (_START - timedelta(days=1)).isoformat(),
                "end": (_START - timedelta(days=1, hours=-2)).isoformat(),
            },
        }
        if full
        else None,
    )
    if full:  # more than a message lists (25): "...and 26 more", without rendering them all
        ctx["plan"]["more_resources"] = 26
    return ctx


def _note(policy: Policy, result: Classification, full: bool) -> dict[str, Any]:
    """`merge_request_note.j2`'s `note`, as stagerun._note_context builds it."""
    if not full:
        return {
            "state": "announced",
            "gate": "",
            "gate_reasons": [],
            "planning": [],
            "checklists": [],
            "groups": [],
            "drift": [],
            "notices": [],
            "acknowledgements": [],
        }
    resources = [
        {"address": r.address, "action": r.action, "impacting": r.service_impacting}
        for r in result.resources
    ]
    return {
        "state": "gate",
        "gate": "BLOCKED",
        "gate_reasons": ["East of England was told less than 5 business days before"],
        "planning": ["the change record has no risk (low, medium or high): add it"],
        "checklists": [
            {
                "title": "DevOps Checklist",
                "link": "https://confluence.example.org/devops-checklist",
                "items": ["Plan output reviewed", "Rollback tested"],
            }
        ],
        "groups": [
            {"title": policy.change_type(c).title, "resources": resources, "more": 3}
            for c in result.categories
        ],
        "drift": ["aws_s3_bucket.logs"],
        "notices": _TIMELINE,
        "acknowledgements": [
            "customer:EoE: acknowledged by ops@eoe.example Wed 2 Dec 2026 09:30 GMT",
            "customer:CUH: OPEN objection by it@cuh.example Wed 2 Dec 2026 10:00 GMT: "
            "month-end reporting",
        ],
    }


def _digest_context(policy: Policy, audience: Audience, full: bool) -> dict[str, Any]:
    """A digest's context, as register.digest builds it (its `_context` and the data)."""
    zone = policy.calendar.time_zone
    week = week_of(_NOW, zone)
    before = week.before()
    changes: list[dict[str, Any]] = []
    if full:
        kinds = list(policy.change_types)
        records = [
            Registered(
                change_id=f"FFAPP-{4458 + i}",
                status=status,
                change_type=kinds[i % len(kinds)],
                purpose="Resize the EKS nodes",
                window_start=_START if i else None,
                window_end=_START + timedelta(hours=2) if i else None,
                customers=tuple(list(policy.customers)[:1]),
                service_impacting=i % 2 == 0,
            )
            for i, status in enumerate(("announced", "done", "failed", "rolled back", "cancelled"))
        ]
        changes = [item(r, policy, zone, _NOW) for r in records]
    if audience.kind == "meeting":
        data: dict[str, Any] = {
            "meeting": {
                "name": policy.digest.meeting.name,
                "date": "Wednesday 9 December 2026",
                "time": "10:00 GMT",
                "when": "Wed 9 Dec 2026 10:00 GMT",
                "moved_from": "Tuesday 8 December" if full else "",
                "holiday": "Christmas Day" if full else "",
            },
            "since": "Sun 29 Nov 2026 10:00 GMT",
            "since_agenda": full,
            "cost": changes,
            "significant": changes,
            "upcoming": changes,
        }
    else:
        data = {
            "sprint": "Application Update" if full else "",
            "week": {"key": week.key, "label": week.label},
            "last_week": {"label": before.label, "changes": changes},
            "this_week": {"label": week.label, "changes": changes},
        }
    return {
        "audience": {
            "id": audience.id,
            "kind": audience.kind,
            "label": audience.label,
            "greeting": audience.label,
        },
        "change": {"id": "digest-2026-W49", "jira_url": ""},
        **service_context(policy),
        "digest": data,
    }
