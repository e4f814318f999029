"""One way to ask for a format (issue 23, item 10): `--format` means the same before and after
the command name; `report` takes html, csv or json in either place; `--help` states the true
defaults; under `--format json` an error is a JSON object on stdout as well as text on stderr;
`calendar --format json` has the record fields the README documents."""

from __future__ import annotations

import json
import re
from importlib import import_module
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hie_notify.cli import build_parser, main
from tests.support.paths import EXAMPLES, ROOT

PLANNED = "2026-12-02T10:00:00+00:00"
LATER = "2026-12-20T10:00:00+00:00"
RANGE = ["--from", "2026-12-01", "--to", "2026-12-31"]


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose ledger and register hold the example change, announced."""
    tmp = tmp_path_factory.mktemp("formats")
    code = main(
        [
            *_common(tmp),
            *("--now", PLANNED, "plan", "--plan", str(EXAMPLES / "plan.json")),
            *("--terraform-report", str(tmp / "tf.json")),
        ],
        env={},
    )
    assert code == 0
    return tmp


def _common(tmp: Path) -> list[str]:
    return [
        "--policy",
        str(EXAMPLES / "policy.yaml"),
        "--change",
        str(EXAMPLES / "change.yaml"),
        "--ledger",
        f"file:{tmp}/ledger.jsonl",
        "--outbox",
        str(tmp / "outbox"),
    ]


def _run(
    capsys: pytest.CaptureFixture[str], tmp: Path, argv: list[str], now: str = LATER
) -> tuple[int, str, str]:
    code = main([*_common(tmp), "--now", now, *argv], env={})
    out = capsys.readouterr()
    return code, out.out, out.err


CASES = [
    (["report", *RANGE], "html"),
    (["report", *RANGE], "csv"),
    (["report", *RANGE], "json"),
    (["calendar", *RANGE], "text"),
    (["calendar", *RANGE], "json"),
    (["calendar", *RANGE], "ics"),
    (["classify", "--plan", str(EXAMPLES / "plan.json")], "json"),
    (["postmortem"], "json"),
]


@pytest.mark.parametrize(("argv", "fmt"), CASES, ids=[f"{c[0][0]}-{c[1]}" for c in CASES])
def test_format_means_the_same_before_and_after_the_command(
    registered: Path, capsys: pytest.CaptureFixture[str], argv: list[str], fmt: str
) -> None:
    before = _run(capsys, registered, ["--format", fmt, *argv])
    after = _run(capsys, registered, [*argv, "--format", fmt])
    assert before[0] == 0, before[2]
    assert before == after


@pytest.mark.parametrize(
    ("argv", "default"),
    [(["report", *RANGE], "html"), (["calendar", *RANGE], "text"), (["postmortem"], "text")],
)
def test_no_format_is_the_default_the_help_states(
    registered: Path, capsys: pytest.CaptureFixture[str], argv: list[str], default: str
) -> None:
    assert _run(capsys, registered, argv) == _run(capsys, registered, [*argv, "--format", default])
    parser = build_parser()
    command = parser._subparsers._group_actions[0].choices[argv[0]]  # type: ignore[union-attr]
    assert f"(default {default})" in " ".join(command.format_help().split())


@pytest.mark.parametrize(
    ("argv", "refused"),
    [
        (
            ["--format", "text", "report", *RANGE],
            "argument --format: report writes html, csv or json, not 'text'",
        ),
        (["report", *RANGE, "--format", "text"], "argument --format: invalid choice: 'text'"),
        (
            ["--format", "csv", "classify", "--plan", "p.json"],
            "classify writes text or json, not 'csv'",
        ),
        (["--format", "ics", "postmortem"], "postmortem writes text or json, not 'ics'"),
    ],
)
def test_a_format_the_command_does_not_write_is_exit_2_in_either_place(
    registered: Path, capsys: pytest.CaptureFixture[str], argv: list[str], refused: str
) -> None:
    code, out, err = _run(capsys, registered, argv)
    assert code == 2 and out == "" and refused in err


def test_every_default_the_help_states_is_the_true_one() -> None:
    """Each `(default X)` in a command's help is the value the option really takes."""
    parser = build_parser()
    top = " ".join(a.help or "" for a in parser._actions)
    assert "text or json (default text); report: html, csv or json (default html)" in top
    from hie_notify.ledger import open_ledger
    from hie_notify.options import Options
    from hie_notify.register.store import default_uri

    assert "default file:.hie-notify/ledger.jsonl" in top
    assert open_ledger(None, {}).description == "file:.hie-notify/ledger.jsonl"
    assert "default hie-notify-outbox" in top and str(Options().outbox) == "hie-notify-outbox"
    assert "default register.sqlite3 beside a file ledger" in top
    assert default_uri(None) == "sqlite:.hie-notify/register.sqlite3"
    checked = 0
    for name, command in parser._subparsers._group_actions[0].choices.items():  # type: ignore[union-attr]
        command.format_help()  # loads the command's own options
        for action in command._actions:
            said = re.search(r"\(default ([^\s),;:]+)\)", " ".join((action.help or "").split()))
            if not said:
                continue
            if action.dest == "format":
                from hie_notify.cli import output_formats

                true = output_formats(import_module(f"hie_notify.commands.{name}"))[0]
            elif action.default in (None, "==SUPPRESS=="):
                continue
            else:
                true = str(action.default)
            help_text = command._get_formatter()._expand_help(action)
            said = re.search(r"\(default ([^\s),;:]+)\)", " ".join(help_text.split()))
            assert said
            assert said.group(1) == true, f"{name} {action.option_strings}: {action.help}"
            checked += 1
    assert checked > 20


# -- errors under --format json ----------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_an_input_error_is_a_json_object_on_stdout_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    fmt = ["--format", "json"]
    argv = ["--change", str(tmp_path / "nope.yaml")]
    tail = ["classify", "--plan", str(EXAMPLES / "plan.json")]
    argv += [*fmt, *tail] if where == "before" else [*tail, *fmt]
    code = main(argv, env={})
    out = capsys.readouterr()
    assert code == 2
    assert json.loads(out.out) == {
        "error": f"invalid input: {tmp_path}/nope.yaml: file not found",
        "exit_code": 2,
        "problems": [f"{tmp_path}/nope.yaml: file not found"],
    }
    assert f"  {tmp_path}/nope.yaml: file not found" in out.err


def test_several_problems_are_all_in_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("organisation: 1\norganisation: 2\nsupport: x\nsupport: y\n")
    code = main(["--format", "json", "--policy", str(policy), "validate"], env={})
    data = json.loads(capsys.readouterr().out)
    assert code == 2 and data["exit_code"] == 2 and len(data["problems"]) == 2
    assert data["error"] == f"invalid input: {data['problems'][0]} (and 1 more)"


def test_a_usage_error_is_a_json_object_on_stdout_too(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--format", "json", "report", "--from", "2026-12-01"], env={})
    out = capsys.readouterr()
    assert code == 2
    assert json.loads(out.out) == {
        "error": "usage: the following arguments are required: --to",
        "exit_code": 2,
    }
    assert "hie-notify report: error: the following arguments are required: --to" in out.err


def test_an_outside_service_and_an_unexpected_error_are_json_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hie_notify.errors import ServiceError

    secret = "xoxb-123456789012-abcdefghijklmnop"

    def fails(*_args: object) -> int:
        raise ServiceError(f"Slack still failing with {secret}")

    monkeypatch.setattr("hie_notify.commands.classify.run", fails)
    code = main(
        ["classify", "--plan", "p.json", "--format", "json"], env={"SLACK_BOT_TOKEN": secret}
    )
    out = capsys.readouterr()
    assert code == 3
    data = json.loads(out.out)
    assert data["exit_code"] == 3 and data["error"].startswith("error: Slack still failing with ")
    assert secret not in out.out + out.err

    def breaks(*_args: object) -> int:
        raise KeyError("nothing")

    monkeypatch.setattr("hie_notify.commands.classify.run", breaks)
    code = main(["--format", "json", "classify", "--plan", "p.json"], env={})
    data = json.loads(capsys.readouterr().out)
    assert code == 2 and data["exit_code"] == 2
    assert data["error"].startswith("unexpected error: KeyError: 'nothing' (in test_formats.py:")


def test_text_errors_print_nothing_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--change", str(tmp_path / "nope.yaml"), "classify", "--plan", "p"], env={}) == 2
    assert capsys.readouterr().out == ""


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    now=st.text(max_size=30),
    before=st.booleans(),
    command=st.sampled_from(["classify", "validate", "calendar", "earliest"]),
)
def test_under_json_every_failure_is_one_json_object_with_its_exit_code(
    capsys: pytest.CaptureFixture[str], now: str, before: bool, command: str
) -> None:
    """Whatever --now holds (a bad one is exit 2), stdout is exactly one JSON object whose
    `exit_code` is the process's exit code, or the command's own JSON when it succeeds."""
    argv = [f"--now={now}"]
    tail = [command] + (
        ["--plan", str(EXAMPLES / "plan.json")] if command in ("classify", "earliest") else []
    )
    argv += ["--format", "json", *tail] if before else [*tail, "--format", "json"]
    code = main(
        [
            "--policy",
            str(EXAMPLES / "policy.yaml"),
            "--change",
            str(EXAMPLES / "change.yaml"),
            "--register",
            "none",
            *argv,
        ],
        env={},
    )
    data = json.loads(capsys.readouterr().out)
    if code != 0:
        assert data["exit_code"] == code and data["error"]
    else:
        assert "exit_code" not in data


# -- calendar --format json: the record fields docs/register.md documents ---------------------


def test_calendar_json_has_every_field_the_docs_document(
    registered: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register = ROOT.joinpath("docs/register.md").read_text()
    paragraph = register[register.index("**A record**") :]
    paragraph = paragraph[: paragraph.index("and its entries")]
    documented = set(re.findall(r"`([a-z_]+)`", paragraph[paragraph.index("`v`") :]))
    documented -= {"announced", "done", "failed", "cancelled", "add", "change", "destroy"}
    assert {"change_id", "audiences", "categories", "summary", "fingerprint", "updated_at"} <= (
        documented
    )
    _, out, _ = _run(capsys, registered, ["--format", "json", "calendar", *RANGE])
    (change,) = json.loads(out)["changes"]
    assert documented <= set(change), documented - set(change)
    assert change["id"] == change["change_id"] == "FFAPP-4458"
    assert change["uid"] == "change-FFAPP-4458@hie-notify"


def test_a_command_that_already_wrote_its_json_is_not_followed_by_a_second_object(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`remind` and `digest` print their report, then exit 3 when a channel kept failing: stdout
    is still one JSON object, and it says the error and the exit code."""
    from hie_notify.register.jobs import RemindReport

    report = RemindReport()
    report.failed.append("FFAPP-4458: slack: still failing")
    monkeypatch.setattr("hie_notify.commands.remind.remind", lambda options: report)
    code = main(["--format", "json", "--now", LATER, "remind"], env={})
    out = capsys.readouterr()
    data = json.loads(out.out)  # exactly one object
    assert code == 3
    assert data["exit_code"] == 3 and data["failed"] == ["FFAPP-4458: slack: still failing"]
    assert data["error"] == "error: 1 change(s) not fully reminded; a re-run sends the rest"
