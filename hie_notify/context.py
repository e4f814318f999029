"""What every command loads from its options and the CI environment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from hie_notify.audiences import Audiences, resolve
from hie_notify.calendar import BusinessCalendar
from hie_notify.change import ChangeRecord, load_change
from hie_notify.classify import Classification, classify
from hie_notify.errors import InputError
from hie_notify.options import Options
from hie_notify.plan_source import Source
from hie_notify.policy import Policy
from hie_notify.policy.protected import LoadedPolicy, load_effective
from hie_notify.settings import refused_in_ci
from hie_notify.switches import in_gitlab_ci

if TYPE_CHECKING:
    from hie_notify.ack_gate import AckFindings
    from hie_notify.records import Entry
    from hie_notify.terraform.hcp import Run


def load_policy_for(options: Options) -> LoadedPolicy:
    """The policy in force (protected in GitLab CI), and where it came from. In CI a clock
    from the job's own variables is refused unless the protected policy declares a trial."""
    loaded = load_effective(options.policy, options.env, options.settings)
    refuse_ci_overrides(options, loaded.policy, gate=False)
    return with_jira_browse_url(loaded, options.env)


def with_jira_browse_url(loaded: LoadedPolicy, env: Mapping[str, str]) -> LoadedPolicy:
    """A policy without `jira.browse_url` links tickets under JIRA_URL (never a placeholder
    host); with neither, messages name the ticket without a link."""
    policy, base = loaded.policy, (env.get("JIRA_URL") or "").strip()
    if policy.jira.browse_url or not base.startswith(("https://", "http://")):
        return loaded
    jira = policy.jira.model_copy(update={"browse_url": base.rstrip("/") + "/browse/"})
    return replace(loaded, policy=policy.model_copy(update={"jira": jira}))


def refuse_ci_overrides(options: Options, policy: Policy, *, gate: bool) -> None:
    """In GitLab CI a branch sets its own job variables: refuse the ones that would move the
    clock or switch the gate off (exit 2, naming each), unless the protected policy is a
    trial. HIE_LOCAL_POLICY is refused where the policy is loaded."""
    if not in_gitlab_ci(options.env) or policy.trial:
        return
    refused = []
    if options.now is not None:
        refused.append("--now / HIE_NOW")
    if gate and options.dry_run:
        refused.append("--dry-run / HIE_DRY_RUN")
    if refused:
        raise InputError(
            [
                refused_in_ci(name) + "; the protected policy does not declare trial: true"
                for name in refused
            ]
        )


def environments(env: Mapping[str, str], run: Run | None = None) -> list[str]:
    """Names that map a deployment to customers: HIE_ENVIRONMENT, GitLab's, the HCP workspace."""
    names = [
        env.get(k, "") for k in ("HIE_ENVIRONMENT", "CI_ENVIRONMENT_NAME", "HIE_TFC_WORKSPACE")
    ]
    # HIE_TFC_WORKSPACE may be written ORG/NAME, as --workspace takes it: the name maps.
    names = [n.rsplit("/", 1)[-1] for n in names]
    if run is not None and run.workspace_name:
        names.append(run.workspace_name)
    return [n for n in names if n]


def run_info(run: Run | None) -> dict[str, str]:
    """What templates may show of an HCP Terraform run."""
    if run is None:
        return {"id": "", "message": "", "created_by": "", "url": "", "status": "", "workspace": ""}
    return {
        "id": run.id,
        "message": run.message or "",
        "created_by": run.created_by or "",
        "url": run.run_url or "",
        "status": run.status,
        "workspace": run.workspace_name or "",
    }


def links(env: Mapping[str, str], run: Run | None = None) -> dict[str, str]:
    mr = ""
    if env.get("CI_MERGE_REQUEST_IID") and env.get("CI_MERGE_REQUEST_PROJECT_URL"):
        mr = f"{env['CI_MERGE_REQUEST_PROJECT_URL']}/-/merge_requests/{env['CI_MERGE_REQUEST_IID']}"
    return {
        "pipeline": env.get("CI_PIPELINE_URL", ""),
        "job": env.get("CI_JOB_URL", ""),
        "merge_request": mr,
        "run": (run.run_url if run is not None and run.run_url else "")
        or env.get("HIE_TFC_RUN_URL", "")
        or env.get("run_link", ""),
    }


@dataclass(frozen=True)
class Prepared:
    policy: Policy
    change: ChangeRecord | None
    result: Classification
    calendar: BusinessCalendar
    audiences: Audiences
    run: Run | None = None
    policy_source: str = ""


def require_change(change: ChangeRecord | None) -> ChangeRecord:
    if change is None:
        raise InputError(
            "a change record is needed: give --change FILE or HIE_CHANGE (see examples/change.yaml)"
        )
    return change


def prepare(
    options: Options, source: Source, *, need_change: bool, loaded: LoadedPolicy | None = None
) -> Prepared:
    """Policy, change record, classified plan, calendar and audiences for a command (the policy
    is loaded here unless the caller already has it: in CI that is a GitLab API call)."""
    loaded = loaded or load_policy_for(options)
    policy = loaded.policy
    change = load_change(options.change, policy) if options.change else None
    if need_change:
        require_change(change)
    if source.plan is None:
        raise InputError("a plan is needed: give --plan FILE or --run-id ID")
    run = source.run
    result = classify(source.plan, policy, change, destroy=bool(run and run.is_destroy))
    audiences = resolve(policy, result, change, environments(options.env, run))
    return Prepared(
        policy,
        change,
        result,
        BusinessCalendar.from_policy(policy),
        audiences,
        run,
        loaded.source,
    )


def acknowledgements(options: Options, prep: Prepared, entries: Sequence[Entry]) -> AckFindings:
    """Who answered each audience's announcement, and what the policy still requires (for the
    gate's facts and for `classify`)."""
    from hie_notify import ack_gate

    return ack_gate.findings(
        policy=prep.policy,
        calendar=prep.calendar,
        change_type=prep.result.change_type,
        audiences=prep.audiences.for_phase("pre_deployment"),
        entries=entries,
        now=options.clock(),
        when=prep.calendar.moment,
    )
