"""The weekly digest job: a schedule with HIE_NOTIFY_DIGEST=true runs `hie-notify:digest` (and
the hourly schedule never does), from the change register the default branch's pipeline wrote
(gitlab-ci-local, as tests/ci does)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.ci.harness import COMPONENT, ROOT, Repo
from tests.ci.test_ci_templates import CHANGE, EARLY, TERRAFORM, deploy_repo
from tests.ci.test_ci_templates import component_project as component_project
from tests.support.remind_ci import SCHEDULE, _pipeline

needs_glcl = pytest.mark.tools("gitlab-ci-local")
WEEKLY = (
    '$CI_PIPELINE_SOURCE == "schedule" && $HIE_NOTIFY_DIGEST && '
    r"$HIE_NOTIFY_DIGEST !~ /^\s*(0|false|no|off)?\s*$/i"
)


def test_the_digest_job_runs_on_weekly_schedules_only_in_both_templates() -> None:
    _, body = yaml.safe_load_all(COMPONENT.read_text())
    classic = yaml.safe_load((ROOT / "ci-templates" / "hie-notify.gitlab-ci.yml").read_text())
    for job in (body["hie-notify:digest"], classic[".hie-notify:digest"]):
        assert job["rules"] == [{"if": WEEKLY}]
        assert job["script"] == ["hie-notify digest"]
        assert job["needs"] == [{"job": "hie-notify:remind", "optional": True}]
        assert job["resource_group"] == "hie-notify-digest"


def test_scheduled_jobs_never_export_the_ledger_cache_at_once() -> None:
    """The jobs a schedule may run together (reminders, digest, pages) share the file ledger in
    the CI cache, which is last writer wins: the digest waits for the reminders, and the pages
    job, which only reads, never exports its (older) copy."""
    _, body = yaml.safe_load_all(COMPONENT.read_text())
    classic = yaml.safe_load((ROOT / "ci-templates" / "hie-notify.gitlab-ci.yml").read_text())
    for jobs, prefix in ((body, "hie-notify"), (classic, ".hie-notify")):
        base = jobs[".hie-notify-component:base" if prefix == "hie-notify" else ".hie-notify:base"]
        ledger = [c for c in base["cache"] if str(c["key"]).startswith("hie-notify-ledger")]
        assert ledger and all(c.get("policy", "pull-push") == "pull-push" for c in ledger)
        assert jobs[f"{prefix}:digest"]["needs"] == [{"job": "hie-notify:remind", "optional": True}]
        pages = jobs[f"{prefix}:pages"]["cache"]
        assert [c["key"] for c in pages] == [c["key"] for c in base["cache"]]
        for cache in pages:
            if str(cache["key"]).startswith("hie-notify-ledger"):
                assert cache["policy"] == "pull" and cache["paths"] == ledger[0]["paths"]


@needs_glcl
def test_a_weekly_schedule_sends_the_digest_once(
    tmp_path: Path,
    component_project: Path,
) -> None:
    repo: Repo = deploy_repo(tmp_path, component_project, _pipeline())
    # Merged with no GitLab token (a trial): the default branch's pipeline announces the change
    # and registers it; its gate holds the apply until the window.
    result = repo.run(now=EARLY, variables=TERRAFORM)
    assert result.job_status()["hie-notify:plan"] == "PASS", result.explain()

    # The hourly schedule: reminders only.
    hourly = repo.run(now="2026-12-07T06:00:00+00:00", variables=TERRAFORM, extra=SCHEDULE)
    assert hourly.returncode == 0, hourly.explain()
    assert hourly.job_status() == {"hie-notify:remind": "PASS"}, hourly.explain()

    # Monday 7 December 07:00, the weekly schedule: the week's summary lists the change
    # (Tuesday 8th), and the agenda is for Wednesday 9th.
    weekly = [*SCHEDULE, "--variable", "HIE_NOTIFY_DIGEST=true"]
    first = repo.run(now="2026-12-07T07:00:00+00:00", variables=TERRAFORM, extra=weekly)
    assert first.returncode == 0, first.explain()
    assert first.job_status()["hie-notify:digest"] == "PASS", first.explain()
    # The reminders (same schedule) run first: both write the ledger in the CI cache, and two
    # jobs exporting it at once would lose one's entries (the digest then sent twice).
    out = first.log
    assert out.index("hie-notify:remind finished") < out.index("hie-notify:digest starting"), out
    log = first.job_log("hie-notify:digest")
    assert "summary (digest-2026-W50): 0 last week, 1 this week" in log, log
    assert "agenda (agenda-2026-12-09)" in log, log
    files = repo.outbox()
    summary = json.dumps(
        json.loads(files["digest-2026-W50/digest_summary/slack-devops.json"].read_text())
    )
    assert CHANGE in summary
    assert "agenda-2026-12-09/digest_agenda/meeting-Wednesday-meeting.md" in files

    # The schedule run again (a retried pipeline): nothing new.
    again = repo.run(now="2026-12-07T08:00:00+00:00", variables=TERRAFORM, extra=weekly)
    assert again.returncode == 0, again.explain()
    assert "(not sent again)" in again.job_log("hie-notify:digest")
    assert "  sent " not in again.job_log("hie-notify:digest")
