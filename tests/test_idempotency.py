"""A re-run delivers nothing already delivered: the idempotency key and run_stage's dedup.

run_stage is driven directly, with a real file ledger, fake channels that count what they are
given, and a renderer that does no templating (the messages' text is not the point here).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from hie_notify.audiences import Audience
from hie_notify.change import Window
from hie_notify.channels import Delivery, Outgoing
from hie_notify.errors import InputError
from hie_notify.ledger import Entry, idempotency_key
from hie_notify.notify import Failure, run_stage
from hie_notify.policy import Policy
from tests.support.fakes import (
    NOW,
    FakeChannel,
    LockingLedger,
    Stage,
    stage,
)
from tests.support.gate_records import END, START, classification, record

_ = stage  # the `stage` fixture: run_stage over the fakes


def test_the_same_inputs_give_the_same_key() -> None:
    key = idempotency_key("FFAPP-1", "announce", "slack:#devops", "sha256:abc", "slack")
    assert key == idempotency_key("FFAPP-1", "announce", "slack:#devops", "sha256:abc", "slack")
    assert len(key) == 32 and int(key, 16) >= 0


@pytest.mark.parametrize("part", range(5))
def test_each_part_changes_the_key(part: int) -> None:
    parts = ["FFAPP-1", "announce", "slack:#devops", "sha256:abc", "slack"]
    changed = list(parts)
    changed[part] += "x"
    assert idempotency_key(*changed) != idempotency_key(*parts)


def test_parts_cannot_run_into_each_other() -> None:
    assert idempotency_key("FFAPP-1", "ab", "c", "f") != idempotency_key("FFAPP-1", "a", "bc", "f")
    assert idempotency_key("A-1", "s", "a", "f") == idempotency_key("A-1", "s", "a", "f", "")


# --- run_stage -----------------------------------------------------------------------------------


def test_first_run_delivers_and_records_each_channel(stage: Stage) -> None:
    report = stage()
    assert [(e.audience, e.channel) for e in report.delivered] == [
        ("slack:#devops", "slack"),
        ("slack:#product", "slack"),
        ("slack:#product", "email"),
    ]
    assert stage.ledger.read("FFAPP-1") == report.delivered
    first = report.delivered[0]
    assert first.stage == "announce" and first.delivered_at == NOW
    assert first.message_id == "slack-1" and first.recipient == "#devops"
    assert first.window_start == START.isoformat() and first.window_end == END.isoformat()
    assert first.fingerprint == classification().fingerprint
    assert first.resources == tuple((r.address, r.action) for r in classification().resources)
    # An announcement's key covers the plan, the type, the impact, the window and the
    # declared downtime.
    variant = (
        f"{classification().fingerprint}|planned_infra_update|not-impacting|"
        f"{START.isoformat()}|{END.isoformat()}|downtime:0"
    )
    assert first.idempotency_key == idempotency_key(
        "FFAPP-1", "announce", "slack:#devops", variant, "slack"
    )
    assert len({e.idempotency_key for e in report.delivered}) == 3
    # One message rendered per audience, whatever the number of its channels.
    assert stage.renderer.rendered == [
        ("announce", "slack:#devops"),
        ("announce", "slack:#product"),
    ]


def test_a_rerun_delivers_nothing(stage: Stage) -> None:
    first = stage()
    again = stage(now=NOW + timedelta(minutes=5))
    assert again.delivered == [] and again.already == first.delivered
    assert len(stage.sent("slack")) == 2 and len(stage.sent("email")) == 1
    assert len(stage.ledger.read("FFAPP-1")) == 3
    assert stage.renderer.rendered[2:] == []  # nothing rendered for nothing to send


def test_another_stage_is_delivered(stage: Stage) -> None:
    stage()
    report = stage("apply_started")
    assert len(report.delivered) == 3 and report.already == []
    # The announcement is rendered again as the parent of a later stage.
    assert stage.sent()[-1].parent is not None and stage.sent()[0].parent is None


def test_a_changed_plan_is_announced_again(stage: Stage) -> None:
    stage()
    bigger = classification([("aws_s3_bucket.logs", "create")])
    assert len(stage(result=bigger).delivered) == 3


def test_a_moved_window_is_announced_again_but_not_other_stages(stage: Stage) -> None:
    stage()
    stage("apply_started")
    moved = record(window=Window(start=START + timedelta(days=1), end=END + timedelta(days=1)))
    assert len(stage(change=moved).delivered) == 3
    assert stage("apply_started", change=moved).delivered == []


def test_only_the_channel_not_yet_delivered_is_sent(stage: Stage) -> None:
    stage.channels.by_kind["email"].fail = 1
    report = stage()
    assert [(e.audience, e.channel) for e in report.delivered] == [
        ("slack:#devops", "slack"),
        ("slack:#product", "slack"),
    ]
    assert report.failed == [Failure("slack:#product", "email", "email is down")]
    assert "NOT delivered: slack:#product via email: email is down" in report.summary()
    retry = stage()
    assert [(e.audience, e.channel) for e in retry.delivered] == [("slack:#product", "email")]
    assert len(retry.already) == 2 and len(stage.sent("slack")) == 2


def test_dry_run_sends_and_records_nothing(stage: Stage) -> None:
    report = stage(dry_run=True)
    assert report.delivered == [] and len(report.previews) == 3
    assert stage.sent() == [] and stage.ledger.read("FFAPP-1") == []


def test_history_of_the_audience_is_given_to_the_channel(stage: Stage) -> None:
    stage()
    stage("apply_started", now=NOW + timedelta(hours=1))
    stage("complete", now=NOW + timedelta(hours=2))
    # The last send (by email) also sees the slack message this same run just delivered.
    last = stage.sent("email")[-1]
    assert last.stage == "complete" and last.rendered.audience.id == "slack:#product"
    assert [(e.stage, e.channel) for e in last.history] == [
        ("announce", "slack"),
        ("announce", "email"),
        ("apply_started", "slack"),
        ("apply_started", "email"),
        ("complete", "slack"),
    ]
    assert [e.delivered_at for e in last.history] == sorted(e.delivered_at for e in last.history)


def test_delivery_time_is_this_process_clock_and_resources_are_masked(stage: Stage) -> None:
    report = stage(result=classification([("aws_s3_bucket.secret", "create")]))
    assert report.delivered[0].delivered_at == NOW
    assert report.delivered[0].resources == (("aws_s3_bucket.[MASKED]", "create"),)


def test_an_emergency_is_recorded_as_one(stage: Stage) -> None:
    report = stage(
        result=classification(change_type="emergency_fix"),
        change=record(justification="outage"),
    )
    assert report.delivered
    assert all(e.emergency and e.change_type == "emergency_fix" for e in report.delivered)
    other = stage(result=classification(), change=record(id="FFAPP-2")).delivered
    assert other and not any(e.emergency for e in other)


def test_entries_of_other_changes_do_not_count(stage: Stage) -> None:
    stage(change=record(id="FFAPP-2"))
    assert len(stage().delivered) == 3


def test_ledger_entries_survive_a_round_trip(stage: Stage) -> None:
    report = stage()
    stored = [Entry.from_json(e.to_json(), "x") for e in report.delivered]
    assert stored == report.delivered


# --- what run_stage hands on, reports and refuses (found by mutation testing) -------------------


def test_the_key_is_the_sha256_of_the_parts() -> None:
    raw = "\x1f".join(("FFAPP-1", "announce", "slack:#devops", "sha256:abc", "slack"))
    expected = hashlib.sha256(raw.encode()).hexdigest()[:32]
    assert (
        idempotency_key("FFAPP-1", "announce", "slack:#devops", "sha256:abc", "slack") == expected
    )


def test_what_the_channel_and_the_renderer_are_given(stage: Stage) -> None:
    report = stage("apply_started", status={"error": "boom"}, run={"id": "run-1"})
    assert report.stage == "apply_started"
    first = stage.sent()[0]
    assert (first.change_id, first.channel_kind, first.window) == ("FFAPP-1", "slack", (START, END))
    assert first.key == report.delivered[0].idempotency_key
    # The stage's own message, and the announcement as the parent to refresh in place.
    assert stage.renderer.rendered[:2] == [
        ("apply_started", "slack:#devops"),
        ("announce", "slack:#devops"),
    ]
    ctx = stage.renderer.contexts[0]
    assert ctx["change"]["id"] == "FFAPP-1" and ctx["audience"]["id"] == "slack:#devops"
    assert ctx["status"]["error"] == "boom" and ctx["run"]["id"] == "run-1"
    assert stage.renderer.contexts[1] is ctx


def test_without_a_window(stage: Stage) -> None:
    report = stage(change=record(window=None))
    assert {(e.window_start, e.window_end) for e in report.delivered} == {("", "")}
    assert stage.sent()[0].window is None


def test_categories_are_recorded(stage: Stage) -> None:
    result = replace(
        classification(),
        categories=("planned_infra_update", "cost_optimization"),
        impacting_categories=("planned_infra_update",),
    )
    entry = stage(result=result).delivered[0]
    assert entry.categories == ("planned_infra_update", "cost_optimization")
    assert entry.impacting_categories == ("planned_infra_update",)
    assert entry.change_type == "planned_infra_update" and entry.emergency is False


def test_not_a_dry_run_unless_asked(policy: Policy, tmp_path: Path, stage: Stage) -> None:
    ledger = LockingLedger(tmp_path / "locking.jsonl")
    stage.ledger = ledger
    report = run_stage(
        stage="announce",
        policy=policy,
        change=record(),
        result=classification(),
        audiences=stage.audiences,
        ledger=ledger,
        channels=stage.channels,  # type: ignore[arg-type]
        renderer=stage.renderer,  # type: ignore[arg-type]
        now=NOW,
        links={},
    )
    assert len(report.delivered) == 3 and ledger.locks == 1


def test_a_dry_run_takes_no_lock_and_says_which_channel(tmp_path: Path, stage: Stage) -> None:
    ledger = LockingLedger(tmp_path / "locking.jsonl")
    stage.ledger = ledger
    # The email audience falls back to another channel: the preview says so.
    stage.channels.by_kind["email"] = FakeChannel("outbox")
    stage.channels.fallbacks = {"email": "SMTP_HOST is not set"}
    report = stage(dry_run=True)
    assert ledger.locks == 0 and not (tmp_path / "locking.jsonl").exists()
    assert [(m.audience.id, via) for m, via in report.previews] == [
        ("slack:#devops", "slack"),
        ("slack:#product", "slack"),
        ("slack:#product", "outbox (for email)"),
    ]
    assert report.notes == ["email: SMTP_HOST is not set: would be written to the outbox instead"]
    assert stage().notes == ["email: SMTP_HOST is not set: written to the outbox instead"]
    assert ledger.locks == 1


def test_a_channel_note_is_reported(stage: Stage) -> None:
    stage.channels.by_kind["email"].note = "sent to 2 of 3 contacts"
    assert stage().notes == ["slack:#product: sent to 2 of 3 contacts"]


def test_a_failed_channel_does_not_stop_the_next(stage: Stage) -> None:
    stage.channels.kinds["slack:#product"] = ["email", "slack"]
    stage.channels.by_kind["email"].fail = 1
    report = stage()
    assert [(e.audience, e.channel) for e in report.delivered] == [
        ("slack:#devops", "slack"),
        ("slack:#product", "slack"),
    ]
    assert report.summary() == (
        "delivered: slack:#devops, slack:#product. NOT delivered: slack:#product via email: "
        "email is down"
    )


def test_a_refusal_is_a_failed_delivery_and_the_rest_still_go_out(stage: Stage) -> None:
    # A 4xx (credentials, permission, a request the service will not take) is InputError:
    # it fails that delivery only, with its words; the next audience is still told.
    stage.channels.by_kind["slack"].refuse = 1
    report = stage()
    assert report.failed == [
        Failure("slack:#devops", "slack", "slack refused: check SLACK_BOT_TOKEN")
    ]
    assert [(e.audience, e.channel) for e in report.delivered] == [
        ("slack:#product", "slack"),
        ("slack:#product", "email"),
    ]
    assert [e.audience for e in stage.ledger.read("FFAPP-1")] == ["slack:#product"] * 2
    retry = stage()  # fixed: only what is missing goes out
    assert [(e.audience, e.channel) for e in retry.delivered] == [("slack:#devops", "slack")]
    assert len(retry.already) == 2 and not retry.failed


def test_a_channel_that_is_not_configured_right_stops_the_stage_before_anything_is_sent(
    stage: Stage,
) -> None:
    broken = stage.channels.for_audience

    def for_audience(audience: Audience) -> list[tuple[str, FakeChannel]]:
        if audience.id == "slack:#product":
            raise InputError("SMTP_PORT: expected a port number, got 'x'")
        return broken(audience)

    stage.channels.for_audience = for_audience  # type: ignore[method-assign]
    with pytest.raises(InputError, match="SMTP_PORT"):
        stage()
    assert stage.sent() == [] and stage.ledger.read("FFAPP-1") == []


def test_nothing_delivered_and_several_failures(stage: Stage) -> None:
    stage.channels.by_kind["slack"].fail = 2
    stage.channels.by_kind["email"].fail = 1
    assert stage().summary() == (
        "delivered: nothing. NOT delivered: slack:#devops via slack: slack is down; "
        "slack:#product via slack: slack is down; slack:#product via email: email is down"
    )


def test_a_delivery_that_cannot_be_recorded_stops_the_stage(tmp_path: Path, stage: Stage) -> None:
    stage.ledger = LockingLedger(tmp_path / "locking.jsonl", fail_record=True)
    report = stage()
    assert report.failed == [
        Failure(
            "slack:#devops",
            "slack",
            "delivered (slack-1) but NOT recorded in the ledger (ledger.jsonl: read-only file "
            "system); a re-run may send it again",
        ),
        Failure("slack:#product", "-", "not tried: the ledger could not be written"),
    ]
    assert report.stage == "announce" and report.delivered == []
    assert stage.sent() == [stage.sent()[0]]  # nothing sent after the ledger failed


def test_a_change_in_service_impact_is_announced_again(stage: Stage) -> None:
    stage()
    impacting = classification(service_impacting=True)
    assert impacting.fingerprint == classification().fingerprint
    assert len(stage(result=impacting).delivered) == 3
    assert stage(result=impacting).delivered == []


def test_announcement_keys_keep_their_form(stage: Stage) -> None:
    # Keys are stored in every ledger (file, SQLite, GitLab): written out here, so a change to
    # their form, which would make every past announcement unrecognised and send it again, fails.
    impacting = stage(result=classification(service_impacting=True)).delivered[0]
    fp = classification().fingerprint
    assert impacting.idempotency_key == idempotency_key(
        "FFAPP-1",
        "announce",
        "slack:#devops",
        f"{fp}|planned_infra_update|impacting|{START.isoformat()}|{END.isoformat()}|downtime:0",
        "slack",
    )
    untyped = stage(
        result=classification(change_type=None),
        change=record(id="FFAPP-2", window=None, downtime=None),
    ).delivered[0]
    assert untyped.idempotency_key == idempotency_key(
        "FFAPP-2",
        "announce",
        "slack:#devops",
        f"{fp}||not-impacting|no-window||downtime:not known",
        "slack",
    )


def test_an_announcement_recorded_in_the_keys_old_form_is_not_sent_again(stage: Stage) -> None:
    # Before the declared downtime was part of an announcement's key (and was recorded with it):
    # such a delivery is still recognised, so upgrading sends nobody a second announcement.
    fp = classification().fingerprint
    variant = f"{fp}|planned_infra_update|not-impacting|{START.isoformat()}|{END.isoformat()}"
    old = [
        replace(
            e,
            idempotency_key=idempotency_key("FFAPP-1", "announce", e.audience, variant, e.channel),
            extra={},
        )
        for e in stage().delivered
    ]
    stage.ledger.path.write_text("")
    stage.ledger.record(old)
    again = stage(now=NOW + timedelta(minutes=5))
    assert again.delivered == [] and [e.idempotency_key for e in again.already] == [
        e.idempotency_key for e in old
    ]
    # (it cannot say which downtime it told: as before, it stands for any)


def test_the_receipt_is_recorded(stage: Stage) -> None:
    class Receipted(FakeChannel):
        def send(self, outgoing: Outgoing) -> Delivery:
            sent = super().send(outgoing)
            return replace(sent, receipt={"ts": "1700000000.000100", "channel": "C0DEVOPS"})

    stage.channels.by_kind["slack"] = Receipted("slack")
    entry = stage().delivered[0]
    assert entry.receipt == {"ts": "1700000000.000100", "channel": "C0DEVOPS"}
    assert stage.ledger.read("FFAPP-1")[0].receipt == entry.receipt


def test_the_delivery_time_is_read_from_the_clock_when_given(stage: Stage) -> None:
    # A slow channel: the time recorded is when each delivery was accepted, not the run's start.
    ticks = iter([NOW + timedelta(seconds=s) for s in (7, 9, 12)])
    report = stage(clock=lambda: next(ticks))
    assert [e.delivered_at for e in report.delivered] == [
        NOW + timedelta(seconds=7),
        NOW + timedelta(seconds=9),
        NOW + timedelta(seconds=12),
    ]
