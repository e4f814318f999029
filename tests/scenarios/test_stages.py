"""Stage by stage on the embedded default: who hears what, post-mortems, preview, cancel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hie_notify.cli import main
from tests.support.builders import rc
from tests.support.cli_flow import Flow as _Flow
from tests.support.paths import EXAMPLES

DB = rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["storage_encrypted"]])
HELM = rc("helm_release.app", ["update"], before={"version": "1"}, after={"version": "2"})
DNS = rc("aws_route53_record.api", ["update"], before={"ttl": 1}, after={"ttl": 2})


def Flow(tmp: Path, capsys: pytest.CaptureFixture[str], *resources: Any, **change: Any) -> Any:
    return _Flow(tmp, capsys, *resources, policy=EXAMPLES / "policy.yaml", **change)


def _audiences(out: dict[str, Any]) -> list[str]:
    return [d["audience"] for d in out["delivered"]]


def test_infra_change_stage_by_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = Flow(tmp_path, capsys, DB)
    assert flow("plan", "--plan", str(flow.plan))[0] == 0
    code, out = flow("apply", "--status", "started", now="2026-12-08T19:01:00+00:00")
    assert code == 0
    assert _audiences(out) == [
        "slack:#devops",
        "slack:#infrastructure",
        "slack:#product",
        "customer:EoE",
    ]
    code, out = flow("apply", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")
    assert code == 0
    assert _audiences(out) == [
        "slack:#devops",
        "slack:#infrastructure",
        "slack:#product",
        "customer:EoE",
    ]
    assert flow.outbox("apply_succeeded") == [
        "customer-EoE.eml",
        "slack-devops.json",
        "slack-infrastructure.json",
        "slack-product.json",
    ]
    code, out = flow("complete", now="2026-12-08T20:00:00+00:00")
    assert code == 0 and len(out["delivered"]) == 4
    # a significant change (service-impacting, replaces a database) owes a post-mortem
    assert out["postmortem"] == [
        "a significant change (service-impacting, destroys or replaces resources)"
    ]
    issue = (tmp_path / "outbox/FFAPP-4458/postmortem-issue.md").read_text()
    assert issue.startswith("# Post-mortem: FFAPP-4458 Encrypt the database")
    internal = json.loads((tmp_path / "outbox/FFAPP-4458/complete/slack-devops.json").read_text())
    assert "Post-mortem owed" in json.dumps(internal)
    customer = (tmp_path / "outbox/FFAPP-4458/complete/customer-EoE.eml").read_text()
    assert "Post-mortem" not in customer and "is complete" in customer


def test_failure_and_rollback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An application update with 1 h of downtime: internal channels hear pre and post only; the
    # affected customer (Phase 2: every planned service-impacting change) hears real-time updates.
    flow = Flow(tmp_path, capsys, HELM)
    assert flow("plan", "--plan", str(flow.plan))[0] == 0
    code, out = flow("apply", "--status", "started", now="2026-12-08T19:01:00+00:00")
    assert code == 0 and _audiences(out) == ["customer:EoE"]
    code, out = flow(
        "apply", "--status", "failed", "--error", "helm: timed out", now="2026-12-08T19:20:00+00:00"
    )
    # a failure is a critical event: every internal channel told of the change hears it
    # (examples/policy.yaml tells #product of application updates in the sprint update only)
    assert _audiences(out) == ["customer:EoE", "slack:#devops"]
    devops = (tmp_path / "outbox/FFAPP-4458/apply_failed/slack-devops.json").read_text()
    assert "helm: timed out" in devops and "Rollback plan" in devops
    assert "Post-mortem owed" in devops and "the deployment failed" in devops
    code, out = flow("rollback", "--status", "started", now="2026-12-08T19:25:00+00:00")
    assert code == 0 and _audiences(out) == ["customer:EoE", "slack:#devops"]
    code, out = flow("rollback", "--status", "succeeded", now="2026-12-08T19:45:00+00:00")
    assert code == 0 and _audiences(out) == ["customer:EoE", "slack:#devops"]
    assert (
        "rolled back"
        in (tmp_path / "outbox/FFAPP-4458/rollback_succeeded/slack-devops.json").read_text()
    )
    ledger = (tmp_path / "ledger.jsonl").read_text()
    assert ledger.count('"stage": "postmortem"') == 1


def test_stakeholder_hears_application_updates_but_not_their_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, HELM)
    code, out = flow("plan", "--plan", str(flow.plan))
    assert code == 0 and "stakeholders:business" in _audiences(out)
    code, out = flow("apply", "--status", "failed", now="2026-12-08T19:20:00+00:00")
    assert code == 0 and "stakeholders:business" not in _audiences(out)
    assert _audiences(out) == ["customer:EoE", "slack:#devops"]  # #product: sprint update


def test_stage_without_announcement_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, DB)
    code, _ = flow("apply", "--status", "started")
    assert code == 2
    assert "no announcement of FFAPP-4458 is recorded in the ledger" in flow.err
    code, out = flow("apply", "--status", "started", "--plan", str(flow.plan))
    assert code == 0 and out["delivered"]


def test_preview_renders_without_sending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, DB)
    code = main(
        [
            "--policy",
            str(EXAMPLES / "policy.yaml"),
            "--change",
            str(flow.change),
            "--ledger",
            f"file:{tmp_path}/l.jsonl",
            "--now",
            "2026-12-01T10:00:00+00:00",
            "preview",
            "plan",
            "--plan",
            str(flow.plan),
        ],
        env={},
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "East of England (customer:EoE) via email" in text
    assert "Dear East of England team," in text
    assert "#devops (slack:#devops) via slack" in text and "*Jira*:" in text
    assert not (tmp_path / "l.jsonl").exists() and not (tmp_path / "outbox").exists()

    def preview_complete() -> tuple[int, dict[str, Any]]:
        code = main(
            [
                "--format",
                "json",
                "--policy",
                str(EXAMPLES / "policy.yaml"),
                "--change",
                str(flow.change),
                "--ledger",
                f"file:{tmp_path}/ledger.jsonl",
                "--now",
                "2026-12-08T20:00:00+00:00",
                "preview",
                "complete",
                "--plan",
                str(flow.plan),
            ],
            env={},
        )
        return code, json.loads(capsys.readouterr().out)

    # As `complete` would: refused before anything was applied (exit 2, naming the state).
    code, out = preview_complete()
    assert code == 2 and "is not announced" in out["error"]
    assert flow("plan", "--plan", str(flow.plan))[0] == 0
    assert flow("apply", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")[0] == 0
    code, out = preview_complete()
    assert code == 0 and out["lifecycle"]["state"] == "completed"
    assert {m["audience"] for m in out["messages"]} == {
        "slack:#devops",
        "slack:#infrastructure",
        "slack:#product",
        "customer:EoE",
    }


def test_cancel_tells_everyone_who_was_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, DB)
    assert flow("plan", "--plan", str(flow.plan))[0] == 0
    code, out = flow("cancel", "--detail", "postponed to January", now="2026-12-03T10:00:00+00:00")
    assert code == 0 and len(out["delivered"]) == 4
    eml = (tmp_path / "outbox/FFAPP-4458/cancelled/customer-EoE.eml").read_text()
    assert "METHOD:CANCEL" in eml and "will not go ahead" in eml


def test_emergency_always_owes_a_postmortem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, DNS, type="emergency_fix", justification="outage")
    assert flow("plan", "--plan", str(flow.plan))[0] == 0
    assert flow("apply", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")[0] == 0
    code, out = flow("complete", now="2026-12-08T20:00:00+00:00")
    assert code == 0
    assert "the policy asks one for every emergency fix" in out["postmortem"]


def test_dry_run_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = Flow(tmp_path, capsys, DB)
    assert flow("plan", "--plan", str(flow.plan))[0] == 0
    assert flow("apply", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")[0] == 0
    ledger = (tmp_path / "ledger.jsonl").read_bytes()
    code = main(
        [
            "--format",
            "json",
            "--dry-run",
            "--policy",
            str(EXAMPLES / "policy.yaml"),
            "--now",
            "2026-12-08T20:00:00+00:00",
            "--change",
            str(flow.change),
            "--ledger",
            f"file:{tmp_path}/ledger.jsonl",
            "--outbox",
            str(tmp_path / "outbox"),
            "complete",
        ],
        env={},
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["delivered"] == [] and len(out["dry_run"]) == 4
    assert not (tmp_path / "outbox/FFAPP-4458/complete").exists()
    assert not (tmp_path / "outbox/FFAPP-4458/postmortem-issue.md").exists()
    assert (tmp_path / "ledger.jsonl").read_bytes() == ledger  # not even the transition
