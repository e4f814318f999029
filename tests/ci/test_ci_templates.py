"""The CI templates, run for real: gitlab-ci-local runs the shipped examples and the README's
pipeline in throwaway git repositories, and each scenario checks what the jobs left behind (the
outbox files, the ledger, the gate's dotenv, the job logs), not only exit codes.

Skipped, with the reason, when gitlab-ci-local (npm), check-jsonschema or pypiserver (the dev
extra) is not installed; `bash .ci/run` installs them and runs these tests with
HIE_REQUIRE_TOOLS=1, where a missing tool fails instead of skipping (tests/support/tools.py).
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ci.fake_hcp_server import TOKEN, FakeHcpServer
from tests.ci.harness import (
    CLASSIC,
    COMPONENT,
    EXAMPLES,
    HERE,
    ROOT,
    Repo,
    stages_of,
    transitions_of,
)
from tests.ci.registry import GitLabPypiStandIn

CHANGE = "FFAPP-4458"
AUDIENCES = {"slack:#devops", "slack:#infrastructure", "slack:#product", "customer:EoE"}
FILES = {
    "slack:#devops": "slack-devops.json",
    "slack:#infrastructure": "slack-infrastructure.json",
    "slack:#product": "slack-product.json",
    "customer:EoE": "customer-EoE.eml",
}
# The change record (examples/change.yaml) puts the window on Tue 8 Dec 2026 19:00-21:00 London,
# and the example policy asks 5 business days' notice for customers.
EARLY = "2026-11-25T10:00:00+00:00"  # 9 business days before: enough
LATE = "2026-12-02T10:00:00+00:00"  # 4 business days and 9 hours before: too short
AT_WINDOW = "2026-12-08T19:05:00+00:00"
VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]
COMPONENT_PROJECT = "platform/hie-notify"
FILE_LEDGER = "file:.hie-notify/ledger.jsonl"
# The CI/CD variables of these projects: the stand-in terraform's plan, and the file ledger's key
# (GitLab CI refuses a file ledger without it).
LEDGER_KEY = {"HIE_LEDGER_KEY": "f" * 64}
TERRAFORM = {"FAKE_TERRAFORM_PLAN": str(ROOT / "examples" / "plan.json"), **LEDGER_KEY}
# The protected policy of a trial (the README's "Try it first"): outbox files count in CI.
TRIAL_POLICY = "trial: true\n"

needs_glcl = pytest.mark.tools("gitlab-ci-local")


# -- helpers


def yaml_documents(path: Path) -> list[Any]:
    return list(yaml.safe_load_all(path.read_text()))


def with_inputs(pipeline: dict[str, Any], **inputs: str) -> dict[str, Any]:
    """The pipeline with these inputs given to its hie-notify component include."""
    for item in pipeline["include"]:
        if isinstance(item, dict) and "component" in item:
            item.setdefault("inputs", {}).update(inputs)
            return pipeline
    raise AssertionError("no component include")


def swap_tfc_base(pipeline: dict[str, Any]) -> dict[str, Any]:
    """hashicorp's Base.gitlab-ci.yml comes from GitHub, out of reach here: use the stand-in."""
    items = []
    for item in pipeline["include"]:
        if isinstance(item, dict) and "tfc-workflows-gitlab" in str(item.get("remote", "")):
            items.append({"local": "tfc-base.gitlab-ci.yml"})
        else:
            items.append(item)
    pipeline["include"] = items
    return pipeline


def deploy_repo(tmp_path: Path, component_project: Path, pipeline: dict[str, Any]) -> Repo:
    """A deployment project: the pipeline, its change record and policy, a Terraform folder."""
    repo = Repo(tmp_path / "deploy", project="acme/deploy")
    repo.serve_project(COMPONENT_PROJECT, component_project)
    repo.write(".gitlab-ci.yml", yaml.safe_dump(pipeline, sort_keys=False))
    repo.copy(ROOT / "examples" / "change.yaml", "deploy/change.yaml")
    # The protected policy (HIE_POLICY, on the default branch): the example's, as a trial.
    repo.write("policy.yaml", (ROOT / "examples" / "policy.yaml").read_text() + TRIAL_POLICY)
    repo.copy(HERE / "fixtures" / "tfc-base.gitlab-ci.yml", "tfc-base.gitlab-ci.yml")
    repo.write("terraform/main.tf", "# the infrastructure (terraform is a stand-in here)\n")
    repo.commit("deploy pipeline")
    return repo


def plan_json_repo(tmp_path: Path, component_project: Path) -> Repo:
    """ci-templates/examples/terraform-plan-json.gitlab-ci.yml, as shipped, with the inputs a
    machine without GitLab needs: a file ledger, the policy file, hie-notify from PATH."""
    pipeline = yaml.safe_load((EXAMPLES / "terraform-plan-json.gitlab-ci.yml").read_text())
    with_inputs(pipeline, ledger=FILE_LEDGER, policy="policy.yaml", install="")
    return deploy_repo(tmp_path, component_project, pipeline)


def announced(repo: Repo, when: str, variables: dict[str, str] | None = None) -> None:
    """The merge request pipeline (no GitLab token: it announces nothing), then the merge at
    `when`: the default branch's pipeline announces the change; its gate holds the apply (the
    window is not now)."""
    variables = TERRAFORM if variables is None else variables
    mr = repo.run(merge_request=True, now=when, variables=variables)
    assert mr.returncode == 0, mr.explain()
    assert stages_of(repo.ledger()) == {}, mr.explain()
    merged = repo.run(now=when, variables=variables)
    assert merged.job_status().get("hie-notify:gate") == "FAIL", merged.explain()
    assert stages_of(repo.ledger()) == {"announce": 4}, merged.explain()


def stage_files(repo: Repo, stage: str) -> set[str]:
    return {name.split("/")[-1] for name in repo.outbox() if name.startswith(f"{CHANGE}/{stage}/")}


def slack_text(path: Path) -> str:
    payload = json.loads(path.read_text())
    return payload["text"] + "\n" + "\n".join(b["text"]["text"] for b in payload["blocks"])


def assert_ran_in_order(log: str, *jobs: str) -> None:
    """Each job finished before the next one started (gitlab-ci-local's own log lines)."""
    last = -1
    for job in jobs:
        start = log.find(f"{job} starting")
        end = log.find(f"{job} finished")
        assert start > last, f"{job} started before the job before it finished:\n{log}"
        last = end


# -- fixtures


@pytest.fixture(scope="session")
def component_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The component project as GitLab would serve it: this checkout's templates, tagged with
    the release version, as the release job tags it."""
    repo = Repo(tmp_path_factory.mktemp("component") / "hie-notify", project=COMPONENT_PROJECT)
    repo.copy(COMPONENT, "templates/hie-notify.yml")
    repo.copy(CLASSIC, "ci-templates/hie-notify.gitlab-ci.yml")
    repo.commit(f"hie-notify {VERSION}")
    repo.git("tag", VERSION)
    return repo.path


def validate(tool: str, *files: Path) -> None:
    proc = subprocess.run(
        [tool, "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- the two templates say the same thing


def _scripts(doc: dict[str, Any]) -> dict[str, list[str]]:
    found = {}
    for name, job in doc.items():
        if isinstance(job, dict):
            for key in ("before_script", "script", "after_script"):
                if key in job:
                    lines = [line for line in job[key] if "$[[" not in line]
                    found[f"{name.split(':', 1)[-1]} {key}"] = lines
    return found


def test_component_and_classic_template_run_the_same_scripts() -> None:
    _, component = yaml_documents(COMPONENT)
    (classic,) = yaml_documents(CLASSIC)
    ours = _scripts(component)
    theirs = _scripts(classic)
    pairs = {
        "base before_script": "base before_script",
        "plan script": "plan script",
        "gate script": "gate script",
        "apply-started script": "apply-started script",
        "apply-result script": "apply-result script",
        "rollback script": "rollback script",
        "complete script": "complete script",
    }
    for mine, other in pairs.items():
        assert ours[mine] == theirs[other], mine
    assert not any(key.endswith("after_script") for key in ours | theirs), (
        "no after_script: gitlab-ci-local --shell-isolation wipes the job's files before it"
    )


def test_component_inputs_are_typed_described_and_used() -> None:
    spec, body = yaml_documents(COMPONENT)
    inputs = spec["spec"]["inputs"]
    text = COMPONENT.read_text()
    for name, definition in inputs.items():
        assert definition.get("description"), f"input {name} has no description"
        assert "default" in definition, f"input {name} has no default"
        assert f"$[[ inputs.{name} ]]" in text, f"input {name} is never used"
    assert inputs["gate_required"] == {**inputs["gate_required"], "type": "boolean"}
    assert body["hie-notify:gate"]["allow_failure"] is False
    assert re.fullmatch(inputs["ledger"]["regex"], "gitlab")
    assert re.fullmatch(inputs["ledger"]["regex"], "gitlab:issue:12")
    assert re.fullmatch(inputs["ledger"]["regex"], FILE_LEDGER)
    assert not re.fullmatch(inputs["ledger"]["regex"], "s3://bucket/ledger")


def test_templates_find_their_own_release() -> None:
    """The component runs the release it was included at (component context), the classic
    template the release it belongs to; neither pins a package of its own."""
    spec, body = yaml_documents(COMPONENT)
    assert set(spec["spec"]["component"]) >= {"version", "reference"}
    base = body[".hie-notify-component:base"]
    assert base["variables"]["HIE_NOTIFY_VERSION"] == "$[[ component.version ]]"
    assert base["variables"]["HIE_NOTIFY_REFERENCE"] == "$[[ component.reference ]]"
    inputs = spec["spec"]["inputs"]
    # GitLab does not interpolate the header: the version is used in the body, never a default.
    assert not any("component." in str(i.get("default", "")) for i in inputs.values())
    assert inputs["image"]["default"] == "$CI_REGISTRY/$HIE_NOTIFY_PROJECT:$HIE_NOTIFY_VERSION"
    assert inputs["install"]["default"] == ""
    assert re.fullmatch(inputs["project"]["regex"], inputs["project"]["default"])
    (classic,) = yaml_documents(CLASSIC)
    assert classic["variables"]["HIE_NOTIFY_VERSION"] == VERSION
    assert classic[".hie-notify:base"]["image"] == (
        "$CI_REGISTRY/$HIE_NOTIFY_PROJECT:$HIE_NOTIFY_VERSION"
    )
    for path in (COMPONENT, CLASSIC):
        assert "hie-notify==0" not in path.read_text(), f"{path}: a pinned package"
    for path in EXAMPLES.glob("*.yml"):
        refs = set(re.findall(r"hie-notify@([^\s]+)|ref: (\S+)", path.read_text()))
        assert {a or b for a, b in refs} <= {VERSION}, path
    for path in (COMPONENT, CLASSIC, *EXAMPLES.glob("*.yml")):
        for cache in _caches(yaml_documents(path)[-1]):
            assert cache == ".cache/hie-notify-pip/", f"{path}: pip downloads not cached"


def _caches(doc: dict[str, Any]) -> list[str]:
    """The cache path each job keeps pip's downloads in (PIP_CACHE_DIR)."""
    found = []
    for job in doc.values():
        if isinstance(job, dict) and "PIP_CACHE_DIR" in job.get("variables", {}):
            pip_dir = job["variables"]["PIP_CACHE_DIR"]
            assert not pip_dir.startswith(("/", "$")), "relative: the checkout, where pip runs"
            paths = [p for c in job["cache"] for p in c["paths"]]
            found += [p for p in paths if p.rstrip("/") == pip_dir.rstrip("/")]
            assert found, f"PIP_CACHE_DIR {pip_dir} is in no cache: of {paths}"
    return found


def test_failure_notice_job_runs_on_failure_only() -> None:
    _, component = yaml_documents(COMPONENT)
    (classic,) = yaml_documents(CLASSIC)
    for job in (component["hie-notify:apply-failed"], classic[".hie-notify:apply-failed"]):
        assert [r.get("when") for r in job["rules"]] == ["on_failure"]
    for job in (component["hie-notify:rollback-started"], classic[".hie-notify:rollback"]):
        assert [r.get("when") for r in job["rules"]] == ["manual"]
    for name in ("hie-notify:gate", "hie-notify:apply-started", "hie-notify:apply-failed"):
        assert component[name].get("resource_group") or component[component[name]["extends"]].get(
            "resource_group"
        ), name


# -- GitLab's CI schema


def test_classic_template_examples_and_own_pipeline_validate_against_gitlab_schema(
    check_jsonschema: str,
) -> None:
    validate(check_jsonschema, CLASSIC, *sorted(EXAMPLES.glob("*.yml")), ROOT / ".gitlab-ci.yml")


def test_component_header_validates_against_gitlab_schema(
    check_jsonschema: str, tmp_path: Path
) -> None:
    spec, _ = yaml_documents(COMPONENT)
    header = tmp_path / "spec.yml"
    header.write_text(yaml.safe_dump(spec))
    validate(check_jsonschema, header)


@needs_glcl
def test_expanded_component_pipeline_validates_against_gitlab_schema(
    check_jsonschema: str, tmp_path: Path, component_project: Path
) -> None:
    """The component is two YAML documents: check the pipeline gitlab-ci-local expands."""
    for example in ("terraform-plan-json", "hcp-terraform-component"):
        pipeline = swap_tfc_base(
            yaml.safe_load((EXAMPLES / f"{example}.gitlab-ci.yml").read_text())
        )
        repo = deploy_repo(tmp_path / example, component_project, pipeline)
        expanded = tmp_path / f"{example}-expanded.yml"
        expanded.write_text(repo.preview())
        jobs = yaml.safe_load(expanded.read_text())
        assert "hie-notify:gate" in jobs and "hie-notify:apply-failed" in jobs
        validate(check_jsonschema, expanded)


@needs_glcl
@pytest.mark.parametrize(
    ("ref", "version", "reference"),
    [
        # @X.Y: gitlab-ci-local resolves it from the tags, as the Catalog does.
        (".".join(VERSION.split(".")[:2]), VERSION, ".".join(VERSION.split(".")[:2])),
        # @X.Y.Z: gitlab-ci-local leaves component.version unresolved (GitLab resolves it); the
        # setup then takes the exact tag from component.reference.
        (VERSION, "$[[ component.version ]]", VERSION),
    ],
)
def test_the_expanded_component_names_its_own_release(
    tmp_path: Path, component_project: Path, ref: str, version: str, reference: str
) -> None:
    pipeline = yaml.safe_load((EXAMPLES / "terraform-plan-json.gitlab-ci.yml").read_text())
    include = pipeline["include"][0]
    include["component"] = include["component"].rsplit("@", 1)[0] + f"@{ref}"
    repo = deploy_repo(tmp_path, component_project, pipeline)
    jobs = yaml.safe_load(repo.preview())
    for name in ("hie-notify:plan", "hie-notify:gate", "hie-notify:apply-succeeded"):
        job = jobs[name]
        image = job["image"]["name"] if isinstance(job["image"], dict) else job["image"]
        assert image == "$CI_REGISTRY/$HIE_NOTIFY_PROJECT:$HIE_NOTIFY_VERSION", name
        assert job["variables"]["HIE_NOTIFY_VERSION"] == version, name
        assert job["variables"]["HIE_NOTIFY_REFERENCE"] == reference, name
        assert job["variables"]["HIE_NOTIFY_PROJECT"] == COMPONENT_PROJECT, name
        assert job["variables"]["PIP_CACHE_DIR"] == ".cache/hie-notify-pip"
        assert ".cache/hie-notify-pip/" in [p for c in job["cache"] for p in c["paths"]]


@needs_glcl
def test_a_bad_input_stops_the_pipeline_with_the_input_named(
    tmp_path: Path, component_project: Path
) -> None:
    pipeline = yaml.safe_load((EXAMPLES / "terraform-plan-json.gitlab-ci.yml").read_text())
    with_inputs(pipeline, ledger="s3://bucket/ledger")
    repo = deploy_repo(tmp_path, component_project, pipeline)
    result = repo.run(variables=TERRAFORM)
    assert result.returncode != 0
    assert "ledger" in result.log and "regex" in result.log.lower(), result.log
    assert not result.job_status()


# -- the scenarios (the plain-Terraform example with the component)


@needs_glcl
def test_merged_without_a_token_the_default_branch_announces_the_change_into_the_outbox(
    tmp_path: Path, component_project: Path
) -> None:
    repo = plan_json_repo(tmp_path, component_project)
    mr = repo.run(merge_request=True, now=LATE, variables=TERRAFORM)
    assert mr.returncode == 0, mr.explain()
    assert mr.job_status() == {"plan": "PASS", "hie-notify:plan": "PASS"}
    assert "announces nothing" in mr.job_log("hie-notify:plan") and not repo.outbox()
    # Merged: the default branch announces (GitLab CI, no token: see the README's trial).
    result = repo.run(now=LATE, variables=TERRAFORM)
    assert result.job_status()["hie-notify:plan"] == "PASS", result.explain()

    assert stage_files(repo, "announce") == set(FILES.values())
    outbox = repo.outbox()
    devops = json.loads(outbox[f"{CHANGE}/announce/slack-devops.json"].read_text())
    assert devops["channel"] == "#devops"
    assert "Resize the EKS general worker nodes" in slack_text(
        outbox[f"{CHANGE}/announce/slack-devops.json"]
    )
    mail = email.message_from_bytes(
        outbox[f"{CHANGE}/announce/customer-EoE.eml"].read_bytes(), policy=email.policy.default
    )
    assert mail["To"] == "service-desk@eoe.example.org"
    assert mail["Subject"] == (
        "Planned change to the HIE Secure Data Environment: Tue 8 Dec 2026 19:00 to "
        "21:00 GMT (ref FFAPP-4458)"
    )
    assert f"{CHANGE}/merge-request-note.md" in outbox

    ledger = repo.ledger()
    assert stages_of(ledger) == {"announce": 4} and transitions_of(ledger) == ["announce"]
    assert {e["audience"] for e in ledger if e["stage"] == "announce"} == AUDIENCES
    assert {e["delivered_at"] for e in ledger} == {LATE}
    assert {e["change_id"] for e in ledger} == {CHANGE}
    report = repo.artifacts("hie-notify:plan") / "hie-notify-terraform-report.json"
    assert json.loads(report.read_text()) == {"create": 2, "update": 1, "delete": 1}
    assert "These notices allow a window from Wed 9 Dec 2026 10:00 GMT" in result.log


@needs_glcl
def test_the_gate_blocks_the_apply_when_the_notice_was_too_short(
    tmp_path: Path, component_project: Path
) -> None:
    repo = plan_json_repo(tmp_path, component_project)
    announced(repo, LATE)
    result = repo.run(now=AT_WINDOW, variables=TERRAFORM)

    assert result.returncode != 0, result.explain()
    status = result.job_status()
    assert status["hie-notify:gate"] == "FAIL", result.explain()
    for never in ("apply", "hie-notify:apply-started", "hie-notify:apply-succeeded"):
        assert never not in status, result.explain()
    assert "hie-notify:apply-failed" not in status and "hie-notify:complete" not in status
    log = result.job_log("hie-notify:gate")
    assert "BLOCKED: the apply may not run." in log
    assert (
        "East of England was told Wed 2 Dec 2026 10:00 GMT, less than the "
        "minimum 5 business days before the window starts" in log
    )
    assert "Earliest allowed start: Wed 9 Dec 2026 10:00 GMT" in log
    gate = repo.dotenv("hie-notify:gate", "hie-notify-gate.env")
    assert gate["HIE_GATE_ALLOWED"] == "false"
    assert gate["HIE_EARLIEST_START"].startswith("2026-12-09T10:00")
    # Nothing was sent past the announcement, and the main pipeline did not announce again.
    ledger = repo.ledger()
    assert stages_of(ledger) == {"announce": 4}
    assert {e["delivered_at"] for e in ledger} == {LATE}
    assert not [name for name in repo.outbox() if "/apply_" in name or "/complete/" in name]


@needs_glcl
def test_with_enough_notice_the_pipeline_applies_and_completes(
    tmp_path: Path, component_project: Path
) -> None:
    repo = plan_json_repo(tmp_path, component_project)
    announced(repo, EARLY)
    # hie-notify:complete is manual (Phase 3: a person tests the key user flows first): run it.
    result = repo.run(
        now=AT_WINDOW,
        variables={**TERRAFORM, "GITLAB_USER_LOGIN": "ollie"},
        extra=["--manual", "hie-notify:complete"],
    )

    assert result.returncode == 0, result.explain()
    assert result.job_status() == {
        "plan": "PASS",
        "hie-notify:plan": "PASS",
        "hie-notify:gate": "PASS",
        "hie-notify:apply-started": "PASS",
        "apply": "PASS",
        "hie-notify:apply-succeeded": "PASS",
        "hie-notify:complete": "PASS",
    }, result.explain()
    assert_ran_in_order(
        result.log,
        "hie-notify:plan",
        "hie-notify:gate",
        "hie-notify:apply-started",
        "apply",
        "hie-notify:apply-succeeded",
        "hie-notify:complete",
    )
    assert "ALLOWED: the apply may go ahead." in result.job_log("hie-notify:gate")
    gate = repo.dotenv("hie-notify:gate", "hie-notify-gate.env")
    assert gate["HIE_GATE_ALLOWED"] == "true"
    assert gate["HIE_CHANGE_ID"] == CHANGE
    assert repo.dotenv("hie-notify:apply-started", "hie-notify-apply.env") == {
        "HIE_APPLY_STARTED": "true"
    }

    ledger = repo.ledger()
    counts = stages_of(ledger)
    assert counts.pop("postmortem", 0) <= 1  # the policy owes one for a service-impacting change
    assert counts == {"announce": 4, "apply_started": 4, "apply_succeeded": 4, "complete": 4}
    # Announced on the merge request; on main the plan job repeats it and records nothing.
    assert transitions_of(ledger) == ["announce", "apply_started", "apply_succeeded", "complete"]
    announce = [e for e in ledger if e["stage"] == "announce"]
    assert {e["delivered_at"] for e in announce} == {EARLY}, "announced again on main"
    assert {e["delivered_at"] for e in ledger if e["stage"] not in ("announce", "lifecycle")} == {
        AT_WINDOW
    }
    for stage in ("apply_started", "apply_succeeded", "complete"):
        assert stage_files(repo, stage) == set(FILES.values()), stage
        assert {e["audience"] for e in ledger if e["stage"] == stage} == AUDIENCES
    assert not stage_files(repo, "apply_failed")


@needs_glcl
def test_a_failed_apply_sends_the_failure_notice_and_rollback_is_manual(
    tmp_path: Path, component_project: Path
) -> None:
    repo = plan_json_repo(tmp_path, component_project)
    announced(repo, EARLY)
    result = repo.run(now=AT_WINDOW, variables={**TERRAFORM, "FAKE_APPLY_FAIL": "1"})

    assert result.returncode != 0, result.explain()
    status = result.job_status()
    assert status["apply"] == "FAIL"
    assert status["hie-notify:apply-failed"] == "PASS", result.explain()
    for never in ("hie-notify:apply-succeeded", "hie-notify:complete"):
        assert never not in status
    for manual in ("hie-notify:rollback-started", "hie-notify:rollback-succeeded"):
        assert manual not in status, "a rollback notice went out without anyone asking"
    ledger = repo.ledger()
    assert stages_of(ledger) == {
        "announce": 4,
        "apply_started": 4,
        "apply_failed": 4,
        "postmortem": 1,
    }
    assert stage_files(repo, "apply_failed") == set(FILES.values())
    devops = repo.outbox()[f"{CHANGE}/apply_failed/slack-devops.json"]
    assert "the apply job failed" in slack_text(devops)
    assert f"{CHANGE}/postmortem-issue.md" in repo.outbox()

    # The on-call engineer starts the rollback: the manual job, as a click would run it.
    rollback = repo.run(
        now="2026-12-08T19:40:00+00:00", variables=TERRAFORM, jobs=["hie-notify:rollback-started"]
    )
    assert rollback.returncode == 0, rollback.explain()
    ledger = repo.ledger()
    assert {e["audience"] for e in ledger if e["stage"] == "rollback_started"} >= {
        "slack:#devops",
        "slack:#infrastructure",
    }
    assert stage_files(repo, "rollback_started") >= {"slack-devops.json"}


@needs_glcl
def test_a_deploy_freeze_blocks_the_apply(tmp_path: Path, component_project: Path) -> None:
    repo = plan_json_repo(tmp_path, component_project)
    announced(repo, EARLY)
    result = repo.run(now=AT_WINDOW, variables={**TERRAFORM, "CI_DEPLOY_FREEZE": "1"})

    assert result.returncode != 0, result.explain()
    status = result.job_status()
    assert status["hie-notify:gate"] == "FAIL"
    assert "apply" not in status and "hie-notify:apply-started" not in status
    log = result.job_log("hie-notify:gate")
    assert "BLOCKED: the apply may not run." in log
    assert re.search(r"deploy freeze", log, re.IGNORECASE), log
    assert repo.dotenv("hie-notify:gate", "hie-notify-gate.env")["HIE_GATE_ALLOWED"] == "false"
    assert stages_of(repo.ledger()) == {"announce": 4}
    assert not [name for name in repo.outbox() if "/apply_" in name]


# -- the HCP Terraform examples, after (stand-ins of) hashicorp's tfc-workflows-gitlab jobs


def hcp_repo(tmp_path: Path, component_project: Path, example: str) -> Repo:
    pipeline = swap_tfc_base(yaml.safe_load((EXAMPLES / example).read_text()))
    if example.endswith("-component.gitlab-ci.yml"):
        with_inputs(pipeline, ledger=FILE_LEDGER, policy="policy.yaml", install="")
    else:
        pipeline["variables"].update(
            {"HIE_LEDGER": FILE_LEDGER, "HIE_POLICY": "policy.yaml", "HIE_NOTIFY_INSTALL": ""}
        )
    return deploy_repo(tmp_path, component_project, pipeline)


@pytest.fixture
def hcp() -> Any:
    plan = json.loads((ROOT / "examples" / "plan.json").read_text())
    with FakeHcpServer(plan) as server:
        yield server


@needs_glcl
@pytest.mark.parametrize(
    "example", ["hcp-terraform-component.gitlab-ci.yml", "hcp-terraform-classic.gitlab-ci.yml"]
)
def test_hcp_examples_announce_gate_apply_and_complete_from_the_run(
    tmp_path: Path, component_project: Path, hcp: FakeHcpServer, example: str
) -> None:
    repo = hcp_repo(tmp_path, component_project, example)
    env = {"TFE_ADDRESS": hcp.address, "TF_API_TOKEN": TOKEN, **LEDGER_KEY}

    mr = repo.run(merge_request=True, now=EARLY, variables=env)
    assert mr.returncode == 0, mr.explain()
    assert mr.job_status() == {
        "upload_configuration": "PASS",
        "create_run": "PASS",
        "hie-notify:plan": "PASS",
    }
    assert stages_of(repo.ledger()) == {}
    merged = repo.run(now=EARLY, variables=env)
    assert merged.job_status().get("hie-notify:gate") == "FAIL", merged.explain()
    assert stages_of(repo.ledger()) == {"announce": 4}
    assert "/api/v2/runs/run-Qx7bN2eKpL4mRw9T" in hcp.requests, "the run_id was not used"
    assert "/download/plan.json" in hcp.requests

    main = repo.run(now=AT_WINDOW, variables=env, extra=["--manual", "hie-notify:complete"])
    assert main.returncode == 0, main.explain()
    status = main.job_status()
    for job in (
        "create_run",
        "hie-notify:gate",
        "hie-notify:apply-started",
        "apply_run",
        "hie-notify:apply-succeeded",
        "hie-notify:complete",
    ):
        assert status.get(job) == "PASS", main.explain()
    assert "hie-notify:apply-failed" not in status
    assert_ran_in_order(main.log, "hie-notify:gate", "hie-notify:apply-started", "apply_run")
    assert "ALLOWED: the apply may go ahead." in main.job_log("hie-notify:gate")
    counts = stages_of(repo.ledger())
    counts.pop("postmortem", None)
    assert counts == {"announce": 4, "apply_started": 4, "apply_succeeded": 4, "complete": 4}
    # The run's link (from tfc-workflows' dotenv and the API) is in the internal notices.
    started = repo.outbox()[f"{CHANGE}/apply_started/slack-devops.json"]
    assert "run-Qx7bN2eKpL4mRw9T" in started.read_text()


@needs_glcl
def test_hcp_classic_example_sends_the_failure_notice_when_the_run_errors(
    tmp_path: Path, component_project: Path, hcp: FakeHcpServer
) -> None:
    repo = hcp_repo(tmp_path, component_project, "hcp-terraform-classic.gitlab-ci.yml")
    env = {"TFE_ADDRESS": hcp.address, "TF_API_TOKEN": TOKEN, **LEDGER_KEY}
    announced(repo, EARLY, env)
    main = repo.run(now=AT_WINDOW, variables={**env, "FAKE_APPLY_FAIL": "1"})
    assert main.returncode != 0
    status = main.job_status()
    assert status["apply_run"] == "FAIL" and status["hie-notify:apply-failed"] == "PASS"
    assert "hie-notify:complete" not in status and "hie-notify:apply-succeeded" not in status
    assert stages_of(repo.ledger())["apply_failed"] == 4
    assert stage_files(repo, "apply_failed") == set(FILES.values())


# -- tried as a new user: only the README's "Use it in a pipeline" section


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Use it in a pipeline")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def readme_trial_policy() -> str:
    """The protected policy the README's trial commits to the default branch."""
    blocks = re.findall(r"```yaml\n(.*?)```", readme_section(), re.DOTALL)
    (policy,) = [b for b in blocks if b.startswith("# .hie-notify/policy.yaml")]
    return str(policy)


def test_readme_section_follows_the_quick_start() -> None:
    text = (ROOT / "README.md").read_text()
    assert text.index("## Quick start") < text.index("## Use it in a pipeline")
    assert "## Development" not in text  # the reference is in docs/, after the first steps
    section = readme_section()
    for needed in ("component:", "project:", "HIE_GITLAB_TOKEN", "masked", "hie-notify:gate"):
        assert needed in section, needed


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout as a wheel, built outside the checkout."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "hie_notify", src / "hie_notify")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(src)],
        check=True,
        timeout=600,
    )
    (built,) = out.glob("hie_notify-*.whl")
    return built


@pytest.fixture(scope="session")
def registry_files(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """What the component project's package registry holds after the release job: the wheel,
    and (as GitLab forwards what it does not have to PyPI) the wheels of its dependencies."""
    root = tmp_path_factory.mktemp("registry")
    shutil.copy(wheel, root)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(root), str(wheel)],
        check=True,
        timeout=600,
    )
    return root


@needs_glcl
@pytest.mark.tools("pypiserver")
def test_a_new_user_following_the_readme_gets_a_working_pipeline(
    tmp_path: Path, component_project: Path, registry_files: Path
) -> None:
    """The README's pipeline and its change to try it without tokens, nothing else: no
    install override. The jobs have no hie-notify, so they pip-install the included release
    from the component project's package registry (pypiserver behind GitLab's paths and job
    token), into a clean Python, with pip's downloads kept in the cache between jobs."""
    section = readme_section()
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    pipeline = yaml.safe_load(blocks[0])
    trial = yaml.safe_load(
        next(b for b in blocks if "file:.hie-notify/ledger.jsonl" in b and "inputs" in b)
    )
    assert set(trial["include"][0]["inputs"]) == {"ledger"}, "the README's trial changes more"
    with_inputs(pipeline, **trial["include"][0]["inputs"])
    assert "install" not in pipeline["include"][0]["inputs"]
    assert "image" not in pipeline["include"][0]["inputs"]
    repo = Repo(tmp_path / "newcomer", project="newcomer/infra")
    repo.serve_project(COMPONENT_PROJECT, component_project)
    repo.write(".gitlab-ci.yml", yaml.safe_dump(pipeline, sort_keys=False))
    change = pipeline["include"][0]["inputs"]["change"]
    repo.copy(ROOT / "examples" / "change.yaml", change)
    repo.write(".hie-notify/policy.yaml", readme_trial_policy())
    repo.write("main.tf", "# infrastructure\n")
    repo.commit("add hie-notify")
    # A clean Python without hie-notify, as a job image without it would be, and not this
    # checkout's: only the registry can provide hie-notify.
    python = tmp_path / "python"
    subprocess.run([sys.executable, "-m", "venv", str(python)], check=True, timeout=300)
    repo.extra_path.append(python / "bin")
    repo.own_hie_notify = False

    token = "glcbt-64_job-token-for-the-test"
    with GitLabPypiStandIn(registry_files, COMPONENT_PROJECT, token, tmp_path) as registry:
        ci = {
            **TERRAFORM,
            "CI_API_V4_URL": registry.api,
            "CI_JOB_TOKEN": token,
            "PIP_CONFIG_FILE": os.devnull,  # none of this machine's pip settings
            "PIP_CERT": str(registry.ca_file),  # as a runner trusts its GitLab's certificate
        }
        mr = repo.run(merge_request=True, now=EARLY, variables=ci)
        assert mr.returncode == 0, mr.explain()
        log = mr.job_log("hie-notify:plan")
        assert f"pip install hie-notify=={VERSION} from {registry.simple}" in log, log
        assert token not in mr.log + log, "the job token was printed"
        wheels = registry.downloads()
        assert wheel_name(registry_files) in wheels
        pip_files = repo.cache_files("non_protected", "*/.cache/hie-notify-pip/**/*")
        cached = [p for p in pip_files if p.is_file()]
        assert cached, "pip's downloads were not cached"

        # The next job on a clean runner: the same install, its downloads from the cache.
        shutil.rmtree(python)
        subprocess.run([sys.executable, "-m", "venv", str(python)], check=True, timeout=300)
        again = repo.run(merge_request=True, now=EARLY, variables=ci)
        assert again.returncode == 0, again.explain()
        assert "pip install hie-notify" in again.job_log("hie-notify:plan")
        assert registry.downloads() == wheels, "downloaded again despite the cache"

        # Where hie-notify is there already (as in the release's image), no job installs it.
        merged = repo.run(now=EARLY, variables=ci)
        assert merged.job_status().get("hie-notify:plan") == "PASS", merged.explain()
        assert "pip install" not in merged.log
        assert stage_files(repo, "announce") >= {"slack-devops.json"}
        main = repo.run(now=AT_WINDOW, variables=ci)
        assert main.returncode == 0, main.explain()
        assert main.job_status().get("hie-notify:apply-succeeded") == "PASS", main.explain()
        assert main.job_status().get("hie-notify:complete") != "PASS", main.explain()
        assert "pip install" not in main.log
        assert token not in main.log

    # By default completion waits for a person (a manual job): nothing is announced as complete.
    counts = stages_of(repo.ledger())
    assert counts["apply_started"] == counts["apply_succeeded"] >= 3
    assert "complete" not in counts
    assert counts["announce"] == counts["apply_started"], "announced twice"
    assert (python / "bin" / "hie-notify").exists(), "the job did not install hie-notify"
    # Every request came with the job token, to the component project's registry.
    assert registry.requests and {r.status for r in registry.requests} == {200}
    assert {r.user for r in registry.requests} == {"gitlab-ci-token"}
    assert any(r.raw_path.endswith("/simple/hie-notify/") for r in registry.requests)


def wheel_name(root: Path) -> str:
    (found,) = root.glob("hie_notify-*.whl")
    return found.name


@needs_glcl
def test_hcp_workspace_input_announces_the_workspace_current_run(
    tmp_path: Path, component_project: Path, hcp: FakeHcpServer
) -> None:
    """Neither a plan file nor tfc-workflows' run_id: the input hcp_workspace names the run."""
    pipeline = yaml.safe_load((EXAMPLES / "terraform-plan-json.gitlab-ci.yml").read_text())
    with_inputs(
        pipeline,
        plan_json="",
        hcp_workspace="hie-sde/eoe-prod",
        ledger=FILE_LEDGER,
        policy="policy.yaml",
        install="",
    )
    repo = deploy_repo(tmp_path, component_project, pipeline)
    env = {"TFE_ADDRESS": hcp.address, "TF_API_TOKEN": TOKEN, **TERRAFORM}
    announced(repo, EARLY, env)
    assert "/api/v2/organizations/hie-sde/workspaces/eoe-prod" in hcp.requests
    assert stages_of(repo.ledger()) == {"announce": 4}
    assert stage_files(repo, "announce") == set(FILES.values())


@needs_glcl
def test_a_new_user_following_the_readme_with_the_classic_template(
    tmp_path: Path, component_project: Path
) -> None:
    """The README's classic include and jobs, with its plan and apply jobs and the file ledger
    it names for a first try (here as the variable HIE_LEDGER)."""
    blocks = re.findall(r"```yaml\n(.*?)```", readme_section(), re.DOTALL)
    pipeline = yaml.safe_load(blocks[0])
    classic = yaml.safe_load(next(b for b in blocks if "project: platform/hie-notify" in b))
    del pipeline["include"]
    pipeline = {**classic, **pipeline}
    pipeline["variables"] = {
        **classic["variables"],
        "HIE_LEDGER": FILE_LEDGER,
        "HIE_NOTIFY_INSTALL": "",
    }
    repo = Repo(tmp_path / "classic-newcomer", project="newcomer/infra")
    repo.serve_project(COMPONENT_PROJECT, component_project)
    repo.write(".gitlab-ci.yml", yaml.safe_dump(pipeline, sort_keys=False))
    repo.copy(ROOT / "examples" / "change.yaml", classic["variables"]["HIE_CHANGE"])
    repo.write(".hie-notify/policy.yaml", readme_trial_policy())
    repo.commit("add hie-notify")

    mr = repo.run(merge_request=True, now=EARLY, variables=TERRAFORM)
    assert mr.returncode == 0, mr.explain()
    assert mr.job_status() == {"plan": "PASS", "hie-notify:plan": "PASS"}
    merged = repo.run(now=EARLY, variables=TERRAFORM)
    assert merged.job_status().get("hie-notify:gate") == "FAIL", merged.explain()
    # HIE_COMPLETE_WHEN=on_success: completion goes out as soon as the apply succeeded.
    main = repo.run(now=AT_WINDOW, variables={**TERRAFORM, "HIE_COMPLETE_WHEN": "on_success"})
    assert main.returncode == 0, main.explain()
    status = main.job_status()
    assert status.get("hie-notify:complete") == "PASS", main.explain()
    assert "hie-notify:apply-failed" not in status and "hie-notify:rollback" not in status
    counts = stages_of(repo.ledger())
    assert counts["apply_started"] == counts["apply_succeeded"] == counts["complete"] >= 3
