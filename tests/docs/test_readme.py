"""The README's commands, run as written: the Quick start prints what the README shows, line for
line, and `.ci/run` installs and tests exactly as the Quick start says. (The docs pages' commands,
the worked example among them, are run by tests/docs/test_docs.py.)"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from hie_notify.cli import main
from tests.support.paths import EXAMPLES, ROOT
from tests.support.readme import _block, _sh_lines


def _readme_command(starts: str) -> str:
    (line,) = [line for line in _sh_lines() if line.startswith(starts)]
    return line


def test_the_quick_start_announces_cleanly_as_the_readme_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    os.symlink(EXAMPLES, tmp_path / "examples")
    (command,) = [line for line in _sh_lines() if line.startswith("hie-notify --policy ")]
    args = shlex.split(command)[1:]
    assert main(args, env={}) == 0
    out = capsys.readouterr().out
    assert out.rstrip("\n").split("\n") == _block(re.compile(r"^FFAPP-4458: .* notices$"))
    assert "WARNING" not in out  # the first thing a newcomer sees is a clean announcement
    # "Run it again and nothing is sent twice."
    assert main(args, env={}) == 0
    again = capsys.readouterr().out
    assert "  already   customer:EoE" in again and "  sent " not in again
    # "at the window the gate lets the apply through"
    now = args.index("--now") + 1
    gate = [*args[:now], "2026-12-08T19:05:00+00:00", "gate", "--plan", "examples/plan.json"]
    assert main(gate, env={}) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.startswith("ALLOWED")


def test_the_quick_start_puts_hie_notify_on_path_before_using_the_bare_name() -> None:
    lines = _sh_lines()
    activate = lines.index(". .venv/bin/activate")
    assert lines[activate - 1] == _readme_command("python3 -m venv .venv")
    assert min(i for i, line in enumerate(lines) if line.startswith("hie-notify ")) > activate


def test_ci_installs_and_tests_exactly_as_the_readme_says_before_adding_anything() -> None:
    """So CI can never pass where the README fails: `.ci/run` starts from nothing a newcomer
    lacks, runs the README's install and test commands verbatim, and only then adds tools."""
    from tests.support import tools

    install = _readme_command("python3 -m venv .venv")
    test = _readme_command(".venv/bin/python -m pytest")
    assert install == "python3 -m venv .venv && .venv/bin/pip install -e '.[test]'"
    script = [line.strip() for line in ROOT.joinpath(".ci/run").read_text().splitlines()]
    assert script.count(install) == 1 and script.count(test) == 1
    first, then = script.index(install), script.index(test)
    assert first < then
    fresh = " ".join(script[:first])
    assert "rm -rf .venv tests/ci/node_modules" in fresh  # a fresh venv, no npm tools
    unset = next(line for line in script[:first] if line.startswith("unset "))
    assert set(unset.split()[1:]) >= set(tools.VARIABLES)  # no tool variable a newcomer lacks
    commands = [line for line in script[:then] if line and not line.startswith(("#", "echo"))]
    added = [
        line
        for line in commands
        if line != install and re.search(r"pip |npm |apt-get |export (?!HIE_PLANS_DIR)", line)
    ]
    assert added == [], "installed or exported before the README's run"
    # Then the tools, and every test that needs one, where a missing tool fails.
    after = script[then + 1 :]
    assert "export HIE_REQUIRE_TOOLS=1" in after
    assert any(re.search(r"-m pytest .*-m tools", line) for line in after)


def _run_task_section() -> str:
    """The run task guide (docs/run-task.md), up to its third step."""
    text = ROOT.joinpath("docs", "run-task.md").read_text()
    return text[: text.index("**3. ")]


def test_the_run_task_service_installs_from_the_release_never_a_public_index_by_name() -> None:
    """On pypi.org `hie-notify` is not ours: the service runs the release's image, or pip
    installs from the hie-notify project's package registry, named by --index-url."""
    section = _run_task_section()
    blocks = [m.group(1) for m in re.finditer(r"^```sh\n(.*?)^```$", section, re.S | re.M)]
    docker = next(b for b in blocks if b.startswith("docker run"))
    words = shlex.split(docker.replace("\\\n", " ").splitlines()[0])
    image = next(w for w in words if re.fullmatch(r"[\w.-]+(:\d+)?/[\w./-]+:[\w.]+", w))
    assert image == "registry.gitlab.example.org/platform/hie-notify:0.1.0"
    assert words[words.index(image) + 1 :] == ["hie-notify", "receive"]
    installs = [
        shlex.split(line)
        for block in blocks
        for line in block.splitlines()
        if re.search(r"\bpip3? install\b", line)
    ]
    assert installs, "the section shows no install from the package registry"
    for words in installs:
        tail = words[next(i for i, w in enumerate(words) if w == "install") :]
        assert "--index-url" in tail, f"pip install without --index-url: {words}"
        index = tail[tail.index("--index-url") + 1]
        assert re.fullmatch(
            r"https://[^@/]+@gitlab\.example\.org/api/v4/projects/[^/]+/packages/pypi/simple",
            index,
        ), index
        assert "pypi.org" not in index and "--extra-index-url" not in tail
        assert "hie-notify==0.1.0" in tail
