"""Yes/no environment variables (issue 23, item 4): one parser for every switch, and anything
that is neither on nor off refused naming the variable, never read as "off"."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hie_notify import switches
from hie_notify.cli import main
from hie_notify.errors import InputError
from tests.support.builders import rc
from tests.support.cli_flow import Flow

ON = ["1", "true", "yes", "on", "TRUE", "Yes", "ON", " on ", "\ttrue\n", "oN"]
OFF = ["0", "false", "no", "off", "FALSE", "No", "OFF", " off ", "\t0\n", "fAlSe"]
NODES = rc("module.eks.aws_eks_node_group.workers", ["update"])
NEITHER = ["2", "y", "n", "enabled", "tru", "truee", "on off", "-1", "yes!", "ja", "\u200btrue"]


@pytest.mark.parametrize("name", list(switches.SWITCHES))
@pytest.mark.parametrize("raw", ON)
def test_every_switch_reads_on(name: str, raw: str) -> None:
    assert switches.switch({name: raw}, name) is True


@pytest.mark.parametrize("name", list(switches.SWITCHES))
@pytest.mark.parametrize("raw", OFF)
def test_every_switch_reads_off(name: str, raw: str) -> None:
    assert switches.switch({name: raw}, name, default=True) is False


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_unset_or_empty_is_the_default(raw: str | None) -> None:
    env = {} if raw is None else {"HIE_DRY_RUN": raw}
    assert switches.switch(env, "HIE_DRY_RUN") is False
    assert switches.switch(env, "HIE_DRY_RUN", default=True) is True


@pytest.mark.parametrize("name", list(switches.SWITCHES))
@pytest.mark.parametrize("raw", NEITHER)
def test_anything_else_is_refused_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(InputError) as caught:
        switches.switch({name: raw}, name)
    (line,) = caught.value.problems
    assert line.startswith(f"{name}: expected 1, true, yes, on (on) or 0, false, no, off (off)")
    assert line.endswith(f"got {raw!r}")


def test_check_names_every_bad_switch_at_once() -> None:
    env = {"HIE_DRY_RUN": "enabled", "HIE_PAGES": "sure", "HIE_LOCAL_POLICY": "0", "X": "?"}
    with pytest.raises(InputError) as caught:
        switches.check(env)
    assert [p.split(":")[0] for p in caught.value.problems] == ["HIE_DRY_RUN", "HIE_PAGES"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12))
def test_a_switch_is_on_off_or_refused_never_guessed(raw: str) -> None:
    word = raw.strip().lower()
    try:
        value = switches.parse("HIE_DRY_RUN", raw)
    except InputError as exc:
        assert word and word not in (*switches.TRUE, *switches.FALSE)
        assert exc.problems[0].startswith("HIE_DRY_RUN: expected ")
    else:
        assert value is (word in switches.TRUE)
        assert word in (*switches.TRUE, *switches.FALSE, "")


# The command line: HIE_DRY_RUN=on used to be read as "off", and the notices really went out.


def _sent(flow: Flow) -> list[str]:
    return flow.outbox("announce")


@pytest.mark.parametrize("raw", ["on", "ON", " Yes ", "true"])
def test_hie_dry_run_on_sends_and_records_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: str
) -> None:
    flow = Flow(tmp_path, capsys, NODES, env={"HIE_DRY_RUN": raw})
    code, out = flow("plan", "--plan", str(flow.plan))
    assert code == 0, flow.err
    assert out["delivered"] == [] and out["dry_run"]
    assert _sent(flow) == [] and not (tmp_path / "ledger.jsonl").exists()


@pytest.mark.parametrize("raw", ["off", "No", " 0 "])
def test_hie_dry_run_off_sends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: str
) -> None:
    flow = Flow(tmp_path, capsys, NODES, env={"HIE_DRY_RUN": raw})
    code, out = flow("plan", "--plan", str(flow.plan))
    assert code == 0, flow.err
    assert out["delivered"] and _sent(flow)


@pytest.mark.parametrize(
    ("name", "raw"),
    [("HIE_DRY_RUN", "enabled"), ("HIE_DRY_RUN", "maybe"), ("HIE_PAGES", "sure")],
)
def test_a_bad_switch_stops_every_command_before_anything_happens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, raw: str
) -> None:
    flow = Flow(tmp_path, capsys, NODES, env={name: raw})
    code, _ = flow("plan", "--plan", str(flow.plan))
    assert code == 2
    assert (
        f"  {name}: expected 1, true, yes, on (on) or 0, false, no, off (off), in any case, "
        f"got {raw!r}" in flow.err
    )
    assert _sent(flow) == [] and not (tmp_path / "ledger.jsonl").exists()
    assert main(["classify", "--plan", str(flow.plan)], env={name: raw}) == 2


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.one_of(st.sampled_from([*ON, *OFF, *NEITHER]), st.text(max_size=8)))
def test_hie_dry_run_never_sends_unless_it_says_off(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str], raw: str
) -> None:
    """Whatever a variable holds, the notices go out only when it spells "off" (or is empty):
    on is a dry run, anything else is exit 2 with nothing sent or recorded."""
    tmp = tmp_path_factory.mktemp("dry")
    flow = Flow(tmp, capsys, NODES, env={"HIE_DRY_RUN": raw})
    code, _ = flow("plan", "--plan", str(flow.plan))
    word = raw.strip().lower()
    if word in switches.FALSE or not word:
        assert code == 0 and _sent(flow), flow.err
    elif word in switches.TRUE:
        assert code == 0 and not _sent(flow), flow.err
    else:
        assert code == 2 and "HIE_DRY_RUN: expected" in flow.err
        assert not _sent(flow) and not (tmp / "ledger.jsonl").exists()


def test_gitlab_ci_in_any_case_is_gitlab_ci() -> None:
    from hie_notify.switches import in_gitlab_ci

    assert in_gitlab_ci({"GITLAB_CI": "TRUE"}) and in_gitlab_ci({"GITLAB_CI": "true"})
    assert not in_gitlab_ci({}) and not in_gitlab_ci({"GITLAB_CI": "false"})
