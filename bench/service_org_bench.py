"""One gate service for an organisation, at organisation scale: measure it.

Targets (issue 28, item 4): 200 run tasks across 20 GitLab projects and 3 replicas behind one
address (round robin; the first task is delivered to a second replica too, as a load balancer
retrying would), every decision called back exactly once and within HCP Terraform's 10-minute
limit. Measured: the median and worst time from a request's acceptance to its callback, the
time until every task was decided, and GitLab requests per decision (all of them, by route).
HCP Terraform and GitLab are faked at the HTTP layer (`responses`;
tests/support/service_org_fake.py,
the organisation test's fake); the replicas are real waitress servers on loopback sharing state
only through the fake GitLab. Half the projects announced in time (their pre_apply passes), half
late (blocked); every project has its protected policy on its default branch, and the service
writes as its own user, accepting the pipelines' bot as a ledger author. Run:
    .venv/bin/python bench/service_org_bench.py [--projects 20] [--tasks 200] [--replicas 3]
Prints the figures as JSON; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.service_org_fake import run_organisation

LIMIT_SECONDS = 600.0  # HCP Terraform times a run task out after 10 minutes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--replicas", type=int, default=3)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="hie-org-bench-") as tmp,
        contextlib.redirect_stdout(io.StringIO()),  # the announcements' own output
    ):
        figures = run_organisation(
            Path(tmp), projects=args.projects, tasks=args.tasks, replicas=args.replicas
        )
    print(json.dumps(figures, indent=2))
    ok = (
        figures["called_back_once"]
        and figures["decided_once"]
        and figures["duplicate_callbacks"] == 0
        and figures["statuses_as_expected"]
        and figures["worst_s"] < LIMIT_SECONDS
    )
    print(
        f"{figures['tasks']} run tasks, {figures['projects']} projects, {figures['replicas']} "
        f"replicas: callback median {figures['median_s']} s, worst {figures['worst_s']} s "
        f"(limit {LIMIT_SECONDS:.0f} s); all decided in {figures['all_decided_s']} s; "
        f"{figures['gitlab_requests_per_decision']} GitLab requests per decision; "
        + ("every task called back exactly once" if ok else "TARGET MISSED"),
        file=sys.stderr,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
