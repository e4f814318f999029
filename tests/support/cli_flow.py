"""Run CLI commands as a pipeline would: one change record, one plan, one ledger and outbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hie_notify.cli import main
from tests.support.builders import plan, write

CHANGE: dict[str, Any] = {
    "id": "FFAPP-4458",
    "purpose": "Encrypt the database",
    "downtime": "1h",
    "rollback": "Restore the snapshot",
    "risk": "low",
    "monitoring": "Grafana dashboard and alerts",
    "approvers": ["Ollie"],
    "on_call": "Leon",
    "customers": ["EoE"],
    "window": {"start": "2026-12-08T19:00:00+00:00", "end": "2026-12-08T21:00:00+00:00"},
}


class Flow:
    """`flow("plan", "--plan", ...)` runs `hie-notify --format json ... plan ...` and returns
    (exit code, the JSON printed); the human text goes to `flow.err`."""

    def __init__(
        self,
        tmp: Path,
        capsys: pytest.CaptureFixture[str],
        *resources: dict[str, Any],
        env: dict[str, str] | None = None,
        policy: Path | None = None,
        **change: Any,
    ) -> None:
        self.tmp, self.capsys = tmp, capsys
        self.env = dict(env or {})
        self.policy = policy
        self.fields = {**CHANGE, **change}
        self.change = tmp / "change.yaml"
        self.write_change()
        self.plan = write(tmp / "plan.json", plan(*resources))
        self.err = ""

    def write_change(self, **fields: Any) -> None:
        self.fields.update(fields)
        self.change.write_text(yaml.safe_dump(self.fields))

    def window(self, start: str, end: str) -> None:
        self.write_change(window={"start": start, "end": end})

    @property
    def last_err(self) -> str:
        return self.err

    def __call__(self, *args: str, now: str = "2026-12-01T10:00:00+00:00") -> tuple[int, Any]:
        base = [
            "--format",
            "json",
            "--now",
            now,
            "--change",
            str(self.change),
            "--ledger",
            f"file:{self.tmp}/ledger.jsonl",
            "--outbox",
            str(self.tmp / "outbox"),
        ]
        if self.policy is not None:
            base += ["--policy", str(self.policy)]
        extra = ["--terraform-report", str(self.tmp / "r.json")] if args[0] == "plan" else []
        code = main([*base, *args, *extra], env=self.env)
        out = self.capsys.readouterr()
        self.err = out.err
        return code, json.loads(out.out) if out.out.strip() else {}

    def outbox(self, stage: str) -> list[str]:
        folder = self.tmp / "outbox" / str(self.fields["id"]) / stage
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
