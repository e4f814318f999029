"""Phase 1 before Phase 2 (issue 25): `plan` and `announce` run every gate check decidable
before the window (the same `decide`, less the window and notice-clock rules) and, while any
fails, tell nobody outside: the internal channels hear "planning incomplete" once per distinct
set of missing items, the merge request note lists them, and the job exits 2 naming each and
where to fix it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hie_notify.policy.protected import weakenings
from tests.support.builders import rc
from tests.support.cli_flow import Flow

DB = rc("aws_db_instance.main", ["delete", "create"])  # replaced: service-impacting
PLANNED = "2026-12-01T10:00:00+00:00"

# What each missing item is, as the change record's fields, and what the refusal names.
MISSING: dict[str, tuple[dict[str, Any], str]] = {
    "risk": ({"risk": None}, "change.yaml: the change record has no risk"),
    "monitoring": ({"monitoring": None}, "change.yaml: the change record has no monitoring"),
    "approvers": ({"approvers": []}, "change.yaml: the change record has no approvers"),
    "rollback": ({"rollback": None}, "change.yaml: the change record has no rollback"),
    "downtime": ({"downtime": None}, "change.yaml: the change record has no downtime"),
    "window": ({"window": None}, "change.yaml: the change record has no window"),
    "on_call": (
        {"on_call": None},  # the window (19:00-21:00 UTC) is outside working hours
        "window.no_on_call: the window (",
    ),
    "customers": ({"customers": []}, "audiences.problem: planned_infra_update must tell the"),
    "uptime": (
        {
            "downtime": "8h",
            "window": {"start": "2026-12-08T18:00:00+00:00", "end": "2026-12-09T04:00:00+00:00"},
        },
        "uptime.budget: ",
    ),
}


def _ledger(tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "ledger.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _told_outside(tmp: Path) -> list[dict[str, Any]]:
    return [
        e
        for e in _ledger(tmp)
        if e["audience"].split(":", 1)[0] not in ("slack", "lifecycle") or e["stage"] == "announce"
    ]


@pytest.mark.parametrize("item", sorted(MISSING))
def test_each_missing_item_holds_back_the_announcement_naming_it(
    item: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fields, named = MISSING[item]
    flow = Flow(tmp_path, capsys, DB, type="planned_infra_update", **fields)
    code, _ = flow("plan", "--plan", str(flow.plan), now=PLANNED)
    assert code == 2, flow.err
    assert named in flow.err
    assert "planning incomplete: nothing was sent to customers or stakeholders" in flow.err
    # Nothing announced, to anyone; the customers' outbox and ledger are empty.
    assert flow.outbox("announce") == []
    assert _told_outside(tmp_path) == []
    # The internal channels heard "planning incomplete"; no customer or stakeholder did.
    posted = {e["audience"] for e in _ledger(tmp_path) if e["stage"] == "planning_incomplete"}
    assert posted and all(a.startswith("slack:") for a in posted)
    note = (tmp_path / "outbox" / "FFAPP-4458" / "merge-request-note.md").read_text()
    assert "Planning incomplete" in note
    assert named.split(": ", 1)[1].split(" (")[0].replace("_", "\\_") in note


def test_the_internal_post_is_sent_once_per_set_of_missing_items(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, DB, risk=None)

    def posts() -> int:
        return sum(1 for e in _ledger(tmp_path) if e["stage"] == "planning_incomplete")

    assert flow("plan", "--plan", str(flow.plan), now=PLANNED)[0] == 2
    once = posts()
    assert once > 0
    assert flow("plan", "--plan", str(flow.plan), now="2026-12-01T11:00:00+00:00")[0] == 2
    assert posts() == once and "not sent again" in flow.err
    flow.write_change(monitoring=None)  # another set of missing items: said again
    assert flow("plan", "--plan", str(flow.plan), now="2026-12-01T12:00:00+00:00")[0] == 2
    assert posts() == 2 * once
    flow.write_change(risk="medium", monitoring="Grafana")  # complete: announced
    code, out = flow("plan", "--plan", str(flow.plan), now="2026-12-01T13:00:00+00:00")
    assert code == 0, flow.err
    assert "customer:EoE" in {d["audience"] for d in out["delivered"]}


def test_an_emergency_is_never_held_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(
        tmp_path,
        capsys,
        DB,
        type="emergency_fix",
        justification="Customers cannot log in",
        risk=None,
        monitoring=None,
        approvers=[],
        downtime=None,
    )
    code, out = flow("plan", "--plan", str(flow.plan), now=PLANNED)
    assert code == 0, flow.err
    assert "customer:EoE" in {d["audience"] for d in out["delivered"]}


def test_announce_without_a_plan_is_held_back_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, type="planned_infra_update", approvers=[])
    code, _ = flow("announce", now=PLANNED)
    assert code == 2
    assert "change.yaml: the change record has no approvers" in flow.err
    assert _told_outside(tmp_path) == []
    flow.write_change(approvers=["Ollie"])
    code, out = flow("announce", now=PLANNED)
    assert code == 0, flow.err
    assert "customer:EoE" in {d["audience"] for d in out["delivered"]}


def test_a_policy_may_require_less_of_a_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`requires` is the policy's: one that does not list `risk` lets a record without it be
    announced (outside CI the local policy is the policy)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "change_types:\n  planned_infra_update:\n    requires: [rollback, downtime]\n"
    )
    flow = Flow(tmp_path, capsys, DB, policy=policy, risk=None, monitoring=None, approvers=[])
    code, _ = flow("plan", "--plan", str(flow.plan), now=PLANNED)
    assert code == 0, flow.err


PROTECTED: dict[str, Any] = {"change_types": {"planned_infra_update": {"rank": 40}}}


def test_a_branch_cannot_drop_a_required_item() -> None:
    overridable = ["change_types.*.requires"]
    branch = {"change_types": {"planned_infra_update": {"requires": ["rollback", "downtime"]}}}
    found = list(weakenings(branch, PROTECTED, overridable))
    assert found == [
        "change_types.planned_infra_update.requires: would stop requiring 'risk', "
        "'monitoring', 'approvers', 'on_call_out_of_hours' before anyone outside is told; "
        "a branch may only require more (Phase 1)"
    ]
    emptied = {"change_types": {"planned_infra_update": {"requires": []}}}
    assert len(list(weakenings(emptied, PROTECTED, overridable))) == 1
    # What the protected policy requires stays required; requiring the same or more is fine.
    narrow = {"change_types": {"planned_infra_update": {"rank": 40, "requires": ["risk"]}}}
    assert list(
        weakenings(
            {"change_types": {"planned_infra_update": {"requires": []}}}, narrow, overridable
        )
    )
    full = ["risk", "monitoring", "approvers", "rollback", "downtime", "on_call_out_of_hours"]
    same = {"change_types": {"planned_infra_update": {"requires": full}}}
    assert list(weakenings(same, PROTECTED, overridable)) == []


FIELDS = ["risk", "monitoring", "approvers", "rollback", "downtime", "on_call", "customers"]


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(missing=st.sets(st.sampled_from(FIELDS)))
def test_plans_refusal_names_exactly_the_gates_planning_findings(
    missing: set[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        fields: dict[str, Any] = {}
        for name in missing:
            fields.update(MISSING[name][0])
        flow = Flow(Path(tmp), capsys, DB, **fields)
        _, gate = flow("gate", "--plan", str(flow.plan), now=PLANNED)
        expected = [f["text"] for f in gate["findings"] if f["level"] == "block" and f["at_plan"]]
        code, _ = flow("plan", "--plan", str(flow.plan), now=PLANNED)
        if not missing:
            assert code == 0 and expected == [], flow.err
            return
        assert code == 2
        said = flow.err.split("run it again (", 1)[1]
        count, rest = said.split("):\n", 1)
        lines = rest.splitlines()[: int(count)]
        assert int(count) == len(expected)
        for line, text in zip(lines, expected, strict=True):
            assert line.endswith(text), (line, text)
