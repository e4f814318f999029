"""Fixtures the CI template and release tests share."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def check_jsonschema() -> str:
    named = os.environ.get("HIE_CHECK_JSONSCHEMA")
    if named:
        assert Path(named).exists(), f"HIE_CHECK_JSONSCHEMA={named} does not exist"
        return named
    found = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    found = found or shutil.which("check-jsonschema")
    if not found:
        pytest.skip("check-jsonschema is not installed (bash .ci/run installs it from PyPI)")
    return found
