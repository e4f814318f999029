"""Where a command's plan comes from: a `terraform show -json` file, or an HCP Terraform run."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hie_notify.errors import InputError
from hie_notify.limits import memory_budget
from hie_notify.terraform.plan import Plan, load_plan, parse_plan

if TYPE_CHECKING:
    from hie_notify.terraform.hcp import Run


@dataclass(frozen=True)
class Source:
    plan: Plan | None
    run: Run | None = None


def add_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """--plan FILE | --run-id ID | --workspace ORG/NAME (or HIE_TFC_RUN_ID / tfc `run_id`)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--plan", type=Path, metavar="FILE", help="`terraform show -json` output")
    group.add_argument(
        "--run-id",
        metavar="ID",
        help="an HCP Terraform run (also HIE_TFC_RUN_ID, or tfc-workflows' run_id)",
    )
    group.add_argument(
        "--workspace", metavar="ORG/NAME", help="the current run of an HCP Terraform workspace"
    )
    parser.set_defaults(plan_required=required)


def wants_hcp(args: argparse.Namespace, env: Mapping[str, str]) -> bool:
    if getattr(args, "plan", None) is not None:
        return False
    if getattr(args, "run_id", None) or getattr(args, "workspace", None):
        return True
    from hie_notify.terraform.hcp import run_id_from_env

    return run_id_from_env(env) is not None


def load(args: argparse.Namespace, env: Mapping[str, str], *, need_plan: bool = True) -> Source:
    """The plan (and the HCP run, when it came from one). With `need_plan` False, a stage
    command may run with neither, reading what was announced from the ledger instead."""
    path = getattr(args, "plan", None)
    if path is not None:
        return Source(load_plan(path, memory_budget(env)))
    if not wants_hcp(args, env):
        if getattr(args, "plan_required", True):
            raise InputError(
                "a plan is needed: give --plan FILE (`terraform show -json` output), --run-id ID "
                "or --workspace ORG/NAME (HCP Terraform), or set HIE_TFC_RUN_ID"
            )
        return Source(None)
    from hie_notify.terraform.hcp import HcpClient, parse_workspace, run_id_from_env

    client = HcpClient.from_env(env)
    if getattr(args, "workspace", None):
        org, name = parse_workspace(args.workspace, "--workspace")
        run = client.current_run(org, name)
    else:
        run_id = getattr(args, "run_id", None) or run_id_from_env(env)
        assert run_id is not None
        run = client.get_run(run_id)
    return with_plan(Source(None, run), env) if need_plan else Source(None, run)


def with_plan(source: Source, env: Mapping[str, str]) -> Source:
    """The source with its HCP run's plan JSON read (the run itself is not fetched again)."""
    run = source.run
    if source.plan is not None or run is None:
        return source
    from hie_notify.terraform.hcp import HcpClient

    if run.plan_id is None:
        raise InputError(f"run {run.id} has no plan yet (status {run.status})")
    if run.plan_status in ("errored", "canceled", "unreachable"):
        raise InputError(
            f"run {run.id}: its plan is {run.plan_status}, so there is no plan JSON to read"
            + (f" ({run.error_summary})" if run.error_summary else "")
        )
    data = HcpClient.from_env(env).plan_json(run.plan_id)
    return Source(parse_plan(data, f"HCP Terraform run {run.id}"), run)
