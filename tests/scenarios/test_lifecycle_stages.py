"""The change lifecycle at work (issue 24.1, 24.2): every stage command checks its transition
against the state replayed from the ledger before anything is sent, recorded or written;
records it first; and the register, calendar, digest and report read that one state. The
three reproductions at the end of issue 24 are here, from the outside, with --now and the
outbox."""

from __future__ import annotations

import email
import hashlib
import json
import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from hie_notify.cli import main
from hie_notify.ledger import open_ledger
from hie_notify.lifecycle import replay
from hie_notify.records import Entry
from hie_notify.register.store import open_register
from tests.support.builders import fired, rc
from tests.support.cli_flow import Flow
from tests.support.runtask_harness import harness_fixture

_ = harness_fixture  # the `h` fixture: the receive service over fakes of GitLab and HCP

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
UTC = timezone.utc
NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])


class Hie:
    """`hie-notify` as the issue's reproductions run it: G="--policy examples/policy.yaml
    --change FILE --ledger file:l.jsonl --register sqlite:r.sqlite3 --outbox o"."""

    def __init__(self, tmp: Path, capsys: pytest.CaptureFixture[str], change: Path) -> None:
        self.tmp, self.capsys, self.change = tmp, capsys, change
        self.err = ""

    def __call__(self, *args: str, now: str, fmt: str = "json") -> tuple[int, Any]:
        base = [
            "--policy",
            str(EXAMPLES / "policy.yaml"),
            "--change",
            str(self.change),
            "--ledger",
            f"file:{self.tmp}/l.jsonl",
            "--register",
            f"sqlite:{self.tmp}/r.sqlite3",
            "--outbox",
            str(self.tmp / "o"),
            "--now",
            now,
            "--format",
            fmt,
        ]
        extra = ["--terraform-report", str(self.tmp / "tf.json")] if args[0] == "plan" else []
        code = main([*base, *args, *extra], env={})
        out = self.capsys.readouterr()
        self.err = out.err
        if fmt != "json":
            return code, out.out
        return code, json.loads(out.out) if out.out.strip() else {}

    def ledger(self) -> list[Entry]:
        return open_ledger(f"file:{self.tmp}/l.jsonl", {}).read(self.change_id)

    @property
    def change_id(self) -> str:
        return str(yaml.safe_load(self.change.read_text())["id"])

    def status(self) -> str:
        reg = open_register(f"sqlite:{self.tmp}/r.sqlite3", {})
        assert reg is not None
        got = reg.get(self.change_id)
        assert got is not None
        return got.status


def files(tmp: Path) -> dict[str, str]:
    """Every file under `tmp` and a digest of its bytes (the ledger, the register, the outbox,
    the Terraform report: whatever a command might write)."""
    return {
        str(p.relative_to(tmp)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(tmp.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


# --- the three reproductions ------------------------------------------------------------------


@pytest.fixture
def example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Hie:
    return Hie(tmp_path, capsys, EXAMPLES / "change.yaml")


def test_reproduction_1_rollback_then_complete_is_withdrawn_everywhere(example: Hie) -> None:
    """`plan`, apply started and failed, rollback started and succeeded, `complete`: the
    report, the calendar (text, JSON, iCalendar) and the digest say withdrawn / rolled back,
    never done or succeeded."""
    run = example
    assert run("plan", "--plan", str(EXAMPLES / "plan.json"), now="2026-12-02T10:00:00Z")[0] == 0
    for now, args in (
        ("2026-12-08T19:06:00Z", ("apply", "--status", "started")),
        ("2026-12-08T19:20:00Z", ("apply", "--status", "failed")),
        ("2026-12-08T19:25:00Z", ("rollback", "--status", "started")),
        ("2026-12-08T19:50:00Z", ("rollback", "--status", "succeeded")),
    ):
        code, out = run(*args, now=now)
        assert code == 0, run.err
    # `preview complete` shows the message `complete` then sends: the withdrawn one.
    code, preview = run("preview", "complete", now="2026-12-08T20:00:00Z")
    assert code == 0 and preview["lifecycle"]["state"] == "withdrawn"
    (shown,) = [m["subject"] for m in preview["messages"] if m["audience"] == "customer:EoE"]
    code, out = run("complete", now="2026-12-08T20:00:00Z")
    assert code == 0, run.err
    eml = email.message_from_bytes(
        (run.tmp / "o/FFAPP-4458/complete/customer-EoE.eml").read_bytes()
    )
    assert " ".join(str(eml["Subject"]).split()) == shown

    code, report = run(
        "report", "--from", "2026-12-01", "--to", "2026-12-31", now="2026-12-09T10:00:00Z"
    )
    assert code == 0
    (row,) = report["tables"]["changes"]
    assert (row["status"], row["outcome"]) == ("withdrawn", "rolled back")
    (week,) = report["tables"]["changes_by_week"]
    assert week["outcome"] == "rolled back"
    assert out["lifecycle"]["state"] == "withdrawn" and out["rolled_back"] is True
    assert run.status() == "withdrawn"

    calendar = ("calendar", "--from", "2026-12-01", "--to", "2026-12-31")
    code, cal = run(*calendar, now="2026-12-09T10:00:00Z")
    assert [c["status"] for c in cal["changes"]] == ["withdrawn"]
    code, text = run(*calendar, now="2026-12-09T10:00:00Z", fmt="text")
    line = next(x for x in text.splitlines() if "FFAPP-4458" in x)
    assert " withdrawn " in line and " done " not in line
    code, ics = run(*calendar, now="2026-12-09T10:00:00Z", fmt="ics")
    assert "Status: withdrawn" in ics and "Status: done" not in ics

    code, digest = run("digest", now="2026-12-14T08:00:00Z")
    assert code == 0, run.err
    (summary,) = [d for d in digest["digests"] if d["kind"] == "summary"]
    assert summary["changes"]["last_week"] == ["FFAPP-4458"]
    sent = (run.tmp / "o" / summary["ref"]).rglob("*")
    text = "\n".join(p.read_text() for p in sent if p.is_file())
    assert "withdrawn (rolled back)" in text and "completed" not in text


def test_reproduction_2_an_emergencys_follow_ups_carry_its_own_lifecycle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An emergency_fix with a justification and no window: announce, apply started and
    failed, rollback succeeded, complete. Each stage (and `preview` of it) hands its messages
    the emergency's own states and the rollback, which is what the templates word them from:
    identified, mitigating, failed, rolled back, withdrawn; never a planned change's."""
    change = tmp_path / "change.yaml"
    change.write_text(
        yaml.safe_dump(
            {
                "id": "INC-12",
                "type": "emergency_fix",
                "justification": "Customers cannot log in: the ingress certificate expired",
                "purpose": "Replace the expired ingress certificate",
                "downtime": "30m",
                "customers": ["EoE"],
                "rollback": "Restore the previous certificate",
                "risk": "low",
                "monitoring": "Grafana dashboard and alerts",
                "approvers": ["Ollie"],
                "on_call": "Leon",
            }
        )
    )
    run = Hie(tmp_path, capsys, change)
    code, out = run("announce", now="2026-12-01T09:50:00Z")
    assert code == 0, run.err
    assert out["lifecycle"]["state"] == "identified" and out["lifecycle"]["emergency"] is True
    assert run.status() == "identified"

    expected = {
        ("apply", "started"): ("mitigating", False),
        ("apply", "failed"): ("failed", False),
        ("rollback", "succeeded"): ("rolled back", True),
    }
    for minutes, ((command, status), (state, rolled_back)) in enumerate(expected.items()):
        now = f"2026-12-01T10:{10 * (minutes + 1)}:00Z"
        code, preview = run("preview", command, "--status", status, now=now)
        assert code == 0, run.err
        assert preview["lifecycle"]["state"] == state and preview["lifecycle"]["emergency"]
        code, out = run(command, "--status", status, now=now)
        assert code == 0, run.err
        assert out["lifecycle"] == preview["lifecycle"]
        assert out["lifecycle"]["rolled_back"] is rolled_back and out["lifecycle"]["started"]
        assert run.status() == state
    code, preview = run("preview", "complete", now="2026-12-01T11:00:00Z")
    assert preview["lifecycle"] == {
        "state": "withdrawn",
        "transition": "complete",
        "kind": "new",
        "emergency": True,
        "started": True,
        "rolled_back": True,
        "attempt": 1,
        "planless": True,
        "moved_from": None,
    }
    code, out = run("complete", now="2026-12-01T11:00:00Z")
    assert code == 0 and out["rolled_back"] is True and run.status() == "withdrawn"
    states = [e.extra["state"] for e in run.ledger() if e.stage == "lifecycle"]
    assert states == ["identified", "mitigating", "failed", "rolled back", "withdrawn"]


def test_reproduction_3_a_late_move_is_a_reschedule_from_the_old_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`plan` on 23 December for a maintenance on 7 January; on 4 January `plan` again with the
    window moved to the 9th: a reschedule, which its messages are told of with the window it
    moved from (the calendar's SEQUENCE rises), and the register says rescheduled."""
    change = tmp_path / "change.yaml"
    fields = {
        "id": "FFAPP-5000",
        "type": "scheduled_maintenance",
        "purpose": "Patch the database engine",
        "window": {
            "start": "2027-01-07T08:00:00",
            "end": "2027-01-07T10:00:00",
            "zone": "Europe/London",
        },
        "downtime": "1h",
        "customers": ["EoE"],
        "rollback": "Restore the snapshot",
        "risk": "low",
        "monitoring": "Grafana dashboard and alerts",
        "approvers": ["Ollie"],
        "on_call": "Leon",
    }
    change.write_text(yaml.safe_dump(fields))
    run = Hie(tmp_path, capsys, change)
    plan = str(EXAMPLES / "plan.json")
    code, out = run("plan", "--plan", plan, now="2026-12-23T10:00:00Z")
    assert code == 0 and out["lifecycle"]["kind"] == "new", run.err
    fields["window"] = {
        "start": "2027-01-09T08:00:00",
        "end": "2027-01-09T10:00:00",
        "zone": "Europe/London",
    }
    change.write_text(yaml.safe_dump(fields))
    code, preview = run("preview", "plan", "--plan", plan, now="2027-01-04T10:05:00Z")
    assert preview["lifecycle"]["kind"] == "reschedule"
    code, out = run("plan", "--plan", plan, now="2027-01-04T10:05:00Z")
    assert code == 0, run.err
    assert out["lifecycle"]["kind"] == "reschedule" and out["lifecycle"]["state"] == "rescheduled"
    assert out["lifecycle"]["moved_from"] == {
        "start": "2027-01-07T08:00:00+00:00",
        "end": "2027-01-07T10:00:00+00:00",
    }
    assert run.status() == "rescheduled"
    code, cal = run(
        "calendar", "--from", "2027-01-01", "--to", "2027-01-31", now="2027-01-04T11:00:00Z"
    )
    assert [(c["status"], c["sequence"]) for c in cal["changes"]] == [("rescheduled", 1)]
    # Run again: a repeat, which records nothing and sends nothing.
    before = files(tmp_path / "o")
    code, out = run("plan", "--plan", plan, now="2027-01-04T10:30:00Z")
    assert code == 0 and out["delivered"] == [] and out["lifecycle"]["kind"] == "repeat"
    assert files(tmp_path / "o") == before


# --- refused before anything is sent, recorded or written -------------------------------------


@pytest.fixture
def flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Flow:
    return Flow(tmp_path, capsys, NODES)


def _walk(flow: Flow, steps: list[tuple[str, ...]]) -> None:
    for i, args in enumerate(steps):
        now = f"2026-12-08T19:{10 + 5 * i:02d}:00+00:00"
        if args[0] == "plan":
            now = "2026-12-01T10:00:00+00:00"
        code, _ = flow(*args, now=now)
        assert code == 0, flow.err


PLAN = ("plan", "--plan")
DONE = [PLAN, ("apply", "--status", "started"), ("apply", "--status", "succeeded"), ("complete",)]
ROLLED_BACK = [
    PLAN,
    ("apply", "--status", "failed"),
    ("rollback", "--status", "succeeded"),
]


@pytest.mark.parametrize(
    ("before", "command", "state", "allowed"),
    [
        ([], ("complete", "--plan", "{plan}"), "not announced", "`plan (or announce)`"),
        (
            [],
            ("rollback", "--status", "started", "--plan", "{plan}"),
            "not announced",
            "`apply --status started`",
        ),
        ([], ("cancel", "--plan", "{plan}"), "not announced", "`plan (or announce)`"),
        ([PLAN], ("complete",), "announced", "`cancel`"),
        ([PLAN], ("rollback", "--status", "failed"), "announced", "`apply --status started`"),
        ([PLAN, ("apply", "--status", "started")], ("cancel",), "in progress", "`rollback"),
        (ROLLED_BACK, ("apply", "--status", "succeeded"), "rolled back", "`complete`"),
        (DONE, ("apply", "--status", "started"), "completed", "nothing may follow"),
        (DONE, ("rollback", "--status", "succeeded"), "completed", "nothing may follow"),
        (DONE, ("cancel",), "completed", "nothing may follow"),
        (DONE, ("update", "--message", "all good"), "completed", "it has ended"),
        (DONE, ("preview", "apply", "--status", "started"), "completed", "nothing may follow"),
        (DONE, ("preview", "cancel"), "completed", "nothing may follow"),
    ],
)
def test_a_refused_transition_is_exit_2_naming_the_state_and_writes_nothing(
    flow: Flow, before: list[tuple[str, ...]], command: tuple[str, ...], state: str, allowed: str
) -> None:
    _walk(flow, [(*s, str(flow.plan)) if s == PLAN else s for s in before])
    written = files(flow.tmp)
    args = [a.replace("{plan}", str(flow.plan)) for a in command]
    code, out = flow(*args, now="2026-12-08T21:30:00+00:00")
    assert code == 2, flow.err
    assert f"FFAPP-4458 is {state}" in flow.err and allowed in flow.err
    assert out["exit_code"] == 2 and f"is {state}" in out["error"]
    assert files(flow.tmp) == written  # the ledger, the register, the outbox: untouched


def test_another_plan_once_the_work_began_is_refused_and_the_same_plan_repeats(
    flow: Flow,
) -> None:
    _walk(flow, [(*PLAN, str(flow.plan)), ("apply", "--status", "started")])
    written = files(flow.tmp)
    # The plan job of a retried pipeline: the same plan, the same window: nothing new.
    code, out = flow("plan", "--plan", str(flow.plan), now="2026-12-08T19:30:00+00:00")
    assert code == 0 and out["delivered"] == [] and out["lifecycle"]["kind"] == "repeat"
    assert out["lifecycle"]["state"] == "in progress"
    assert [e["stage"] for e in _ledger(flow)].count("lifecycle") == 2
    # Another plan while the work is under way is refused before anything is written.
    other = flow.tmp / "other.json"
    other.write_text(flow.plan.read_text().replace("workers", "spares"))
    written = files(flow.tmp)
    code, _ = flow("plan", "--plan", str(other), now="2026-12-08T19:31:00+00:00")
    assert code == 2 and "FFAPP-4458 is in progress (since apply started)" in flow.err
    assert files(flow.tmp) == written


def _ledger(flow: Flow) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (flow.tmp / "ledger.jsonl").read_text().splitlines()]


# --- recorded first; a retried job repeats; a retried apply is a new attempt ------------------


def test_the_transition_is_recorded_before_the_first_delivery(flow: Flow) -> None:
    _walk(flow, [(*PLAN, str(flow.plan)), ("apply", "--status", "started")])
    stages = [e["stage"] for e in _ledger(flow)]
    first_apply = stages.index("apply_started")
    assert stages[first_apply - 1] == "lifecycle"
    mark = _ledger(flow)[first_apply - 1]
    assert mark["audience"] == mark["channel"] == "lifecycle" and mark["recipient"] == ""
    assert mark["extra"] == {
        "transition": "apply_started",
        "state": "in progress",
        "from": "announced",
        "attempt": "1",
        "seq": "2",
    }


def test_a_retried_job_sends_nothing_twice_and_a_retried_apply_is_a_new_attempt(
    flow: Flow,
) -> None:
    _walk(flow, [(*PLAN, str(flow.plan)), ("apply", "--status", "started")])
    first = flow.outbox("apply_started")
    # The job retried: a repeat, nothing sent, nothing recorded.
    code, out = flow("apply", "--status", "started", now="2026-12-08T19:20:00+00:00")
    assert code == 0 and out["delivered"] == [] and len(out["already_delivered"]) == len(first)
    assert out["lifecycle"]["kind"] == "repeat" and flow.outbox("apply_started") == first
    assert "only what was missing is sent" in flow.err
    # The apply failed, and is tried again: the second attempt is news to everyone.
    assert flow("apply", "--status", "failed", now="2026-12-08T19:30:00+00:00")[0] == 0
    code, out = flow("apply", "--status", "started", now="2026-12-08T19:40:00+00:00")
    assert code == 0 and len(out["delivered"]) == len(first) and out["already_delivered"] == []
    assert out["lifecycle"]["attempt"] == 2 and len(flow.outbox("apply_started")) == 2 * len(first)
    keys = [e["idempotency_key"] for e in _ledger(flow)]
    assert len(keys) == len(set(keys))
    # And that attempt's job retried: nothing twice.
    code, out = flow("apply", "--status", "started", now="2026-12-08T19:41:00+00:00")
    assert code == 0 and out["delivered"] == []
    assert len(flow.outbox("apply_started")) == 2 * len(first)


def test_a_cancelled_change_announced_again_is_told_again(flow: Flow) -> None:
    code, first = flow("plan", "--plan", str(flow.plan))
    assert flow("cancel", now="2026-12-02T10:00:00+00:00")[0] == 0
    code, again = flow("plan", "--plan", str(flow.plan), now="2026-12-02T11:00:00+00:00")
    assert code == 0 and again["lifecycle"]["state"] == "announced"
    assert {d["audience"] for d in again["delivered"]} == {
        d["audience"] for d in first["delivered"]
    }


def test_update_leaves_the_state_as_it_is(flow: Flow) -> None:
    _walk(flow, [(*PLAN, str(flow.plan)), ("apply", "--status", "started")])
    marks = [e for e in _ledger(flow) if e["stage"] == "lifecycle"]
    code, out = flow("update", "--message", "Half way", now="2026-12-08T19:40:00+00:00")
    assert code == 0 and out["delivered"]
    assert [e for e in _ledger(flow) if e["stage"] == "lifecycle"] == marks
    reg = open_register(f"sqlite:{flow.tmp}/register.sqlite3", {})
    assert reg is not None and reg.get("FFAPP-4458").status == "in progress"  # type: ignore[union-attr]


# --- a lifecycle entry is no notice -----------------------------------------------------------


def test_a_ledger_of_transitions_alone_tells_nobody(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Transitions recorded, deliveries none (say every channel failed): the gate finds
    everyone untold, the report counts no notice, the reminders owe nobody, a cancellation
    tells nobody, and the merge request note lists no notice."""
    (tmp_path / "made").mkdir()
    made = Flow(tmp_path / "made", capsys, NODES)
    assert made("plan", "--plan", str(made.plan))[0] == 0
    reg = open_register(f"sqlite:{made.tmp}/register.sqlite3", {})
    assert reg is not None
    record = reg.get("FFAPP-4458")
    assert record is not None
    marks = [e for e in record.entries if e.stage == "lifecycle"]
    assert len(marks) == 1

    (tmp_path / "bare").mkdir()
    flow = Flow(tmp_path / "bare", capsys, NODES)
    open_ledger(f"file:{flow.tmp}/ledger.jsonl", {}).record(
        [replace(m, prev="", digest="", mac="") for m in marks]
    )
    bare = open_register(f"sqlite:{flow.tmp}/register.sqlite3", {})
    assert bare is not None
    bare.put(replace(record, entries=()), marks, datetime(2026, 12, 1, 10, tzinfo=UTC))
    assert bare.get("FFAPP-4458").status == "announced"  # type: ignore[union-attr]

    code, gate = flow("gate", "--plan", str(flow.plan), now="2026-12-08T19:05:00+00:00")
    assert code == 1 and gate["allowed"] is False
    assert gate["required"] and all(r["given_at"] is None for r in gate["required"])
    assert fired(gate).count("notice.missing") == len(gate["required"])

    code, report = flow(
        "report", "--from", "2026-12-01", "--to", "2026-12-31", now="2026-12-02T10:00:00+00:00"
    )
    assert code == 0 and report["tables"]["notices"]
    assert {r["level"] for r in report["tables"]["notices"]} == {"not given"}

    code, remind = flow("remind", now="2026-12-08T18:30:00+00:00")
    assert code == 0 and remind["sent"] == []

    code, cancel = flow("cancel", now="2026-12-02T10:00:00+00:00")
    assert code == 0 and cancel["delivered"] == [] and cancel["failed"] == []
    note = (flow.tmp / "outbox/FFAPP-4458/merge-request-note.md").read_text()
    assert "lifecycle" not in note


# --- the receive service's notifications, on the GitLab ledger --------------------------------


def test_the_service_makes_transitions_on_the_gitlab_ledger_and_ignores_a_refused_one(
    h: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The GitLab ledger keeps the transitions as it keeps deliveries (notes of the notifier's
    own, sealed), and the state is replayed from them: an HCP event the state refuses (the
    change was cancelled) is answered and logged, never retried into notices."""
    import logging

    from hie_notify.gitlab_api import NoteTarget, gitlab_target
    from hie_notify.ledger.gitlab import GitLabLedger
    from tests.support.gitlab_fake import ENV as GITLAB_ENV
    from tests.support.runtask_harness import MR
    from tests.support.service_calls import notification, notify

    caplog.set_level(logging.INFO)
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=UTC))
    assert [m["extra"]["transition"] for m in h.ledger_entries("lifecycle")] == ["announce"]
    notes = h.gitlab.notes[("merge_requests", MR)]
    assert any("- announce: the change is now announced" in n["body"] for n in notes)
    service = h.start(ledger=f"gitlab:mr:{MR}")
    code, _ = notify(service, notification("notification_applying.json"))
    assert code == 200
    assert [m["extra"]["transition"] for m in h.ledger_entries("lifecycle")] == [
        "announce",
        "apply_started",
    ]
    ledger = GitLabLedger(NoteTarget(gitlab_target(GITLAB_ENV, "test"), "mr", MR, None))
    assert replay(ledger.read("FFAPP-4458")).state.value == "in progress"


def test_an_hcp_event_the_state_refuses_is_answered_and_logged_not_sent(
    h: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from tests.support.gitlab_fake import ENV as GITLAB_ENV
    from tests.support.runtask_harness import MR
    from tests.support.service_calls import notification, notify

    caplog.set_level(logging.INFO)
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=UTC))
    code = main(
        [
            "--policy",
            str(h.policy),
            "--change",
            str(h.tmp / "change.yaml"),
            "--ledger",
            f"gitlab:mr:{MR}",
            "--outbox",
            str(h.tmp / "outbox"),
            "--now",
            "2026-11-28T10:00:00+00:00",
            "cancel",
        ],
        env={**GITLAB_ENV, "CI_MERGE_REQUEST_IID": str(MR), "HIE_ENVIRONMENT": "eoe-prod"},
    )
    assert code == 0
    service = h.start(ledger=f"gitlab:mr:{MR}")
    code, _ = notify(service, notification("notification_applying.json"))
    assert code == 200  # answered: HCP's retries would be refused alike
    assert [m["extra"]["transition"] for m in h.ledger_entries("lifecycle")] == [
        "announce",
        "cancelled",
    ]
    assert not (h.tmp / "outbox/FFAPP-4458/apply_started").exists()
    assert "ignored: `apply --status started`: FFAPP-4458 is cancelled" in caplog.text


# --- one source of status, registers written before it included --------------------------------


def _legacy_entries(change_id: str = "FFAPP-4458") -> list[Entry]:
    """A change's deliveries as a register before issue 24 kept them: no transition entries,
    each stage's notices only (announced, applied and failed, rolled back, completed)."""
    at = datetime(2026, 12, 8, 19, 0, tzinfo=UTC)
    out = []
    for minutes, stage in (
        (-9000, "announce"),
        (5, "apply_started"),
        (20, "apply_failed"),
        (50, "rollback_succeeded"),
        (60, "complete"),
    ):
        out.append(
            Entry(
                change_id=change_id,
                stage=stage,
                audience="slack:#devops",
                channel="outbox",
                recipient="#devops",
                fingerprint="sha256:abc",
                change_type="planned_infra_update",
                service_impacting=True,
                resources=(),
                delivered_at=at + timedelta(minutes=minutes),
                message_id=f"m-{stage}",
                idempotency_key=f"k-{stage}",
                window_start="2026-12-08T19:00:00+00:00",
                window_end="2026-12-08T21:00:00+00:00",
            )
        )
    return out


def _legacy_record(change_id: str = "FFAPP-4458") -> dict[str, Any]:
    """A record as version 1 stored it: its status the last stage's word, "done"."""
    return {
        "v": 1,
        "change_id": change_id,
        "status": "done",
        "change_type": "planned_infra_update",
        "purpose": "Resize the nodes",
        "window_start": "2026-12-08T19:00:00+00:00",
        "window_end": "2026-12-08T21:00:00+00:00",
        "customers": ["EoE"],
        "environments": [],
        "audiences": ["slack:#devops"],
        "categories": ["planned_infra_update"],
        "service_impacting": True,
        "summary": {"add": 0, "change": 1},
        "fingerprint": "sha256:abc",
        "change": {"id": change_id, "purpose": "Resize the nodes"},
        "sequence": 0,
        "updated_at": "2026-12-08T20:00:00+00:00",
    }


def test_an_sqlite_register_written_before_reads_its_status_from_its_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "register.sqlite3"
    reg = open_register(f"sqlite:{path}", {})
    assert reg is not None
    reg.put(replace(_empty(), change_id="FFAPP-1"), [], datetime(2026, 12, 1, tzinfo=UTC))  # schema
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO changes VALUES (?, ?, ?, ?, ?)",
            (
                "FFAPP-4458",
                "done",
                "2026-12-08T19:00:00+00:00",
                "2026-12-08T21:00:00+00:00",
                json.dumps(_legacy_record()),
            ),
        )
        db.executemany(
            "INSERT INTO entries VALUES (?, ?, ?, ?)",
            [
                (
                    "FFAPP-4458",
                    e.idempotency_key,
                    e.delivered_at.isoformat(),
                    json.dumps(e.to_json()),
                )
                for e in _legacy_entries()
            ],
        )
    reg = open_register(f"sqlite:{path}", {})
    assert reg is not None
    got = reg.get("FFAPP-4458")
    assert got is not None and got.legacy and got.status == "withdrawn"
    start, end = datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 10, tzinfo=UTC)
    (brief,) = [r for r in reg.between(start, end) if r.change_id == "FFAPP-4458"]
    assert brief.status == "withdrawn"
    assert "FFAPP-4458" not in {r.change_id for r in reg.open_changes()}
    flow = Flow(tmp_path, capsys, NODES)
    window = ("--from", "2026-12-07", "--to", "2026-12-09")
    code, cal = flow("--register", f"sqlite:{path}", "calendar", *window)
    assert code == 0
    assert [c["status"] for c in cal["changes"] if c["id"] == "FFAPP-4458"] == ["withdrawn"]
    code, report = flow("--register", f"sqlite:{path}", "report", *window)
    assert code == 0
    (row,) = [r for r in report["tables"]["changes"] if r["change_id"] == "FFAPP-4458"]
    assert (row["status"], row["outcome"]) == ("withdrawn", "rolled back")


def _empty() -> Any:
    from hie_notify.register.model import Registered

    return Registered("FFAPP-1", "announced", None, "x", None, None)


def test_a_gitlab_register_issue_written_before_reads_its_status_from_its_notes() -> None:
    import responses

    from hie_notify.ledger.gitlab import pack
    from hie_notify.register.gitlab import LABEL, MARKER, GitLabRegister, note_body
    from tests.support.register_fake import BOT, ENV, RegisterFake

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = RegisterFake(rsps).install()
        body = pack(MARKER, {"record": _legacy_record(), "keys": ["k-announce"]})
        iid = fake.add_issue(
            "[FFAPP-4458] Resize the nodes",
            body,
            BOT,
            labels=[LABEL, "change-status::done"],
            due_date="2026-12-08",
        )
        fake.add_note(iid, note_body(_legacy_entries()), BOT)
        reg = GitLabRegister.from_env(ENV, None)
        got = reg.get("FFAPP-4458")
        assert got is not None and got.status == "withdrawn"
        start, end = datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 10, tzinfo=UTC)
        assert [r.status for r in GitLabRegister.from_env(ENV, None).between(start, end)] == [
            "withdrawn"
        ]
        # Written again (a later stage), the issue carries the lifecycle's word and version 2.
        reg.put(got, [], datetime(2026, 12, 9, tzinfo=UTC))
        assert "change-status::withdrawn" in fake.issues[iid]["labels"]
        again = GitLabRegister.from_env(ENV, None).get("FFAPP-4458")
        assert again is not None and not again.legacy and again.status == "withdrawn"


# --- post-mortems fall due from when the work ended (issue 24.3) ------------------------------


def test_a_postmortem_falls_due_from_the_rollback_and_is_reminded_at_the_first_run_after(
    flow: Flow,
) -> None:
    """Failed at 19:20, rolled back at 19:50, completed at 20:00, the window ending at 21:00:
    the post-mortem is due five business days after 19:50 (not the completion, not the
    window's end), and the first `remind` after that says it is overdue."""
    _walk(
        flow,
        [
            (*PLAN, str(flow.plan)),
            ("apply", "--status", "started"),  # 19:15
            ("apply", "--status", "failed"),  # 19:20
        ],
    )
    assert flow("rollback", "--status", "succeeded", now="2026-12-08T19:50:00+00:00")[0] == 0
    assert flow("complete", now="2026-12-08T20:00:00+00:00")[0] == 0
    code, pm = flow("postmortem", now="2026-12-09T10:00:00+00:00")
    assert code == 0 and pm["due"] == "2026-12-15T19:50:00+00:00"
    code, out = flow("remind", now="2026-12-15T19:45:00+00:00")
    assert [r for r in out["sent"] if r["stage"] == "postmortem_overdue"] == []
    code, out = flow("remind", now="2026-12-15T19:55:00+00:00")
    overdue = {r["audience"] for r in out["sent"] if r["stage"] == "postmortem_overdue"}
    assert overdue == {"slack:#devops", "slack:#infrastructure", "slack:#product"}, flow.err
    code, report = flow(
        "report", "--from", "2026-12-01", "--to", "2026-12-31", now="2026-12-15T20:00:00+00:00"
    )
    (row,) = report["tables"]["postmortems"]
    assert row["ended_at"] == "2026-12-08T19:50:00+00:00" and row["overdue"] is True
