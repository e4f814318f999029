"""Conflicts from the change register: overlapping windows that touch the same customer or
environment, and windows inside a deploy freeze. `plan` warns naming both; the gate warns, or
blocks under the policy's `conflicts: block`."""

from __future__ import annotations

from pathlib import Path

import pytest
import responses

from tests.support.builders import fired, rc
from tests.support.cli_flow import Flow
from tests.support.register_fake import ENV, RegisterFake

NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])
AT_WINDOW = "2026-12-08T20:30:00+00:00"  # both windows are open


def _policy(tmp: Path, mode: str) -> Path:
    path = tmp / "policy.yaml"
    path.write_text(f"version: 1\nconflicts: {mode}\n")
    return path


def _two_changes(flow: Flow, second_customers: list[str], code: int = 0) -> dict[str, object]:
    """FFAPP-4458 (EoE, 19:00-21:00), then FFAPP-4459 (20:00-22:00): the second's plan JSON
    (`code`: its exit; under `conflicts: block` a conflict holds its announcement back)."""
    flow("plan", "--plan", str(flow.plan))
    flow.write_change(id="FFAPP-4459", customers=second_customers)
    flow.window("2026-12-08T20:00:00+00:00", "2026-12-08T22:00:00+00:00")
    exit_code, out = flow("plan", "--plan", str(flow.plan))
    assert exit_code == code, flow.err
    return out


def test_plan_warns_naming_both_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = Flow(tmp_path, capsys, NODES)
    out = _two_changes(flow, ["EoE"])
    assert (
        "WARNING: conflict: FFAPP-4459 and FFAPP-4458: windows overlap, both touch customer EoE"
        in out["notes"]
    )
    assert "FFAPP-4458" in flow.err


def test_no_conflict_without_something_shared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, NODES)
    out = _two_changes(flow, ["CUH"])
    assert not [n for n in out["notes"] if "conflict" in n]


def test_a_cancelled_change_conflicts_with_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, NODES)
    flow("plan", "--plan", str(flow.plan))
    flow("cancel")
    flow.write_change(id="FFAPP-4459")
    code, out = flow("plan", "--plan", str(flow.plan))
    assert code == 0 and not [n for n in out["notes"] if "conflict" in n]


@pytest.mark.parametrize("mode", ["warn", "block"])
def test_the_gate_warns_or_blocks_as_the_policy_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    flow = Flow(tmp_path, capsys, NODES, policy=_policy(tmp_path, mode))
    _two_changes(flow, ["EoE"], code=0 if mode == "warn" else 2)
    line = "conflict: FFAPP-4459 and FFAPP-4458: windows overlap, both touch customer EoE"
    if mode == "block":
        # Known at planning time: Phase 1 holds the second change's announcement back, naming it.
        assert line in flow.err
    code, out = flow(
        "gate", "--plan", str(flow.plan), "--dotenv", str(tmp_path / "g.env"), now=AT_WINDOW
    )
    if mode == "warn":
        assert code == 0 and out["allowed"] is True
        assert line in out["warnings"] and line not in out["reasons"]
        assert fired(out, "warn") == ["register.conflict"]
    else:
        assert code == 1 and out["allowed"] is False and line in out["reasons"]
        assert "register.conflict" in fired(out)
        assert "HIE_GATE_ALLOWED=false" in (tmp_path / "g.env").read_text()


def test_the_gate_without_conflicts_is_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, NODES, policy=_policy(tmp_path, "block"))
    _two_changes(flow, ["CUH"])
    code, out = flow(
        "gate", "--plan", str(flow.plan), "--dotenv", str(tmp_path / "g.env"), now=AT_WINDOW
    )
    assert code == 0 and "register.conflict" not in fired(out, "warn")


def test_a_register_that_cannot_be_read_blocks_under_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, NODES, policy=_policy(tmp_path, "block"))
    flow("plan", "--plan", str(flow.plan))
    (tmp_path / "register.sqlite3").write_bytes(b"garbage" * 500)
    code, out = flow(
        "gate", "--plan", str(flow.plan), "--dotenv", str(tmp_path / "g.env"), now=AT_WINDOW
    )
    assert code == 1 and "register.unreadable" in fired(out)


def test_a_window_inside_a_deploy_freeze(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = RegisterFake(rsps).install()
        fake.add_freeze("0 18 * * 2", "0 23 * * 2", "Europe/London")  # Tuesdays 18:00-23:00
        flow = Flow(tmp_path, capsys, NODES, env=dict(ENV))
        code, out = flow("plan", "--plan", str(flow.plan))
    assert code == 0
    assert (
        "WARNING: conflict: FFAPP-4458 and GitLab deploy freeze 1 (0 18 * * 2 to 0 23 * * 2 "
        "Europe/London): the window is inside a deploy freeze"
    ) in out["notes"]


def test_the_policy_key_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = Flow(tmp_path, capsys, NODES, policy=_policy(tmp_path, "sometimes"))
    code, _ = flow("validate")
    assert code == 2 and "conflicts" in flow.err and "'block' or 'warn'" in flow.err
