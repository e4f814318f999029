"""The shipped pipeline execution policy and the CI configuration it injects."""

from __future__ import annotations

import subprocess

import yaml

from tests.support.paths import ROOT

POLICY = ROOT / "ci-templates" / "pipeline-execution-policy.yml"
INJECTED = ROOT / "ci-templates" / "pipeline-execution-policy.gitlab-ci.yml"
CLASSIC = ROOT / "ci-templates" / "hie-notify.gitlab-ci.yml"


def test_the_policy_injects_the_shipped_file_and_cannot_be_skipped() -> None:
    (policy,) = yaml.safe_load(POLICY.read_text())["pipeline_execution_policy"]
    assert policy["enabled"] is True
    assert policy["pipeline_config_strategy"] == "inject_policy"  # inject_ci is deprecated
    assert policy["skip_ci"] == {"allowed": False}
    (include,) = policy["content"]["include"]  # GitLab's schema: exactly one include
    assert set(include) <= {"project", "file", "ref"}
    assert (ROOT / include["file"]) == INJECTED
    assert include["ref"] == _classic_ref()


def test_the_injected_configuration_is_valid_gitlab_ci_and_gates_before_apply(
    check_jsonschema: str,
) -> None:
    # GitLab's CI schema as check-jsonschema vendors it (offline).
    done = subprocess.run(
        [
            check_jsonschema,
            "--builtin-schema",
            "vendor.gitlab-ci",
            str(INJECTED),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    injected = yaml.safe_load(INJECTED.read_text())
    stages = injected["stages"]
    assert stages.index("plan") < stages.index("hie-notify-gate") < stages.index("apply")
    assert stages.index("hie-notify-announce") < stages.index("hie-notify-gate")
    classic = yaml.safe_load(CLASSIC.read_text())
    for name in ("hie-notify:plan", "hie-notify:gate"):
        job = injected[name]
        assert job["extends"] in classic, job["extends"]
        assert "needs" not in job  # so it gets the plan job's artifacts and waits for its stage
    assert injected["variables"]["HIE_GATE_REQUIRED"] == "true"


def _classic_ref() -> str:
    (include,) = yaml.safe_load(INJECTED.read_text())["include"]
    assert include["file"] == "ci-templates/hie-notify.gitlab-ci.yml"
    return str(include["ref"])
