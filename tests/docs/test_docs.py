"""The docs site (docs/, mkdocs.yml): every command its pages show is run as written, in order,
one temporary folder per page, and where a block shows the output that output must be what the
command prints; every page is in the nav; `mkdocs build --strict` passes (a `tools` test).

A command block is a ```sh block, or any block whose first line starts with `$ ` (the command,
then what it prints). A block that cannot run here says so on the line before it, in a comment
the site does not show: `<!-- docs-test: not run: WHY -->`; its test is skipped with that reason.
`<!-- docs-test: exit N -->` names a `$` block's exit code when it is not 0 (the gate's 1).
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from hie_notify.cli import main
from tests.support.paths import EXAMPLES, ROOT
from tests.support.readme import _sh_lines

DOCS = ROOT / "docs"
FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```$", re.S | re.M)
MARKER = re.compile(r"^<!-- docs-test: (.+?) -->$")
# A command without --now runs at this time (tests never read the machine clock).
CLOCK = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)


def _quick_start_plan() -> list[str]:
    (line,) = [line for line in _sh_lines() if line.startswith("hie-notify --policy ")]
    return shlex.split(line)[1:]


# What a page's commands stand on, run before its first block: the README's Quick start
# announcement, so that the register has the example change.
SETUP = {"register.md": _quick_start_plan, "report.md": _quick_start_plan}


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    lines: list[str]
    marker: str

    @property
    def is_command(self) -> bool:
        return self.lang == "sh" or self.lines[0].startswith("$ ")

    @property
    def not_run(self) -> str:
        if not self.marker.startswith("not run:"):
            return ""
        return self.marker.removeprefix("not run:").strip()

    @property
    def exit_code(self) -> int:
        found = re.fullmatch(r"exit (\d)", self.marker)
        return int(found.group(1)) if found else 0


def pages() -> list[str]:
    return sorted(path.name for path in DOCS.glob("*.md"))


def blocks(page: str) -> list[Block]:
    text = DOCS.joinpath(page).read_text()
    found = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.match(before)
        found.append(
            Block(
                page,
                text.count("\n", 0, m.start()) + 1,
                m.group(1),
                m.group(2).rstrip("\n").split("\n"),
                marker.group(1) if marker else "",
            )
        )
    return found


def commands(lines: list[str]) -> list[str]:
    """A sh block's commands: comments dropped, `\\` continuations joined."""
    joined: list[str] = []
    carry = ""
    for line in lines:
        if carry:
            line = carry + " " + line.strip()
            carry = ""
        if line.endswith("\\"):
            carry = line[:-1].rstrip()
            continue
        if line.strip() and not line.lstrip().startswith("#"):
            joined.append(line)
    return joined


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args, env={}, clock=lambda: CLOCK)
    return code, capsys.readouterr().out


@pytest.mark.parametrize("page", pages())
def test_every_command_on_the_page_runs_as_shown(
    page: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    os.symlink(EXAMPLES, tmp_path / "examples")
    if page in SETUP:
        code, out = _run(SETUP[page](), capsys)
        assert code == 0, out
    skipped = []
    for block in (b for b in blocks(page) if b.is_command):
        where = f"docs/{page}:{block.line}"
        if block.not_run:
            skipped.append(f"{where}: {block.not_run}")
            continue
        if block.lines[0].startswith("$ "):
            argv = shlex.split(block.lines[0][2:])
            assert argv[0] == "hie-notify", where
            code, out = _run(argv[1:], capsys)
            assert code == block.exit_code, f"{where}: exit {code}\n{out}"
            if block.lines[1:]:
                assert out.rstrip("\n").split("\n") == block.lines[1:], where
            continue
        for command in commands(block.lines):
            argv = shlex.split(command)
            assert argv[0] == "hie-notify", (
                f"{where}: `{command}` is not a hie-notify command: run it here, or mark the "
                "block `<!-- docs-test: not run: WHY -->`"
            )
            code, out = _run(argv[1:], capsys)
            assert code == 0, f"{where}: exit {code}\n{out}"
    if skipped:
        pytest.skip("not run here: " + "; ".join(skipped))


def test_a_block_that_is_not_run_says_why_and_every_marker_is_known() -> None:
    for page in pages():
        text = DOCS.joinpath(page).read_text()
        for line in text.splitlines():
            if line.startswith("<!--") and "docs-test" in line:  # not prose naming it
                marker = MARKER.match(line)
                assert marker, f"docs/{page}: {line}"
                what = marker.group(1)
                assert re.fullmatch(r"exit \d|not run: \S.{10,}", what), f"docs/{page}: {line}"


def test_the_docs_show_commands_and_run_most_of_them() -> None:
    """The runner above finds what it should: the worked example's plan and gate, and the
    blocks that need a real GitLab or HCP Terraform are the only ones left out."""
    shown = [b for page in pages() for b in blocks(page) if b.is_command]
    run = [b for b in shown if not b.not_run]
    assert {b.page for b in run} >= {"gate.md", "policy.md", "register.md", "report.md"}
    assert any(b.lines[0].startswith("$ hie-notify") and " gate " in b.lines[0] for b in run)
    assert {b.page for b in shown if b.not_run} <= {"run-task.md", "enforcement.md"}


def test_a_block_that_starts_with_a_command_is_a_command_block() -> None:
    """So no command escapes the runner by its fence: only the usage synopsis (`COMMAND`) may
    start with `hie-notify` outside a ```sh block."""
    for page in pages():
        for block in blocks(page):
            if not block.is_command and block.lines[0].startswith("hie-notify "):
                assert "COMMAND" in block.lines[-1], f"docs/{page}:{block.line}"


def test_the_worked_example_mail_is_the_one_the_plan_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    os.symlink(EXAMPLES, tmp_path / "examples")
    shown = blocks("gate.md")
    (plan,) = [b for b in shown if re.match(r"\$ hie-notify .* plan --plan", b.lines[0])]
    code, _ = _run(shlex.split(plan.lines[0][2:])[1:], capsys)
    assert code == 0
    eml = (tmp_path / "worked-example/FFAPP-4458/announce/customer-EoE.eml").read_bytes()
    message = email.message_from_bytes(eml, policy=email.policy.default)
    text = message.get_body(("plain",))
    assert text is not None
    (mail,) = [b.lines for b in shown if b.lines[0].startswith("Subject: ")]
    assert mail[:3] == [f"Subject: {message['Subject']}", f"To: {message['To']}", ""]
    assert text.get_content().rstrip("\n").split("\n") == mail[3:]


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    raise AssertionError(f"mkdocs.yml: nav: unexpected {nav!r}")


def test_every_docs_page_is_in_the_nav_once() -> None:
    config = yaml.safe_load(ROOT.joinpath("mkdocs.yml").read_text())
    listed = _nav_pages(config["nav"])
    assert sorted(listed) == pages()
    assert config["theme"]["name"] == "material"


def test_the_readme_links_every_docs_page() -> None:
    readme = ROOT.joinpath("README.md").read_text()
    linked = set(re.findall(r"\]\(docs/([a-z-]+\.md)", readme))
    assert linked == set(pages()) - {"index.md"}
    for page in linked:
        assert DOCS.joinpath(page).is_file(), page


def _build(mkdocs: str, root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.tools("mkdocs")
def test_mkdocs_build_strict_passes_and_fails_on_a_page_left_out_or_a_broken_anchor(
    tmp_path: Path,
) -> None:
    from tests.support import tools

    mkdocs = tools.require("mkdocs")
    done = _build(mkdocs, ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    for page in pages():
        name = "index.html" if page == "index.md" else f"{page[:-3]}/index.html"
        assert (tmp_path / "site" / name).is_file(), name

    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    (copy / "docs" / "stray.md").write_text("# Not in the nav\n")
    left_out = _build(mkdocs, copy, tmp_path / "site2")
    assert left_out.returncode != 0
    assert "not included in the" in left_out.stderr and "stray.md" in left_out.stderr

    (copy / "docs" / "stray.md").unlink()
    gate = copy / "docs" / "gate.md"
    gate.write_text(gate.read_text() + "\nSee [nowhere](security.md#no-such-heading).\n")
    broken = _build(mkdocs, copy, tmp_path / "site3")
    assert broken.returncode != 0
    assert "no-such-heading" in broken.stderr


# -- published: the project's own pipeline builds the site to GitLab Pages -----------------------


def test_the_pages_job_builds_the_site_strictly_into_public_and_lint_checks_it_everywhere() -> None:
    pipeline = yaml.safe_load(ROOT.joinpath(".gitlab-ci.yml").read_text())
    pages = pipeline["pages"]
    assert pages["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}]
    assert ".venv/bin/mkdocs build --strict --site-dir public" in pages["script"]
    assert pages["artifacts"]["paths"] == ["public"]
    assert "lint" in pages["needs"]
    assert any("mkdocs build --strict" in line for line in pipeline["lint"]["script"])
    assert "rules" not in pipeline["lint"]  # every pipeline, merge requests too


@pytest.mark.tools("gitlab-ci-local")
def test_the_pages_job_runs_on_the_default_branch_only(tmp_path: Path) -> None:
    from tests.ci.harness import MR_ARGS, Repo, find_gitlab_ci_local

    repo = Repo(tmp_path / "hie-notify", project="platform/hie-notify")
    repo.copy(ROOT / ".gitlab-ci.yml", ".gitlab-ci.yml")
    repo.commit("the pipeline")
    glcl, _ = find_gitlab_ci_local()
    assert glcl

    def jobs(*args: str) -> set[str]:
        done = subprocess.run(
            [glcl, "--list-json", *args],
            cwd=repo.path,
            env=repo.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return {job["name"] for job in yaml.safe_load(done.stdout) if job["when"] != "never"}

    assert "pages" in jobs()  # the default branch (main)
    assert "pages" not in jobs(*MR_ARGS)
    branch = ["--variable", "CI_COMMIT_BRANCH=feature"]
    branch += ["--ignore-predefined-vars", "CI_COMMIT_BRANCH"]
    assert "pages" not in jobs(*branch)
    assert "lint" in jobs(*MR_ARGS)
