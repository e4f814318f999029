"""The test tree's rules (docs/development.md): test modules share helpers through `tests.support`
only, never by importing another test module or conftest, and the unit-test folders mirror the
package. tests/ci stays as it is: its harness and pipeline fixtures are reached from outside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.paths import ROOT

TESTS = ROOT / "tests"
MIRRORED = (
    "channels",
    "ledger",
    "register",
    "terraform",
    "policy",
    "report",
    "service",
    "commands",
)
THEMES = ("support", "scenarios", "attacks", "properties", "docs", "ci")


def imported(path: Path) -> list[tuple[int, str]]:
    """Every `tests...` module a file imports, with its line (`from tests import x` is tests.x)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("tests.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "tests":
                found += [(node.lineno, f"tests.{a.name}") for a in node.names]
            elif node.module.startswith("tests."):
                found.append((node.lineno, node.module))
    return found


def allowed(module: str) -> bool:
    return module == "tests.support" or module.startswith(("tests.support.", "tests.ci."))


def offences(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] in ("ci", "node_modules") or "node_modules" in relative.parts:
            continue
        for line, module in imported(path):
            if not allowed(module):
                found.append(f"tests/{relative.as_posix()}:{line} imports {module}")
    return found


def test_test_modules_import_shared_helpers_from_tests_support_only() -> None:
    assert offences(TESTS) == [], "move what is shared into tests/support"


@pytest.mark.parametrize(
    ("line", "module"),
    [
        ("from tests.test_gate import record", "tests.test_gate"),
        ("from tests.commands.test_remind import NOW", "tests.commands.test_remind"),
        ("from tests.conftest import EXAMPLES", "tests.conftest"),
        ("from tests import conftest", "tests.conftest"),
        ("import tests.scenarios.test_stages", "tests.scenarios.test_stages"),
    ],
)
def test_an_import_of_a_test_module_or_conftest_is_found(
    tmp_path: Path, line: str, module: str
) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "test_x.py").write_text(f"from tests.support import fakes\n{line}\n")
    assert offences(tmp_path) == [f"tests/scenarios/test_x.py:2 imports {module}"]


def test_the_unit_test_folders_mirror_the_package() -> None:
    folders = {p.name for p in TESTS.iterdir() if (p / "__init__.py").is_file()}
    assert folders == set(MIRRORED) | set(THEMES)
    for name in MIRRORED:
        assert (ROOT / "hie_notify" / name / "__init__.py").is_file(), name
    for folder in folders:
        assert (TESTS / folder / "__init__.py").is_file()
