"""The scheduled job: an hourly pipeline runs `hie-notify:remind` only, from the change register
that the merge request's pipeline wrote (gitlab-ci-local, as tests/ci does)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.ci.harness import COMPONENT, ROOT, Repo
from tests.ci.test_ci_templates import (
    CHANGE,
    EARLY,
    TERRAFORM,
    deploy_repo,
)
from tests.ci.test_ci_templates import component_project as component_project
from tests.support.remind_ci import SCHEDULE, _pipeline

needs_glcl = pytest.mark.tools("gitlab-ci-local")


def test_the_remind_job_runs_on_schedules_only() -> None:
    _, body = yaml.safe_load_all(COMPONENT.read_text())
    assert body["hie-notify:remind"]["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
    not_scheduled = '$CI_PIPELINE_SOURCE != "schedule"'
    classic = yaml.safe_load((ROOT / "ci-templates" / "hie-notify.gitlab-ci.yml").read_text())
    for name, job in [*body.items(), *classic.items()]:
        # :pages (issue 18) runs on a schedule only when asked, with HIE_PAGES=true.
        if (
            "hie-notify" in name
            and not name.endswith((":remind", ":pages", ":digest"))
            and "rules" in job
        ):
            for rule in job["rules"]:
                assert "merge_request_event" in rule["if"] or not_scheduled in rule["if"], name
    assert body["hie-notify:remind"]["script"] == ["hie-notify remind"]
    assert classic[".hie-notify:remind"]["script"] == ["hie-notify remind"]


@needs_glcl
def test_an_hourly_schedule_sends_each_reminder_once(
    tmp_path: Path,
    component_project: Path,
) -> None:
    repo: Repo = deploy_repo(tmp_path, component_project, _pipeline())
    # Merged with no GitLab token (a trial): the default branch's pipeline announces the change
    # and registers it; its gate holds the apply until the window.
    result = repo.run(now=EARLY, variables=TERRAFORM)
    assert result.job_status()["hie-notify:plan"] == "PASS", result.explain()

    # 24 hours before the window (Tue 8 Dec 19:00): the internal channels are reminded.
    first = repo.run(now="2026-12-07T19:00:00+00:00", variables=TERRAFORM, extra=SCHEDULE)
    assert first.returncode == 0, first.explain()
    assert first.job_status() == {"hie-notify:remind": "PASS"}, first.explain()
    log = first.job_log("hie-notify:remind")
    assert f"{CHANGE}: reminder" in log
    reminders = {k for k in repo.outbox() if k.startswith(f"{CHANGE}/reminder/")}
    assert reminders == {
        f"{CHANGE}/reminder/slack-devops.json",
        f"{CHANGE}/reminder/slack-infrastructure.json",
        f"{CHANGE}/reminder/slack-product.json",
    }
    text = json.loads(repo.outbox()[f"{CHANGE}/reminder/slack-devops.json"].read_text())["text"]
    assert "starts in 1 day" in text

    # The next hour: nothing new.
    again = repo.run(now="2026-12-07T20:00:00+00:00", variables=TERRAFORM, extra=SCHEDULE)
    assert again.returncode == 0, again.explain()
    assert "nothing due" in again.job_log("hie-notify:remind")
