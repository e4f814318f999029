"""Mask first, then escape: every secret shape the product knows, planted in a change record, is
absent from the final bytes of every channel (Slack JSON, decoded MIME parts and the invite,
the Teams card, the webhook body, the merge request note, the post-mortem issue, the GitLab
ledger's decoded marker, the outbox, the dotenv file and what is printed). Backslashes are
removed before looking, so an escaped form (`glpat-a\\_b`) counts as a leak too."""

from __future__ import annotations

import email
import email.policy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hie_notify.ledger.gitlab import decode_marker
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
