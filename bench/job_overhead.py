"""What a hie-notify stage job costs a pipeline, measured under gitlab-ci-local: the time the
announcement job (the classic template's `.hie-notify:plan`, on the example plan) takes beyond
an empty job, with hie-notify already in the job's environment (as in the release's image)
versus pip-installed by the template from the package registry, with pip's cache cold (a first
job) and warm (every later job: the template caches pip's downloads).

Run: .venv/bin/python bench/job_overhead.py [--rounds N]
Needs gitlab-ci-local (npm ci --prefix tests/ci) and network to fetch hie-notify's
dependencies once into the stand-in registry (pypiserver behind GitLab's paths, as the tests
use). The job time is gitlab-ci-local's own "finished in" figure for the job (not its start-up).
Every job runs in the shell here, so "preinstalled" is a Python with hie-notify on PATH, and
"pip" a fresh virtualenv without it (image pulls are not part of either figure).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ci.harness import CLASSIC, Repo, find_gitlab_ci_local  # noqa: E402
from tests.ci.registry import GitLabPypiStandIn  # noqa: E402

TOKEN = "glcbt-bench-job-token"
PIPELINE = """
include:
  - local: hie-notify.gitlab-ci.yml
stages: [plan]
empty:
  stage: plan
  script: ["true"]
notify:
  extends: .hie-notify:plan
  variables:
    HIE_PLAN_JSON: plan.json
    HIE_CHANGE: change.yaml
    HIE_POLICY: policy.yaml
    HIE_LEDGER: file:.hie-notify/ledger.jsonl
    HIE_NOW: "2026-11-25T10:00:00+00:00"
"""


def job_ms(repo: Repo, job: str, variables: dict[str, str]) -> float:
    # Each round announces afresh: no ledger or artifacts from the round before.
    shutil.rmtree(repo.state / "artifacts", ignore_errors=True)
    for ledger in repo.state.glob("cache/hie-notify-ledger*"):
        shutil.rmtree(ledger)
    result = repo.run(variables=variables, jobs=[job])
    if result.returncode != 0:
        raise SystemExit(result.explain())
    found = re.search(rf"^{re.escape(job)} finished in ([0-9.]+) (ms|s|min)", result.log, re.M)
    if not found:
        raise SystemExit(f"no job time for {job} in:\n{result.log}")
    value = float(found[1])
    return value * {"ms": 1, "s": 1000, "min": 60000}[found[2]]


def fresh_python(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    glcl, why = find_gitlab_ci_local()
    if glcl is None:
        print(why, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry_root = work / "registry"
        registry_root.mkdir()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "-w",
                str(registry_root),
                str(ROOT),
            ],
            check=True,
        )
        (wheel,) = registry_root.glob("hie_notify-*.whl")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "-d",
                str(registry_root),
                str(wheel),
            ],
            check=True,
        )
        repo = Repo(work / "deploy", project="acme/deploy")
        repo.copy(CLASSIC, "hie-notify.gitlab-ci.yml")
        repo.write(".gitlab-ci.yml", PIPELINE)
        for name in ("plan.json", "change.yaml", "policy.yaml"):
            repo.copy(ROOT / "examples" / name, name)
        repo.commit("bench")
        python = work / "python"
        times: dict[str, list[float]] = {
            "empty": [],
            "preinstalled": [],
            "pip cold": [],
            "pip warm": [],
        }
        with GitLabPypiStandIn(registry_root, "platform/hie-notify", TOKEN, work) as registry:
            ci = {
                "CI_API_V4_URL": registry.api,
                "CI_JOB_TOKEN": TOKEN,
                "PIP_CERT": str(registry.ca_file),
                "PIP_CONFIG_FILE": "/dev/null",
            }
            for _ in range(args.rounds):
                repo.own_hie_notify, repo.extra_path = True, []
                times["empty"].append(job_ms(repo, "empty", ci))
                times["preinstalled"].append(job_ms(repo, "notify", ci))
                repo.own_hie_notify, repo.extra_path = False, [python / "bin"]
                fresh_python(python)
                shutil.rmtree(repo.state / "cache" / "hie-notify-pip", ignore_errors=True)
                times["pip cold"].append(job_ms(repo, "notify", ci))
                fresh_python(python)
                times["pip warm"].append(job_ms(repo, "notify", ci))
    empty = min(times["empty"])
    print(f"gitlab-ci-local, shell executor, {args.rounds} rounds; job time as it reports it")
    for name, values in times.items():
        added = "" if name == "empty" else f"   adds {min(values) - empty:8.0f} ms to an empty job"
        print(
            f"  {name:13} best {min(values):8.0f} ms  median {statistics.median(values):8.0f} ms"
            + added
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
