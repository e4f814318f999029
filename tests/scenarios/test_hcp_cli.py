"""The commands with an HCP Terraform run as the source, over the `responses` fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import responses

from hie_notify.receiver import Event
from tests.support.builders import fired
from tests.support.cli_flow import Flow as _Flow
from tests.support.hcp_fake import ENV, PLANS, RUN_ID, FakeHcp, run_document
from tests.support.paths import EXAMPLES

RESULT_KEYS = (
    "change_type",
    "categories",
    "service_impacting",
    "summary",
    "reasons",
    "resources",
    "fingerprint",
    "notice",
)


@pytest.fixture
def hcp(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHcp]:
    import time

    monkeypatch.setattr(time, "sleep", lambda s: None)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeHcp(rsps).install()


def Flow(tmp: Path, capsys: pytest.CaptureFixture[str], **change: Any) -> _Flow:
    fields = {
        "purpose": "Tighten the QA reports bucket policy",
        "downtime": "0",
        "rollback": "Revert",
        "risk": "low",
        "monitoring": "Grafana dashboard and alerts",
        "approvers": ["Ollie"],
        "customers": [],
        "window": {"start": "2026-12-08T10:00:00+00:00", "end": "2026-12-08T12:00:00+00:00"},
        **change,
    }
    return _Flow(tmp, capsys, env=dict(ENV), policy=EXAMPLES / "policy.yaml", **fields)


def test_classify_by_run_id_equals_classify_by_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hcp: FakeHcp
) -> None:
    flow = Flow(tmp_path, capsys)
    code, by_run = flow("classify", "--run-id", RUN_ID)
    assert code == 0, flow.err
    code, by_file = flow("classify", "--plan", str(PLANS / "s3.json"))
    assert code == 0
    for key in RESULT_KEYS:
        assert by_run[key] == by_file[key], key
    assert by_run["run"] == {
        "id": RUN_ID,
        "status": "planned",
        "workspace": "eoe-prod",
        "plan_only": False,
        "is_destroy": False,
    }


def test_plan_stage_makes_at_most_three_requests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hcp: FakeHcp
) -> None:
    flow = Flow(tmp_path, capsys)
    code, _ = flow("plan", "--run-id", RUN_ID)
    assert code == 0, flow.err
    urls = [r.url for r in hcp.requests]
    assert len(urls) <= 3
    assert urls[0].startswith(f"{hcp.api}/runs/{RUN_ID}?include=")
    assert "/json-output" in urls[1] and urls[2].startswith("https://archivist.terraform.io/")
    assert "Authorization" not in hcp.requests[2].headers
    # the workspace maps to its customer (examples/policy.yaml: EoE serves eoe-prod)
    devops = (tmp_path / "outbox/FFAPP-4458/announce/slack-devops.json").read_text()
    assert "app.terraform.io/app/hie-sde/workspaces/eoe-prod/runs/" + RUN_ID in devops
    assert "resize the EKS general worker nodes" in devops  # the run message
    assert "project\\\\_42\\\\_bot\\\\_tfc" not in devops and "project_42_bot_tfc" in devops


def test_run_id_from_the_tfc_workflows_dotenv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hcp: FakeHcp
) -> None:
    flow = Flow(tmp_path, capsys)
    flow.env["run_id"] = RUN_ID  # what .tfc:create_run exports, unrenamed
    code, out = flow("classify")
    assert code == 0, flow.err
    assert out["run"]["id"] == RUN_ID


def test_workspace_maps_to_customers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hcp: FakeHcp
) -> None:
    hcp.runs[RUN_ID]["data"]["attributes"]["is-destroy"] = True  # destroy: impacting
    flow = Flow(tmp_path, capsys)
    code, out = flow("plan", "--run-id", RUN_ID)
    assert code == 0, flow.err
    assert "customer:EoE" in [d["audience"] for d in out["delivered"]]


@pytest.mark.parametrize(
    ("status", "stage"),
    [
        ("applying", "apply_started"),
        ("applied", "apply_succeeded"),
        ("errored", "apply_failed"),
        ("canceled", "apply_failed"),
        ("discarded", "apply_failed"),
        ("force_canceled", "apply_failed"),
    ],
)
def test_apply_reads_the_stage_from_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hcp: FakeHcp, status: str, stage: str
) -> None:
    flow = Flow(tmp_path, capsys)
    flow("plan", "--run-id", RUN_ID)
    hcp.runs[RUN_ID] = run_document(
        status, apply_status="errored" if stage == "apply_failed" else "finished"
    )
    code, out = flow("apply", "--run-id", RUN_ID, now="2026-12-08T10:30:00+00:00")
    assert code == 0, flow.err
    assert out["stage"] == stage
    assert (tmp_path / "outbox/FFAPP-4458" / stage / "slack-devops.json").exists()
    if stage == "apply_failed":
        text = (tmp_path / "outbox/FFAPP-4458" / stage / "slack-devops.json").read_text()
        assert "Error" in text


@pytest.mark.parametrize(
    ("status", "plan_only", "why"),
    [
        ("planned", False, "is not an apply stage"),
        ("applied", True, "speculative (plan-only) run is never an apply"),
        ("teleporting", False, "is not one HCP Terraform documents"),
    ],
)
def test_statuses_without_a_stage_are_reported(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    hcp: FakeHcp,
    status: str,
    plan_only: bool,
    why: str,
) -> None:
    flow = Flow(tmp_path, capsys)
    flow("plan", "--run-id", RUN_ID)
    hcp.runs[RUN_ID] = run_document(status, plan_only=plan_only)
    code, out = flow("apply", "--run-id", RUN_ID)
    assert code == 0 and out["stage"] is None and why in out["reason"]


def test_speculative_run_never_passes_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hcp: FakeHcp
) -> None:
    hcp.runs[RUN_ID] = run_document("planned_and_finished", plan_only=True)
    flow = Flow(tmp_path, capsys)
    flow("plan", "--run-id", RUN_ID)
    code, out = flow(
        "gate",
        "--run-id",
        RUN_ID,
        "--dotenv",
        str(tmp_path / "g.env"),
        now="2026-12-08T10:30:00+00:00",
    )
    assert code == 1 and fired(out)[0] == "run.speculative"


def test_watch_sends_each_stage_once(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    hcp: FakeHcp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    flow = Flow(tmp_path, capsys)
    flow("plan", "--run-id", RUN_ID)
    statuses = iter(["applying", "applying", "applied"])
    hcp.runs[RUN_ID] = run_document("apply_queued")

    def next_status(seconds: float) -> None:
        hcp.runs[RUN_ID] = run_document(next(statuses), apply_status="finished")

    monkeypatch.setattr(time, "sleep", next_status)
    code, out = flow(
        "watch", "--run-id", RUN_ID, "--interval", "5", now="2026-12-08T10:30:00+00:00"
    )
    assert code == 0, flow.err
    assert out == {
        "run_id": RUN_ID,
        "status": "applied",
        "final": True,
        "stages": ["apply_started", "apply_succeeded"],
        "failed": [],
    }
    ledger = (tmp_path / "ledger.jsonl").read_text()
    assert ledger.count('"stage": "apply_started"') == 3  # three channels, once each


def test_watch_is_bounded(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    hcp: FakeHcp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    flow = Flow(tmp_path, capsys)
    flow("plan", "--run-id", RUN_ID)
    hcp.runs[RUN_ID] = run_document("apply_queued")
    before = len(hcp.requests)
    code, out = flow("watch", "--run-id", RUN_ID, "--timeout", "60", "--interval", "10")
    # Gave up with the run still going: not "finished" (0), the outcome is not known (3).
    assert code == 3 and out["final"] is False and out["stages"] == []
    assert out["status"] == "apply_queued"
    assert f"stopped watching after 60 s; run {RUN_ID} is still apply_queued" in flow.err
    looks = [r for r in hcp.requests[before:] if "/runs/" in r.url]
    assert len(looks) == 1 + 6  # the first look, then one every 10 s for 60 s


def test_receiver_event_sends_the_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hcp: FakeHcp
) -> None:
    import argparse

    from hie_notify.options import Options
    from hie_notify.stagerun import handle_event as handle

    flow = Flow(tmp_path, capsys)
    flow("plan", "--run-id", RUN_ID)
    options = Options(
        policy=EXAMPLES / "policy.yaml",
        change=flow.change,
        ledger=f"file:{tmp_path}/ledger.jsonl",
        outbox=tmp_path / "outbox",
        env={},
        # The receiver serves without --now: its clock is the machine's, here a fixed one.
        wall_clock=lambda: datetime(2026, 12, 8, 19, 1, tzinfo=timezone.utc),
    )
    event = Event(
        "run:applying",
        "apply_started",
        RUN_ID,
        "applying",
        "eoe-prod",
        "ws-1",
        "hie-sde",
        None,
        None,
        "Run applying",
        None,
        None,
        1,
    )
    text = handle(event, argparse.Namespace(plan_required=False), options)
    assert "run:applying" in text and "apply_started" in text
    assert (tmp_path / "outbox/FFAPP-4458/apply_started/slack-devops.json").exists()
    lines = (tmp_path / "ledger.jsonl").read_text().splitlines()
    started = [json.loads(x) for x in lines if '"stage": "apply_started"' in x]
    assert started and {e["delivered_at"] for e in started} == {"2026-12-08T19:01:00+00:00"}
    quiet = Event(
        "run:planning", None, RUN_ID, "planning", None, None, None, None, None, None, None, None, 1
    )
    assert (
        handle(quiet, argparse.Namespace(plan_required=False), options) == "run:planning: no notice"
    )
