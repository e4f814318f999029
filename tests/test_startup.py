"""Start-up: a command imports what it needs and nothing more (bench/startup.py measures the
time; these tests pin down the imports that made it slow, in a fresh interpreter each)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# Heavy modules and who may import them: never `--help` or `classify`.
HEAVY = ("holidays", "icalendar", "jinja2", "slack_sdk", "gitlab", "requests", "smtplib")

_PROBE = """
import contextlib, io, json, sys
from hie_notify.cli import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "stdout": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def _modules(tmp_path: Path, *argv: str) -> tuple[int, str, set[str]]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    data = json.loads(proc.stdout.splitlines()[-1])
    return data["code"], data["stdout"], set(data["modules"])


def _roots(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_help_imports_no_command(tmp_path: Path) -> None:
    code, out, modules = _modules(tmp_path, "--help")
    assert code == 0
    for name in ("classify", "gate", "plan", "watch", "receive"):
        assert name in out, f"--help does not list {name}"
    assert not {m for m in modules if m.startswith("hie_notify.commands.")}
    assert not _roots(modules) & {*HEAVY, "pydantic", "yaml"}


def test_a_command_help_imports_only_that_command(tmp_path: Path) -> None:
    code, out, modules = _modules(tmp_path, "gate", "--help")
    assert code == 0
    assert "--dotenv" in out, "the command's own options are in its help"
    commands = {m for m in modules if m.startswith("hie_notify.commands.")}
    assert commands == {"hie_notify.commands.gate"}


def test_classify_imports_no_channels_templates_calendar_or_clients(tmp_path: Path) -> None:
    code, out, modules = _modules(
        tmp_path, "--format", "json", "classify", "--plan", str(EXAMPLES / "plan.json")
    )
    assert code == 0
    assert json.loads(out)["change_type"] == "planned_infra_update"
    assert not _roots(modules) & set(HEAVY)
    assert not {m for m in modules if m.startswith(("hie_notify.channels", "hie_notify.render"))}
    assert {m for m in modules if m.startswith("hie_notify.commands.")} == {
        "hie_notify.commands.classify"
    }


def test_gate_loads_no_channel_or_service_client(tmp_path: Path) -> None:
    code, _, modules = _modules(
        tmp_path,
        "--policy",
        str(EXAMPLES / "policy.yaml"),
        "--change",
        str(EXAMPLES / "change.yaml"),
        "--now",
        "2026-12-08T19:05:00+00:00",
        "--format",
        "json",
        "gate",
        "--plan",
        str(EXAMPLES / "plan.json"),
        "--dotenv",
        str(tmp_path / "gate.env"),
    )
    assert code == 1  # nothing was announced: blocked
    assert "holidays" in _roots(modules), "the gate counts business days"
    assert "holidays.countries.united_kingdom" in modules
    countries = {m for m in modules if m.startswith("holidays.countries.")}
    assert countries == {"holidays.countries.united_kingdom"}, "only the policy's country"
    assert not _roots(modules) & {"icalendar", "slack_sdk", "gitlab", "requests", "smtplib"}
    assert not {m for m in modules if m.startswith("hie_notify.channels")}


@pytest.mark.parametrize("subdivision", ["ENG", "SCT"])
def test_policy_region_is_checked_without_loading_holidays(
    tmp_path: Path, subdivision: str
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"calendar: {{holidays: {{subdivision: {subdivision}}}}}\n")
    code, _, modules = _modules(
        tmp_path, "--policy", str(policy), "classify", "--plan", str(EXAMPLES / "plan.json")
    )
    assert code == 0
    assert "holidays" not in _roots(modules)


_HOLIDAYS_PROBE = """
import json, sys
from datetime import date, timedelta
from hie_notify.calendar import country_holidays

regions = json.loads(sys.argv[1])
ours = {}
for country, subdivision in regions:
    found = country_holidays(country, subdivision)
    for year in (2025, 2026, 2027):
        found.get(date(year, 1, 1))  # fills the year
    ours[f"{country}-{subdivision}"] = {d.isoformat(): n for d, n in sorted(found.items())}
countries_package = "holidays.countries" in sys.modules
import holidays
theirs = {}
for country, subdivision in regions:
    found = holidays.country_holidays(country, subdiv=subdivision, years=(2025, 2026, 2027))
    theirs[f"{country}-{subdivision}"] = {d.isoformat(): n for d, n in sorted(found.items())}
print(json.dumps({"ours": ours, "theirs": theirs, "package": countries_package}))
"""


def test_the_policy_country_alone_gives_the_library_holidays(tmp_path: Path) -> None:
    """`country_holidays` loads one country module, and finds the days (and names) the library's
    own `holidays.country_holidays` finds, for codes, aliases and subdivisions."""
    regions = [
        ["GB", "ENG"],
        ["GB", "SCT"],
        ["UK", "NIR"],
        ["US", "CA"],
        ["DE", "BY"],
        ["FR", None],
    ]
    proc = subprocess.run(
        [sys.executable, "-c", _HOLIDAYS_PROBE, json.dumps(regions)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    data = json.loads(proc.stdout.splitlines()[-1])
    assert data["package"] is False, "the package of every country was imported"
    assert data["ours"] == data["theirs"]
    assert data["ours"]["GB-SCT"]["2026-01-02"] == "New Year Holiday"  # Scotland's own
    assert "2026-01-02" not in data["ours"]["GB-ENG"]
