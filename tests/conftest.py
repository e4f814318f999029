from __future__ import annotations

from pathlib import Path

import pytest

from hie_notify.policy import Policy, load_policy

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy()
