"""Hardening: concurrent runs of the same stage deliver each notice once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.builders import plan, rc, write


def test_two_runs_of_the_same_stage_at_once_deliver_once(tmp_path: Path) -> None:
    change = tmp_path / "change.yaml"
    change.write_text(
        yaml.safe_dump(
            {
                "id": "FFAPP-2",
                "purpose": "Replace the DB",
                "downtime": "1h",
                "rollback": "Restore",
                "risk": "low",
                "monitoring": "Grafana dashboard and alerts",
                "approvers": ["Ollie"],
                "customers": ["EoE"],
                "on_call": "Leon",
                "window": {
                    "start": "2026-12-08T10:00:00+00:00",
                    "end": "2026-12-08T12:00:00+00:00",
                },
            }
        )
    )
    plan_file = write(tmp_path / "plan.json", plan(rc("aws_db_instance.db", ["delete", "create"])))
    args = [
        sys.executable,
        "-m",
        "hie_notify",
        "--format",
        "json",
        "--now",
        "2026-12-01T10:00:00+00:00",
        "--change",
        str(change),
        "--ledger",
        f"file:{tmp_path}/ledger.jsonl",
        "--outbox",
        str(tmp_path / "outbox"),
        "plan",
        "--plan",
        str(plan_file),
    ]
    procs = [
        subprocess.Popen(
            [*args, "--terraform-report", str(tmp_path / f"r{i}.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    delivered = [d["audience"] for out, _ in outs for d in json.loads(out)["delivered"]]
    expected = ["slack:#devops", "slack:#infrastructure", "slack:#product", "customer:EoE"]
    assert sorted(delivered) == sorted(expected)  # each once, whichever run sent it
    entries = [json.loads(e) for e in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    # Four notices and one transition: the lock covers the lifecycle check too, so the runs
    # that came second saw the announcement and repeated it.
    assert sorted(e["stage"] for e in entries) == ["announce"] * 4 + ["lifecycle"]
    files = sorted(
        p.name for p in (tmp_path / "outbox").rglob("*.*") if p.parent.name == "announce"
    )
    assert files == [
        "customer-EoE.eml",
        "slack-devops.json",
        "slack-infrastructure.json",
        "slack-product.json",
    ]
