"""Jira: the gate's ticket check, one comment per stage (found again by its marker), remote
links, the done transition; Cloud v3 (ADF, basic auth) and Data Center v2 (wiki, PAT)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.builders import fired, rc
from tests.support.cli_flow import Flow
from tests.support.integration_fakes import (
    EMAIL,
    JIRA,
    JIRA_ENV,
    JIRA_TOKEN,
    LINK_ENV,
    MR,
    PAT,
    RUN,
    JiraFake,
    integration_policy,
)

DB = rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["storage_encrypted"]])
KEY = "FFAPP-4458"
JIRA_ON = {"enabled": True, "ready_statuses": ["Approved", "Scheduled"], "done_transition": "Done"}


# Retries wait through time.sleep: the conftest's `waits` records the waits instead.
pytestmark = pytest.mark.usefixtures("waits")


@pytest.fixture
def jira() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = JiraFake()
        fake.add(KEY)
        fake.register(rsps)
        yield fake


def flow(tmp: Path, capsys: Any, env: dict[str, str] | None = None, **change: Any) -> Flow:
    policy = integration_policy(tmp, jira=JIRA_ON)
    env = {**JIRA_ENV, **LINK_ENV, **(env or {})}
    return Flow(tmp, capsys, DB, env=env, policy=policy, **change)


def texts(adf: dict[str, Any]) -> list[str]:
    return [n["text"] for p in adf["content"] for n in p.get("content", []) if n["type"] == "text"]


def test_each_stage_adds_one_adf_comment_with_links_and_complete_moves_to_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    f = flow(tmp_path, capsys)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert f("gate", "--plan", str(f.plan), now="2026-12-08T19:05:00+00:00")[0] == 0, f.err
    for status in ("started", "succeeded"):
        assert f("apply", "--status", status, now="2026-12-08T19:10:00+00:00")[0] == 0, f.err
    code, out = f("complete", "--verified-by", "Ollie", now="2026-12-08T20:00:00+00:00")
    assert code == 0, f.err
    issue = jira.issues[KEY]
    assert len(issue.comments) == 4  # announce, apply started, apply succeeded, complete
    first = issue.comments[0]["body"]
    assert first["type"] == "doc" and first["version"] == 1
    assert any("Encrypt the database" in t for t in texts(first))
    hrefs = [
        m["attrs"]["href"]
        for p in first["content"]
        for n in p.get("content", [])
        for m in n.get("marks", [])
        if m["type"] == "link"
    ]
    assert hrefs == [MR]  # the run's link needs an HCP run: see the channel test below
    assert texts(first)[-1].startswith("hie-notify announce ")
    assert set(issue.remote_links) == {f"hie-notify:{KEY}:merge_request"}
    link = issue.remote_links[f"hie-notify:{KEY}:merge_request"]
    assert link["object"]["url"] == MR and link["object"]["title"] == "Merge request"
    assert issue.status == "Done"
    assert f"Jira {KEY} moved through 'Close' to 'Done'" in f.err
    assert [e["audience"] for e in out["delivered"] if e["channel"] == "jira"] == [f"jira:{KEY}"]
    # Jira is told, but never counts as telling a person the gate waits for.
    _, gate = f("gate", "--plan", str(f.plan), now="2026-12-08T19:05:00+00:00")
    assert all(not r["audience"].startswith("jira:") for r in gate["required"])


def test_a_retried_job_adds_no_second_comment_even_without_its_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    f = flow(tmp_path, capsys)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err  # the ledger says: already
    (tmp_path / "ledger.jsonl").unlink()  # a lost ledger: the marker in the ticket still says
    code, _ = f("plan", "--plan", str(f.plan))
    assert code == 0, f.err
    assert len(jira.issues[KEY].comments) == 1
    posts = [c for c in jira.calls if c[0] == "POST" and c[1].endswith("/comment")]
    assert len(posts) == 1


def test_gate_blocks_an_unknown_ticket_as_a_phase_1_gap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    jira.hidden.add(KEY)
    f = flow(tmp_path, capsys)
    code, out = f("gate", "--plan", str(f.plan))
    assert code == 1
    assert "jira.missing" in fired(out)
    assert out["allowed"] is False


def test_gate_blocks_a_ticket_not_in_a_ready_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    jira.issues[KEY].status = "In Review"
    f = flow(tmp_path, capsys)
    code, out = f("gate", "--plan", str(f.plan))
    assert code == 1
    assert "jira.not_ready" in fired(out)
    assert any("is 'In Review'" in r and "jira.ready_statuses" in r for r in out["reasons"])
    jira.issues[KEY].status = "scheduled"  # statuses compare without case
    code, out = f("gate", "--plan", str(f.plan))
    assert not [r for r in fired(out) if r.startswith("jira.")]


def test_gate_without_jira_credentials_blocks_in_ci_and_warns_on_a_laptop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hie_notify.audiences import resolve
    from hie_notify.calendar import BusinessCalendar
    from hie_notify.change import load_change
    from hie_notify.classify import classify
    from hie_notify.gate import GateFacts, JiraTicket, Level, decide
    from hie_notify.policy import load_policy
    from hie_notify.stagerun import jira_ticket
    from hie_notify.terraform.plan import load_plan

    policy_file = integration_policy(tmp_path, jira=JIRA_ON)
    f = Flow(tmp_path, capsys, DB, policy=policy_file)
    policy = load_policy(policy_file)
    change = load_change(f.change, policy)
    ticket = jira_ticket(policy, change, {"GITLAB_CI": "true"})
    assert ticket == JiraTicket(KEY, None, "JIRA_URL is not set")
    # In CI the protected policy is read from GitLab; the decision on Jira is this one.
    result = classify(load_plan(f.plan), policy, change)
    assert change.window is not None
    facts = GateFacts(
        policy=policy,
        calendar=BusinessCalendar.from_policy(policy),
        classification=result,
        change=change,
        audiences=resolve(policy, result, change),
        entries=(),
        now=change.window.start,
        jira=ticket,
        in_gitlab_ci=True,
    )
    [finding] = [f for f in decide(facts).findings if f.rule.startswith("jira.")]
    assert finding.level is Level.BLOCK and finding.rule == "jira.unchecked"
    assert finding.text == (
        f"Jira ticket {KEY} cannot be checked: JIRA_URL is not set (jira.enabled is on)"
    )
    _, out = f("gate", "--plan", str(f.plan))  # on a laptop: said, not blocking
    assert not [r for r in fired(out) if r.startswith("jira.")]
    assert "jira.unchecked" in fired(out, "warn")
    assert any(
        "JIRA_URL is not set" in w and "in GitLab CI this blocks" in w for w in out["warnings"]
    )


def test_401_says_which_credential_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    f = flow(tmp_path, capsys, env={"JIRA_API_TOKEN": "ATATT-wrong-token"})
    code, _ = f("gate", "--plan", str(f.plan))
    assert code == 2
    assert "rejected the credentials (HTTP 401)" in f.err and "JIRA_API_TOKEN" in f.err
    assert "ATATT-wrong-token" not in f.err


def test_403_on_a_comment_names_the_missing_permission_and_the_rest_still_go_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    jira.forbidden.add("/comment")
    f = flow(tmp_path, capsys)
    code, out = f("plan", "--plan", str(f.plan))
    assert code == 3
    [failed] = out["failed"]
    assert failed["audience"] == f"jira:{KEY}" and failed["channel"] == "jira"
    assert "refused permission (HTTP 403" in failed["error"]
    assert "the Jira user in JIRA_USER needs Browse projects and Add comments" in failed["error"]
    assert "customer:EoE" in {e["audience"] for e in out["delivered"]}
    assert "Add comments" in f.err


def test_an_unknown_ticket_holds_back_the_announcement_naming_the_change_records_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    # Phase 1 before Phase 2 (issue 25): the gate's `jira.missing` is decidable at `plan`, so
    # nobody outside is told of a change whose ticket does not exist.
    f = flow(tmp_path, capsys, id="FFAPP-9999")
    code, out = f("plan", "--plan", str(f.plan))
    assert code == 2 and "delivered" not in out
    assert "jira.missing: Phase 1: Jira ticket FFAPP-9999 does not exist" in f.err
    assert not f.outbox("announce")


def test_429_waits_as_long_as_retry_after_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake, waits: list[float]
) -> None:
    jira.fail("POST", "/comment", 429, {"Retry-After": "7", "RateLimit-Reason": "jira-burst-based"})
    f = flow(tmp_path, capsys)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert 7.0 in waits
    assert len(jira.issues[KEY].comments) == 1


def test_a_503_that_was_applied_is_found_again_not_posted_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    jira.fail("POST", "/comment", 503, {"Retry-After": "2"}, applied=True)
    f = flow(tmp_path, capsys)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert len(jira.issues[KEY].comments) == 1


def test_5xx_then_success(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    jira.fail("POST", "/comment", 500, times=2)
    f = flow(tmp_path, capsys)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert len(jira.issues[KEY].comments) == 1


def test_5xx_past_the_budget_exits_3_and_a_rerun_sends_only_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    jira.fail("POST", "/comment", 502, times=5)
    f = flow(tmp_path, capsys)
    code, out = f("plan", "--plan", str(f.plan))
    assert code == 3
    assert f"NOT delivered: jira:{KEY} via jira" in f.err
    [failed] = out["failed"]
    assert failed["error"].startswith(f"Jira: comment on {KEY}: still failing after 4 retries")
    delivered = {e["audience"] for e in out["delivered"]}
    assert "customer:EoE" in delivered and f"jira:{KEY}" not in delivered
    before = sorted((tmp_path / "outbox" / KEY / "announce").iterdir())
    code, out = f("plan", "--plan", str(f.plan))
    assert code == 0, f.err
    assert [e["audience"] for e in out["delivered"]] == [f"jira:{KEY}"]
    assert (
        sorted((tmp_path / "outbox" / KEY / "announce").iterdir()) == before
    )  # nobody else told twice
    assert len(jira.issues[KEY].comments) == 1


INJECTION = (
    "Fix [phish](https://evil.example/x) <script>alert(1)</script> @channel [~admin] "
    "{noformat}{color:red}*bold*{color} !https://evil.example/i.png! ]"
)


def test_text_from_the_merge_request_is_only_text_in_adf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    f = flow(tmp_path, capsys, purpose=INJECTION)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    body = jira.issues[KEY].comments[0]["body"]
    nodes = [n for p in body["content"] for n in p.get("content", [])]
    assert {n["type"] for n in nodes} <= {"text", "hardBreak"}
    for n in nodes:
        for mark in n.get("marks", []):
            assert mark["type"] in ("link", "code")
            if mark["type"] == "link":
                assert mark["attrs"]["href"] in (MR, RUN)
    assert any("[phish](https://evil.example/x)" in n.get("text", "") for n in nodes)
    assert "evil.example" not in json.dumps([n.get("marks") for n in nodes])


def test_data_center_v2_uses_the_pat_and_a_noformat_wiki_body(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = JiraFake("2")
        fake.add(KEY)
        fake.register(rsps)
        policy = integration_policy(tmp_path, jira=JIRA_ON)
        f = Flow(
            tmp_path,
            capsys,
            DB,
            env={"JIRA_URL": JIRA, "JIRA_PAT": PAT, **LINK_ENV},
            policy=policy,
            purpose=INJECTION,
        )
        assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
        body = fake.issues[KEY].comments[0]["body"]
    assert isinstance(body, str)
    # The whole message sits in one noformat block that text from the MR cannot close.
    assert body.count("{noformat}") == 2
    inside = body.split("{noformat}")[1]
    assert "[phish](https://evil.example/x)" in inside and "<script>" in inside
    outside = body.split("{noformat}")[2]
    assert "evil.example" not in outside
    assert f"[Merge request|{MR}]" in outside


def test_a_missing_done_transition_is_reported_not_guessed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    jira.transitions = [("21", "Deploy", "In Progress"), ("41", "Resolve", "Resolved")]
    f = flow(tmp_path, capsys)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert f("apply", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")[0] == 0, f.err
    code, _ = f("complete", "--verified-by", "Ollie", now="2026-12-08T20:00:00+00:00")
    assert code == 0, f.err
    assert "has no transition 'Done'" in f.err and "Resolve → Resolved" in f.err
    assert jira.issues[KEY].status == "Approved"
    assert not [c for c in jira.calls if c[0] == "POST" and c[1].endswith("/transitions")]


def test_planted_secrets_are_never_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    slack = "xoxb-1234567890-planted-slack"
    f = flow(
        tmp_path,
        capsys,
        env={"HIE_WEBHOOK_SECRET": "whsec-planted-0042"},
        purpose=f"rotate {JIRA_TOKEN} and {slack} and whsec-planted-0042",
    )
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    sent = jira.bodies()
    for secret in (JIRA_TOKEN, slack, "whsec-planted-0042", EMAIL):
        assert secret not in sent
    assert "[MASKED]" in sent


def test_remote_links_to_the_run_and_the_post_mortem_update_in_place(jira: JiraFake) -> None:
    from datetime import UTC, datetime

    from hie_notify.channels import Outgoing
    from hie_notify.channels.jira import JiraChannel, JiraClient
    from hie_notify.masking import Masker
    from hie_notify.records import Audience
    from hie_notify.render import Rendered

    zero = __import__("hie_notify.durations", fromlist=["x"]).parse_notice("0")
    aud = Audience(f"jira:{KEY}", "internal", "Jira", "Europe/London", frozenset(), zero, zero, ())
    postmortem = "https://gitlab.example/acme/infra/-/issues/88"
    links = {"merge_request": MR, "run": RUN, "postmortem": postmortem, "job": "https://x/j"}
    channel = JiraChannel(JiraClient.from_env(JIRA_ENV), links, Masker())
    start = datetime(2026, 12, 8, 19, tzinfo=UTC)
    for stage in ("apply_failed", "rollback_started"):
        msg = Rendered(stage, aud, f"[{KEY}] {stage}", {"text": "Line one\nLine two\n\nNext"})
        delivery = channel.send(
            Outgoing(KEY, msg, f"key-{stage}", "jira", (), None, (start, start))
        )
        assert delivery.channel == "jira" and delivery.message_id.startswith(f"{KEY}#comment-")
    issue = jira.issues[KEY]
    assert len(issue.comments) == 2
    assert {v["object"]["url"] for v in issue.remote_links.values()} == {MR, RUN, postmortem}
    posts = [c for c in jira.calls if c[0] == "POST" and c[1].endswith("/remotelink")]
    assert len(posts) == 6 and len(issue.remote_links) == 3  # same globalId: updated in place
    para = issue.comments[0]["body"]["content"][1]["content"]
    assert [n["type"] for n in para] == ["text", "hardBreak", "text"]


def _outgoing(subject: str, text: str) -> Any:
    from datetime import UTC, datetime

    from hie_notify.channels import Outgoing
    from hie_notify.durations import parse_notice
    from hie_notify.records import Audience
    from hie_notify.render import Rendered

    zero = parse_notice("0")
    aud = Audience(f"jira:{KEY}", "internal", "Jira", "Europe/London", frozenset(), zero, zero, ())
    start = datetime(2026, 12, 8, 19, tzinfo=UTC)
    msg = Rendered("announce", aud, subject, {"text": text})
    return Outgoing(KEY, msg, "k" * 32, "jira", (), None, (start, start))


@given(subject=st.text(max_size=80), text=st.text(max_size=400))
@settings(max_examples=300, deadline=None)
def test_any_text_is_only_text_in_adf_and_stays_inside_noformat(subject: str, text: str) -> None:
    from hie_notify.channels.jira import adf, wiki

    out = _outgoing(subject, text)
    doc = adf(out, {"merge_request": MR})
    marks = []
    for para in doc["content"]:
        assert para["type"] == "paragraph"
        for node in para["content"]:
            assert node["type"] in ("text", "hardBreak")
            assert node.get("text", "x")  # ADF refuses empty text nodes
            marks += node.get("marks", [])
    assert [m["attrs"]["href"] for m in marks if m["type"] == "link"] == [MR]
    body = wiki(out, {"merge_request": MR})
    assert body.count("{noformat}") == 2
    assert (
        body.split("{noformat}")[2]
        == f"\n[Merge request|{MR}]\n{{{{hie-notify announce {'k' * 32}}}}}"
    )


def test_a_login_page_instead_of_json_is_a_failing_service_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(
            f"{JIRA}/rest/api/3/issue/{KEY}",
            body="<html><title>Log in</title></html>",
            content_type="text/html",
        )
        f = flow(tmp_path, capsys)
        code, _ = f("gate", "--plan", str(f.plan))
    assert code == 3
    assert "not JSON" in f.err and "Traceback" not in f.err


# --- the done transition's screen (issue 23) ----------------------------------------------------


def test_a_transition_screen_that_requires_fields_is_a_warning_after_the_notices_went_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    jira.screens["31"] = {"resolution": ["Done", "Won't Do"]}
    f = flow(tmp_path, capsys)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert f("apply", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")[0] == 0, f.err
    code, out = f("complete", "--verified-by", "Ollie", now="2026-12-08T20:00:00+00:00")
    assert code == 0, f.err
    assert {e["audience"] for e in out["delivered"]} >= {f"jira:{KEY}", "customer:EoE"}
    assert jira.issues[KEY].status == "Approved"
    warning = next(line for line in f.err.splitlines() if "NOT moved" in line)
    assert "Jira refused the transition (HTTP 400: resolution: Resolution is required.)" in warning
    assert "resolution (Resolution; allowed: Done, Won't Do)" in warning
    assert "jira: {done_fields: {resolution: {name: Done}}}" in warning


def test_done_fields_are_sent_with_the_transition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    jira.screens["31"] = {"resolution": ["Done", "Won't Do"]}
    policy = integration_policy(
        tmp_path, jira={**JIRA_ON, "done_fields": {"resolution": {"name": "Done"}}}
    )
    f = Flow(tmp_path, capsys, DB, env={**JIRA_ENV, **LINK_ENV}, policy=policy)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert f("apply", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")[0] == 0, f.err
    code, _ = f("complete", "--verified-by", "Ollie", now="2026-12-08T20:00:00+00:00")
    assert code == 0, f.err
    assert jira.issues[KEY].status == "Done"
    [post] = [b for m, p, b in jira.calls if m == "POST" and p.endswith("/transitions")]
    assert post == {"transition": {"id": "31"}, "fields": {"resolution": {"name": "Done"}}}
    assert f"Jira {KEY} moved through 'Close' to 'Done'" in f.err


def test_a_transition_the_user_may_not_make_is_a_failed_delivery_naming_the_permission(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jira: JiraFake
) -> None:
    f = flow(tmp_path, capsys)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert f("apply", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")[0] == 0, f.err
    jira.forbidden.add("/transitions")
    code, out = f("complete", "--verified-by", "Ollie", now="2026-12-08T20:00:00+00:00")
    assert code == 3
    [failed] = out["failed"]
    assert failed["audience"] == f"jira:{KEY}"
    assert "HTTP 403" in failed["error"] and "Transition issues" in failed["error"]
    assert {e["audience"] for e in out["delivered"]} >= {f"jira:{KEY}", "customer:EoE"}
    jira.forbidden.clear()  # fixed: the re-run moves the ticket and tells nobody twice
    code, out = f("complete", "--verified-by", "Ollie", now="2026-12-08T20:00:00+00:00")
    assert code == 0, f.err
    assert out["delivered"] == [] and jira.issues[KEY].status == "Done"


def test_a_done_fields_value_that_is_not_a_mapping_of_names_is_refused(tmp_path: Path) -> None:
    from hie_notify.errors import InputError
    from hie_notify.policy import load_policy

    path = integration_policy(tmp_path, jira={**JIRA_ON, "done_fields": ["resolution"]})
    with pytest.raises(InputError, match="done_fields"):
        load_policy(path)


# --- browse_url ----------------------------------------------------------------------------------


def test_browse_url_defaults_from_jira_url_and_is_never_a_placeholder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hie_notify.cli import main

    change = tmp_path / "change.yaml"
    Flow(tmp_path, capsys, DB)  # writes change.yaml and plan.json
    base = ["--change", str(change), "--now", "2026-12-01T10:00:00+00:00"]
    args = [*base, "preview", "plan", "--plan", str(tmp_path / "plan.json")]
    assert main(args, env={"JIRA_URL": "https://acme.atlassian.net/"}) == 0
    with_url = capsys.readouterr().out
    assert f"https://acme.atlassian.net/browse/{KEY}" in with_url
    assert main(args, env={}) == 0
    without = capsys.readouterr().out
    assert "example.org/browse" not in with_url + without
    assert f"/browse/{KEY}" not in without and KEY in without
