"""`hie-notify announce`: a change with no plan (an incident, an emergency as soon as identified, a
change that is not Terraform) announced to its declared type's audiences, recorded as plan-less
in the ledger and registered as `announced`, over both register backends (SQLite real; GitLab
through the issues/notes fake). A plan attached later is held to what was announced."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from hie_notify.records import PLANLESS
from hie_notify.register.model import Registered
from hie_notify.register.store import open_register
from tests.support.builders import fired, plan, rc, write
from tests.support.cli_flow import Flow
from tests.support.register_fake import ENV, RegisterFake

TAGS = rc("aws_cloudwatch_log_group.app", ["update"])  # planned infrastructure, not impacting
POLICY_DOC = rc("aws_s3_bucket_policy.logs", ["update"])  # also an IAM permission change
NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])  # impacting
INTERNAL = {"slack:#devops", "slack:#infrastructure", "slack:#product"}
ANNOUNCED = "2026-12-01T10:00:00+00:00"  # Tuesday; the window is a week later
IN_WINDOW = "2026-12-08T19:30:00+00:00"
PLANNED = {"type": "planned_infra_update", "downtime": "0", "customers": []}


@pytest.fixture(params=["sqlite", "gitlab"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite"
        return
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        RegisterFake(rsps).install()
        yield "gitlab"


def _flow(tmp: Path, capsys: pytest.CaptureFixture[str], backend: str, **change: Any) -> Flow:
    return Flow(tmp, capsys, TAGS, env=dict(ENV) if backend == "gitlab" else {}, **change)


def _uri(tmp: Path, backend: str) -> str:
    return f"sqlite:{tmp}/register.sqlite3" if backend == "sqlite" else "gitlab"


def _registered(tmp: Path, backend: str, change_id: str = "FFAPP-4458") -> Registered:
    register = open_register(_uri(tmp, backend), dict(ENV) if backend == "gitlab" else {})
    assert register is not None
    record = register.get(change_id)
    assert record is not None
    return record


def test_announce_tells_the_declared_types_audiences_and_registers_the_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    flow = _flow(tmp_path, capsys, backend, **PLANNED)
    reg = _uri(tmp_path, backend)
    code, out = flow("--register", reg, "announce", now=ANNOUNCED)
    assert code == 0, flow.err
    assert out["planless"] is True and out["change_type"] == "planned_infra_update"
    assert {d["audience"] for d in out["delivered"]} == INTERNAL
    assert out["earliest_start"] == "2026-12-02T10:00:00+00:00"  # 24 h of internal notice
    assert "Announced without a plan" in flow.err

    slack = json.loads((tmp_path / "outbox/FFAPP-4458/announce/slack-devops.json").read_text())
    text = json.dumps(slack)
    assert "announced without a Terraform plan" in text and "to destroy" not in text

    ledger = [json.loads(line) for line in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    assert {e["fingerprint"] for e in ledger} == {PLANLESS}
    assert all(e["resources"] == [] for e in ledger)

    record = _registered(tmp_path, backend)
    assert record.status == "announced" and record.fingerprint == PLANLESS
    assert record.change_type == "planned_infra_update"
    assert {e.audience for e in record.entries if e.stage != "lifecycle"} == INTERNAL
    (made,) = [e.extra["transition"] for e in record.entries if e.stage == "lifecycle"]
    assert made == "announce"

    # Run again (a retried job): nothing is sent twice.
    code, out = flow("--register", reg, "announce", now="2026-12-01T10:05:00+00:00")
    assert code == 0 and out["delivered"] == [] and len(out["already_delivered"]) == 3


def test_a_plan_attached_later_within_the_announcement_passes_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    flow = _flow(tmp_path, capsys, backend, **PLANNED)
    reg = _uri(tmp_path, backend)
    assert flow("--register", reg, "announce", now=ANNOUNCED)[0] == 0
    # The plan, attached the day before the window: its own notices go out with the details,
    # but the notice that counts is the plan-less one, a week ahead.
    code, _ = flow(
        "--register", reg, "plan", "--plan", str(flow.plan), now="2026-12-07T12:00:00+00:00"
    )
    assert code == 0, flow.err
    code, out = flow("--register", reg, "gate", "--plan", str(flow.plan), now=IN_WINDOW)
    assert code == 0, out["reasons"]
    given = {r["audience"]: r["given_at"] for r in out["required"]}
    assert given == {a: ANNOUNCED for a in INTERNAL}
    # Without `plan`, the gate reads the plan-less notice alone and still passes.
    (tmp_path / "ledger.jsonl").write_text(
        "".join(
            line + "\n"
            for line in (tmp_path / "ledger.jsonl").read_text().splitlines()
            if json.loads(line)["fingerprint"] == PLANLESS
        )
    )
    assert flow("--register", reg, "gate", "--plan", str(flow.plan), now=IN_WINDOW)[0] == 0


def test_a_plan_that_needs_an_audience_never_told_is_blocked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    """A bucket policy is also an IAM permission change: #cloud-security must hear it, and the
    plan-less announcement did not tell it."""
    flow = _flow(tmp_path, capsys, backend, **PLANNED)
    reg = _uri(tmp_path, backend)
    assert flow("--register", reg, "announce", now=ANNOUNCED)[0] == 0
    mixed = write(tmp_path / "mixed.json", plan(TAGS, POLICY_DOC))
    code, out = flow("--register", reg, "gate", "--plan", str(mixed), now=IN_WINDOW)
    assert code == 1
    assert fired(out) == ["notice.missing"] and out["reasons"][0].startswith("#cloud-security ")


def test_a_plan_more_severe_than_announced_is_blocked_naming_the_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    flow = _flow(tmp_path, capsys, backend, type="application_update", downtime="0", customers=[])
    reg = _uri(tmp_path, backend)
    assert flow("--register", reg, "announce", now=ANNOUNCED)[0] == 0
    worse = write(tmp_path / "worse.json", plan(NODES))  # infrastructure, service-impacting
    code, out = flow("--register", reg, "gate", "--plan", str(worse), now=IN_WINDOW)
    assert code == 1
    devops = [r for r in out["reasons"] if r.startswith("#devops")]
    assert len(devops) == 1 and "notice.other_plan" in fired(out)
    assert "change type raised from application_update to planned_infra_update" in devops[0]
    assert "now service-impacting" in devops[0]
    # #infrastructure hears planned infrastructure updates only: it was never told at all.
    missing = [f["text"] for f in out["findings"] if f["rule"] == "notice.missing"]
    assert [t.split(" ")[0] for t in missing] == ["#infrastructure"]


def test_an_incident_announced_as_soon_as_identified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    """An emergency under way: its window has started; customers hear at once."""
    flow = _flow(
        tmp_path,
        capsys,
        backend,
        id="INC-7",
        type="emergency_fix",
        justification="Customers cannot log in: the ingress certificate expired",
        purpose="Replace the expired ingress certificate",
        downtime="30m",
        window={"start": "2026-12-01T09:40:00+00:00", "end": "2026-12-01T11:00:00+00:00"},
    )
    reg = _uri(tmp_path, backend)
    code, out = flow("--register", reg, "announce", now=ANNOUNCED)
    assert code == 0, flow.err
    told = {d["audience"] for d in out["delivered"]}
    assert {"slack:#ops", "slack:#devops", "customer:EoE"} <= told
    assert out["service_impacting"] is True
    record = _registered(tmp_path, backend, "INC-7")
    assert record.status == "identified" and record.service_impacting  # an emergency's word
    # The stages that follow read the plan-less announcement from the ledger.
    code, out = flow(
        "--register", reg, "complete", "--verified-by", "leon", now="2026-12-01T10:50:00+00:00"
    )
    assert code == 0, flow.err
    # Announced without a plan, it may complete without an apply (the work was not Terraform).
    assert _registered(tmp_path, backend, "INC-7").status == "completed"


def test_announce_needs_a_declared_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = Flow(tmp_path, capsys, TAGS)
    code, _ = flow("announce", now=ANNOUNCED)
    assert code == 2
    assert "type: expected a declared change type" in flow.err and "Traceback" not in flow.err
    assert not (tmp_path / "ledger.jsonl").exists()


def test_announce_refuses_a_window_that_ended(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, TAGS, **PLANNED)
    code, _ = flow("announce", now="2026-12-09T10:00:00+00:00")
    assert code == 2 and "change.yaml: window.end: the window ended" in flow.err


def test_announce_dry_run_sends_and_records_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, TAGS, **PLANNED)
    code, out = flow("--dry-run", "announce", now=ANNOUNCED)
    assert code == 0 and out["delivered"] == []
    assert not (tmp_path / "ledger.jsonl").exists()
    assert not (tmp_path / "register.sqlite3").exists()
