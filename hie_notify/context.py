"""What every command loads from its options and the CI environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hie_notify.audiences import Audiences, resolve
from hie_notify.calendar import BusinessCalendar
from hie_notify.change import ChangeRecord, load_change
from hie_notify.classify import Classification, classify
from hie_notify.errors import InputError
from hie_notify.options import Options
from hie_notify.policy import Policy, load_policy


def load_inputs(options: Options) -> tuple[Policy, ChangeRecord | None]:
    policy = load_policy(options.policy)
    change = load_change(options.change, policy) if options.change else None
    return policy, change


def environments(env: Mapping[str, str]) -> list[str]:
    """Names that map a deployment to customers: HIE_ENVIRONMENT, GitLab's, the HCP workspace."""
    names = [
        env.get(k, "") for k in ("HIE_ENVIRONMENT", "CI_ENVIRONMENT_NAME", "HIE_TFC_WORKSPACE")
    ]
    return [n for n in names if n]


def links(env: Mapping[str, str]) -> dict[str, str]:
    mr = ""
    if env.get("CI_MERGE_REQUEST_IID") and env.get("CI_MERGE_REQUEST_PROJECT_URL"):
        mr = f"{env['CI_MERGE_REQUEST_PROJECT_URL']}/-/merge_requests/{env['CI_MERGE_REQUEST_IID']}"
    return {
        "pipeline": env.get("CI_PIPELINE_URL", ""),
        "job": env.get("CI_JOB_URL", ""),
        "merge_request": mr,
        "run": env.get("HIE_TFC_RUN_URL", "") or env.get("run_link", ""),
    }


@dataclass(frozen=True)
class Prepared:
    policy: Policy
    change: ChangeRecord | None
    result: Classification
    calendar: BusinessCalendar
    audiences: Audiences


def prepare(options: Options, plan_path: Path | None, *, need_change: bool) -> Prepared:
    """Policy, change record, classified plan, calendar and audiences for a command."""
    policy, change = load_inputs(options)
    if need_change and change is None:
        raise InputError(
            "a change record is needed: give --change FILE or HIE_CHANGE (see examples/change.yaml)"
        )
    if plan_path is None:
        raise InputError("a plan is needed: give --plan FILE (`terraform show -json` output)")
    from hie_notify.terraform.plan import load_plan

    result = classify(load_plan(plan_path), policy, change)
    audiences = resolve(policy, result, change, environments(options.env))
    return Prepared(policy, change, result, BusinessCalendar.from_policy(policy), audiences)
