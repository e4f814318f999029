"""Slack over a local fake of the Web API: threads, in-place updates, retries, no duplicates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hie_notify.cli import main
from tests.support.builders import plan, rc, write
from tests.support.cli_flow import Flow
from tests.support.slack_fake import TOKEN, FakeSlack

DB = rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["storage_encrypted"]])


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    import time

    monkeypatch.setattr(time, "sleep", waits.append)
    return waits


class Run(Flow):
    def __init__(
        self,
        tmp: Path,
        slack: FakeSlack,
        capsys: pytest.CaptureFixture[str],
        purpose: str = "Resize worker nodes",
    ) -> None:
        super().__init__(
            tmp,
            capsys,
            DB,
            env={"SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": slack.url},
            purpose=purpose,
            downtime="30m",
            rollback="Revert",
            risk="low",
            monitoring="Grafana dashboard and alerts",
            approvers=["Ollie"],
            window={"start": "2026-12-08T10:00:00+00:00", "end": "2026-12-08T12:00:00+00:00"},
        )
        self.slack = slack


@pytest.fixture
def run(tmp_path: Path, slack: FakeSlack, capsys: pytest.CaptureFixture[str]) -> Run:
    return Run(tmp_path, slack, capsys)


def test_announce_posts_one_parent_per_channel(run: Run, slack: FakeSlack) -> None:
    code, out = run("plan", "--plan", str(run.plan))
    assert code == 0
    posts = slack.state.calls("chat.postMessage")
    assert [p.body["channel"] for p in posts] == ["#devops", "#infrastructure", "#product"]
    for p in posts:
        assert p.method == "POST" and p.path == "/api/chat.postMessage"
        assert p.headers["Authorization"] == f"Bearer {TOKEN}"
        assert "thread_ts" not in p.body
        assert p.body["metadata"]["event_type"] == "hie_notify_notice"
        assert p.body["text"].startswith("[FFAPP-4458] Planned Infra Update: Resize worker nodes")
        assert all(len(b["text"]["text"]) <= 3000 for b in p.body["blocks"])
    devops = next(d for d in out["delivered"] if d["audience"] == "slack:#devops")
    assert devops["channel"] == "slack" and devops["message_id"].startswith("C0DEVOPS:")
    # The delivery counts from this process's clock (--now), never from the `ts` Slack reports.
    ts = devops["message_id"].split(":")[1]
    assert devops["delivered_at"] == "2026-12-01T10:00:00+00:00"
    assert datetime.fromtimestamp(float(ts), timezone.utc).isoformat() != devops["delivered_at"]
    customer = next(d for d in out["delivered"] if d["audience"] == "customer:EoE")
    assert customer["channel"] == "outbox"


def test_later_stages_reply_in_thread_and_update_the_parent(run: Run, slack: FakeSlack) -> None:
    run("plan", "--plan", str(run.plan))
    parents = {m["channel"]: m["ts"] for m in slack.state.messages}
    code, _ = run("apply", "--status", "started", now="2026-12-08T10:01:00+00:00")
    assert code == 0
    replies = slack.state.calls("chat.postMessage")[3:]
    assert [(r.body["channel"], r.body["thread_ts"]) for r in replies] == list(parents.items())
    updates = slack.state.calls("chat.update")
    assert [(u.body["channel"], u.body["ts"]) for u in updates] == list(parents.items())
    assert updates[0].body["blocks"][0]["elements"][0]["text"] == "*Status:* IN PROGRESS"
    code, _ = run("apply", "--status", "succeeded", now="2026-12-08T10:30:00+00:00")
    assert code == 0
    code, _ = run("complete", now="2026-12-08T11:00:00+00:00")
    assert code == 0
    final = slack.state.calls("chat.update")[-1]
    assert final.body["blocks"][0]["elements"][0]["text"] == "*Status:* COMPLETED"
    assert slack.state.calls("chat.postMessage")[-1].body["reply_broadcast"] is True


def test_a_job_run_twice_posts_nothing_twice(run: Run, slack: FakeSlack) -> None:
    run("plan", "--plan", str(run.plan))
    run("apply", "--status", "started", now="2026-12-08T10:01:00+00:00")
    before = len(slack.state.calls("chat.postMessage"))
    code, out = run("apply", "--status", "started", now="2026-12-08T10:03:00+00:00")
    assert code == 0 and out["delivered"] == []
    code, out = run("plan", "--plan", str(run.plan), now="2026-12-01T11:00:00+00:00")
    assert out["delivered"] == []
    assert len(slack.state.calls("chat.postMessage")) == before


def test_429_with_retry_after_then_success(run: Run, slack: FakeSlack, sleeps: list[float]) -> None:
    slack.state.fail.append(("chat.postMessage", 429, {"Retry-After": "7"}, False))
    code, _ = run("plan", "--plan", str(run.plan))
    assert code == 0
    assert len(slack.state.messages) == 3  # one per channel, none lost, none twice
    assert len(slack.state.calls("chat.postMessage")) == 4
    assert any(7 <= w < 8 for w in sleeps)  # Retry-After honoured (plus the SDK's jitter)


def test_502_on_a_post_that_went_through_is_not_repeated(
    run: Run, slack: FakeSlack, sleeps: list[float]
) -> None:
    slack.state.fail.append(("chat.postMessage", 502, {}, True))
    code, out = run("plan", "--plan", str(run.plan))
    assert code == 0
    devops = [m for m in slack.state.messages if m["channel"] == "C0DEVOPS"]
    assert len(devops) == 1
    assert len(slack.state.calls("conversations.history")) == 1
    recorded = next(d for d in out["delivered"] if d["audience"] == "slack:#devops")
    assert recorded["message_id"] == f"C0DEVOPS:{devops[0]['ts']}"
    assert sleeps == []


def test_502_on_a_post_that_went_through_is_found_past_the_first_page(
    run: Run, slack: FakeSlack, sleeps: list[float]
) -> None:
    # Someone posts right after ours, and Slack returns one message per page: the look-up must
    # follow the cursor, and read the metadata it asked for.
    slack.state.fail.append(("chat.postMessage", 502, {}, True))
    slack.state.noise_after_store = 1
    slack.state.page_cap = 1
    code, _ = run("plan", "--plan", str(run.plan))
    assert code == 0
    assert len([m for m in slack.state.messages if m["bot_id"] == "B0HIE"]) == 3
    history = slack.state.calls("conversations.history")
    assert len(history) == 2 and history[1].body["cursor"]
    assert all(str(h.body["include_all_metadata"]).lower() in ("1", "true") for h in history)
    assert all(h.body["channel"] == "C0DEVOPS" for h in history)  # by ID, never by name


def test_502_on_a_thread_reply_that_went_through_is_not_repeated(
    run: Run, slack: FakeSlack, sleeps: list[float]
) -> None:
    assert run("plan", "--plan", str(run.plan))[0] == 0
    parents = {m["channel"]: m["ts"] for m in slack.state.messages}
    slack.state.fail.append(("chat.postMessage", 502, {}, True))
    slack.state.noise_after_store = 1
    slack.state.page_cap = 1
    code, out = run("apply", "--status", "started", now="2026-12-08T10:01:00+00:00")
    assert code == 0
    replies = [m for m in slack.state.messages if m["thread_ts"] and m["bot_id"] == "B0HIE"]
    assert sorted(m["channel"] for m in replies) == ["C0DEVOPS", "C0INFRA", "C0PRODUCT"]
    looked = slack.state.calls("conversations.replies")
    assert looked and looked[0].body["ts"] == parents["C0DEVOPS"]
    assert all(str(x.body["include_all_metadata"]).lower() in ("1", "true") for x in looked)
    devops = next(d for d in out["delivered"] if d["audience"] == "slack:#devops")
    mine = next(m for m in replies if m["channel"] == "C0DEVOPS")
    assert devops["message_id"] == f"C0DEVOPS:{mine['ts']}"


def test_slack_down_exits_3_listing_what_was_and_was_not_sent(
    run: Run, slack: FakeSlack, sleeps: list[float]
) -> None:
    slack.state.fail.extend([("chat.postMessage", 500, {}, False)] * 4)
    code, out = run("plan", "--plan", str(run.plan))
    assert code == 3
    assert "NOT delivered: slack:#devops via slack" in run.last_err
    assert out["failed"] == [
        {
            "audience": "slack:#devops",
            "channel": "slack",
            "error": "Slack still failing for #devops after 3 retries (HTTP 500)",
        }
    ]
    assert [e["audience"] for e in out["delivered"]] == [
        "slack:#infrastructure",
        "slack:#product",
        "customer:EoE",
    ]
    assert len(sleeps) == 3
    ledger = (run.tmp / "ledger.jsonl").read_text()
    assert ledger.count('"stage": "announce"') == 3
    # the next run delivers only what is missing
    code, out = run("plan", "--plan", str(run.plan), now="2026-12-01T10:30:00+00:00")
    assert code == 0 and [d["audience"] for d in out["delivered"]] == ["slack:#devops"]


def test_injection_in_the_change_is_escaped(
    tmp_path: Path, slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run(tmp_path, slack, capsys, purpose="Fix <!channel> & <https://evil.example|login>")
    run("plan", "--plan", str(run.plan))
    post = slack.state.calls("chat.postMessage")[0].body
    blob = json.dumps(post)
    assert "<!channel>" not in blob and "<https://evil" not in blob
    assert "Fix &lt;!channel&gt; &amp; &lt;https://evil.example|login&gt;" in post["text"]


def test_token_never_shown(
    tmp_path: Path, slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run(tmp_path, slack, capsys, purpose=f"Rotate {TOKEN} now")
    run("plan", "--plan", str(run.plan))
    sent = json.dumps([r.body for r in slack.state.requests])
    assert TOKEN not in sent and "[MASKED]" in sent
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != run.change:  # the input itself holds it
            assert TOKEN not in path.read_text(errors="replace"), path
    assert TOKEN not in run.last_err


def test_wrong_channel_is_a_clear_error(run: Run, slack: FakeSlack, tmp_path: Path) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text("change_types: {planned_infra_update: {internal_channels: ['#nowhere']}}\n")
    code = main(
        [
            "--policy",
            str(pol),
            "--change",
            str(run.change),
            "--now",
            "2026-12-01T10:00:00+00:00",
            "--ledger",
            f"file:{tmp_path}/l.jsonl",
            "--outbox",
            str(tmp_path / "o"),
            "plan",
            "--plan",
            str(run.plan),
            "--terraform-report",
            str(tmp_path / "r.json"),
        ],
        env=run.env,
    )
    assert code == 3
    assert (
        "Slack refused the message for #nowhere: channel_not_found" in run.capsys.readouterr().out
    )


def test_a_5000_resource_plan_fits_slack_limits(
    tmp_path: Path, slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run(tmp_path, slack, capsys)
    run.plan = write(
        tmp_path / "big.json",
        plan(
            *[
                rc(f"module.m{i % 40}.aws_instance.node[{i}]", ["delete", "create"])
                for i in range(5000)
            ]
        ),
    )
    code, _ = run("plan", "--plan", str(run.plan))
    assert code == 0
    for call in slack.state.calls("chat.postMessage"):
        assert len(call.body["blocks"]) <= 50
        assert all(
            len(b["text"]["text"]) <= 3000 for b in call.body["blocks"] if b["type"] == "section"
        )
        assert len(call.body["text"]) <= 3000
        assert "…and 4975 more." in json.dumps(call.body, ensure_ascii=False)


@pytest.mark.parametrize(
    ("stage", "life", "state"),
    [
        ("reminder", "announced", "announced"),
        ("reminder", "rescheduled", "rescheduled"),
        ("overrun", "in progress", "in progress, overrunning"),
        ("apply_failed", "failed", "failed"),
        ("complete", "withdrawn", "withdrawn"),  # a rollback, then complete: never "done"
        ("apply_started", "mitigating", "mitigating"),  # an emergency's own word
    ],
)
def test_the_parent_shows_the_changes_state_not_the_notices_name(
    stage: str, life: str, state: str
) -> None:
    from hie_notify.channels import Outgoing
    from hie_notify.render import Rendered

    rendered = Rendered(stage, None, "subject", {})  # type: ignore[arg-type]
    outgoing = Outgoing("FFAPP-1", rendered, "k", "slack", (), lifecycle_state=life)
    assert outgoing.state == state
