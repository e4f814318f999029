"""The scheduled reminder pipeline the CI tests run (moved from tests/test_remind_ci.py)."""

from __future__ import annotations

from typing import Any

import yaml

from tests.ci.harness import EXAMPLES
from tests.ci.test_ci_templates import (
    FILE_LEDGER,
    with_inputs,
)
from tests.ci.test_ci_templates import component_project as component_project

REGISTER = "sqlite:.hie-notify/cache/register.sqlite3"  # kept between pipelines by the cache


SCHEDULE = [
    "--variable",
    "CI_PIPELINE_SOURCE=schedule",
    "--ignore-predefined-vars",
    "CI_PIPELINE_SOURCE",
]


NEVER_ON_SCHEDULE = {"if": '$CI_PIPELINE_SOURCE == "schedule"', "when": "never"}


def _pipeline() -> dict[str, Any]:
    """The plan-JSON example with a file ledger and a register, and the project's own jobs kept
    out of scheduled pipelines as the README says."""
    pipeline = yaml.safe_load((EXAMPLES / "terraform-plan-json.gitlab-ci.yml").read_text())
    with_inputs(pipeline, ledger=FILE_LEDGER, policy="policy.yaml", install="", register=REGISTER)
    for job in ("plan", "apply"):
        pipeline[job]["rules"].insert(0, dict(NEVER_ON_SCHEDULE))
    return pipeline
