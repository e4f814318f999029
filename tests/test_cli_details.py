"""The command line as a user meets it: the same plan options everywhere, previews by command
name, a dry run that writes nothing, windows that cannot be announced."""

from __future__ import annotations

from pathlib import Path

import pytest

from hie_notify.cli import main
from tests.support.builders import rc
from tests.support.cli_flow import Flow

DB = rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["storage_encrypted"]])


@pytest.fixture
def flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Flow:
    return Flow(tmp_path, capsys, DB)


def test_cancel_takes_the_plan_options_the_other_stages_take(flow: Flow) -> None:
    flow("plan", "--plan", str(flow.plan))
    code, out = flow("cancel", "--plan", str(flow.plan), now="2026-12-02T10:00:00+00:00")
    assert code == 0, flow.err
    assert "customer:EoE" in {d["audience"] for d in out["delivered"]}


def test_preview_takes_the_command_names(flow: Flow) -> None:
    flow("plan", "--plan", str(flow.plan))
    code, by_command = flow("preview", "apply", "--status", "started")
    assert code == 0 and by_command["stage"] == "apply_started"
    code, by_stage = flow("preview", "apply_started")
    assert by_command["messages"] == by_stage["messages"]
    code, out = flow("preview", "cancel")
    assert code == 0 and out["stage"] == "cancelled"
    code, _ = flow("preview", "rollback")
    assert code == 2 and "preview rollback needs --status" in flow.err


def test_preview_help_lists_the_stages(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["preview", "--help"], env={})
    text = capsys.readouterr().out
    for name in ("apply --status", "rollback_failed", "cancelled", "complete"):
        assert name in text


def test_a_dry_run_writes_nothing_and_says_what_it_would_send(flow: Flow, tmp_path: Path) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out = flow("--dry-run", "plan", "--plan", str(flow.plan))
    assert code == 0, flow.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert out["delivered"] == []
    routes = {d["audience"]: d["via"] for d in out["dry_run"]}
    assert routes["slack:#devops"] == "outbox (for slack)"
    assert "would be written to the outbox instead" in flow.err
    assert "written to the outbox instead" not in flow.err.replace("would be written", "")


@pytest.mark.parametrize(
    ("start", "end", "declared", "code", "says"),
    [
        # ended: never announced
        (
            "2026-11-30T19:00:00+00:00",
            "2026-11-30T21:00:00+00:00",
            {},
            2,
            "window.end: the window ended",
        ),
        # under way: only an emergency
        (
            "2026-12-01T09:00:00+00:00",
            "2026-12-01T12:00:00+00:00",
            {},
            2,
            "window.start: the window started",
        ),
        (
            "2026-12-01T09:00:00+00:00",
            "2026-12-01T12:00:00+00:00",
            {"type": "emergency_fix", "justification": "Certificate expired at 08:55"},
            0,
            "",
        ),
    ],
)
def test_windows_that_cannot_be_announced(
    flow: Flow, start: str, end: str, declared: dict[str, str], code: int, says: str
) -> None:
    flow.write_change(window={"start": start, "end": end}, **declared)
    got, out = flow("plan", "--plan", str(flow.plan))
    assert got == code, flow.err
    assert says in flow.err
    if code == 2:
        assert not (flow.tmp / "ledger.jsonl").exists() and not (flow.tmp / "outbox").exists()
    else:
        assert "stakeholders:critical" in {d["audience"] for d in out["delivered"]}


def test_validate_names_the_variable_each_feature_needs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate"], env={"SLACK_BOT_TOKEN": "xoxb-1-2-abcdefghijkl"}) == 0
    text = capsys.readouterr().out
    assert "Slack: uses SLACK_BOT_TOKEN" in text
    assert "email: not configured: set SMTP_HOST" in text
    assert "HCP Terraform: not configured: set TF_API_TOKEN or TFE_TOKEN" in text


def test_a_re_run_at_the_window_announces_nothing_and_is_not_refused(flow: Flow) -> None:
    code, _ = flow("plan", "--plan", str(flow.plan), now="2026-12-01T10:00:00+00:00")
    assert code == 0
    # the default branch's pipeline runs plan again at the window: nothing new goes out
    code, out = flow("plan", "--plan", str(flow.plan), now="2026-12-08T19:05:00+00:00")
    assert code == 0 and out["delivered"] == [] and out["already_delivered"]
