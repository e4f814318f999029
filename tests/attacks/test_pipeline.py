"""Issue 12's findings, each run as an attacker would run it against a merge request pipeline:
exit code, message, dotenv and the requests made are asserted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hie_notify.ledger.gitlab import encode_marker
from hie_notify.records import Entry
from tests.support import slack_fake
from tests.support.builders import plan, rc, write
from tests.support.gitlab_fake import BOT
from tests.support.trust_ci import ANNOUNCED, AT_WINDOW, DB, PROTECTED, Pipeline, pipeline

BLOCKED = "HIE_GATE_ALLOWED=false"


@pytest.fixture
def pipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pipeline]:
    with pipeline(tmp_path, capsys, monkeypatch) as p:
        yield p


def _reasons(out: dict[str, object]) -> str:
    return "\n".join(str(r) for r in out.get("reasons", []))  # type: ignore[attr-defined]


def _entry(audience: str, channel: str, when: datetime, **fields: object) -> Entry:
    return Entry(
        change_id="FFAPP-4458",
        stage="announce",
        audience=audience,
        channel=channel,
        recipient="x",
        fingerprint="sha256:x",
        change_type="planned_infra_update",
        service_impacting=True,
        resources=(("aws_db_instance.main", "replace"),),
        delivered_at=when,
        message_id="m",
        idempotency_key="k",
        window_start="2026-12-08T19:00:00+00:00",
        window_end="2026-12-08T21:00:00+00:00",
        **fields,  # type: ignore[arg-type]
    )


# 1. The outbox counts as "told".


def test_1_in_ci_plan_refuses_to_announce_to_an_audience_only_the_outbox_reaches(
    pipe: Pipeline,
) -> None:
    pipe.protected(b"customers: {EoE: {name: East of England}}\n")  # no contacts
    code, _ = pipe("plan", at=ANNOUNCED)
    assert code == 2
    assert "customer:EoE: owed notice, but no real route reaches it (channels: email" in pipe.err
    assert "East of England has no email contacts in the policy" in pipe.err
    assert pipe.slack.state.calls("chat.postMessage") == []  # nothing half-announced
    code, _ = pipe("validate")
    assert code == 2 and "customer:EoE: owed notice" in pipe.err


def test_1_in_ci_an_outbox_delivery_never_satisfies_the_gate(pipe: Pipeline) -> None:
    assert pipe("plan", at=ANNOUNCED)[0] == 0
    # An outbox "delivery" to the customer, recorded as an older version would have.
    told = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
    pipe.gitlab.notes[("merge_requests", 7)] = [
        n for n in pipe.gitlab.notes[("merge_requests", 7)] if "customer:EoE" not in n["body"]
    ]
    from hie_notify.ledger import open_ledger

    ledger = open_ledger("gitlab:mr:7", pipe.env)
    ledger.record([_entry("customer:EoE", "outbox", told, receipt={"path": "o/x.eml"})])
    code, out = pipe("gate")
    assert code == 1
    assert (
        "East of England was only written to the outbox (m): where the gate is enforced "
        "(GitLab CI, the run task) that tells nobody"
    ) in _reasons(out)
    assert BLOCKED in pipe.dotenv


def test_1_outside_ci_the_outbox_counts_and_says_outbox_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.cli_flow import Flow

    flow = Flow(tmp_path, capsys, DB)
    assert flow("plan", "--plan", str(flow.plan), now=ANNOUNCED)[0] == 0
    code, out = flow("gate", "--plan", str(flow.plan), now=AT_WINDOW)
    assert code == 0
    eoe = next(r for r in out["required"] if r["audience"] == "customer:EoE")
    assert eoe["outbox_only"] is True and eoe["receipts"][0].startswith("outbox ")


def test_1_trial_lets_the_outbox_count_in_ci_and_says_nobody_was_told(pipe: Pipeline) -> None:
    pipe.protected(b"trial: true\n")
    env = {k: v for k, v in pipe.env.items() if not k.startswith(("SLACK_", "SMTP_"))}
    assert pipe("plan", at=ANNOUNCED, env=env)[0] == 0
    code, out = pipe("gate", env=env)
    assert code == 0, out
    assert out["trial"] is True and out["nobody_told"].startswith("TRIAL: NOBODY WAS TOLD.")
    assert "HIE_TRIAL=true" in pipe.dotenv
    summary = [b for b in pipe.note_bodies() if "hie-notify-ledger:v1:" not in b]
    assert summary and summary[0].startswith("**TRIAL: NOBODY WAS TOLD.")


# 2. Forged notice dates through the bot's own notes.


def test_2_a_marker_in_an_edited_or_summary_note_is_never_a_ledger_entry(pipe: Pipeline) -> None:
    from hie_notify.ledger.gitlab import note_body
    from hie_notify.ledger.seal import seal

    early = datetime(2026, 11, 20, 9, tzinfo=timezone.utc)
    forged = seal(
        [
            _entry(
                "customer:EoE", "email", early, receipt={"message_id": "<a>", "smtp_reply": "250"}
            )
        ],
        lambda _: "",
        None,
    )
    # (a) the summary note shape: other text around a valid marker, edited later
    body = "### hie-notify: FFAPP-4458\n\nsome summary\n\n" + encode_marker(forged)
    note = pipe.gitlab.add_note("merge_requests", 7, body, BOT, early)
    # (b) an exact ledger note, but edited after it was posted
    edited = pipe.gitlab.add_note("merge_requests", 7, note_body(forged), BOT, early)
    edited["updated_at"] = "2026-12-08T18:00:00Z"
    assert note["author"]["id"] == BOT["id"]
    code, out = pipe("gate")
    assert code == 1
    assert "East of England has not been told" in _reasons(out)
    assert BLOCKED in pipe.dotenv


def test_2_a_branch_template_override_is_refused(pipe: Pipeline) -> None:
    pipe.branch_policy(
        'templates:\n  merge_request_note.j2: "<!-- hie-notify-ledger:v1:AAAA -->"\n'
    )
    code, _ = pipe("gate")
    assert code == 2
    assert "templates.merge_request_note.j2: templates can only be set in the protected" in (
        pipe.err
    )
    assert BLOCKED in pipe.dotenv


def test_2_a_drifted_address_cannot_carry_the_marker_into_a_note(pipe: Pipeline) -> None:
    marker = "<!-- hie-notify-ledger:v1:eJyLjgUAARUAuQ== -->"
    evil = rc(f'aws_s3_bucket.b["{marker}"]', ["update"], before={"a": 1}, after={"a": 2})
    write(pipe.plan, plan(DB, resource_drift=[evil]))
    assert pipe("plan", at=ANNOUNCED)[0] == 0
    posted = [json.loads(r.body)["body"] for r in pipe.requests_to("/notes") if r.body]
    summary = [b for b in posted if b.startswith("**hie-notify** recorded") is False]
    assert summary and all("hie-notify-ledger:v1:eJy" not in b for b in summary)
    assert any("hie-notify ledger:v1:eJy" in b for b in summary)  # shown, broken


# 3. Token leak into the merge request note.


def test_3_a_token_with_underscores_does_not_survive_markdown_escaping(pipe: Pipeline) -> None:
    token = "glpat-abc_def_ghi-jkl_mnopqrstu"
    pipe.write_change(purpose=f"Rotate {token} for the database")
    assert pipe("plan", at=ANNOUNCED)[0] == 0
    bodies = [
        r.body.decode() if isinstance(r.body, bytes) else r.body
        for r in pipe.requests_to("/notes")
        if r.body
    ]
    assert bodies
    for body in bodies:
        text = json.loads(body)["body"]
        assert "glpat-abc" not in text.replace("\\", "")
    assert any("\\[MASKED\\]" in json.loads(b)["body"] for b in bodies)


# 4. A branch can remove an audience.


@pytest.mark.parametrize(
    ("branch", "message"),
    [
        (
            'change_types: {planned_infra_update: {internal_channels: ["#devops", '
            '"#infrastructure"]}}\n',
            "change_types.planned_infra_update.internal_channels: would remove '#product'",
        ),
        ("customers: {EoE: {contacts: []}}\n", "customers.EoE.contacts: would remove "),
        (
            "customers: {EoE: {contacts: [{email: me@attacker.example}]}}\n",
            "customers.EoE.contacts: would remove 'desk@eoe.example.org'",
        ),
        (
            "customers: {EoE: {channels: [outbox]}}\n",
            "customers.EoE.channels: would remove 'email'",
        ),
    ],
)
def test_4_a_branch_cannot_remove_or_downgrade_an_audience(
    pipe: Pipeline, branch: str, message: str
) -> None:
    pipe.branch_policy(branch)
    for command in ("validate", "plan", "gate"):
        code, _ = pipe(command, at=ANNOUNCED)
        assert code == 2, command
        assert message in pipe.err, pipe.err
    assert BLOCKED in pipe.dotenv
    assert pipe.slack.state.calls("chat.postMessage") == []


def test_4_a_branch_may_add_contacts_and_audiences(pipe: Pipeline) -> None:
    pipe.branch_policy(
        "customers:\n  EoE:\n    contacts:\n      - {email: desk@eoe.example.org, critical: true}\n"
        "      - {email: b@eoe.example.org}\n"
        "  NEWCO: {name: New Co, contacts: [{email: ops@new.example}]}\n"
    )
    code, _ = pipe("validate")
    assert code == 0, pipe.err


# 5. HIE_POLICY naming a file the default branch lacks; HIE_POLICY unset.


def test_5_a_named_policy_missing_on_the_protected_ref_fails_closed(pipe: Pipeline) -> None:
    code, _ = pipe("gate", env={**pipe.env, "HIE_POLICY": "policies/strict.yaml"})
    assert code == 2
    assert "the protected policy 42@main:policies/strict.yaml does not exist" in pipe.err
    assert BLOCKED in pipe.dotenv
    raw = pipe.requests_to("/repository/files/")
    assert raw[-1].url.endswith("/projects/42/repository/files/policies%2Fstrict.yaml/raw?ref=main")


def test_5_with_hie_policy_unset_the_branch_file_is_read_and_checked(pipe: Pipeline) -> None:
    pipe.branch_policy(
        "change_types:\n  planned_infra_update:\n"
        "    external_notice: {minimum: 5bd, recommended: 6bd}\n"
    )
    code, out = pipe("gate")
    assert code == 1
    eoe = next(r for r in out["required"] if r["audience"] == "customer:EoE")
    assert eoe["minimum"] == "5bd"
    assert "with .hie-notify/policy.yaml changing" in out["policy_source"]


# 6. A branch controls its own job variables.


@pytest.mark.parametrize(
    ("flags", "variables", "named"),
    [
        (["--now", AT_WINDOW], {}, "--now / HIE_NOW"),
        ([], {"HIE_NOW": AT_WINDOW}, "--now / HIE_NOW"),
        (["--dry-run"], {}, "--dry-run / HIE_DRY_RUN"),
        ([], {"HIE_DRY_RUN": "1"}, "--dry-run / HIE_DRY_RUN"),
        ([], {"HIE_LOCAL_POLICY": "1"}, "HIE_LOCAL_POLICY"),
        # Every spelling of "on" is on (issue 23): `On` and ` YES ` were read as off.
        ([], {"HIE_DRY_RUN": "On"}, "--dry-run / HIE_DRY_RUN"),
        ([], {"HIE_LOCAL_POLICY": " YES "}, "HIE_LOCAL_POLICY"),
    ],
)
def test_6_ci_refuses_overrides_a_branch_could_set(
    pipe: Pipeline, flags: list[str], variables: dict[str, str], named: str
) -> None:
    code, _ = pipe("gate", flags=flags, env={**pipe.env, **variables})
    assert code == 2
    assert f"{named}: refused in GitLab CI" in pipe.err
    assert pipe.dotenv == BLOCKED + "\n"
    pipe.protected(PROTECTED + b"trial: true\n")
    code, _ = pipe("gate", flags=flags, env={**pipe.env, **variables})
    assert code in (0, 1) and "refused in GitLab CI" not in pipe.err


def test_6_an_emergency_whose_approval_cannot_be_checked_blocks_in_ci(pipe: Pipeline) -> None:
    pipe.write_change(type="emergency_fix", justification="data leak")
    assert pipe("plan", at="2026-12-08T19:10:00+00:00")[0] == 0
    env = {k: v for k, v in pipe.env.items() if k != "HIE_GITLAB_TOKEN"}
    from tests.support.gitlab_fake import JOB_TOKEN

    env.update(CI_JOB_TOKEN=JOB_TOKEN, HIE_LEDGER="file:l.jsonl", HIE_LEDGER_KEY="k" * 32)
    code, out = pipe("gate", env=env)
    assert code == 1
    assert "the emergency's approval cannot be checked" in _reasons(out)


# 7. Reading the protected policy retries for about 100 s.


def test_7_protected_policy_reads_are_bounded(
    pipe: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    pipe.gitlab.file_failures = [(503, {"Retry-After": "120"})] * 10
    code, _ = pipe("gate")
    assert code == 3
    assert "GitLab still failing after 4 attempt(s)" in pipe.err
    assert "(HTTP 503)" in pipe.err
    assert len(pipe.requests_to("/repository/files/")) == 4
    assert waits == [10.0, 10.0, 10.0]  # Retry-After: 120, capped at 10 s
    assert BLOCKED in pipe.dotenv


def test_7_the_total_time_is_bounded_too() -> None:
    import responses

    from hie_notify.errors import ServiceError
    from hie_notify.gitlab_api import read_repository_file

    clock = [0.0]
    timeouts: list[float] = []

    def slow_502(request: Any) -> tuple[int, dict[str, str], str]:
        timeouts.append(request.req_kwargs["timeout"])
        clock[0] += 12.0  # a server that takes 12 s to fail
        return 502, {}, "<html>502 Bad Gateway</html>"

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    url = "https://gitlab.example.com/api/v4/projects/42/repository/files/p.yaml/raw"
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.GET, url, callback=slow_502)
        with pytest.raises(ServiceError, match=r"after 3 attempt\(s\) in 39 s"):
            read_repository_file(
                {"CI_API_V4_URL": "https://gitlab.example.com/api/v4", "HIE_GITLAB_TOKEN": "t"},
                "42",
                "p.yaml",
                "main",
                sleep=sleep,
                monotonic=lambda: clock[0],
            )
    # 12 s + 1 s wait + 12 s + 2 s wait: the third attempt may use only what is left of 30 s
    assert timeouts == [30, 17.0, 3.0]


# 8. A window added after announcing.


def test_8_an_announcement_without_a_window_covers_no_window(pipe: Pipeline) -> None:
    pipe.write_change(window=None)
    code, out = pipe("plan", at=ANNOUNCED)
    # Phase 1 before Phase 2 (issue 25): no window, nobody outside is told at all.
    assert code == 2 and "delivered" not in out
    pipe.write_change(
        window=dict(start="2026-12-08T19:00:00+00:00", end="2026-12-08T21:00:00+00:00")
    )
    code, out = pipe("gate")
    assert code == 1
    assert "East of England has not been told" in _reasons(out)
    assert BLOCKED in pipe.dotenv
    code, out = pipe("plan", at="2026-12-01T11:00:00+00:00")
    assert len(out["delivered"]) == 4  # the window is announced


# 9. The file ledger is plain editable JSON.


def test_9_editing_delivered_at_in_the_file_ledger_is_detected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.cli_flow import Flow

    flow = Flow(tmp_path, capsys, DB)
    assert flow("plan", "--plan", str(flow.plan), now="2026-12-07T10:00:00+00:00")[0] == 0
    code, _ = flow("gate", "--plan", str(flow.plan), now=AT_WINDOW)
    assert code == 1  # one business day: too late for the customer
    ledger = tmp_path / "ledger.jsonl"
    lines = ledger.read_text().splitlines()
    edited = [
        line.replace("2026-12-07T10:00:00+00:00", "2026-11-20T10:00:00+00:00") for line in lines
    ]
    ledger.write_text("\n".join(edited) + "\n")
    code, out = flow("gate", "--plan", str(flow.plan), now=AT_WINDOW)
    assert code == 1
    assert "was edited after it was recorded" in _reasons(out)
    # removing an entry in the middle breaks the chain
    ledger.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    code, out = flow("gate", "--plan", str(flow.plan), now=AT_WINDOW)
    assert code == 1
    assert "an entry was removed or the entries were reordered" in _reasons(out)
    # and so does putting the entries in another order
    ledger.write_text("\n".join(reversed(lines)) + "\n")
    code, out = flow("gate", "--plan", str(flow.plan), now=AT_WINDOW)
    assert code == 1
    assert "does not follow any entry before it" in _reasons(out)


def test_9_with_a_key_unsigned_entries_are_ignored_and_ci_needs_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.cli_flow import Flow

    flow = Flow(tmp_path, capsys, DB)
    assert flow("plan", "--plan", str(flow.plan), now=ANNOUNCED)[0] == 0  # unsigned
    flow.env["HIE_LEDGER_KEY"] = "a-long-ledger-signing-key-0123456789"
    code, out = flow("gate", "--plan", str(flow.plan), now=AT_WINDOW)
    assert code == 1
    assert any("is not signed with HIE_LEDGER_KEY: ignored" in w for w in out["warnings"])
    flow.env = {"GITLAB_CI": "true"}
    code, _ = flow("validate")
    assert code == 2


def test_9_a_ledger_sealed_under_a_key_other_than_the_projects_counts_for_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A branch that announces on a laptop (the outbox tells nobody) under a key it made up
    commits a ledger whose every entry is well sealed, only not with the project's key."""
    from tests.support.cli_flow import Flow

    flow = Flow(tmp_path, capsys, DB)
    flow.env["HIE_LEDGER_KEY"] = "a-key-the-branch-made-up-0123"
    assert flow("plan", "--plan", str(flow.plan), now=ANNOUNCED)[0] == 0
    code, _ = flow("gate", "--plan", str(flow.plan), now=AT_WINDOW)
    assert code == 0  # under its own key the ledger would do: only the key is wrong
    flow.env["HIE_LEDGER_KEY"] = "a-long-ledger-signing-key-0123456789"
    code, out = flow("gate", "--plan", str(flow.plan), now=AT_WINDOW)
    assert code == 1
    wrong = [w for w in out["warnings"] if "has a wrong HIE_LEDGER_KEY signature: ignored" in w]
    assert len(wrong) == len((tmp_path / "ledger.jsonl").read_text().splitlines())
    assert "East of England has not been told" in _reasons(out)
    assert all(not r["met"] and r["given_at"] is None for r in out["required"])


def test_9_the_templates_do_not_merge_ledgers_committed_to_the_branch() -> None:
    root = Path(__file__).resolve().parents[2]
    for name in ("templates/hie-notify.yml", "ci-templates/hie-notify.gitlab-ci.yml"):
        text = (root / name).read_text()
        merge = text.index("cat .hie-notify/cache/ledger.jsonl .hie-notify/jobs/*.jsonl")
        drop = text.index("git ls-files -- .hie-notify/cache .hie-notify/jobs")
        assert drop < merge, name


# 10. Deadlock after announcing.


@pytest.mark.parametrize(
    "change",
    [{"downtime": "3h"}, {"type": "emergency_fix", "justification": "data leak"}],
)
def test_10_whatever_voids_an_announcement_makes_plan_send_the_new_one(
    pipe: Pipeline, change: dict[str, str]
) -> None:
    pipe.write_change(downtime="0")
    write(pipe.plan, plan(rc("aws_route53_record.a", ["update"], before={"t": 1}, after={"t": 2})))
    code, out = pipe("plan", at=ANNOUNCED)
    assert code == 0 and "customer:EoE" not in str(out["delivered"])  # not impacting
    pipe.write_change(**change)  # the same plan, now impacting or an emergency
    code, out = pipe("plan", at="2026-12-01T12:00:00+00:00")
    assert code == 0, pipe.err
    assert {d["audience"] for d in out["delivered"]} >= {"slack:#devops"}  # sent again
    assert out["already_delivered"] == []


# 11. A clock from outside.


def test_11_an_old_slack_ts_does_not_backdate_a_notice(
    pipe: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy answering Slack calls with a ts from 2001.
    monkeypatch.setattr(slack_fake, "time", SimpleNamespace(time=lambda: 1_000_000_000.0))
    code, out = pipe("plan", at=ANNOUNCED)
    assert code == 0
    slack = [d for d in out["delivered"] if d["channel"] == "slack"]
    assert slack and all(d["delivered_at"] == ANNOUNCED for d in slack)
    assert all(":1000000000." in d["message_id"] for d in slack)  # the old ts, kept as receipt


def test_11_a_gitlab_note_posted_later_than_the_process_clock_wins(pipe: Pipeline) -> None:
    # This job's clock says 20 Nov; GitLab stamps the ledger note 27 Nov: 27 Nov counts.
    code, _ = pipe("plan", at="2026-11-20T10:00:00+00:00")
    assert code == 0
    code, out = pipe("gate")
    eoe = next(r for r in out["required"] if r["audience"] == "customer:EoE")
    assert eoe["given_at"] >= "2026-11-27T10:00:00+00:00"


def test_receipts_are_listed_and_a_real_delivery_without_one_does_not_count(
    pipe: Pipeline,
) -> None:
    assert pipe("plan", at=ANNOUNCED)[0] == 0
    code, out = pipe("gate")
    assert code == 0
    receipts = {r["audience"]: r["receipts"] for r in out["required"]}
    assert receipts["slack:#devops"][0].startswith("slack C0DEVOPS https://hie.slack.com/")
    assert receipts["customer:EoE"][0].endswith(" 250 OK")
    assert pipe.slack.state.calls("chat.getPermalink")
    # An entry recorded without a receipt (as an older version, or a forger, would write it).
    from hie_notify.ledger import open_ledger

    pipe.gitlab.notes[("merge_requests", 7)] = []
    early = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
    open_ledger("gitlab:mr:7", pipe.env).record(
        [replace(_entry("customer:EoE", "email", early), fingerprint="sha256:x")]
    )
    code, out = pipe("gate")
    assert code == 1
    assert "East of England: the email delivery recorded" in _reasons(out)
    assert "has no receipt from the service" in _reasons(out)
