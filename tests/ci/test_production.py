"""The README's pipeline after the trial, as its "From the trial to production" says: a GitLab
token, the real channels (Slack and SMTP reached for real, local fakes), no `ledger` input
(the record is notes on the merge request) and no `trial` in the protected policy. gitlab-ci-local
with GITLAB_CI=true; GitLab itself is tests/support/gitlab_fake over HTTP.
Outside a trial CI refuses
HIE_NOW, so the jobs' clock is moved instead (tests/ci/clock)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ci import test_ci_templates
from tests.ci.gitlab_proxy import GitLabOverHttp
from tests.ci.harness import PROJECT_ID, ROOT, Repo
from tests.ci.test_ci_templates import AT_WINDOW, CHANGE, COMPONENT_PROJECT, EARLY, readme_section
from tests.support.gitlab_fake import ENV
from tests.support.slack_fake import TOKEN, FakeSlack
from tests.support.smtp_server import SmtpServer

needs_glcl = pytest.mark.tools("gitlab-ci-local")
component_project = test_ci_templates.component_project  # the fixture
PLAN = {"FAKE_TERRAFORM_PLAN": str(ROOT / "examples" / "plan.json")}


def production_steps() -> str:
    section = readme_section()
    start = section.index("**From the trial to production**")
    return section[start : section.index("What is different then", start)]


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[GitLabOverHttp, FakeSlack, SmtpServer]]:
    with GitLabOverHttp() as gitlab, FakeSlack() as slack, SmtpServer(tmp_path) as smtp:
        yield gitlab, slack, smtp


def notes(gitlab: GitLabOverHttp) -> list[dict[str, Any]]:
    return gitlab.gitlab.notes.get(("merge_requests", 1), [])


@needs_glcl
def test_the_readme_production_path_announces_on_the_merge_request_and_applies_at_the_window(
    tmp_path: Path,
    component_project: Path,
    services: tuple[GitLabOverHttp, FakeSlack, SmtpServer],
) -> None:
    gitlab, slack, smtp = services
    steps = production_steps()
    for needed in ("`HIE_GITLAB_TOKEN`", "Remove the `ledger:` input", "Remove `trial: true`"):
        assert needed in steps, needed
    # The README's pipeline as first shown: no `ledger` input, so the GitLab ledger.
    pipeline = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", readme_section(), re.S)[0])
    assert "ledger" not in pipeline["include"][0]["inputs"]
    repo = Repo(tmp_path / "infra", project="newcomer/infra")
    repo.clock_shim = True
    repo.serve_project(COMPONENT_PROJECT, component_project)
    repo.write(".gitlab-ci.yml", yaml.safe_dump(pipeline, sort_keys=False))
    policy = (ROOT / "examples" / "policy.yaml").read_text()
    assert "trial" not in policy
    repo.write(".hie-notify/policy.yaml", policy)  # the default branch's: the protected one
    repo.copy(ROOT / "examples" / "change.yaml", pipeline["include"][0]["inputs"]["change"])
    repo.write("main.tf", "# infrastructure\n")
    sha = repo.commit("add hie-notify")
    gitlab.gitlab.files[(PROJECT_ID, "main", ".hie-notify/policy.yaml")] = policy.encode()
    gitlab.gitlab.commit_mrs[sha] = [1]
    ci = {
        **PLAN,
        "HIE_GITLAB_TOKEN": ENV["HIE_GITLAB_TOKEN"],
        "CI_API_V4_URL": gitlab.api,
        "CI_SERVER_URL": gitlab.root,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_API_URL": slack.url,
        **smtp.env(),
    }

    # The merge request, 9 business days ahead: announced at once, for real.
    mr = repo.run(merge_request=True, variables={**ci, "HIE_TEST_CLOCK": EARLY})
    assert mr.returncode == 0, mr.explain()
    assert mr.job_status() == {"plan": "PASS", "hie-notify:plan": "PASS"}, mr.explain()
    log = mr.job_log("hie-notify:plan")
    assert "announces nothing" not in log and "TRIAL" not in log, log
    assert not [n for n in repo.outbox() if "/announce/" in n], "a notice went to the outbox"
    posted = [m for m in slack.state.messages if CHANGE in str(m)]
    assert {m["channel"] for m in posted} >= {"C0DEVOPS", "C0INFRA", "C0PRODUCT"}, posted
    assert {r for m in smtp.handler.received for r in m.rcpt_tos} >= {
        "service-desk@eoe.example.org"
    }
    assert any(CHANGE in n["body"] for n in notes(gitlab)), "no ledger note on the MR"
    assert repo.ledger() == [], "a file ledger was kept"

    # Merged, at the window (the default branch's pipeline, its own cache): the gate reads the
    # merge request's notes, lets the apply through, and completion is sent.
    main = repo.run(
        variables={**ci, "HIE_TEST_CLOCK": AT_WINDOW, "GITLAB_USER_LOGIN": "ollie"},
        extra=["--manual", "hie-notify:complete"],
    )
    assert main.returncode == 0, main.explain()
    status = main.job_status()
    for job in ("hie-notify:gate", "apply", "hie-notify:apply-succeeded", "hie-notify:complete"):
        assert status.get(job) == "PASS", main.explain()
    gate = main.job_log("hie-notify:gate")
    assert "ALLOWED" in gate and "TRIAL" not in gate, gate
    bodies = "\n".join(n["body"] for n in notes(gitlab))
    for stage in ("apply_started", "apply_succeeded", "complete"):
        assert stage in bodies, stage
