"""`hie-notify update --message TEXT`: progress or delay updates to the "during" audiences, each
distinct message once, recorded in the ledger and the register."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from hie_notify.register.store import open_register
from tests.support.builders import rc
from tests.support.cli_flow import Flow

NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])
DURING = {"slack:#devops", "slack:#infrastructure", "slack:#product", "customer:EoE"}


def test_each_distinct_update_goes_out_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, NODES)
    assert flow("plan", "--plan", str(flow.plan))[0] == 0
    assert flow("apply", "--status", "started", now="2026-12-08T19:05:00+00:00")[0] == 0
    late = "The node group is taking longer to drain: we expect to finish by 21:30 GMT."
    code, out = flow("update", "--message", late, now="2026-12-08T20:30:00+00:00")
    assert code == 0 and {d["audience"] for d in out["delivered"]} == DURING
    code, out = flow("update", "--message", f"  {late} ", now="2026-12-08T20:35:00+00:00")
    assert code == 0 and out["delivered"] == [] and len(out["already_delivered"]) == 4
    code, out = flow("update", "--message", "Done draining.", now="2026-12-08T21:10:00+00:00")
    assert code == 0 and len(out["delivered"]) == 4

    assert len(flow.outbox("update")) == 8
    mail = email.message_from_bytes(
        (tmp_path / "outbox" / "FFAPP-4458" / "update" / "customer-EoE.eml").read_bytes(),
        policy=email.policy.default,
    )
    assert mail["Subject"] == (
        "Update on the planned change to the HIE Secure Data Environment (ref FFAPP-4458)"
    )
    assert late in mail.get_body(("plain",)).get_content().replace("\n", " ")

    register = open_register(f"sqlite:{tmp_path}/register.sqlite3", {})
    assert register is not None
    rec = register.get("FFAPP-4458")
    assert rec is not None and rec.status == "in progress"  # an update changes no status
    assert [e.stage for e in rec.entries].count("update") == 8


def test_an_update_needs_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = Flow(tmp_path, capsys, NODES)
    flow("plan", "--plan", str(flow.plan))
    code, _ = flow("update", "--message", "   ")
    assert code == 2 and "--message: expected the update's text" in flow.err


def test_an_update_before_any_announcement_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, NODES)
    code, _ = flow("update", "--message", "hello")
    assert code == 2 and "no announcement of FFAPP-4458" in flow.err
