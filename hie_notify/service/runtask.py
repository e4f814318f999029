"""Run-task decisions: accept at once, decide in a bounded pool, call HCP back once.

Serving an organisation (HIE_SERVICE_CONFIG), the run's project is the one the operator maps its
workspace to; a workspace mapped to none fails closed (`org.py`). Claims stay per project: they
are notes on the merge request of the run's commit in that project.

Each `task_result_id` is decided once, across every replica: before deciding, a worker records
a claim in the change's ledger (a GitLab note) and reads the claims back; the earliest claim
(GitLab's note time, then the claim's id) wins, the others stop. The decision itself is the
gate's (`stagerun.check_gate` at pre_apply; `gate.decide` for the advisory post_plan view) and
is recorded in the ledger too, with the run it allowed, so notifications of other runs of the
same change can be told apart.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from hie_notify import stagerun
from hie_notify.calendar import BusinessCalendar
from hie_notify.classify import Classification
from hie_notify.context import prepare
from hie_notify.errors import HieError
from hie_notify.gate import GateDecision, GateFacts, decide
from hie_notify.ledger import Entry, Ledger, idempotency_key, open_ledger
from hie_notify.masking import Masker
from hie_notify.options import Options
from hie_notify.plan_source import Source
from hie_notify.render import escape_markdown
from hie_notify.service.changes import Located, locate
from hie_notify.service.org import ProtectedPolicies
from hie_notify.service.settings import Settings
from hie_notify.terraform.plan import parse_plan
from hie_notify.terraform.runtask import (
    Outcome,
    RunTaskRequest,
    TaskResult,
    fetch_plan,
    hcp_origin,
    send_callback,
)

log = logging.getLogger(__name__)

CLAIM = "run_task_claim"
DECISION = "run_task"
SPECULATIVE = "speculative: not a deployment"
_REMEMBERED = 10_000  # task result ids one instance keeps in memory


class RunTasks:
    """Accepts run-task requests and decides them in a bounded pool of workers."""

    def __init__(
        self,
        settings: Settings,
        base: Options,
        *,
        workdir: Path,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
        session: Any = None,
        instance: str | None = None,
        policies: ProtectedPolicies | None = None,
    ) -> None:
        self.settings = settings
        self.policies = policies or ProtectedPolicies(workdir)
        self.base = base
        self.workdir = workdir
        self.clock = clock or base.clock
        self.sleep = sleep or time.sleep
        self.session = session
        self.instance = instance or uuid.uuid4().hex[:12]
        self.origin = hcp_origin(base.env)
        self.masker: Masker = settings.masker(base.env)
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="hie-run-task")
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._pending = 0
        self._closing = False

    @property
    def pending(self) -> int:
        return self._pending

    def accept(self, request: RunTaskRequest, vcs_repo_url: str | None = None) -> tuple[int, str]:
        """(HTTP status, text) to answer HCP now; the work goes to the pool. `vcs_repo_url`:
        the workspace's VCS repository as HCP sent it (signed), to check the project by."""
        with self._lock:
            if self._closing:
                return 503, "shutting down"
            if request.task_result_id in self._seen:
                return 200, "already accepted"
            if self._pending >= self.settings.queue + self.settings.workers:
                return 503, "busy: too many run tasks waiting"
            self._seen[request.task_result_id] = None
            while len(self._seen) > _REMEMBERED:
                self._seen.popitem(last=False)
            self._pending += 1
        self._pool.submit(self._work, request, vcs_repo_url)
        return 200, "accepted"

    def _work(self, request: RunTaskRequest, vcs_repo_url: str | None) -> None:
        try:
            self.process(request, vcs_repo_url)
        finally:
            with self._lock:
                self._pending -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until every accepted request has been decided (or `timeout` passes)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float) -> None:
        """Stop accepting; let running decisions finish for up to `timeout` seconds."""
        with self._lock:
            self._closing = True
        if not self.drain(timeout):
            log.error(
                "shutting down with %d run task(s) undecided: HCP Terraform will time them out "
                "(10 minutes) and count them as failed",
                self._pending,
            )
        self._pool.shutdown(wait=False, cancel_futures=True)

    def process(
        self, request: RunTaskRequest, vcs_repo_url: str | None = None
    ) -> TaskResult | None:
        """Decide and call back; None when another instance (or delivery) owns this result."""
        fields = {"task_result_id": request.task_result_id, "run_id": request.run_id}
        try:
            result = self.decide(request, vcs_repo_url)
        except HieError as exc:
            result = self._undecided(request, self.masker(str(exc)))
        except Exception:
            log.exception("run task %s: deciding failed", request.task_result_id, extra=fields)
            result = self._undecided(request, "hie-notify failed while deciding (see its log)")
        if result is None:
            log.info("run task %s: decided elsewhere", request.task_result_id, extra=fields)
            return None
        fields = {**fields, "stage": request.stage, "status": result.status}
        try:
            code = send_callback(
                request, result, self.origin, session=self.session, sleep=self.sleep
            )
        except HieError as exc:
            log.error(
                "run task %s: the result (%s) could not be delivered: %s. HCP Terraform will "
                "time the task out after 10 minutes and count it as failed",
                request.task_result_id,
                result.status,
                self.masker(str(exc)),
                extra=fields,
            )
            return result
        log.info(
            "run task %s: %s (%s) delivered, HTTP %d",
            request.task_result_id,
            result.status,
            self.masker(result.message),
            code,
            extra=fields,
        )
        return result

    def project(self, request: RunTaskRequest, vcs_repo_url: str | None) -> str | None:
        """The GitLab project of the run (serving an organisation), else None (one project)."""
        org = self.settings.org
        if org is None:
            return None
        return org.project_for(
            request.organization_name,
            request.workspace_name,
            vcs_repo_url,
            str(self.base.env.get("CI_API_V4_URL") or ""),
        )

    def decide(self, request: RunTaskRequest, vcs_repo_url: str | None = None) -> TaskResult | None:
        if request.stage not in ("post_plan", "pre_apply"):
            return TaskResult(
                "passed",
                f"hie-notify decides at post_plan and pre_apply; nothing to check at "
                f"{request.stage}",
                request.run_app_url or "",
                (_info("HIE-STAGE", f"nothing to check at {request.stage}"),),
            )
        if request.is_speculative:
            return TaskResult(
                "passed",
                SPECULATIVE,
                request.run_app_url or "",
                (
                    _info(
                        "HIE-SPECULATIVE",
                        SPECULATIVE,
                        "A speculative (plan-only) run can never be applied: no notice is "
                        "owed and there is nothing to gate.",
                    ),
                ),
            )
        now = self.clock()
        project = self.project(request, vcs_repo_url)
        located = locate(
            self.base,
            self.settings,
            self.workdir,
            now,
            key=request.jira_key,
            commit=request.vcs_commit,
            branch=request.vcs_branch,
            run_url=request.run_app_url,
            project=project,
            policies=self.policies,
        )
        ledger = open_ledger(located.options.ledger, located.options.env)
        if not self._claim(ledger, located.change_id, request, now):
            return None
        data = fetch_plan(request, self.origin, sleep=self.sleep, session=self.session)
        source = Source(parse_plan(data, f"HCP Terraform run {request.run_id}"), request.as_run())
        if request.stage == "pre_apply":
            checked = stagerun.check_gate(located.options, source)
            result = gate_result(checked.decision, checked.calendar, located.link)
            classification = None
        else:
            prep = prepare(located.options, source, need_change=True)
            decision = decide(
                GateFacts(
                    policy=prep.policy,
                    calendar=prep.calendar,
                    classification=prep.result,
                    change=prep.change,
                    audiences=prep.audiences,
                    entries=ledger.read(located.change_id),
                    now=now,
                )
            )
            classification = prep.result
            result = advisory_result(decision, prep.calendar, prep.result, located.link)
        self._record(ledger, located, request, result, classification, now)
        return result

    def _undecided(self, request: RunTaskRequest, why: str) -> TaskResult:
        """The gate cannot decide: it blocks at pre_apply; post_plan only warns."""
        if request.stage == "pre_apply":
            return TaskResult(
                "failed",
                f"BLOCKED: hie-notify cannot decide: {why}",
                request.run_app_url or "",
                (_failed("HIE-UNDECIDED", why, f"The gate cannot decide, so it blocks.\n\n{why}"),),
            )
        return TaskResult(
            "passed",
            f"advisory: hie-notify cannot tell yet: {why}",
            request.run_app_url or "",
            (_warning("HIE-UNDECIDED", why, f"At pre_apply the gate will block unless: {why}"),),
        )

    def _entry(
        self, change_id: str, request: RunTaskRequest, stage: str, now: datetime, **extra: str
    ) -> Entry:
        return Entry(
            change_id=change_id,
            stage=stage,
            audience=f"run-task:{request.task_result_id}",
            channel="hcp-run-task",
            recipient=request.run_id,
            fingerprint=extra.pop("fingerprint", ""),
            change_type=extra.pop("change_type", None) or None,
            service_impacting=False,
            resources=(),
            delivered_at=now,
            message_id=f"{self.instance}:{uuid.uuid4().hex[:12]}",
            idempotency_key=idempotency_key(
                change_id, stage, request.task_result_id, self.instance
            ),
            extra={
                "task_result_id": request.task_result_id,
                "run_id": request.run_id,
                "hcp_stage": request.stage,
                **extra,
            },
        )

    def _claim(
        self, ledger: Ledger, change_id: str, request: RunTaskRequest, now: datetime
    ) -> bool:
        """Is this instance the one to decide this task result? Recorded in the ledger."""

        def claims() -> list[Entry]:
            return [
                e
                for e in ledger.read(change_id)
                if e.stage in (CLAIM, DECISION)
                and e.extra.get("task_result_id") == request.task_result_id
            ]

        with ledger.lock():
            if claims():
                return False
            mine = self._entry(change_id, request, CLAIM, now)
            ledger.record([mine])
            found = claims()
        if any(e.stage == DECISION for e in found):
            return False
        # The first claim in ledger order (the order GitLab stored the notes): delivery times
        # are each writer's own clock, which two replicas need not agree on.
        first = found[0] if found else None
        return first is not None and first.message_id == mine.message_id

    def _record(
        self,
        ledger: Ledger,
        located: Located,
        request: RunTaskRequest,
        result: TaskResult,
        classification: Classification | None,
        now: datetime,
    ) -> None:
        entry = self._entry(
            located.change_id,
            request,
            DECISION,
            now,
            status=result.status,
            message=result.message[:300],
            fingerprint=classification.fingerprint if classification else "",
            change_type=(classification.change_type or "") if classification else "",
        )
        try:
            ledger.record([entry])
        except HieError as exc:  # the decision stands; only the record of it is missing
            log.warning(
                "run task %s: the decision was not recorded: %s",
                request.task_result_id,
                self.masker(str(exc)),
            )


def _info(oid: str, description: str, body: str = "") -> Outcome:
    return Outcome(oid, description, body or description, "info", "Passed", "None")


def _warning(oid: str, description: str, body: str = "") -> Outcome:
    return Outcome(oid, description, body or description, "warning", "Warning", "Medium")


def _failed(oid: str, description: str, body: str = "") -> Outcome:
    return Outcome(oid, description, body or description, "error", "Failed", "High")


def _notice_table(decision: GateDecision, calendar: BusinessCalendar) -> str:
    if not decision.requirements:
        return ""
    rows = ["| audience | minimum | told | in time |", "|---|---|---|---|"]
    for r in decision.requirements:
        told = calendar.moment(r.given_at) if r.given_at else "not told"
        rows.append(
            f"| {escape_markdown(r.label)} | {r.minimum} | {told} | {'yes' if r.met else 'NO'} |"
        )
    return "\n\n**Notice by audience**\n\n" + "\n".join(rows)


def gate_result(decision: GateDecision, calendar: BusinessCalendar, link: str) -> TaskResult:
    """The pre_apply result: failed with every reason (and the earliest start), or passed."""
    table = _notice_table(decision, calendar)
    earliest = (
        calendar.moment(decision.earliest_start) if decision.earliest_start is not None else ""
    )
    if decision.allowed:
        outcomes = [
            _warning(f"HIE-W{i}", w, f"{escape_markdown(w)}{table}")
            for i, w in enumerate(decision.warnings, 1)
        ]
        outcomes += [
            _info(
                f"HIE-N{i}",
                f"{r.label} told {calendar.moment(r.given_at) if r.given_at else 'not needed'}",
                f"{escape_markdown(r.label)}: minimum notice {r.minimum}, met.",
            )
            for i, r in enumerate(decision.requirements, 1)
        ]
        if not outcomes:
            outcomes.append(_info("HIE-OK", "the gate allows the apply", "Nothing is in the way."))
        warned = f" ({len(decision.warnings)} warning(s))" if decision.warnings else ""
        return TaskResult(
            "passed", f"ALLOWED: the notice policy was met{warned}", link, tuple(outcomes)
        )
    tail = f"\n\n**Earliest allowed start**: {earliest}" if earliest else ""
    outcomes = [
        _failed(f"HIE-{i}", reason, f"{escape_markdown(reason)}{tail}{table}")
        for i, reason in enumerate(decision.reasons, 1)
    ]
    outcomes += [
        _warning(f"HIE-W{i}", w, escape_markdown(w)) for i, w in enumerate(decision.warnings, 1)
    ]
    message = f"BLOCKED: {len(decision.reasons)} reason(s)"
    if earliest:
        message += f"; earliest allowed start {earliest}"
    return TaskResult("failed", f"{message}: {decision.reasons[0]}", link, tuple(outcomes))


def advisory_result(
    decision: GateDecision, calendar: BusinessCalendar, result: Classification, link: str
) -> TaskResult:
    """The post_plan result (always passed): the classification and whether notice is owed."""
    kind = result.change_type or "no change"
    owed = len(decision.requirements)
    told = sum(1 for r in decision.requirements if r.met)
    summary = ", ".join(f"{v} {k}" for k, v in result.summary.items() if v) or "no changes"
    outcomes = [
        _info(
            "HIE-CLASS",
            f"{kind}; service-impacting: {'yes' if result.service_impacting else 'no'}",
            f"**Plan**: {summary}\n\n"
            + "\n".join(f"- {escape_markdown(r)}" for r in result.reasons),
        )
    ]
    outcomes += [
        _warning(f"HIE-{i}", reason, escape_markdown(reason))
        for i, reason in enumerate(decision.reasons, 1)
    ]
    earliest = (
        f"; earliest allowed start {calendar.moment(decision.earliest_start)}"
        if decision.earliest_start is not None and not decision.allowed
        else ""
    )
    verdict = (
        "the gate would allow the apply now"
        if decision.allowed
        else (f"the gate would block now: {len(decision.reasons)} reason(s)")
    )
    message = f"advisory: {kind}; notice owed to {owed} audience(s), {told} told in time; {verdict}"
    return TaskResult("passed", message + earliest, link, tuple(outcomes))
