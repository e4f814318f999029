r"""Mask first, then escape: every secret shape the product knows, planted in a change record, is
absent from the final bytes of every channel (Slack JSON, decoded MIME parts and the invite,
the Teams card, the webhook body, the merge request note, the post-mortem issue, the GitLab
ledger's decoded marker, the outbox, the dotenv file and what is printed). Backslashes are
removed before looking, so an escaped form (`glpat-a\_b`) counts as a leak too.

Hardening: a secret planted anywhere (change record, plan, environment) is masked in every
output — stdout, stderr, outbox files, the ledger, what Slack receives.

One run per secret variable (the list is written out in tests/test_masking.py, not read from the
code), each planting the secret in every change-record field and every place in the plan at once.
Hypothesis draws the secret's text, derandomized: the same examples on every run.
"""

from __future__ import annotations

import email
import email.policy
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hie_notify.cli import main
from hie_notify.ledger.gitlab import decode_marker
from tests.support.builders import plan, rc, write
from tests.support.secrets import SECRETS
from tests.support.slack_fake import FakeSlack
from tests.support.trust_ci import ANNOUNCED, pipeline

TEAMS = "https://prod-42.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke"
WEBHOOK = "https://status.example.org/hooks/hie"
_tail = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789", min_size=10)
SHAPES = st.one_of(
    # GitLab tokens with `_` and `-`, which Markdown and Teams escaping used to split
    st.tuples(_tail, _tail).map(lambda p: f"glpat-{p[0]}_x-{p[1]}_9"),
    _tail.map(lambda t: f"xoxb-1111-2222-{t}"),
    _tail.map(lambda t: f"https://hooks.slack.com/services/T0/B0/{t}"),
    _tail.map(lambda t: f"https://x1.westeurope.logic.azure.com/workflows/{t}/invoke?sig=a_b"),
)
FIELDS = ("purpose", "rollback", "monitoring")


def _mime_texts(raw: bytes) -> list[str]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    out = [str(message["Subject"])]
    for part in message.walk():
        if part.get_content_maintype() == "multipart":
            continue
        content = part.get_content()
        out.append(content.decode(errors="replace") if isinstance(content, bytes) else content)
    return out


def _gitlab_texts(calls: Any) -> list[str]:
    out = []
    for call in calls:
        body = call.request.body
        if not body:
            continue
        text = body.decode() if isinstance(body, bytes) else str(body)
        out.append(text)
        data = json.loads(text)
        for value in (data.get("body"), data.get("description")):
            if isinstance(value, str):
                out.append(value)
                entries = decode_marker(value, "note")
                if entries is not None:
                    out.append(json.dumps(entries, ensure_ascii=False))
    return out


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(secret=SHAPES, field=st.sampled_from(FIELDS))
def test_every_secret_shape_is_masked_in_every_channels_final_bytes(
    capsys: pytest.CaptureFixture[str], secret: str, field: str
) -> None:
    with (
        tempfile.TemporaryDirectory() as name,
        pytest.MonkeyPatch.context() as monkeypatch,
        pipeline(Path(name), capsys, monkeypatch) as pipe,
    ):
        pipe.protected(
            b"customers:\n  EoE:\n    contacts: [{email: desk@eoe.example.org, critical: true}]\n"
            b"    channels: [email, teams, webhook]\n"
        )
        pipe.env.update(
            TEAMS_WEBHOOK_URL=TEAMS, HIE_WEBHOOK_URL=WEBHOOK, HIE_WEBHOOK_SECRET="s" * 20
        )
        pipe.gitlab.rsps.add(responses.POST, TEAMS, status=202)
        pipe.gitlab.rsps.add(responses.POST, WEBHOOK, status=200, json={"id": "evt-1"})
        pipe.write_change(**{field: f"see {secret} here"})
        printed = []
        for args, at in (
            (("plan",), ANNOUNCED),
            (("gate",), "2026-12-08T19:30:00+00:00"),
            (("apply", "--status", "failed", "--error", f"boom {secret}"), "2026-12-08T19:40:00Z"),
        ):
            pipe(*args, at=at)
            printed += [pipe.err, json.dumps(pipe.capsys.readouterr().out)]
        # The same change outside CI, with no credentials: everything goes to the outbox.
        outside = {"SLACK_API_URL": pipe.slack.url}
        pipe("plan", at=ANNOUNCED, env=outside, flags=["--ledger", f"file:{name}/l.jsonl"])
        printed.append(pipe.err)

        wire: list[str] = []
        wire += [json.dumps(r.body, ensure_ascii=False) for r in pipe.slack.state.requests]
        for received in pipe.smtp.handler.received:
            wire += _mime_texts(received.content)
        hooks = [c for c in pipe.gitlab.rsps.calls if c.request.url in (TEAMS, WEBHOOK)]
        wire += [json.dumps(json.loads(c.request.body), ensure_ascii=False) for c in hooks]
        wire += _gitlab_texts(
            c for c in pipe.gitlab.rsps.calls if "gitlab.example" in c.request.url
        )
        files = [p for p in Path(name).rglob("*") if p.is_file() and p.suffix != ".pem"]
        wire += [p.read_text(errors="replace") for p in files if p.name != "change.yaml"]

        assert len(pipe.smtp.handler.received) >= 2  # the announcement and the failure
        assert len(hooks) >= 4  # Teams and webhook, twice each
        assert pipe.gitlab.issues  # the post-mortem issue
        assert any(p.suffix == ".eml" for p in files)  # the outbox
        assert (Path(name) / "gate.env").exists()
        for text in wire + printed:
            assert secret not in text.replace("\\", "")


RECORD_FIELDS = (
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
    for field in RECORD_FIELDS:
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
