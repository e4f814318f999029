"""Progress on long work (issue 23, item 14): on stderr only, a line per step in a CI log, one
live line on a terminal, throttled counts, waits that say how long and why; stdout stays the
command's output (one JSON object under --format json)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from hie_notify import progress
from hie_notify.cli import main
from hie_notify.masking import Masker
from tests.support.builders import rc
from tests.support.cli_flow import Flow
from tests.support.integration_fakes import PAGE, SP_KEY, StatuspageFake, integration_policy

NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_log_gets_one_line_per_step_masked() -> None:
    out = io.StringIO()
    shown = progress.Progress(out, live=False, mask=Masker(["tok-SECRET-123"]))
    shown.step("report: reading   the register\nat tok-SECRET-123")
    shown.wait(11, "Statuspage: search the page's incidents (HTTP 429)")
    shown.wait(0.5, "Teams webhook: ConnectionError")
    shown.wait(300, "HCP Terraform")
    shown.finish()
    assert out.getvalue().splitlines() == [
        "hie-notify: report: reading the register at [MASKED]",
        "hie-notify: waiting 11 s before trying again: Statuspage: search the page's incidents "
        "(HTTP 429)",
        "hie-notify: waiting 0.5 s before trying again: Teams webhook: ConnectionError",
        "hie-notify: waiting 5 min before trying again: HCP Terraform",
    ]


@settings(max_examples=100, deadline=None)
@given(total=st.integers(min_value=1, max_value=100_000))
def test_a_count_is_logged_at_most_four_times_whatever_the_total(total: int) -> None:
    out = io.StringIO()
    shown = progress.Progress(out, live=False)
    for done in range(1, min(total, 2_000) + 1):
        shown.count("remind: open changes checked", done, total)
    shown.count("remind: open changes checked", total, total)
    lines = out.getvalue().splitlines()
    assert 1 <= len(lines) <= 4
    assert lines[-1] == f"hie-notify: remind: open changes checked: {total:,} of {total:,}"


def test_a_terminal_gets_one_live_line_throttled_and_cleared() -> None:
    out, clock = Terminal(), Clock()
    shown = progress.Progress(out, live=True, clock=clock)
    shown.step("report: reading the change register")
    for done in range(1, 1001):
        clock.now += 0.001  # a thousand items in one second: about ten updates, not a thousand
        shown.count("report: changes", done, 1000)
    shown.finish()
    text = out.getvalue()
    assert "\n" not in text  # never a new line: the same line rewritten
    updates = text.split("\r\x1b[2K")[1:]
    assert updates[0] == "report: reading the change register"
    assert 8 <= len(updates) - 2 <= 12  # throttled to one per REFRESH seconds
    assert updates[-2] == "report: changes: 1,000 of 1,000"  # the last count always shows
    assert updates[-1] == ""  # cleared at the end


def test_live_on_a_terminal_lines_in_ci_and_off_until_started() -> None:
    assert progress.current().stream is None  # nothing printed unless a command starts it
    assert progress.start(Terminal(), {}, str).live is True
    assert progress.start(Terminal(), {"CI": "true"}, str).live is False
    assert progress.start(io.StringIO(), {}, str).live is False
    progress.stop()
    assert progress.current().stream is None


def test_report_shows_its_steps_on_stderr_and_stdout_is_only_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.report_seed import NOW, seed_register, seeds

    register = tmp_path / "register.sqlite3"
    seed_register(register, seeds(weeks=2))
    args = ["--register", f"sqlite:{register}", "--now", NOW.isoformat()]
    args += ["report", "--from", "2026-10-01", "--to", "2026-12-31", "--format", "json"]
    assert main(args, env={}) == 0
    out, err = capsys.readouterr()
    json.loads(out)  # nothing but the report on stdout
    steps = err.splitlines()
    assert steps[0].startswith("hie-notify: report: reading the change register (")
    assert steps[1].startswith("hie-notify: report: ") and "changes read" in steps[1]
    assert steps[2] == "hie-notify: report: writing the JSON"
    assert len(steps) == 3


def test_a_wait_on_a_rate_limited_service_says_how_long_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], waits: list[float]
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        page = StatuspageFake()
        page.register(rsps)
        page.fail("GET", "/incidents", 429, {"Retry-After": "11"})
        policy = integration_policy(
            tmp_path, statuspage={"page_id": PAGE, "components": {"EoE": ["y6ssccsqgy8s"]}}
        )
        f = Flow(tmp_path, capsys, NODES, env={"STATUSPAGE_API_KEY": SP_KEY}, policy=policy)
        code, out = f("plan", "--plan", str(f.plan))
    assert code == 0 and out["delivered"]
    assert waits == [11.0]
    assert (
        "hie-notify: waiting 11 s before trying again: Statuspage: search the page's "
        "incidents (HTTP 429)"
    ) in f.err.splitlines()


def test_remind_says_which_change_it_is_reminding_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, NODES)
    assert flow("plan", "--plan", str(flow.plan))[0] == 0
    code, out = flow("remind", now="2026-12-07T19:00:00+00:00")
    assert code == 0 and out["sent"]
    steps = [line for line in flow.err.splitlines() if line.startswith("hie-notify: remind:")]
    assert steps[0].startswith("hie-notify: remind: reading the open changes (")
    assert "hie-notify: remind: open changes checked: 1 of 1" in steps
    assert any(s.startswith("hie-notify: remind: FFAPP-4458: ") for s in steps)


def test_the_service_prints_no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    started: list[Any] = []
    monkeypatch.setattr(progress, "start", lambda *a: started.append(a))
    monkeypatch.setattr("hie_notify.commands.receive.run", lambda args, options: 0, raising=True)
    monkeypatch.setattr(sys, "argv", ["hie-notify"])
    assert main(["receive"], env={}) == 0
    assert started == []
