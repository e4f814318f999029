"""Hardening: a secret planted anywhere (change record, plan, environment) is masked in every
output — stdout, stderr, outbox files, the ledger, what Slack receives.

One run per secret variable (the list is written out in tests/test_masking.py, not read from the
code), each planting the secret in every change-record field and every place in the plan at once.
Hypothesis draws the secret's text, derandomized: the same examples on every run."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hie_notify.cli import main
from tests.support.builders import plan, rc, write
from tests.support.secrets import SECRETS
from tests.support.slack_fake import FakeSlack

FIELDS = (
    "purpose",
    "customer_summary",
    "rollback",
    "monitoring",
    "on_call",
    "approvers",
    "justification",
)
secrets = st.text(
    alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_", min_size=12, max_size=40
).map(lambda s: "Zq" + s)


def _files(tmp: Path, secret: str) -> tuple[Path, Path]:
    change: dict[str, Any] = {
        "id": "FFAPP-7",
        "type": "emergency_fix",
        "downtime": "10m",
        "customers": ["EoE"],
        "window": {"start": "2026-12-08T10:00:00+00:00", "end": "2026-12-08T12:00:00+00:00"},
    }
    for field in FIELDS:
        value = f"see {secret} here"
        change[field] = [value] if field == "approvers" else value
    path = tmp / "change.yaml"
    path.write_text(yaml.safe_dump(change))
    # In the plan: a sensitive value, a plain value, an output and a for_each key.
    resource = rc(
        f'aws_db_instance.db["{secret}"]',
        ["update"],
        before={"password": "old", "name": "a"},
        after={"password": secret, "name": secret},
        before_sensitive={"password": True},
        after_sensitive={"password": True},
    )
    outputs = {
        "token": {"actions": ["update"], "before": "x", "after": secret, "after_sensitive": True}
    }
    return path, write(tmp / "plan.json", plan(resource, output_changes=outputs))


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setattr(time, "sleep", lambda s: None)


@pytest.mark.parametrize("variable", sorted(SECRETS))
@settings(
    derandomize=True,
    database=None,
    max_examples=1,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(secret=secrets)
def test_planted_secret_never_shown(
    capsys: pytest.CaptureFixture[str], slack: FakeSlack, variable: str, secret: str
) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        change, plan_file = _files(tmp, secret)
        # Every service that the planted variable would switch on is a local fake: Slack is
        # reached for real (and must not receive the secret either), the rest are refused.
        env = {variable: secret, "SLACK_API_URL": slack.url}
        slack.state.token = secret
        common = [
            "--now",
            "2026-12-08T10:00:00+00:00",
            "--change",
            str(change),
            "--ledger",
            f"file:{tmp}/ledger.jsonl",
            "--outbox",
            str(tmp / "outbox"),
        ]
        runs = [
            ["--format", "json", "classify", "--plan", str(plan_file)],
            ["plan", "--plan", str(plan_file), "--terraform-report", str(tmp / "r.json")],
            ["--format", "json", "gate", "--plan", str(plan_file), "--dotenv", str(tmp / "g.env")],
            ["preview", "complete"],
            ["apply", "--status", "failed", "--error", f"boom {secret}"],
            ["complete"],
        ]
        printed = []
        for args in runs:
            main(common + args, env=env)
            out = capsys.readouterr()
            printed += [out.out, out.err]
        written = [
            p.read_text(errors="replace")
            for p in tmp.rglob("*")
            if p.is_file() and p not in (change, plan_file)
        ]
        assert len(written) > 5  # outbox messages, ledger, dotenv, report, post-mortem
        sent = [str(r.body) for r in slack.state.requests]
        for text in printed + written + sent:
            assert secret not in text
