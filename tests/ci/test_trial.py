"""The README's trial, followed verbatim on GitLab's terms: gitlab-ci-local with GITLAB_CI=true
and the other variables GitLab sets (tests/ci/harness.py), a merge request pipeline and then
the default branch's pipelines, each kind with its own cache as GitLab keeps them by default
("separate caches for protected branches"). The snippets come out of README.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hie_notify.policy.protected import load_effective
from tests.ci import test_ci_templates
from tests.ci.harness import PROJECT_ID, ROOT, Repo, stages_of, transitions_of
from tests.ci.test_ci_templates import (
    AT_WINDOW,
    CHANGE,
    COMPONENT_PROJECT,
    EARLY,
    readme_section,
    stage_files,
    with_inputs,
)

needs_glcl = pytest.mark.tools("gitlab-ci-local")
component_project = test_ci_templates.component_project  # the fixture
TRIAL_BANNER = "TRIAL: NOBODY WAS TOLD."
PLAN = {"FAKE_TERRAFORM_PLAN": str(ROOT / "examples" / "plan.json")}


def trial_section() -> str:
    section = readme_section()
    start = section.index("### Try it first")
    return section[start:]


def yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)


def trial_steps() -> dict[str, Any]:
    """What the README's trial says to do, in its order: the protected policy, the variable,
    the include's input."""
    trial = trial_section()
    blocks = yaml_blocks(trial)
    policy = next(b for b in blocks if b.startswith("# .hie-notify/policy.yaml"))
    include = yaml.safe_load(next(b for b in blocks if "include:" in b))
    variable = re.search(r"\*\*Add one CI/CD variable\*\*, `(\w+)`, masked and protected", trial)
    assert variable, "the trial names no variable"
    order = [trial.index(policy), variable.start(), trial.index("ledger: file:")]
    assert order == sorted(order), "the README's trial steps are out of order"
    return {
        "policy_path": policy.splitlines()[0].removeprefix("# "),
        "policy": policy,
        "variable": variable.group(1),
        "inputs": include["include"][0]["inputs"],
    }


def newcomer_repo(tmp_path: Path, component_project: Path) -> tuple[Repo, dict[str, Any]]:
    steps = trial_steps()
    pipeline = yaml.safe_load(yaml_blocks(readme_section())[0])
    with_inputs(pipeline, **steps["inputs"])
    repo = Repo(tmp_path / "newcomer", project="newcomer/infra")
    repo.serve_project(COMPONENT_PROJECT, component_project)
    repo.write(".gitlab-ci.yml", yaml.safe_dump(pipeline, sort_keys=False))
    repo.write(steps["policy_path"], steps["policy"])
    repo.copy(ROOT / "examples" / "change.yaml", pipeline["include"][0]["inputs"]["change"])
    repo.write("main.tf", "# infrastructure\n")
    repo.commit("add hie-notify, as a trial")
    return repo, steps


def cached_ledger(repo: Repo, kind: str) -> list[str]:
    return [
        line
        for path in repo.cache_files(kind, "*/.hie-notify/cache/ledger.jsonl")
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def test_the_trial_protected_policy_is_the_default_branch_checkout_without_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No token: on the protected default branch the checkout's file is the protected policy;
    in a merge request pipeline the branch's file is never taken for it."""
    steps = trial_steps()
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".hie-notify").mkdir()
    (tmp_path / steps["policy_path"]).write_text(steps["policy"])
    main = {
        "GITLAB_CI": "true",
        "CI_PROJECT_ID": PROJECT_ID,
        "CI_DEFAULT_BRANCH": "main",
        "CI_COMMIT_BRANCH": "main",
        "CI_COMMIT_REF_PROTECTED": "true",
        "CI_PIPELINE_SOURCE": "push",
    }
    loaded = load_effective(None, main)
    assert loaded.policy.trial is True
    assert (
        loaded.source
        == f"protected: {PROJECT_ID}@main:.hie-notify/policy.yaml (this pipeline's checkout)"
    )
    for not_protected in (
        {"CI_COMMIT_REF_PROTECTED": "false"},
        {"CI_COMMIT_BRANCH": "feature"},
        {"CI_PIPELINE_SOURCE": "merge_request_event"},
    ):
        # Asked of GitLab's API (here unreachable: no CI_API_V4_URL), never the checkout.
        with pytest.raises(Exception, match=r"CI_API_V4_URL|job"):
            load_effective(None, {**main, **not_protected})
    with pytest.raises(Exception, match="CI_API_V4_URL"):
        load_effective(None, {**main, "HIE_GITLAB_TOKEN": "glpat-x"})


@needs_glcl
def test_the_readme_trial_from_merge_request_to_completion_on_gitlabs_terms(
    tmp_path: Path, component_project: Path
) -> None:
    repo, steps = newcomer_repo(tmp_path, component_project)
    ci = {**PLAN, steps["variable"]: "f" * 64}

    # 4. The merge request: it plans, and announces nothing (no token to read the policy).
    mr = repo.run(merge_request=True, now=EARLY, variables=ci)
    assert mr.returncode == 0, mr.explain()
    assert mr.job_status() == {"plan": "PASS", "hie-notify:plan": "PASS"}, mr.explain()
    assert "announces nothing" in mr.job_log("hie-notify:plan")
    assert repo.ledger() == [] and not stage_files(repo, "announce")

    # 5. Merged before the window: the default branch announces, the gate holds the apply.
    merged = repo.run(now=EARLY, variables=ci)
    status = merged.job_status()
    assert status["hie-notify:plan"] == "PASS", merged.explain()
    assert status["hie-notify:gate"] == "FAIL", merged.explain()
    assert "apply" not in status and "hie-notify:apply-started" not in status
    plan_log = merged.job_log("hie-notify:plan")
    assert "this default-branch pipeline announces the change itself" in plan_log
    gate_log = merged.job_log("hie-notify:gate")
    assert TRIAL_BANNER in gate_log and "BLOCKED" in gate_log
    announced = stages_of(repo.ledger())
    assert announced["announce"] >= 3 and set(announced) == {"announce"}
    assert stage_files(repo, "announce")
    note = next(p for n, p in repo.outbox().items() if n.endswith("merge-request-note.md"))
    assert note.read_text().startswith(f"**{TRIAL_BANNER}")
    # The record is in the protected pipelines' cache only (GitLab keeps the kinds apart).
    assert cached_ledger(repo, "protected") and not cached_ledger(repo, "non_protected")

    # 6. At the window, a new default-branch pipeline: nothing twice, the apply, completion.
    window = repo.run(
        now=AT_WINDOW,
        variables={**ci, "GITLAB_USER_LOGIN": "ollie"},
        extra=["--manual", "hie-notify:complete"],
    )
    assert window.returncode == 0, window.explain()
    status = window.job_status()
    for job in (
        "hie-notify:plan",
        "hie-notify:gate",
        "hie-notify:apply-started",
        "apply",
        "hie-notify:apply-succeeded",
        "hie-notify:complete",
    ):
        assert status.get(job) == "PASS", window.explain()
    gate_log = window.job_log("hie-notify:gate")
    assert TRIAL_BANNER in gate_log and "ALLOWED" in gate_log, gate_log
    ledger = repo.ledger()
    counts = stages_of(ledger)
    counts.pop("postmortem", None)
    assert (
        counts["announce"] == counts["apply_started"] == counts["complete"] == announced["announce"]
    ), counts
    assert {e["delivered_at"] for e in ledger if e["stage"] == "announce"} == {EARLY}
    assert transitions_of(ledger) == ["announce", "apply_started", "apply_succeeded", "complete"]
    assert stage_files(repo, "complete")
    assert CHANGE in {e["change_id"] for e in ledger}


@needs_glcl
def test_the_trial_without_its_variable_fails_at_the_first_default_branch_job(
    tmp_path: Path, component_project: Path
) -> None:
    """Step 2 is needed: GitLab CI refuses a file ledger without its key."""
    repo, steps = newcomer_repo(tmp_path, component_project)
    merged = repo.run(now=EARLY, variables=PLAN, jobs=["hie-notify:plan"], extra=["--needs"])
    assert merged.job_status().get("hie-notify:plan") == "FAIL", merged.explain()
    assert steps["variable"] in merged.job_log("hie-notify:plan")
    assert repo.ledger() == []
