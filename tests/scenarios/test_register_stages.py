"""Stage commands keep the register up to date as they run; a ledger kept before the register
existed moves in when the change is announced again."""

from __future__ import annotations

from pathlib import Path

import pytest
import responses

from hie_notify.register.store import open_register
from tests.support.builders import rc
from tests.support.cli_flow import Flow
from tests.support.register_fake import ENV, RegisterFake

NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])


def registered(tmp: Path, change_id: str = "FFAPP-4458"):  # type: ignore[no-untyped-def]
    reg = open_register(f"sqlite:{tmp}/register.sqlite3", {})
    assert reg is not None
    return reg.get(change_id)


def test_stages_move_the_change_through_its_statuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, NODES)
    code, out = flow("plan", "--plan", str(flow.plan))
    assert code == 0
    assert not any("register" in n for n in out["notes"])  # quiet when all is well
    rec = registered(tmp_path)
    assert rec.status == "announced" and rec.change_type == "planned_infra_update"
    assert rec.customers == ("EoE",) and rec.service_impacting
    assert "customer:EoE" in rec.audiences and "slack:#devops" in rec.audiences
    announced = {e.idempotency_key for e in rec.entries if e.stage == "announce"}
    assert len(announced) == len(out["delivered"]) > 0
    # And the transition itself, delivered to nobody: the status is replayed from it.
    assert [e.extra["transition"] for e in rec.entries if e.stage == "lifecycle"] == ["announce"]

    assert flow("apply", "--status", "started", now="2026-12-08T19:05:00+00:00")[0] == 0
    assert registered(tmp_path).status == "in progress"
    assert flow("plan", "--plan", str(flow.plan), now="2026-12-08T19:06:00+00:00")[0] == 0
    assert registered(tmp_path).status == "in progress"  # a re-run of plan changes nothing
    assert flow("apply", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")[0] == 0
    assert flow("complete", now="2026-12-08T20:00:00+00:00")[0] == 0
    rec = registered(tmp_path)
    assert rec.status == "completed" and rec.sequence == 0
    stages = [e.stage for e in rec.entries]
    assert stages.count("announce") == len(announced)
    assert "apply_started" in stages and "complete" in stages


def test_a_moved_window_and_a_cancellation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, NODES)
    flow("plan", "--plan", str(flow.plan))
    flow.window("2026-12-10T19:00:00+00:00", "2026-12-10T21:00:00+00:00")
    flow("plan", "--plan", str(flow.plan))
    rec = registered(tmp_path)
    assert rec.sequence == 1 and rec.window_start.isoformat() == "2026-12-10T19:00:00+00:00"
    flow("cancel")
    rec = registered(tmp_path)
    assert rec.status == "cancelled" and rec.sequence == 2


def test_dry_run_registers_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = Flow(tmp_path, capsys, NODES)
    assert flow("--dry-run", "plan", "--plan", str(flow.plan))[0] == 0
    assert registered(tmp_path) is None


def test_a_ledger_from_before_the_register_moves_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, NODES)
    flow("--register", "none", "plan", "--plan", str(flow.plan))
    assert not (tmp_path / "register.sqlite3").exists()
    flow("--register", "none", "apply", "--status", "started", now="2026-12-08T19:05:00+00:00")
    # Announcing again sends nothing, and registers everything the ledger holds.
    code, out = flow("plan", "--plan", str(flow.plan), now="2026-12-08T19:06:00+00:00")
    assert code == 0 and out["delivered"] == []
    rec = registered(tmp_path)
    assert {e.stage for e in rec.entries} == {"announce", "apply_started", "lifecycle"}
    assert rec.status == "in progress"  # the re-run of plan took nothing back


def test_a_register_that_cannot_be_written_warns_and_the_notices_stand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.sqlite3").write_bytes(b"not a database" * 200)
    flow = Flow(tmp_path, capsys, NODES)
    code, out = flow(
        "--register", f"sqlite:{tmp_path}/bad.sqlite3", "plan", "--plan", str(flow.plan)
    )
    assert code == 0 and out["delivered"]
    assert any(
        n.startswith("warning: the change register was not updated:") and "bad.sqlite3" in n
        for n in out["notes"]
    )


def test_stages_on_the_gitlab_register(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = RegisterFake(rsps).install()
        flow = Flow(tmp_path, capsys, NODES, env=dict(ENV))
        assert flow("--register", "gitlab", "plan", "--plan", str(flow.plan))[0] == 0
        for at, stage in (("19:05", "started"), ("19:40", "succeeded")):
            now = f"2026-12-08T{at}:00+00:00"
            assert flow("--register", "gitlab", "apply", "--status", stage, now=now)[0] == 0
        assert flow("--register", "gitlab", "complete", now="2026-12-08T22:00:00+00:00")[0] == 0
        (issue,) = fake.issues.values()
        assert issue["state"] == "closed" and issue["due_date"] == "2026-12-08"
        assert "change-status::completed" in issue["labels"]
        # The announcements and their transition, then each stage's notices and transition.
        assert len(fake.notes[1]) == 4
        assert "- complete: the change is now completed" in fake.notes[1][-1]["body"]
