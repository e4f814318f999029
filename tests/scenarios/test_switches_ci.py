"""The CI templates' switches (issue 23, item 4): HIE_GATE_REQUIRED, HIE_PAGES and
HIE_NOTIFY_DIGEST read as hie-notify reads every switch (1/true/yes/on, 0/false/no/off, any
case); anything else is refused by the job's hie-notify, naming it, never silently "off"."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from hie_notify.cli import main
from tests.ci.harness import CLASSIC, COMPONENT, Repo, missing_tools
from tests.ci.test_ci_templates import component_project as component_project
from tests.ci.test_ci_templates import deploy_repo
from tests.support.remind_ci import SCHEDULE, _pipeline

needs_glcl = pytest.mark.skipif(bool(missing_tools()), reason=missing_tools() or "ok")


def _gate_scripts() -> list[str]:
    _, component = yaml.safe_load_all(COMPONENT.read_text())
    (classic,) = yaml.safe_load_all(CLASSIC.read_text())
    scripts = [component["hie-notify:gate"]["script"], classic[".hie-notify:gate"]["script"]]
    return ["\n".join(line for line in s if "$[[" not in line) for s in scripts]


@pytest.mark.parametrize("script", _gate_scripts(), ids=["component", "classic"])
@pytest.mark.parametrize(
    ("required", "gate_exit", "job_exit"),
    [
        (None, 1, 1),
        ("true", 1, 1),
        (" YES ", 1, 1),
        ("false", 1, 0),
        ("Off", 1, 0),
        (" no ", 1, 0),
        ("0", 1, 0),
        ("false", 2, 2),  # hie-notify refused something (e.g. HIE_GATE_REQUIRED=nope): exit 2
        ("false", 0, 0),
    ],
)
def test_the_gate_job_is_advisory_only_when_the_switch_says_off(
    tmp_path: Path, script: str, required: str | None, gate_exit: int, job_exit: int
) -> None:
    """The job's own script, with a stand-in hie-notify that exits as the gate would."""
    stub = tmp_path / "hie-notify"
    stub.write_text(f"#!/bin/sh\nexit {gate_exit}\n")
    stub.chmod(0o755)
    env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", "HIE_PLAN_ARGS": ""}
    if required is not None:
        env["HIE_GATE_REQUIRED"] = required
    proc = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == job_exit, proc.stdout + proc.stderr
    assert ("the gate is advisory here" in proc.stdout) == (gate_exit == 1 and job_exit == 0)


@pytest.mark.parametrize("name", ["HIE_GATE_REQUIRED", "HIE_PAGES", "HIE_NOTIFY_DIGEST"])
def test_hie_notify_refuses_a_template_switch_that_is_neither_on_nor_off(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--now", "2026-12-07T07:00:00+00:00", "validate"], env={name: "nope"}) == 2
    assert f"{name}: expected 1, true, yes, on (on) or 0, false, no, off (off)" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("template", ["component", "classic"])
@pytest.mark.parametrize("job", ["digest", "pages"])
def test_scheduled_rules_run_on_any_on_spelling_or_a_bad_one(template: str, job: str) -> None:
    """Both rules read the same words: a schedule runs the job on `on` in any spelling (and on
    anything that is neither on nor off, so that its hie-notify says what is wrong), never on
    `off` or when unset."""
    _, component = yaml.safe_load_all(COMPONENT.read_text())
    (classic,) = yaml.safe_load_all(CLASSIC.read_text())
    jobs = component if template == "component" else classic
    prefix = "hie-notify" if template == "component" else ".hie-notify"
    var = {"digest": "HIE_NOTIFY_DIGEST", "pages": "HIE_PAGES"}[job]
    rule = jobs[f"{prefix}:{job}"]["rules"][0]["if"]
    assert rule == (
        f'$CI_PIPELINE_SOURCE == "schedule" && ${var} && ${var} !~ '
        r"/^\s*(0|false|no|off)?\s*$/i"
    )


@needs_glcl
def test_a_schedule_runs_the_digest_on_yes_not_on_off_and_fails_on_nonsense(
    tmp_path: Path, component_project: Path
) -> None:
    """gitlab-ci-local evaluates the rule: `Yes` runs the digest (it used to need exactly
    `true`), `OFF` does not; on `nope` the schedule's first hie-notify fails naming the variable."""
    repo: Repo = deploy_repo(tmp_path, component_project, _pipeline())

    def scheduled(value: str) -> tuple[dict[str, str], str]:
        result = repo.run(
            now="2026-12-07T07:00:00+00:00",
            extra=[*SCHEDULE, "--variable", f"HIE_NOTIFY_DIGEST={value}"],
        )
        return result.job_status(), result.job_log("hie-notify:digest")

    status, log = scheduled("Yes")
    assert status.get("hie-notify:digest") == "PASS", log
    status, _ = scheduled("OFF")
    assert "hie-notify:digest" not in status and status.get("hie-notify:remind") == "PASS"
    # Every hie-notify of the job refuses it: the reminders (which run first) fail naming it,
    # and the digest, which waits for them, does not run.
    result = repo.run(
        now="2026-12-07T08:00:00+00:00",
        extra=[*SCHEDULE, "--variable", "HIE_NOTIFY_DIGEST=nope"],
    )
    assert result.job_status() == {"hie-notify:remind": "FAIL"}, result.explain()
    assert "HIE_NOTIFY_DIGEST: expected 1, true, yes, on (on) or 0, false, no, off (off)" in (
        result.job_log("hie-notify:remind")
    )
