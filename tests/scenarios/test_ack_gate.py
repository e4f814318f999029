"""Acknowledgements in the gate, classify, the merge request note and `hie-notify ack`: the
policy requires them per change type; the gate blocks (naming the contact and the deadline)
until they are given and while an objection is open; only someone other than the change's
author resolves an objection; a branch may add requirements, never drop one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hie_notify.policy.protected import weakenings
from tests.support.ack_harness import AckHarness

IN_WINDOW = "2026-12-08T19:30:00+00:00"
POLICY: dict[str, Any] = {
    "support": {"name": "the HIE SDE DevOps team", "email": "devops@hie.example"},
    "customers": {
        "EoE": {
            "name": "East of England",
            "contacts": [{"email": "ops@eoe.example", "critical": True}],
        }
    },
    "change_types": {
        "planned_infra_update": {"acknowledgements": {"required_from": ["critical"], "by": "2bd"}}
    },
}


@pytest.fixture
def h(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[AckHarness]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    harness = AckHarness(tmp_path, capsys, policy=policy, owner="alice")
    harness.announce()
    harness.start()
    try:
        yield harness
    finally:
        harness.stop()


def gate(h: AckHarness) -> tuple[int, dict[str, Any]]:
    return h.flow("gate", "--plan", str(h.flow.plan), now=IN_WINDOW)


def test_a_required_acknowledgement_missing_blocks_naming_the_contact_and_deadline(
    h: AckHarness,
) -> None:
    code, out = gate(h)
    assert code == 1
    (reason,) = [r for r in out["reasons"] if "acknowledged" in r]
    assert "East of England has not acknowledged the notice of Tue 1 Dec 2026 10:00 GMT" in reason
    assert "contact ops@eoe.example" in reason
    assert "it was due by Thu 3 Dec 2026 10:00 GMT" in reason
    (row,) = out["acknowledgements"]
    assert row["audience"] == "customer:EoE" and row["required"] is True
    assert row["due_by"] == "2026-12-03T10:00:00+00:00" and row["acknowledged"] == []

    code, _ = h.answer(h.link("customer-EoE.eml"), "acknowledged")
    assert code == 200
    code, out = gate(h)
    assert code == 0, out["reasons"]
    (row,) = out["acknowledgements"]
    (a,) = row["acknowledged"]
    assert (a["contact"], a["at"]) == ("ops@eoe.example", "2026-12-02T09:30:00+00:00")
    code, out = h.flow("classify", "--plan", str(h.flow.plan), now=IN_WINDOW)
    assert code == 0 and out["acknowledgements"][0]["acknowledged"][0]["contact"] == (
        "ops@eoe.example"
    )
    note = (h.tmp / "outbox/FFAPP-4458/merge-request-note.md").read_text()
    # (`@` escaped: a note never mentions anyone on GitLab)
    assert "- customer:EoE: acknowledged by ops&#64;eoe.example Wed 2 Dec 2026 09:30 GMT\n" in note


def test_an_objection_blocks_until_someone_other_than_the_author_resolves_it(
    h: AckHarness,
) -> None:
    code, _ = h.answer(h.link("customer-EoE.eml"), "objected", "Month-end reporting that night")
    assert code == 200
    code, out = gate(h)
    assert code == 1
    assert any(
        "ops@eoe.example objected Wed 2 Dec 2026 09:30 GMT" in r
        and "'Month-end reporting that night'" in r
        and "hie-notify ack --resolve --reason TEXT" in r
        for r in out["reasons"]
    )
    assert out["acknowledgements"][0]["open_objections"][0]["reason"] == (
        "Month-end reporting that night"
    )
    # The change's author (its owner, outside GitLab) may not resolve it.
    code, _ = h.flow("ack", "--resolve", "--reason", "spoke to them", "--by", "alice")
    assert code == 2 and "alice is the change's author" in h.flow.err
    code, out = h.flow("ack", "--resolve", "--by", "bob")
    assert code == 2 and "--reason" in h.flow.err
    code, out = h.flow(
        "ack",
        "--resolve",
        "--reason",
        "EoE agreed to the 8 Dec window by phone",
        "--by",
        "bob",
        now="2026-12-04T11:00:00+00:00",
    )
    assert code == 0, h.flow.err
    assert out["recorded"] == ["customer:EoE"]
    (row,) = out["acknowledgements"]
    assert row["open_objections"] == []
    assert [r["decision"] for r in row["resolved"]] == ["objected", "resolved"]
    assert row["resolved"][1]["by"] == "bob"
    ledger = [json.loads(x) for x in h.ledger_lines()]
    resolution = [e for e in ledger if e["extra"].get("decision") == "resolved"]
    assert len(resolution) == 1 and resolution[0]["prev"] == ledger[-2]["digest"]
    # Resolved, but still not acknowledged: the policy requires that too.
    code, out = gate(h)
    assert code == 1 and not any("objected" in r for r in out["reasons"])
    assert any("has not acknowledged" in r for r in out["reasons"])
    code, _ = h.answer(h.link("customer-EoE.eml"), "acknowledged")
    code, out = gate(h)
    assert code == 0, out["reasons"]
    code, _ = h.flow("ack", "--resolve", "--reason", "again", "--by", "bob")
    assert code == 2 and "no open objection" in h.flow.err


PROTECTED: dict[str, Any] = {
    "change_types": {
        "planned_infra_update": {
            "acknowledgements": {"required_from": ["critical", "customer:EoE"], "by": "2bd"}
        }
    }
}


def acks_branch(**values: Any) -> dict[str, Any]:
    return {"change_types": {"planned_infra_update": {"acknowledgements": values}}}


def test_a_branch_may_add_acknowledgements_it_requires_never_drop_or_delay_one() -> None:
    def found(branch: dict[str, Any]) -> list[str]:
        return list(weakenings(branch, PROTECTED, []))

    assert found(acks_branch(required_from=["critical", "customer:EoE", "customers"])) == []
    assert found(acks_branch(by="1bd")) == []
    new_type = {
        "change_types": {
            "iam_permission_change": {
                "acknowledgements": {"required_from": ["stakeholders"], "by": "5bd"}
            }
        }
    }
    assert found(new_type) == []
    assert found(acks_branch(required_from=["critical"])) == [
        "change_types.planned_infra_update.acknowledgements.required_from: would no longer "
        "require 'customer:EoE' to acknowledge; a branch may only add acknowledgements it "
        "requires"
    ]
    assert found(acks_branch(required_from=[])) == [
        "change_types.planned_infra_update.acknowledgements.required_from: would remove it; a "
        "branch may only add acknowledgements it requires"
    ]
    assert found(acks_branch(by="5bd")) == [
        "change_types.planned_infra_update.acknowledgements.by: would give them until 5bd "
        "instead of 2bd to acknowledge; a branch may only ask for it sooner"
    ]
    assert len(found({"change_types": {"planned_infra_update": {"acknowledgements": {}}}})) == 1
    ladder = [{"after": "1bd", "to": "contact"}, {"after": "2bd", "to": "pagerduty"}]
    protected = {
        "change_types": {
            "planned_infra_update": {
                "acknowledgements": {"required_from": ["critical"], "escalation": ladder}
            }
        }
    }
    more = acks_branch(escalation=[*ladder, {"after": "3bd", "to": "account_owner"}])
    assert list(weakenings(more, protected, [])) == []
    (dropped,) = weakenings(acks_branch(escalation=ladder[:1]), protected, [])
    assert dropped == (
        "change_types.planned_infra_update.acknowledgements.escalation: would drop pagerduty "
        "after 2bd from the escalation; a branch may only add rungs"
    )
    assert len(found(acks_branch(by="48h"))) == 1  # another unit: refused, not compared


def test_the_compliance_report_has_the_acknowledgement_columns(h: AckHarness) -> None:
    h.answer(h.link("customer-EoE.eml"), "objected", "Clinic systems are busy that evening")
    code, _ = h.flow(
        "ack",
        "--resolve",
        "--reason",
        "moved clinics' batch job",
        "--by",
        "bob",
        now="2026-12-03T12:00:00+00:00",
    )
    assert code == 0, h.flow.err
    h.now = h.now.replace(day=3, hour=14)
    h.answer(h.link("customer-EoE.eml"), "acknowledged")
    out_file = h.tmp / "report.json"
    code, _ = h.flow(
        "--format",
        "json",
        "report",
        "--from",
        "2026-12-01",
        "--to",
        "2026-12-31",
        "--output",
        str(out_file),
        now="2026-12-10T10:00:00+00:00",
    )
    assert code == 0, h.flow.err
    (row,) = json.loads(out_file.read_text())["tables"]["acknowledgements"]
    assert row == {
        "change_id": "FFAPP-4458",
        "audience": "customer:EoE",
        "label": "East of England",
        "required": True,
        "announced_at": "2026-12-01T10:00:00+00:00",
        "acknowledged_at": "2026-12-03T14:30:00+00:00",
        "acknowledged_by": "ops@eoe.example",
        "hours_to_acknowledge": 52.5,
        "objections": 1,
        "open_objections": 0,
        "objection_reasons": "ops@eoe.example: Clinic systems are busy that evening",
        "resolutions": "bob: moved clinics' batch job",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"required_from": ["everyone"]}, "expected one of customers, stakeholders, critical"),
        ({"by": "soon"}, "acknowledgements.by"),
        ({"escalation": [{"after": "1bd", "to": "ceo"}]}, "acknowledgements.escalation.0.to"),
        ({"required": ["customers"]}, "acknowledgements.required"),
    ],
)
def test_a_bad_acknowledgements_rule_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: dict[str, Any], expected: str
) -> None:
    from hie_notify.cli import main

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                **POLICY,
                "change_types": {"planned_infra_update": {"acknowledgements": value}},
            }
        )
    )
    assert main(["--policy", str(policy), "validate"], env={}) == 2
    err = capsys.readouterr().err
    assert "change_types.planned_infra_update.acknowledgements" in err and expected in err
    assert "Traceback" not in err
