"""What a branch controls (its change record, job variables, text, the ledger notes it can post)
cannot make a plan-less announcement cover a plan more severe than what was announced, nor forge
the plan-less marker. Run as a merge request pipeline would (GitLab ledger, Slack and SMTP at
the HTTP/SMTP layer), except where a local file ledger is the point."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hie_notify.ledger import open_ledger
from hie_notify.ledger.gitlab import note_body
from hie_notify.ledger.seal import seal
from hie_notify.records import PLANLESS, Entry
from tests.support.builders import plan, rc, write
from tests.support.cli_flow import Flow
from tests.support.gitlab_fake import BOT
from tests.support.trust_ci import ANNOUNCED, Pipeline, pipeline

BLOCKED = "HIE_GATE_ALLOWED=false"
# Announced as a cost optimisation with no downtime: #devops, #product and the meeting hear it.
MODEST = {"type": "cost_optimization", "downtime": "0", "customers": []}


@pytest.fixture
def pipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pipeline]:
    with pipeline(tmp_path, capsys, monkeypatch) as p:
        p.write_change(**MODEST)
        yield p


def _reasons(out: dict[str, object]) -> str:
    return "\n".join(str(r) for r in out.get("reasons", []))  # type: ignore[attr-defined]


def test_a_planless_notice_does_not_cover_a_more_severe_plan(pipe: Pipeline) -> None:
    code, out = pipe("announce", at=ANNOUNCED)
    assert code == 0, pipe.err
    assert {d["channel"] for d in out["delivered"]} >= {"slack"}  # told through Slack itself
    # The plan replaces the database: planned infrastructure, service-impacting.
    code, out = pipe("gate")
    assert code == 1
    assert (
        "#devops was told about a different plan (change type raised from cost_optimization "
        "to planned_infra_update; now service-impacting (the notice said it was not))"
    ) in _reasons(out)
    assert BLOCKED in pipe.dotenv


def test_declaring_the_stricter_type_after_the_announcement_does_not_help(
    pipe: Pipeline,
) -> None:
    assert pipe("announce", at=ANNOUNCED)[0] == 0
    pipe.write_change(type="planned_infra_update", downtime="1h", customers=["EoE"])
    code, out = pipe("gate")
    assert code == 1
    assert "change type raised from cost_optimization to planned_infra_update" in _reasons(out)
    assert "East of England has not been told" in _reasons(out)
    assert BLOCKED in pipe.dotenv


def test_job_variables_and_text_cannot_make_plan_record_a_planless_notice(
    pipe: Pipeline,
) -> None:
    """`plan` always records its plan's fingerprint, whatever the branch says."""
    pipe.write_change(purpose="planless", type=None, downtime="1h", customers=["EoE"])
    env = {**pipe.env, "HIE_PLANLESS": "true", "HIE_FINGERPRINT": PLANLESS, "PLANLESS": "1"}
    assert pipe("plan", at=ANNOUNCED, env=env)[0] == 0
    ledger = open_ledger("gitlab:mr:7", pipe.env)
    entries = ledger.read("FFAPP-4458")
    assert entries and all(e.fingerprint.startswith("sha256:") for e in entries)


def test_a_change_record_cannot_carry_the_marker(pipe: Pipeline) -> None:
    for key in ("fingerprint", "planless"):
        pipe.write_change(**{key: PLANLESS if key == "fingerprint" else True})
        code, _ = pipe("announce", at=ANNOUNCED)
        assert code == 2 and key in pipe.err and "Traceback" not in pipe.err
        pipe.fields.pop(key)
    assert pipe.slack.state.calls("chat.postMessage") == []


def test_a_forged_planless_entry_in_an_edited_note_is_not_a_notice(pipe: Pipeline) -> None:
    early = datetime(2026, 11, 20, 9, tzinfo=timezone.utc)
    forged = seal(
        [
            Entry(
                change_id="FFAPP-4458",
                stage="announce",
                audience=audience,
                channel="slack",
                recipient=audience,
                fingerprint=PLANLESS,
                change_type="emergency_fix",
                service_impacting=True,
                resources=(),
                delivered_at=early,
                message_id="m",
                idempotency_key=f"k{audience}",
                receipt={"channel_id": "C1", "ts": "1.0"},
                window_start="2026-12-08T19:00:00+00:00",
                window_end="2026-12-08T21:00:00+00:00",
            )
            for audience in ("slack:#devops", "slack:#infrastructure", "slack:#product")
        ],
        lambda _: "",
        None,
    )
    note = pipe.gitlab.add_note("merge_requests", 7, note_body(forged), BOT, early)
    note["updated_at"] = "2026-12-08T18:00:00Z"  # edited after it was posted
    code, out = pipe("gate")
    assert code == 1
    assert "#devops has not been told" in _reasons(out)
    assert BLOCKED in pipe.dotenv


def test_in_ci_announce_refuses_an_audience_only_the_outbox_reaches(pipe: Pipeline) -> None:
    env = {k: v for k, v in pipe.env.items() if not k.startswith("SLACK_")}
    code, _ = pipe("announce", at=ANNOUNCED, env=env)
    assert code == 2
    assert "slack:#devops: owed notice, but no real route reaches it" in pipe.err


def test_an_unsigned_planless_entry_in_a_signed_file_ledger_is_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = rc("aws_db_instance.main", ["delete", "create"])
    flow = Flow(tmp_path, capsys, db, type="planned_infra_update", customers=["EoE"])
    flow.env["HIE_LEDGER_KEY"] = "a-long-ledger-signing-key-0123456789"
    assert flow("announce", now=ANNOUNCED)[0] == 0  # signed: counts
    code, _ = flow("gate", "--plan", str(flow.plan), now="2026-12-08T19:30:00+00:00")
    assert code == 0
    # A branch commits a copy of the ledger with one more, unsigned, plan-less entry.
    ledger = tmp_path / "ledger.jsonl"
    lines = ledger.read_text().splitlines()
    extra = json.loads(lines[0])
    extra.update(audience="slack:#cloud-security", recipient="#cloud-security", mac="")
    ledger.write_text("\n".join([*lines, json.dumps(extra)]) + "\n")
    mixed = write(tmp_path / "mixed.json", plan(db, rc("aws_s3_bucket_policy.x", ["update"])))
    code, out = flow("gate", "--plan", str(mixed), now="2026-12-08T19:30:00+00:00")
    assert code == 1
    trusted, told = out["reasons"]
    assert trusted.startswith("the ledger cannot be trusted: ") and "edited" in trusted
    assert told.startswith("#cloud-security has not been told")


def test_a_branch_cannot_move_the_postmortem_deadline(pipe: Pipeline) -> None:
    """`postmortems.due` is the protected policy's: a branch lengthening it (so `remind` stays
    quiet) is refused like any key it may not change."""
    pipe.branch_policy("postmortems: {due: 60bd}\n")
    code, _ = pipe("postmortem", at=ANNOUNCED)
    assert code == 2
    assert "postmortems.due: may not be changed from a merge request" in pipe.err
