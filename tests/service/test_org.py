"""One gate service for an organisation: every mapped HCP workspace, every GitLab project.

Driven over HTTP as HCP Terraform drives it; GitLab (many projects) and HCP faked at the HTTP
layer (tests/support/service_org_fake.py). The attacks: a workspace nobody mapped, a ledger note by
a user the operator did not accept, a run message naming another project's change and commit.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from hie_notify.errors import InputError
from hie_notify.ledger.gitlab import ledger_authors
from hie_notify.service.org import OrgConfig, vcs_project
from hie_notify.service.settings import Settings
from tests.support.service_org_fake import (
    API,
    EARLY,
    LATE,
    MALLORY_TOKEN,
    ORG,
    PIPELINE_BOT,
    PIPELINE_TOKEN,
    World,
    drain,
    payload,
    post,
)


@pytest.fixture(name="w")
def world_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setattr(time, "sleep", lambda s: None)  # python-gitlab's own retry waits
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        world = World(tmp_path, rsps, n=3)
        try:
            yield world
        finally:
            world.stop()


def status(w: World, task: str) -> dict[str, Any]:
    (only,) = w.callbacks.received[task]
    return only["attributes"]  # type: ignore[no-any-return]


def failed_reasons(w: World, task: str) -> list[str]:
    (only,) = w.callbacks.received[task]
    return [
        o["attributes"]["description"]
        for o in only["relationships"]["outcomes"]["data"]
        if o["attributes"]["tags"]["Status"][0]["label"] == "Failed"
    ]


# -- every project, its own change, policy and ledger


def test_each_workspace_is_decided_in_its_own_project_with_that_projects_policy(w: World) -> None:
    early, late, _ = w.workspaces
    w.announce(early, EARLY)
    w.announce(late, LATE)
    service = w.start("a")
    assert post(service, payload(early, "taskrs-early"))[0] == 200
    assert post(service, payload(late, "taskrs-late"))[0] == 200
    drain(service)
    assert status(w, "taskrs-early")["status"] == "passed"
    assert status(w, "taskrs-early")["message"].startswith("ALLOWED")
    assert status(w, "taskrs-early")["url"].endswith(f"{early.project}/-/merge_requests/{early.mr}")
    blocked = status(w, "taskrs-late")
    assert blocked["status"] == "failed"
    assert "East of England was told" in blocked["message"]
    # Claims and decisions went to each project's own merge request, by the service's user.
    for ws, task in ((early, "taskrs-early"), (late, "taskrs-late")):
        (decision,) = w.entries(ws, "run_task")
        assert decision["change_id"] == ws.key and decision["extra"]["task_result_id"] == task
        assert len(w.entries(ws, "run_task_claim")) == 1
    # Each project's protected policy was read from its default branch.
    raws = [c.request.url for c in w.rsps.calls if "/repository/files/" in c.request.url]
    assert any(".hie-notify%2Fpolicy.yaml/raw?ref=main" in u for u in raws)
    assert {u.split("/projects/")[1].split("/")[0] for u in raws} >= {"100", "101"}


def test_a_projects_protected_policy_decides_not_the_services_file(w: World) -> None:
    """Without `trial: true` in the project's protected policy, outbox notices tell nobody:
    the same announcement that passes above fails here."""
    ws = w.workspaces[0]
    w.announce(ws, EARLY)
    strict = w.policy_text.replace("trial: true\n", "")
    w.gitlab.files[(ws.project, "main", ".hie-notify/policy.yaml")] = strict.encode()
    service = w.start("a")
    post(service, payload(ws, "taskrs-strict"))
    drain(service)
    assert status(w, "taskrs-strict")["status"] == "failed"
    assert any("was only written to the outbox" in r for r in failed_reasons(w, "taskrs-strict"))


def test_a_project_without_a_protected_policy_fails_closed(w: World) -> None:
    ws = w.workspaces[0]
    w.announce(ws, EARLY)
    del w.gitlab.files[(ws.project, "main", ".hie-notify/policy.yaml")]
    service = w.start("a")
    post(service, payload(ws, "taskrs-nopolicy"))
    drain(service)
    attrs = status(w, "taskrs-nopolicy")
    assert attrs["status"] == "failed"
    assert (
        f"{ws.project}: no protected policy at {ws.project}@main:.hie-notify/policy.yaml"
        in (attrs["message"])
    )


# -- whose ledger notes count


def test_the_services_own_token_counts_the_pipelines_bot_notes(w: World) -> None:
    """An operator who gives the service its own token: with the pipelines' bot accepted the
    announcement counts; without it, every pre_apply is blocked 'has not been told'."""
    ws, second, _ = w.workspaces
    w.announce(ws, EARLY, token=PIPELINE_TOKEN)
    w.announce(second, EARLY, token=PIPELINE_TOKEN)
    service = w.start("a")
    post(service, payload(ws, "taskrs-accepted"))
    drain(service)
    assert status(w, "taskrs-accepted")["status"] == "passed"

    w.write_config({f"{ORG}/{second.name}": second.project}, authors=["someone_else_bot"])
    other = w.start("b")
    post(other, payload(second, "taskrs-not-accepted"))
    drain(other)
    reasons = failed_reasons(w, "taskrs-not-accepted")
    assert reasons and all("has not been told" in r for r in reasons)


def test_a_ledger_note_by_an_author_not_accepted_is_not_counted(w: World) -> None:
    """Mallory can write notes on the merge request: a well-formed ledger note of hers (the real
    `hie-notify plan` run with her token) announces nothing to the gate."""
    ws = w.workspaces[0]
    w.announce(ws, EARLY, token=MALLORY_TOKEN)
    assert w.entries(ws, "announce")  # her notes carry real ledger entries
    service = w.start("a")
    post(service, payload(ws, "taskrs-mallory"))
    drain(service)
    reasons = failed_reasons(w, "taskrs-mallory")
    assert reasons and all("has not been told" in r for r in reasons)


def test_ledger_authors_are_refused_in_gitlab_ci() -> None:
    """A branch sets its own job variables: it could name any user whose notes it can write."""
    assert ledger_authors({"HIE_LEDGER_AUTHORS": "a_bot, b_bot"}) == {"a_bot", "b_bot"}
    with pytest.raises(InputError, match="HIE_LEDGER_AUTHORS: refused in GitLab CI"):
        ledger_authors({"HIE_LEDGER_AUTHORS": "mallory", "GITLAB_CI": "true"})


# -- attacks: which project a run is


def test_a_workspace_not_mapped_to_any_project_is_refused(w: World) -> None:
    ws = w.workspaces[0]
    w.announce(ws, EARLY)
    service = w.start("a")
    before = dict(w.gitlab.notes)
    rogue = payload(ws, "taskrs-rogue", workspace_name="rogue-prod")
    assert post(service, rogue)[0] == 200
    post(service, payload(ws, "taskrs-rogue-plan", stage="post_plan", workspace_name="rogue-prod"))
    drain(service)
    attrs = status(w, "taskrs-rogue")
    assert attrs["status"] == "failed"
    assert attrs["message"] == (
        f"BLOCKED: hie-notify cannot decide: workspace {ORG}/rogue-prod is not mapped to any "
        f"GitLab project ({w.config}: workspaces): hie-notify decides only for the workspaces "
        "its operator maps"
    )
    advisory = status(w, "taskrs-rogue-plan")  # post_plan only warns, saying the same
    assert advisory["status"] == "passed" and "is not mapped to any" in advisory["message"]
    assert w.gitlab.notes == before  # nothing claimed or recorded anywhere
    assert not [c for c in w.rsps.calls if "json-output" in c.request.url]


def test_another_organisations_workspace_of_the_same_name_is_refused(w: World) -> None:
    ws = w.workspaces[0]
    service = w.start("a")
    post(service, payload(ws, "taskrs-other-org", organization_name="someone-else"))
    drain(service)
    assert "someone-else/team-00-prod is not mapped" in status(w, "taskrs-other-org")["message"]


def test_a_run_message_cannot_claim_another_projects_change(w: World) -> None:
    """Workspace 1 (mapped to project 1) starts an API run whose message names project 0's
    change and commit. It is looked for in project 1 only: project 0's notice never counts
    for it, and nothing is written to project 0's merge request."""
    victim, attacker, _ = w.workspaces
    w.announce(victim, EARLY)
    service = w.start("a")
    notes_before = list(w.gitlab.notes[(victim.project, victim.mr)])
    forged = payload(
        attacker,
        "taskrs-forged",
        run_message=f"{victim.key} {victim.sha} https://gitlab.example.com/{victim.project}",
        vcs_commit_url=None,
        vcs_repo_url=None,
        vcs_branch=None,
    )
    post(service, forged)
    drain(service)
    attrs = status(w, "taskrs-forged")
    assert attrs["status"] == "failed"
    assert f"no change record at {victim.sha} in the project" in attrs["message"]
    assert w.gitlab.notes[(victim.project, victim.mr)] == notes_before
    reads = [c.request.url for c in w.rsps.calls if "/repository/" in c.request.url]
    assert all("/projects/hie%2Fteam-00%2Finfra/" not in u for u in reads)


def test_a_workspace_whose_vcs_repository_is_another_project_is_refused(w: World) -> None:
    victim, attacker, _ = w.workspaces
    w.announce(victim, EARLY)
    service = w.start("a")
    forged = payload(
        attacker,
        "taskrs-repo",
        run_message=f"{victim.key}: deploy",
        vcs_commit_url=f"https://gitlab.example.com/{victim.project}/-/commit/{victim.sha}",
        vcs_repo_url=f"https://gitlab.example.com/{victim.project}",
    )
    post(service, forged)
    drain(service)
    attrs = status(w, "taskrs-repo")
    assert attrs["status"] == "failed"
    assert (
        f"workspace {ORG}/{attacker.name} is mapped to {attacker.project} ({w.config}), but its "
        f"VCS repository is {victim.project}"
    ) in attrs["message"]
    assert len(w.entries(victim, "run_task_claim")) == 0


def test_a_vcs_mapping_takes_the_project_from_the_signed_repository_url(w: World) -> None:
    ws = w.workspaces[2]
    w.announce(ws, EARLY)
    w.write_config({f"{ORG}/team-*": "vcs"})
    service = w.start("a")
    post(service, payload(ws, "taskrs-vcs"))
    elsewhere = payload(
        ws, "taskrs-github", vcs_repo_url=f"https://github.com/{ws.project}", vcs_commit_url=None
    )
    post(service, elsewhere)
    drain(service)
    assert status(w, "taskrs-vcs")["status"] == "passed"
    assert "has no VCS repository on this GitLab" in status(w, "taskrs-github")["message"]


# -- the operator's file


def test_a_bad_service_file_is_exit_2_naming_each_field(tmp_path: Path) -> None:
    bad = tmp_path / "service.yaml"
    bad.write_text(
        "workspaces:\n  '*/prod': hie/infra\n  hie-sde/x: ../../etc\n"
        "ledger_authors: bot\nextra: 1\n"
    )
    env = {
        "HIE_RUN_TASK_HMAC_KEY": "k" * 32,
        "HIE_SERVICE_CONFIG": str(bad),
        "HIE_GITLAB_TOKEN": "t",
        "CI_API_V4_URL": API,
    }
    with pytest.raises(InputError) as caught:
        Settings.from_env(env)
    text = str(caught.value)
    assert f"{bad}: extra: unknown key" in text
    assert f"{bad}: workspaces: '*/prod': expected ORG/WORKSPACE" in text
    assert f"{bad}: workspaces: 'hie-sde/x': expected a GitLab project path" in text
    assert f"{bad}: ledger_authors: expected a list of GitLab usernames" in text
    without_gitlab = {k: v for k, v in env.items() if k != "HIE_GITLAB_TOKEN"}
    bad.write_text("workspaces: {hie-sde/x: hie/infra}\n")
    with pytest.raises(InputError, match="serving an organisation needs HIE_GITLAB_TOKEN"):
        Settings.from_env(without_gitlab)


def test_an_exact_name_beats_a_pattern_and_disagreeing_patterns_are_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "workspaces:\n  hie-sde/eoe-*: hie/infra\n  hie-sde/eoe-web: hie/web\n"
        "  hie-sde/*-prod: hie/prod\n"
    )
    config = OrgConfig.load(path)
    assert config.project_for(ORG, "eoe-web", None, API) == "hie/web"
    assert config.project_for(ORG, "eoe-data", None, API) == "hie/infra"
    with pytest.raises(InputError, match="is mapped to hie/infra and hie/prod"):
        config.project_for(ORG, "eoe-prod", None, API)


_names = st.text(st.sampled_from("abc-_.*?/[]%:@ "), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    host=st.sampled_from(["gitlab.example.com", "evil.example", "gitlab.example.com.evil"]),
    path=_names,
    scheme=st.sampled_from(["https", "http", "ssh"]),
)
def test_a_vcs_url_names_a_project_only_on_this_gitlab(host: str, path: str, scheme: str) -> None:
    found = vcs_project(f"{scheme}://{host}/{path}", API)
    if found is not None:
        assert scheme == "https" and host == "gitlab.example.com"
        assert ".." not in found.split("/") and "%" not in found and len(found.split("/")) >= 2


@settings(max_examples=200, deadline=None)
@given(org=_names, workspace=_names)
def test_only_mapped_workspaces_get_a_project(org: str, workspace: str) -> None:
    config = OrgConfig("s.yaml", (("hie-sde/eoe-*", "hie/infra"),), ())
    try:
        project = config.project_for(org, workspace, None, API)
    except InputError:
        return
    assert org == "hie-sde" and workspace.startswith("eoe-") and project == "hie/infra"


# -- at organisation scale


def test_200_run_tasks_across_20_projects_and_3_replicas(tmp_path: Path) -> None:
    """Every decision called back exactly once, well within HCP's 10 minutes; one task
    delivered to two replicas is decided once. (bench/service_org_bench.py measures it.)"""
    from tests.support.service_org_fake import run_organisation

    figures = run_organisation(tmp_path, projects=20, tasks=200, replicas=3)
    assert figures["callbacks"] == figures["tasks"] == 200
    assert figures["duplicate_callbacks"] == 0
    assert figures["worst_s"] < 600
    assert figures["decided_once"]
    assert statistics.median([figures["median_s"]]) <= figures["worst_s"]
    assert 0 < figures["gitlab_requests_per_decision"] < 40
    assert PIPELINE_BOT["username"]  # the announcements were the pipelines' bot's


def test_the_guides_service_file_is_one_the_service_reads(tmp_path: Path) -> None:
    """docs/run-task.md's example service file loads, and maps as the guide says."""
    import re

    from tests.support.paths import ROOT

    text = ROOT.joinpath("docs", "run-task.md").read_text()
    (block,) = re.findall(
        r"^```yaml\n(# /etc/hie-notify/service\.yaml\n.*?)^```$", text, re.S | re.M
    )
    path = tmp_path / "service.yaml"
    path.write_text(block)
    config = OrgConfig.load(path)
    assert config.project_for(ORG, "eoe-prod", None, API) == "hie/infra"
    assert config.project_for(ORG, "eoe-web", None, API) == "hie/web"
    repo = "https://gitlab.example.com/hie/team-a"
    assert config.project_for(ORG, "team-a", repo, API) == "hie/team-a"
    assert "project_42_bot_hie" in config.ledger_authors
    with pytest.raises(InputError, match="is not mapped to any GitLab project"):
        config.project_for(ORG, "sandbox", None, API)


_message = st.lists(
    st.sampled_from(
        [
            "FFAPP-5000",
            "FFAPP-5001",
            "00" * 20,
            "01" * 20,
            "https://gitlab.example.com/hie/team-00/infra",
            "project: hie/team-00/infra",
            "workspace hie-sde/team-00-prod",
            "CI_PROJECT_ID=100",
            " ",
            "\n",
        ]
    ),
    max_size=8,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(message=_message, api_run=st.booleans())
def test_no_run_message_moves_a_run_to_another_project(
    tmp_path_factory: pytest.TempPathFactory, message: str, api_run: bool
) -> None:
    """Workspace team-01-prod's runs are project 1's, whatever their message names."""
    from hie_notify.options import Options
    from hie_notify.service.runtask import RunTasks
    from hie_notify.terraform.runtask import parse_request
    from tests.support.service_org_fake import Workspace

    tmp = tmp_path_factory.mktemp("msg")
    config = tmp / "service.yaml"
    config.write_text(
        "workspaces:\n  hie-sde/team-00-prod: hie/team-00/infra\n"
        "  hie-sde/team-01-prod: hie/team-01/infra\n"
    )
    env = {"HIE_RUN_TASK_HMAC_KEY": "k" * 32, "HIE_SERVICE_CONFIG": str(config)}
    env |= {"HIE_GITLAB_TOKEN": "t", "CI_API_V4_URL": API}
    tasks = RunTasks(Settings.from_env(env), Options(env=env), workdir=tmp)
    try:
        ws = Workspace("team-01-prod", "hie/team-01/infra", "FFAPP-5001", "01" * 20, 4)
        over: dict[str, Any] = {"run_message": message}
        if api_run:
            over |= {"vcs_commit_url": None, "vcs_repo_url": None, "vcs_branch": None}
        data = payload(ws, "taskrs-prop", **over)
        assert tasks.project(parse_request(data), data["vcs_repo_url"]) == "hie/team-01/infra"
    finally:
        tasks.close(1)


# -- notifications


NOTIFY_TOKEN = "nc-token-PLANTED-6d2f-0000"


def notify(service: Any, ws: Any, run_id: str, **over: Any) -> int:
    import http.client
    import json

    from tests.support.service_org_fake import sign

    data: dict[str, Any] = {
        "payload_version": 1,
        "notification_configuration_id": "nc-Wd4tLx9pGm2bQr7K",
        "run_url": f"https://app.terraform.io/app/{ORG}/{ws.name}/runs/{run_id}",
        "run_id": run_id,
        "run_message": f"{ws.key} {ws.sha}: resize the EKS general worker nodes",
        "run_created_at": "2026-12-08T18:52:11.000Z",
        "run_created_by": "project_bot_tfc",
        "workspace_id": "ws-Hk3vT8pRcY2nWq6D",
        "workspace_name": ws.name,
        "organization_name": ORG,
        "notifications": [
            {
                "message": "Applying",
                "trigger": "run:applying",
                "run_status": "applying",
                "run_updated_at": "2026-12-08T19:05:31.000Z",
                "run_updated_by": "leon",
            }
        ],
    }
    data.update(over)
    body = json.dumps(data).encode()
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    try:
        conn.request(
            "POST",
            "/notifications",
            body=body,
            headers={
                "Content-Type": "application/json",
                "X-TFE-Notification-Signature": sign(body, NOTIFY_TOKEN),
            },
        )
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_notification_is_acted_on_in_its_workspaces_project_only(
    w: World, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.INFO)
    ws, other, _ = w.workspaces
    w.announce(ws, EARLY)
    w.announce(other, EARLY)
    service = w.start("a", HIE_TFC_NOTIFICATION_TOKEN=NOTIFY_TOKEN)
    post(service, payload(ws, "taskrs-applied", run_id="run-Applied0000001"))
    drain(service)
    assert status(w, "taskrs-applied")["status"] == "passed"
    # Named in another workspace's message: the change is looked for in that workspace's project.
    assert notify(service, other, "run-Applied0000001", run_message=f"{ws.key} {ws.sha}") == 200
    assert notify(service, ws, "run-Applied0000001", workspace_name="rogue-prod") == 200
    assert not w.entries(ws, "apply_started") and not w.entries(other, "apply_started")
    assert f"workspace {ORG}/rogue-prod is not mapped to any GitLab project" in caplog.text
    assert notify(service, ws, "run-Applied0000001") == 200
    assert w.entries(ws, "apply_started") and not w.entries(other, "apply_started")


def test_a_projects_policy_is_read_again_after_a_minute_and_kept_per_project(
    tmp_path: Path,
) -> None:
    from hie_notify.service.org import POLICY_SECONDS, ProtectedPolicies

    now = [100.0]
    reads: list[tuple[str, str, str | None]] = []
    texts = {"hie/a": b"trial: true\n", "hie/b": b"organisation: B\n"}

    def reader(env: Any, project: str, path: str, ref: str | None) -> tuple[bytes, str]:
        reads.append((project, path, ref))
        return texts[project], "main"

    policies = ProtectedPolicies(tmp_path, monotonic=lambda: now[0], reader=reader)
    first, where = policies.get({}, "hie/a")
    assert where == "hie/a@main:.hie-notify/policy.yaml" and first.read_bytes() == texts["hie/a"]
    assert policies.get({}, "hie/b")[0].read_bytes() == texts["hie/b"]
    now[0] += POLICY_SECONDS - 1
    assert policies.get({}, "hie/a")[0] == first and len(reads) == 2
    texts["hie/a"] = b"trial: false\n"  # the protected branch changed
    now[0] += 2
    again, _ = policies.get({}, "hie/a")
    assert again != first and again.read_bytes() == b"trial: false\n" and len(reads) == 3
    assert first.read_bytes() == b"trial: true\n"  # a worker still reading it is not disturbed
    # A central policy project, at its ref, for every project.
    central = {"HIE_POLICY_PROJECT": "hie/a", "HIE_POLICY_REF": "v2", "HIE_POLICY_PATH": "p.yaml"}
    policies.get(central, "hie/c")
    assert reads[-1] == ("hie/a", "p.yaml", "v2")


def test_an_invalid_protected_policy_names_the_project_file_and_field(w: World) -> None:
    ws = w.workspaces[0]
    w.announce(ws, EARLY)
    w.gitlab.files[(ws.project, "main", ".hie-notify/policy.yaml")] = b"trial: maybe\n"
    service = w.start("a")
    post(service, payload(ws, "taskrs-badpolicy"))
    drain(service)
    message = status(w, "taskrs-badpolicy")["message"]
    assert message.startswith("BLOCKED: hie-notify cannot decide: ")
    assert f"{ws.project}@main:.hie-notify/policy.yaml" in message and "trial" in message
