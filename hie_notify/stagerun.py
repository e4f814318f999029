"""Stage orchestration that the commands, `watch` and `receive` share: load the policy, change
record and plan, send a stage, owe a post-mortem, publish the merge request's summary."""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hie_notify import acks, output, plan_source
from hie_notify.acks import AckLinks
from hie_notify.audiences import Audience, affected_customers, downtime_customers, resolve
from hie_notify.calendar import BusinessCalendar
from hie_notify.change import ChangeRecord, load_change
from hie_notify.classify import Classification
from hie_notify.context import (
    Prepared,
    acknowledgements,
    environments,
    links,
    load_policy_for,
    prepare,
    refuse_ci_overrides,
    require_change,
    run_info,
)
from hie_notify.errors import HieError, InputError
from hie_notify.gate import (
    TRIAL_BANNER,
    Approval,
    Budget,
    Conflicts,
    Finding,
    GateDecision,
    GateFacts,
    JiraTicket,
    TaskList,
    budget_month,
    decide,
    is_emergency,
    planning_findings,
)
from hie_notify.ledger import Entry, Ledger, idempotency_key, open_ledger
from hie_notify.lifecycle import (
    ANNOUNCE,
    LIFECYCLE,
    Lifecycle,
    Step,
    as_it_is,
    facts,
    replay,
    transition_entry,
)
from hie_notify.masking import Masker
from hie_notify.options import Options
from hie_notify.policy.model import Policy
from hie_notify.render import Renderer, context, escape_markdown
from hie_notify.stages import audiences_for, from_ledger, planless, postmortem_reasons
from hie_notify.switches import in_gitlab_ci

if TYPE_CHECKING:
    from hie_notify.channels import Channels
    from hie_notify.notify import Failure, StageReport
    from hie_notify.receiver import Event
    from hie_notify.register.store import Register
    from hie_notify.report.uptime import Month
    from hie_notify.terraform.hcp import Run

STAGE_TITLES = {
    "announce": "pre-deployment notices",
    "apply_started": "apply started",
    "apply_succeeded": "apply succeeded",
    "apply_failed": "apply FAILED",
    "rollback_started": "rollback started",
    "rollback_succeeded": "rollback succeeded",
    "rollback_failed": "rollback FAILED",
    "complete": "completion notices",
    "cancelled": "cancellation notices",
}


@dataclass
class StageRun:
    options: Options
    policy: Policy
    change: ChangeRecord
    result: Classification
    calendar: BusinessCalendar
    ledger: Ledger
    renderer: Renderer
    run: Run | None = None
    made: Transition | None = None  # the transition its stage made (or repeated)

    @property
    def links(self) -> dict[str, str]:
        return links(self.options.env, self.run)

    @property
    def environments(self) -> list[str]:
        return environments(self.options.env, self.run)

    @property
    def emergency(self) -> bool:
        kind = self.result.change_type
        return bool(kind and self.policy.change_type(kind).notice_overrides_others)

    @property
    def window(self) -> tuple[datetime, datetime] | None:
        window = self.change.window
        return (window.start, window.end) if window else None

    def context(
        self,
        audience: Audience,
        status: dict[str, Any] | None = None,
        lifecycle: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The render context for `audience`; `lifecycle` defaults to the change's facts as
        they are: the transition this run made, else its lifecycle replayed from the ledger (a
        document such as the merge request note or the post-mortem issue)."""
        if lifecycle is None:
            lifecycle = self.made.facts if self.made is not None else self.facts_now()
        return context(
            policy=self.policy,
            result=self.result,
            change=self.change,
            audience=audience,
            now=self.options.clock(),
            links=self.links,
            status=status,
            run=run_info(self.run),
            lifecycle=lifecycle,
        )

    def facts_now(self) -> dict[str, Any]:
        """The lifecycle facts of the change as its ledger replays (no transition made)."""
        life = lifecycle_now(self)
        return as_it_is(life, life.last.transition if life.last else "")


@dataclass
class Transition:
    """The transition a stage makes, checked against the change's lifecycle (replayed from its
    ledger) before anything is sent, recorded or written."""

    step: Step
    before: Lifecycle
    after: Lifecycle
    at: datetime
    recorded: bool = False  # its ledger entry is written (never for a repeat or a dry run)

    @property
    def facts(self) -> dict[str, Any]:
        """What its messages may say of the change (the render context's `lifecycle`)."""
        return facts(self.step, self.after)

    @property
    def variant(self) -> str:
        """What its delivery keys add: a new attempt or round is told anew, a repeat is not."""
        return self.after.variant(self.step.transition)


@contextmanager
def holding(run: StageRun) -> Iterator[None]:
    """The ledger's lock, from the lifecycle check to the last delivery (none for a dry run,
    which writes nothing, not even the lock file)."""
    with nullcontext() if run.options.dry_run else run.ledger.lock():
        yield


def lifecycle_now(run: StageRun) -> Lifecycle:
    """The change's lifecycle, replayed from its ledger."""
    return replay(run.ledger.read(run.change.id), emergency=run.emergency)


def begin(run: StageRun, stage: str) -> Transition:
    """Check that `stage` may follow the change's state: LifecycleError (exit 2, naming the
    state and what may come next) before anything is sent, recorded or written. Hold the
    ledger's lock (`holding`) from here to the deliveries."""
    now = run.options.clock()
    life = lifecycle_now(run)
    fingerprint = run.result.fingerprint
    step = life.step(stage, window=run.window, fingerprint=fingerprint, what=run.change.id)
    after = life.after(step, now, window=run.window, fingerprint=fingerprint)
    return Transition(step, life, after, now)


def record_transition(run: StageRun, transition: Transition) -> None:
    """Record the transition's own ledger entry, before its first delivery (once; never for a
    repeat, which changes nothing, or under --dry-run)."""
    if transition.recorded or not transition.step.recorded or run.options.dry_run:
        return
    result, window = run.result, run.window
    seq = str(len(transition.after.records))
    base = Entry(
        change_id=run.change.id,
        stage=LIFECYCLE,
        audience=LIFECYCLE,
        channel=LIFECYCLE,
        recipient="",
        fingerprint=result.fingerprint,
        change_type=result.change_type,
        service_impacting=result.service_impacting,
        resources=tuple((run.renderer.mask(r.address), r.action) for r in result.resources),
        delivered_at=transition.at,
        message_id="",
        idempotency_key=idempotency_key(
            run.change.id, LIFECYCLE, transition.step.transition, result.fingerprint, seq
        ),
        emergency=run.emergency,
        categories=result.categories,
        impacting_categories=result.impacting_categories,
        window_start=window[0].isoformat() if window else "",
        window_end=window[1].isoformat() if window else "",
    )
    entry = transition_entry(base, transition.step, transition.after)
    if transition.step.transition == ANNOUNCE:
        entry = replace(entry, extra={**entry.extra, **announced_requirements(run)})
    run.ledger.record([entry])
    transition.recorded = True


def announced_requirements(run: StageRun) -> dict[str, str]:
    """What an announcement records of the policy in force, so the report judges the change by
    it and not by whatever policy it is given later: the policy's digest, and each audience's
    required notice as `minimum|recommended|kind`."""
    from hie_notify.report.compute import NOTICE_PREFIX, POLICY_DIGEST

    policy = run.policy
    digest = hashlib.sha256(policy.model_dump_json().encode()).hexdigest()[:32]
    out = {POLICY_DIGEST: f"sha256:{digest}"}
    for audience in resolve(policy, run.result, run.change, run.environments).for_phase(
        "pre_deployment"
    ):
        out[NOTICE_PREFIX + audience.id] = (
            f"{audience.minimum}|{audience.recommended}|{audience.kind}"
        )
    return out


def load(options: Options, args: argparse.Namespace, *, announce: bool = False) -> StageRun:
    """Policy, change record and classification: from the plan (file or HCP run) when given,
    else as last announced (the ledger). `announce` commands always need a plan."""
    loaded = load_policy_for(options)
    policy = loaded.policy
    change = require_change(load_change(options.change, policy) if options.change else None)
    ledger = open_ledger(
        options.ledger, options.env, signed=policy.ledger.signed, settings=options.settings
    )
    has_plan = getattr(args, "plan", None) is not None
    source = plan_source.load(args, options.env, need_plan=announce or has_plan)
    run = source.run
    entries = [] if source.plan is not None else ledger.read(change.id)
    if source.plan is None and run is not None and not any(e.stage == "announce" for e in entries):
        source = plan_source.with_plan(source, options.env)  # nothing announced: use the run's plan
    if source.plan is not None:
        result = prepare(options, source, need_change=True, loaded=loaded).result
    else:
        result = from_ledger(entries, policy, change.id)
    return StageRun(
        options,
        policy,
        change,
        result,
        BusinessCalendar.from_policy(policy),
        ledger,
        renderer(policy, options),
        run,
    )


def load_planless(options: Options) -> StageRun:
    """Policy and change record for `hie-notify announce`: no plan, the declared type, and the
    PLANLESS fingerprint in everything it records (stages.planless)."""
    loaded = load_policy_for(options)
    policy = loaded.policy
    change = require_change(load_change(options.change, policy) if options.change else None)
    return StageRun(
        options,
        policy,
        change,
        planless(policy, change),
        BusinessCalendar.from_policy(policy),
        open_ledger(
            options.ledger, options.env, signed=policy.ledger.signed, settings=options.settings
        ),
        renderer(policy, options),
    )


PLANNING_INCOMPLETE = "planning_incomplete"


def planning_check(run: StageRun) -> tuple[Finding, ...]:
    """Phase 1 before Phase 2 (issue 25): every blocking finding the gate (`decide`, from the
    same facts) would make that can be decided before the window: everything but the window
    being open now and the notice clock. None for an emergency: it keeps its own rules and is
    never held back from being announced."""
    if run.emergency:
        return ()
    audiences = resolve(run.policy, run.result, run.change, run.environments)
    prep = Prepared(run.policy, run.change, run.result, run.calendar, audiences, run.run)
    return planning_findings(decide(gate_facts(run.options, prep, run.ledger, planning=True)))


def planning_lines(run: StageRun, findings: Sequence[Finding]) -> list[str]:
    """What `plan` says when Phase 1 is incomplete: each finding, where to fix it."""
    where = run.options.change or "the change record"
    return [
        f"planning incomplete: nothing was sent to customers or stakeholders; fix each of these "
        f"and run it again ({len(findings)}):",
        *(
            f"{where}: {f.text}" if f.rule == "change.gap" else f"{f.rule}: {f.text}"
            for f in findings
        ),
    ]


def hold_back(run: StageRun, findings: Sequence[Finding]) -> None:
    """Phase 1 is incomplete: tell the internal channels once per distinct set of missing
    items ("planning incomplete: missing X"), list them in the merge request note, and refuse
    (exit 2) naming each; nothing goes to customers or stakeholders."""
    from hie_notify.notify import run_stage

    lines = planning_lines(run, findings)
    missing = [f.text for f in findings]
    digest = hashlib.sha256("\n".join(sorted(missing)).encode()).hexdigest()[:16]
    internal = [
        a
        for a in resolve(run.policy, run.result, run.change, run.environments).for_phase(
            "pre_deployment"
        )
        if a.kind == "internal"
    ]
    notes = []
    report = run_stage(
        stage=PLANNING_INCOMPLETE,
        policy=run.policy,
        change=run.change,
        result=run.result,
        audiences=internal,
        ledger=run.ledger,
        channels=stage_channels(run, {}),
        renderer=run.renderer,
        now=run.options.clock(),
        links=run.links,
        status={"missing": missing},
        dry_run=run.options.dry_run,
        run=run_info(run.run),
        clock=run.options.clock,
        lifecycle={"state": lifecycle_now(run).state.value},
        key_extra=f"|missing:{digest}",
    )
    notes += [f"internal post: {line.strip()}" for line in report.lines()]
    try:
        notes.append(publish_summary(run, planning=findings))
    except HieError as exc:
        notes.append(f"warning: the merge request note was not updated: {exc}")
    raise InputError([*lines, *notes])


def renderer(policy: Policy, options: Options) -> Renderer:
    """The policy's templates, with every secret in the environment masked."""
    return Renderer(policy.templates, Masker.from_env(options.env))


def gitlab_configured(options: Options) -> bool:
    env = options.env
    return bool(
        options.settings.gitlab_token
        and env.get("CI_API_V4_URL")
        and env.get("CI_PROJECT_ID")
        and (env.get("CI_MERGE_REQUEST_IID") or env.get("CI_COMMIT_SHA"))
    )


def enforcing(options: Options) -> bool:
    """Is this an enforcement point (GitLab CI, or the run-task service), where only real
    deliveries count and an emergency's approval must be checked?"""
    return options.enforced or in_gitlab_ci(options.env)


def outbox_counts(policy: Policy, options: Options) -> bool:
    """Does an outbox file count as a notice? Outside an enforcement point (trying it out on a
    laptop) and in a trial the protected policy declares; never otherwise."""
    return not enforcing(options) or policy.trial


def unrouted(policy: Policy, audiences: list[Audience], options: Options) -> list[str]:
    """Each audience owed notice that only the outbox would carry, and what is missing."""
    from hie_notify.channels import Channels

    channels = Channels(policy, options.env, options.outbox, "-", options.clock())
    out = []
    for audience in audiences:
        if audience.kind == "meeting":
            continue  # an agenda item for the meeting: the outbox is its route
        routes = channels.for_audience(audience)
        if all(channel is channels.outbox for _, channel in routes):
            kinds = ", ".join(kind for kind, _ in routes)
            missing = "; ".join(
                why
                for key, why in channels.fallbacks.items()
                if key in (kind for kind, _ in routes) or key == f"email:{audience.id}"
            )
            out.append(
                f"{audience.id}: owed notice, but no real route reaches it (channels: {kinds}"
                + (f"; {missing}" if missing else "")
                + "): in GitLab CI the outbox tells nobody; give it contacts or credentials, "
                "or declare trial: true in the protected policy"
            )
    return out


def unrouted_declared(policy: Policy, change: ChangeRecord, options: Options) -> list[str]:
    """What `validate` can tell without a plan: the change record's customers, and the Slack
    channels of its declared type, that only the outbox would reach."""
    from hie_notify.durations import NoticePeriod

    zero = NoticePeriod("elapsed")
    home = policy.calendar.time_zone
    pre = frozenset({"pre_deployment"})
    audiences = []
    if change.type is not None:
        for channel in policy.change_type(change.type).internal_channels:
            audiences.append(
                Audience(
                    f"slack:{channel}", "internal", channel, home, pre, zero, zero, (), channel
                )
            )
    for name in change.customers:
        customer = policy.customers.get(name)
        if customer is None:
            continue  # reported by the change record's own check
        emails = tuple(c.email for c in customer.contacts if c.email)
        audiences.append(
            Audience(
                f"customer:{name}",
                "customer",
                customer.name,
                customer.time_zone or home,
                pre,
                zero,
                zero,
                (),
                None,
                emails,
            )
        )
    return unrouted(policy, audiences, options)


def send(
    run: StageRun, stage: str, status: dict[str, Any], transition: Transition | None = None
) -> StageReport:
    """Make `stage`'s transition and send its notices: under the ledger's lock, check it may
    follow the change's state (unless `transition` was checked already), record it, then
    deliver (a repeat sends only what is missing); then update the register."""
    with holding(run):
        report = _send(run, stage, status, transition or begin(run, stage))
    if not run.options.dry_run:
        audiences = resolve(run.policy, run.result, run.change, run.environments)
        report.notes.extend(register_stage(run, stage, [a.id for a in audiences.audiences], report))
    return report


def _send(run: StageRun, stage: str, status: dict[str, Any], transition: Transition) -> StageReport:
    # Only commands that send pay for importing the channels (gate and classify never do).
    from hie_notify.notify import run_stage

    options = run.options
    now = options.clock()
    audiences = resolve(run.policy, run.result, run.change, run.environments)
    if stage == "announce" and not outbox_counts(run.policy, options):
        problems = unrouted(run.policy, audiences.for_phase("pre_deployment"), options)
        if problems:
            raise InputError(problems)
    record_transition(run, transition)
    run.made = transition
    # Only a cancellation chooses its audiences from the ledger (everyone who was told).
    entries = run.ledger.read(run.change.id) if stage == "cancelled" else []
    chosen = audiences_for(stage, audiences, entries) + integrations(run, stage, entries)
    channels = stage_channels(run, status)
    report = run_stage(
        stage=stage,
        policy=run.policy,
        change=run.change,
        result=run.result,
        audiences=chosen,
        ledger=run.ledger,
        channels=channels,
        renderer=run.renderer,
        now=now,
        links=run.links,
        status=status,
        dry_run=options.dry_run,
        run=run_info(run.run),
        clock=options.clock,
        lifecycle=transition.facts,
        key_extra=transition.variant,
        acks=AckLinks.from_env(options.env, options.ledger),
    )
    return report


def register_stage(
    run: StageRun, stage: str, audiences: list[str], report: StageReport
) -> list[str]:
    """Update the change register after a stage; a warning, never a failure, when it cannot be
    (the ledger has the deliveries, and the next stage or a re-run registers them)."""
    from hie_notify.register.gitlab import freeze_periods
    from hie_notify.register.store import register_of
    from hie_notify.register.sync import conflicts_of, record_stage

    options = run.options
    try:
        register = register_of(options, run.policy)
        if register is None:
            return []
        # The whole ledger (only what the register lacks is added): its transitions are the
        # change's status, its post-mortem issue is what `remind` checks is closed, and a change
        # recorded before the register existed moves in.
        entries = run.ledger.read(run.change.id)
        stored = record_stage(
            register,
            change=run.change,
            result=run.result,
            stage=stage,
            audiences=audiences,
            environments=run.environments,
            entries=[*entries, *report.delivered, *report.already, *report.unchanged_entries],
            now=options.clock(),
            mask=run.renderer.mask,
        )
        if stage != "announce" or stored is None:
            return []
        found = conflicts_of(register, stored, freeze_periods(options.env, options.settings) or [])
    except HieError as exc:
        return [f"warning: the change register was not updated: {exc}"]
    return [f"WARNING: conflict: {c.text()}" for c in found]


def integrations(run: StageRun, stage: str, entries: list[Entry]) -> list[Audience]:
    """Jira, Statuspage and PagerDuty, where the policy turns them on and they hear `stage`."""
    from hie_notify.channels import integration_audiences

    audiences = resolve(run.policy, run.result, run.change, run.environments)
    chosen = integration_audiences(
        run.policy,
        stage,
        run.change.id,
        customer_facing=run.result.service_impacting
        and any(a.kind == "customer" for a in audiences.audiences),
        affected=affected(run),
        has_window=run.change.window is not None,
    )
    if stage == "cancelled":  # the status page hears a cancellation only of what it shows
        told = {e.audience for e in entries if e.stage == "announce"}
        chosen = [a for a in chosen if a.id in told or not a.id.startswith("statuspage:")]
    # PagerDuty incidents: triggered by an alerting stage, resolved once the change is over.
    from hie_notify.channels.alerts import RESOLVE_STAGES, incident_audience

    history = incident_history(run) if stage in RESOLVE_STAGES else []
    return chosen + incident_audience(run.policy, run.result.change_type, stage, history)


def incident_history(run: StageRun) -> list[Entry]:
    """The PagerDuty incidents triggered and resolved for this change: the ledger's, and the
    register's (`remind` records an overrun's there)."""
    from hie_notify.channels.alerts import INCIDENT, routing_key_env

    if routing_key_env(run.policy, run.result.change_type) is None:
        return []
    found = {e.idempotency_key: e for e in run.ledger.read(run.change.id) if e.audience == INCIDENT}
    from hie_notify.register.store import register_of

    try:
        register = register_of(run.options, run.policy)
        record = register.get(run.change.id) if register is not None else None
    except HieError:
        record = None  # the ledger's own still resolve; the register's overrun stays open
    for entry in record.entries if record is not None else ():
        if entry.audience == INCIDENT and entry.change_id == run.change.id:
            found.setdefault(entry.idempotency_key, entry)
    return sorted(found.values(), key=lambda e: e.delivered_at)


def affected(run: StageRun) -> list[str]:
    """The affected customers' names and the deployment's environments."""
    return [*affected_customers(run.policy, run.change, run.environments), *run.environments]


def stage_channels(run: StageRun, status: dict[str, Any]) -> Channels:
    from hie_notify.channels import Channels

    options = run.options
    links = {**run.links, "postmortem": str(status.get("postmortem_link") or "")}
    return Channels(
        run.policy,
        options.env,
        options.outbox,
        run.change.id,
        options.clock(),
        links=links,
        affected=affected(run),
        change_type=run.result.change_type,
        incidents=incident_history(run),
    )


def owe_postmortem(
    run: StageRun, stage: str, status: dict[str, Any], failures: list[Failure] | None = None
) -> list[str]:
    """When the change owes a post-mortem: say so in `status` and open its issue, once. An
    issue GitLab will not open is added to `failures` (the stage's notices still go out, and
    a re-run opens it); without `failures` it is raised."""
    entries = run.ledger.read(run.change.id)
    reasons = postmortem_reasons(run.policy, run.change, run.result, entries, stage)
    if not reasons:
        return []
    status["postmortem"] = reasons
    status["timeline"] = [
        f"{run.calendar.moment(e.delivered_at)} {_timeline_line(e)}"
        for e in sorted(entries, key=lambda e: e.delivered_at)
    ]
    done = [e for e in entries if e.stage == "postmortem"]
    if done:
        status["postmortem_link"] = done[0].message_id if done[0].channel == "gitlab" else ""
        return []
    if run.options.dry_run:
        return ["a post-mortem is owed (dry run: no issue opened)"]
    now = run.options.clock()
    pseudo = _document_audience(run)
    title, body = run.renderer.render_document("postmortem_issue.j2", run.context(pseudo, status))
    env = run.options.env
    if gitlab_configured(run.options):
        from hie_notify.channels.gitlab import open_issue
        from hie_notify.gitlab_api import NoteTarget

        try:
            where = NoteTarget.from_env(env, "the post-mortem issue", settings=run.options.settings)
            link = open_issue(where, title, body, ["post-mortem", "hie-notify"])
        except HieError as exc:
            if failures is None:
                raise
            from hie_notify.notify import Failure

            failures.append(Failure("post-mortem issue", "gitlab", str(exc)))
            return ["a post-mortem is owed: its issue was NOT opened (a re-run opens it)"]
        channel = "gitlab"
        status["postmortem_link"] = link
    else:
        path = run.options.outbox / run.change.id / "postmortem-issue.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {escape_markdown(title)}\n\n{body}", encoding="utf-8")
        link, channel = str(path), "outbox"
    run.ledger.record(
        [
            Entry(
                change_id=run.change.id,
                stage="postmortem",
                audience="postmortem",
                channel=channel,
                recipient="GitLab issue" if channel == "gitlab" else "outbox",
                fingerprint=run.result.fingerprint,
                change_type=run.result.change_type,
                service_impacting=run.result.service_impacting,
                resources=(),
                delivered_at=now,
                message_id=link,
                receipt={"issue": link} if channel == "gitlab" else {"path": link},
                idempotency_key=idempotency_key(
                    run.change.id, "postmortem", "postmortem", run.result.fingerprint
                ),
            )
        ]
    )
    return [f"post-mortem issue opened: {link}"]


def _timeline_line(entry: Entry) -> str:
    if entry.stage == LIFECYCLE:
        made = entry.extra.get("transition", "").replace("_", " ")
        return f"{made}: the change is now {entry.extra.get('state', '')}"
    return f"{entry.stage} → {entry.audience}"


def _document_audience(run: StageRun) -> Audience:
    """The reader of a document that is not a message (a GitLab note or issue): internal."""
    from hie_notify.durations import NoticePeriod

    zero = NoticePeriod("elapsed")
    return Audience(
        "gitlab", "internal", "GitLab", run.policy.calendar.time_zone, frozenset(), zero, zero, ()
    )


def publish_summary(
    run: StageRun, gate: GateDecision | None = None, planning: Sequence[Finding] = ()
) -> str:
    """The merge request's one summary note (or its outbox copy), with the change's lifecycle
    state; a line saying where. `planning`: what Phase 1 still lacks (nothing was announced)."""
    entries = run.ledger.read(run.change.id)
    state = replay(entries, emergency=run.emergency).state.value
    note = _note_context(run, state, gate, entries)
    note["planning"] = [f.text for f in planning]
    ctx = run.context(_document_audience(run))
    ctx["note"] = note
    _, body = run.renderer.render_document("merge_request_note.j2", ctx)
    if run.policy.trial:
        body = f"**{TRIAL_BANNER}**\n\n{body}"
    env = run.options.env
    if run.options.dry_run:
        return "merge request note: dry run, not published"
    if gitlab_configured(run.options):
        from hie_notify.channels.gitlab import MergeRequestSummary
        from hie_notify.gitlab_api import NoteTarget

        where = NoteTarget.from_env(
            env, "the merge request note", allow_issue=False, settings=run.options.settings
        )
        if where.kind != "mr":
            return "merge request note: no merge request"
        note_id = MergeRequestSummary(where).publish(run.change.id, body, run.links.get("job", ""))
        return f"merge request note {note_id} updated"
    path = run.options.outbox / run.change.id / "merge-request-note.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return f"merge request note written to {path} (no GitLab credentials)"


def summary_note(run: StageRun, report: StageReport) -> str:
    """publish_summary after a stage: a note GitLab refuses (or that still fails after its
    retries) is a failed delivery in `report`, not the end of the command."""
    try:
        return publish_summary(run)
    except HieError as exc:
        report.fail("merge request note", "gitlab", exc)
        return "merge request note NOT updated (a re-run updates it)"


def _note_context(
    run: StageRun, state: str, gate: GateDecision | None, entries: list[Entry]
) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in run.result.resources:
        key = r.categories[0] if r.categories else (run.result.change_type or "")
        groups.setdefault(key, []).append(
            {"address": r.address, "action": r.action, "impacting": r.service_impacting}
        )
    limit = 200
    return {
        "state": state,
        "gate": ("allowed" if gate.allowed else "BLOCKED") if gate else "",
        "gate_reasons": list(gate.reasons) if gate else [],
        "planning": [],  # what Phase 1 still lacks, when `plan` held the announcement back
        # The policy's checklists with the items they require of this change type.
        "checklists": [
            {"title": title, "link": link, "items": items}
            for (title, link), items in _checklists(run).items()
        ],
        "groups": [
            {
                "title": run.policy.change_type(k).title if k else "Changes",
                "resources": v[:limit],
                "more": max(0, len(v) - limit),
            }
            for k, v in groups.items()
        ],
        "drift": [d.address for d in run.result.drift][:50],
        "notices": [
            f"{e.stage}: {e.audience} via {e.channel} at {run.calendar.moment(e.delivered_at)}"
            + (" (unchanged: told exactly this before, not sent)" if e.extra.get("same_as") else "")
            for e in sorted(entries, key=lambda e: e.delivered_at)
            # Delivered to nobody (a post-mortem's record, a transition, an answer): no notice.
            if e.stage not in ("postmortem", LIFECYCLE, acks.ACK)
        ][-60:],
        "acknowledgements": ack_lines(entries, run.calendar.moment),
    }


def ack_lines(entries: Sequence[Entry], when: Callable[[datetime], str]) -> list[str]:
    """Per audience, who acknowledged when, open objections with their reasons, resolutions."""
    lines = []
    for aid, s in sorted(acks.by_audience(entries).items()):
        lines += [f"{aid}: acknowledged by {a.contact} {when(a.at)}" for a in s.acknowledged]
        lines += [
            f"{aid}: OPEN objection by {o.contact} {when(o.at)}: {o.reason}" for o in s.objections
        ]
        for r in s.resolved:
            if r.decision == acks.RESOLVED:
                lines.append(f"{aid}: objections resolved by {r.by} {when(r.at)}: {r.reason}")
            else:
                lines.append(f"{aid}: objection by {r.contact} {when(r.at)} (resolved): {r.reason}")
    return lines


def _checklists(run: StageRun) -> dict[tuple[str, str], list[str]]:
    """The policy's checklists (title, link) with the items they require of the change's type."""
    from hie_notify.gate import required_items

    out: dict[tuple[str, str], list[str]] = {}
    for title, link, item in required_items(run.policy, run.result.change_type):
        out.setdefault((title, link), []).append(item)
    return out


def terraform_report(result: Classification, path: Path) -> None:
    """GitLab's `artifacts:reports:terraform` file, so the merge request widget shows the plan."""
    s = result.summary
    data = {
        "create": s["add"] + s["replace"],
        "update": s["change"],
        "delete": s["destroy"] + s["replace"],
    }
    path.write_text(json.dumps(data) + "\n", encoding="utf-8")


def emit_report(
    options: Options,
    run: StageRun,
    report: StageReport,
    extra: list[str],
    data_extra: dict[str, Any] | None = None,
) -> int:
    """Print the stage's report (every audience: delivered, already delivered, or not and
    why); the exit code: 3 when anything was not delivered, else 0."""
    data = report.to_json()
    data["change_id"] = run.change.id
    data["change_type"] = run.result.change_type
    data.update(data_extra or {})
    title = STAGE_TITLES.get(report.stage, report.stage)
    lines = [
        f"{run.change.id}: {run.result.change_type} — {title}",
        *report.lines(run.calendar.local),
    ]
    if run.made is not None:  # where the change now is, as its lifecycle says
        data["lifecycle"] = run.made.facts
        step = run.made.step
        again = "" if step.recorded else " (made before: only what was missing is sent)"
        lines.append(f"  now       {step.after.value}{again}")
    lines += [f"  {x}" for x in extra]
    output.emit(options, data, "\n".join(lines))
    if not report.failed:
        return 0
    return output.failure(options, f"{run.change.id}: {report.failure_line()}")


def notice_window(
    run: StageRun, report: StageReport, *, blocked: str
) -> tuple[dict[str, Any], list[str]]:
    """After an announcement: the earliest window start its notices allow (JSON fields and the
    lines that say it), with a warning when the change record's window starts before that
    (`blocked` says what the gate will then block)."""
    audiences = resolve(run.policy, run.result, run.change, run.environments)
    entries = report.delivered + report.already + [u.original for u in report.unchanged]
    starts = []
    for audience in audiences.for_phase("pre_deployment"):
        told = [e.delivered_at for e in entries if e.audience == audience.id]
        if told:
            starts.append(run.calendar.earliest_start(min(told), audience.minimum))
    earliest = max(starts, default=None)
    data: dict[str, Any] = {
        "earliest_start": earliest.isoformat() if earliest else None,
        "window_too_early": False,
    }
    lines = []
    kind = run.result.change_type
    if earliest and kind and run.policy.change_type(kind).notice_overrides_others:
        # The gate holds an emergency to no notice period: only to its notices going out first.
        lines.append(
            "An emergency fix has no notice period: the gate asks only that these notices went "
            "out before the apply."
        )
    elif earliest:
        lines.append(f"These notices allow a window from {run.calendar.moment(earliest)}.")
        window = run.change.window
        if window is not None and window.start < earliest:
            data["window_too_early"] = True
            lines.append(
                "WARNING: the change record's window starts "
                f"{run.calendar.moment(window.start)}, before that: "
                f"the gate will block {blocked}. Move the window, or see `hie-notify earliest`."
            )
    return data, lines


def send_status(
    run: StageRun, stage: str, error: str = "", detail: str = ""
) -> tuple[StageReport, list[str]]:
    """Send an apply or rollback stage: check and record its transition, owe the post-mortem
    when it is a failure, then deliver."""
    status: dict[str, Any] = {"error": error, "detail": detail}
    extra = []
    failures: list[Failure] = []
    with holding(run):
        transition = begin(run, stage)
        record_transition(run, transition)
        if stage.endswith("_failed") or stage.startswith("rollback"):
            extra += owe_postmortem(run, stage, status, failures)
        report = send(run, stage, status, transition)
    report.failed[:0] = failures
    extra.append(summary_note(run, report))
    return report, extra


def handle_event(event: Event, args: argparse.Namespace, options: Options) -> str:
    """Send the stage an event means, for the change record this receiver serves. A delivery
    that failed raises (after every other one went out), so HCP Terraform retries the event
    and the retry sends only what is missing."""
    if event.stage is None:
        return f"{event.trigger}: no notice"
    stage_run = load(options, args)
    error = (event.message or "") if event.stage == "apply_failed" else ""
    report, extra = send_status(stage_run, event.stage, error)
    if report.failed:
        from hie_notify.errors import ServiceError

        raise ServiceError(f"{event.trigger} ({event.run_id}) -> {event.stage}: {report.summary()}")
    return "\n".join(
        [
            f"{event.trigger} ({event.run_id}) -> {event.stage}",
            *report.lines(stage_run.calendar.local),
            *extra,
        ]
    )


def send_complete(
    run: StageRun, detail: str, verified_by: str
) -> tuple[StageReport, list[str], dict[str, Any]]:
    """Completion notices: a rolled-back change ends with its own message (withdrawn, the
    service as before, what happens next); otherwise who checked the key user flows."""
    with holding(run):
        transition = begin(run, "complete")
        # The change did not stay: a rollback succeeded and nothing was applied since.
        rolled_back = transition.after.rolled_back
        status: dict[str, Any] = {
            "error": "",
            "detail": detail,
            "verified_by": verified_by,
            "rolled_back": rolled_back,
        }
        failures: list[Failure] = []
        record_transition(run, transition)
        extra = owe_postmortem(run, "complete", status, failures)
        if not verified_by and not rolled_back:
            extra.append(
                "warning: nobody is named as having tested the key user flows (Phase 3): give "
                "--verified-by NAME, or run it as a manual job (GITLAB_USER_LOGIN)"
            )
        report = send(run, "complete", status, transition)
    report.failed[:0] = failures
    extra += jira_done(run, report)
    extra.append(summary_note(run, report))
    return report, extra, status


def jira_done(run: StageRun, report: StageReport) -> list[str]:
    """At completion, the ticket moves through the policy's `jira.done_transition` (with the
    policy's `jira.done_fields`). A transition Jira will not make as configured is a warning
    (the notices went out); a credential or permission it refuses, or a Jira still failing,
    is a failed delivery in `report`."""
    jira_policy = run.policy.jira
    if not (jira_policy.enabled and jira_policy.done_transition):
        return []
    from hie_notify.channels import jira

    why = jira.configured(run.options.env)
    if why:
        return [f"Jira {run.change.id} not moved to {jira_policy.done_transition!r}: {why}"]
    if run.options.dry_run:
        return [f"dry run: Jira {run.change.id} would move to {jira_policy.done_transition!r}"]
    client = jira.JiraClient.from_env(run.options.env)
    try:
        return [
            jira.move_to_done(
                client, run.change.id, jira_policy.done_transition, jira_policy.done_fields
            )
        ]
    except HieError as exc:
        report.fail(f"jira:{run.change.id}", "jira", exc)
        return [f"Jira {run.change.id} NOT moved to {jira_policy.done_transition!r}"]


def jira_ticket(
    policy: Policy, change: ChangeRecord | None, env: Mapping[str, str]
) -> JiraTicket | None:
    """What Jira says of the change's ticket, for the gate (None when Jira is off in the
    policy, or there is no change record). Jira not configured is said, not raised: the gate
    decides what that means."""
    if not policy.jira.enabled or change is None:
        return None
    from hie_notify.channels import jira

    why = jira.configured(env)
    if why:
        return JiraTicket(change.id, unchecked=why)
    ticket = jira.JiraClient.from_env(env).ticket(change.id)
    return JiraTicket(change.id, ticket.status if ticket is not None else None)


def freeze_of(env: Mapping[str, str]) -> str | None:
    """Which deploy freeze is on, when GitLab says one is (CI_DEPLOY_FREEZE)."""
    if not env.get("CI_DEPLOY_FREEZE"):
        return None
    from hie_notify.gitlab_api import describe_freeze

    return describe_freeze(env)


@dataclass(frozen=True)
class GateCheck:
    """A gate decision with what the gate job prints and passes on."""

    decision: GateDecision
    calendar: BusinessCalendar
    policy_source: str
    data: dict[str, Any]  # the JSON output
    dotenv: dict[str, str]  # for later jobs (artifacts:reports:dotenv)
    note: str  # where the merge request summary went, or why it did not


def gate_facts(
    options: Options, prep: Prepared, ledger: Ledger, *, planning: bool = False
) -> GateFacts:
    """Everything the gate decides from, read once and in this order: the ledger (its seal
    checked), the freeze, the emergency's approval, Jira, the change register. `planning`
    (`plan`'s Phase 1 check): a Jira that refuses to answer is the finding `jira.unchecked`
    (blocking in GitLab CI), not the end of the command, so that elsewhere the announcement
    still goes out and the Jira comment is a failed delivery, named."""
    change = prep.change
    checked = ledger.verified(change.id) if change else None
    freeze = freeze_of(options.env)
    approval = _approval(options) if is_emergency(prep.policy, prep.result) else None
    try:
        jira = jira_ticket(prep.policy, change, options.env)
    except HieError as exc:
        if not planning or change is None:
            raise
        jira = JiraTicket(change.id, unchecked=str(exc))
    conflicts, budget = _register_facts(options, prep, change) if change else (None, None)
    entries = tuple(checked.entries) if checked else ()
    acks = acknowledgements(options, prep, entries).reasons if change else ()
    tasks = _tasks(options, prep) if change else None
    return GateFacts(
        policy=prep.policy,
        calendar=prep.calendar,
        classification=prep.result,
        change=change,
        audiences=prep.audiences,
        entries=entries,
        now=options.clock(),
        freeze=freeze,
        speculative=bool(prep.run and prep.run.plan_only),
        approval=approval,
        approval_required=enforcing(options),
        outbox_counts=outbox_counts(prep.policy, options),
        trial=prep.policy.trial,
        in_gitlab_ci=in_gitlab_ci(options.env),
        ledger_problems=tuple(checked.problems) if checked else (),
        ledger_warnings=tuple(checked.warnings) if checked else (),
        jira=jira,
        conflicts=conflicts,
        budget=budget,
        tasks=tasks,
        acks=acks,
    )


def _tasks(options: Options, prep: Prepared) -> TaskList | None:
    """The merge request description's task list, from GitLab's API, when the policy's
    checklists require items of this change type (None when none do)."""
    from hie_notify.gate import required_items, ticked_items

    if not required_items(prep.policy, prep.result.change_type):
        return None
    if not gitlab_configured(options):
        return TaskList(
            unchecked="GitLab is not configured (set HIE_GITLAB_TOKEN so the gate can read the "
            "merge request's description)"
        )
    from hie_notify.gitlab_api import NoteTarget, merge_request_description

    where = NoteTarget.from_env(
        options.env, "the checklists", allow_issue=False, settings=options.settings
    )
    if where.kind != "mr":
        return TaskList(unchecked="no merge request: its description holds the task list")
    return TaskList(ticked_items(merge_request_description(where)))


def check_gate(options: Options, source: plan_source.Source) -> GateCheck:
    """Decide whether the apply may go ahead now, from the policy in force, the change record,
    the plan and the ledger; publish the decision in the merge request's summary note."""
    prep = prepare(options, source, need_change=False)
    refuse_ci_overrides(options, prep.policy, gate=True)
    change = prep.change
    ledger = open_ledger(
        options.ledger, options.env, signed=prep.policy.ledger.signed, settings=options.settings
    )
    facts = gate_facts(options, prep, ledger)
    decision = decide(facts)
    answered = acknowledgements(options, prep, facts.entries)
    data = decision.to_json(prep.calendar)
    data["acknowledgements"] = answered.to_json()
    data["change_type"] = prep.result.change_type
    data["policy_source"] = prep.policy_source
    data["fingerprint"] = prep.result.fingerprint
    note = ""
    if change is not None:
        run = StageRun(
            options,
            prep.policy,
            change,
            prep.result,
            prep.calendar,
            ledger,
            renderer(prep.policy, options),
            prep.run,
        )
        try:
            note = publish_summary(run, decision)
        except HieError as exc:  # the decision stands whether or not the note could be updated
            note = f"warning: the merge request note was not updated: {exc}"
    dotenv = _gate_dotenv(decision, prep, data)
    return GateCheck(decision, prep.calendar, prep.policy_source, data, dotenv, note)


def _gate_dotenv(decision: GateDecision, prep: Prepared, data: dict[str, Any]) -> dict[str, str]:
    """What the gate passes on to later jobs (artifacts:reports:dotenv)."""
    change = prep.change
    window = change.window if change else None
    return {
        "HIE_GATE_ALLOWED": "true" if decision.allowed else "false",
        "HIE_CHANGE_ID": change.id if change else "",
        "HIE_CHANGE_TYPE": prep.result.change_type or "",
        "HIE_SERVICE_IMPACTING": "true" if prep.result.service_impacting else "false",
        "HIE_EMERGENCY": "true" if decision.emergency else "false",
        "HIE_PLAN_FINGERPRINT": prep.result.fingerprint,
        "HIE_EARLIEST_START": data["earliest_start"] or "",
        "HIE_WINDOW_START": window.start.isoformat() if window else "",
        "HIE_WINDOW_END": window.end.isoformat() if window else "",
        "HIE_TRIAL": "true" if decision.trial else "false",
    }


def _approval(options: Options) -> Approval | None:
    """Break-glass: an emergency needs an approval by someone other than the MR's author."""
    if not gitlab_configured(options):
        return None
    from hie_notify.gitlab_api import NoteTarget, other_approvers

    where = NoteTarget.from_env(
        options.env, "the emergency approval", allow_issue=False, settings=options.settings
    )
    others, author = other_approvers(where)
    if others:
        return Approval(True, f"approved by {', '.join(others)}")
    return Approval(False, f"author {author}; no other approver yet")


def _register_facts(
    options: Options, prep: Prepared, change: ChangeRecord
) -> tuple[Conflicts | None, Budget | None]:
    """What the change register (opened once) says of the change: its conflicts, and the
    month's downtime of the customers its downtime is charged to (`downtime_customers`: the
    customers it affects, not every customer told of it). A register that cannot be read is
    said in each; no register: no conflicts, and only this change's downtime counts."""
    from hie_notify.register.store import register_of

    register: Register | None = None
    unreadable = ""
    try:
        register = register_of(options, prep.policy)
    except HieError as exc:
        unreadable = str(exc)
    conflicts: Conflicts | None = None  # no register: nothing to conflict with
    if unreadable:
        conflicts = Conflicts(unreadable=unreadable)
    elif register is not None:
        conflicts = _conflicts(options, prep, change, register)
    month = budget_month(change, prep.calendar)
    customers = tuple(
        downtime_customers(
            prep.policy,
            change.customers,
            environments(options.env, prep.run),
            [a.id for a in prep.audiences.audiences],
        )
    )
    if month is None or not customers:
        return conflicts, None
    if unreadable:
        return conflicts, Budget(customers, month, unreadable=unreadable)
    if register is None:
        return conflicts, Budget(customers, month, registered=False)
    return conflicts, _used(options, prep, change, register, customers, month)


def _conflicts(
    options: Options, prep: Prepared, change: ChangeRecord, register: Register
) -> Conflicts:
    """The change's conflicts with the others registered and the deploy freezes."""
    from hie_notify.register.gitlab import freeze_periods
    from hie_notify.register.sync import conflicts_of, record_of

    try:
        record = record_of(change, prep.result, [], environments(options.env, prep.run))
        found = conflicts_of(register, record, freeze_periods(options.env, options.settings) or [])
    except HieError as exc:
        return Conflicts(unreadable=str(exc))
    return Conflicts(tuple(c.text() for c in found))


def _used(
    options: Options,
    prep: Prepared,
    change: ChangeRecord,
    register: Register,
    customers: tuple[str, ...],
    month: Month,
) -> Budget:
    """The budget of `customers` in `month`, with the downtime the other changes used (from
    the register)."""
    from hie_notify.report import source

    try:
        used = source.used_this_month(
            register,
            policy=prep.policy,
            change_id=change.id,
            customers=customers,
            month=month,
            calendar=prep.calendar,
            now=options.clock(),
        )
    except HieError as exc:
        return Budget(customers, month, unreadable=str(exc))
    return Budget(customers, month, tuple(used))
