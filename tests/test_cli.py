"""The command line: JSON on stdout, human text on stderr, exit codes as DESIGN.md says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hie_notify.cli import main
from tests.support.builders import plan, rc, write


@pytest.fixture
def iam_plan(tmp_path: Path) -> Path:
    return write(
        tmp_path / "plan.json",
        plan(rc("aws_iam_role.deploy", ["update"], before={"name": "a"}, after={"name": "b"})),
    )


def test_classify_json_on_stdout_text_on_stderr(
    iam_plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--format", "json", "classify", "--plan", str(iam_plan)]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["change_type"] == "iam_permission_change"
    assert out["resources"] == [
        {
            "address": "aws_iam_role.deploy",
            "type": "aws_iam_role",
            "action": "update",
            "actions": ["update"],
            "categories": ["iam_permission_change"],
            "service_impacting": False,
        }
    ]
    assert "Change type: iam_permission_change" in captured.err


def test_global_options_after_the_command(
    iam_plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["classify", "--plan", str(iam_plan), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["change_type"] == "iam_permission_change"


def test_text_format_goes_to_stdout(iam_plan: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "--plan", str(iam_plan)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("Change type: iam_permission_change (IAM Permission Change)")
    assert captured.err == ""


def test_options_from_environment(
    tmp_path: Path, iam_plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change = tmp_path / "change.yaml"
    change.write_text("id: FFAPP-1\ntype: scheduled_maintenance\npurpose: Patch\n")
    env = {"HIE_CHANGE": str(change)}
    assert main(["--format", "json", "classify", "--plan", str(iam_plan)], env=env) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["change_type"] == "scheduled_maintenance"
    assert out["declared_type"] == "scheduled_maintenance"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["classify", "--plan", "{missing}"], "file not found"),
        (["--policy", "{bad_policy}", "classify", "--plan", "{plan}"], "colour: unknown key"),
        (["--change", "{bad_change}", "classify", "--plan", "{plan}"], "id: expected a Jira key"),
        (["--now", "tomorrow", "classify", "--plan", "{plan}"], "--now / HIE_NOW: expected"),
        (["--now", "2026-12-01T10:00:00", "classify", "--plan", "{plan}"], "has no offset"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(
    tmp_path: Path,
    iam_plan: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    expected: str,
) -> None:
    (tmp_path / "policy.yaml").write_text("colour: blue\n")
    (tmp_path / "change.yaml").write_text("id: nope\npurpose: x\n")
    names = {
        "missing": str(tmp_path / "missing.json"),
        "plan": str(iam_plan),
        "bad_policy": str(tmp_path / "policy.yaml"),
        "bad_change": str(tmp_path / "change.yaml"),
    }
    assert main([a.format(**names) for a in args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert expected in captured.err


def test_classify_does_not_import_network_clients(iam_plan: Path) -> None:
    code = (
        "import sys\n"
        "from hie_notify.cli import main\n"
        f"rc = main(['classify', '--plan', {str(iam_plan)!r}])\n"
        "loaded = sorted(m for m in ('slack_sdk', 'gitlab', 'requests') if m in sys.modules)\n"
        "print('LOADED', loaded)\n"
        "raise SystemExit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "LOADED []" in done.stdout


def test_python_dash_m_and_console_script(iam_plan: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hie_notify",
            "--format",
            "json",
            "classify",
            "--plan",
            str(iam_plan),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["change_type"] == "iam_permission_change"
    script = Path(sys.executable).parent / "hie-notify"
    assert script.exists()
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert done.stdout.startswith("hie-notify ")
