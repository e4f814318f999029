"""Shared fixtures, and the guards every test runs under.

- No network: pytest-socket (addopts in pyproject.toml) lets `connect` reach loopback only; the
  `_no_dns` guard below also refuses name look-ups of anything but loopback, which pytest-socket
  lets through (a look-up of gitlab.example.com is traffic too, and slow where DNS hangs).
- No clock: the tool's one machine-clock read (`Options.clock()` without `--now`) fails the test
  unless the test injects a clock.
- No stray files: every test runs in a temporary working directory, so a default path such as
  `hie-notify-outbox/` never lands in the repository.
- A moved clock: `HIE_TEST_CLOCK_SHIFT_YEARS=N` runs the whole session with the machine clock
  N years ahead (time-machine), to show any test that leans on today's date.
- Outside tools (gitlab-ci-local, Chromium, check-jsonschema, hadolint, pypiserver, mutmut): a
  test that needs one is marked `tools` and skips, saying why, where it is missing
  (tests/support/tools.py).
"""

from __future__ import annotations

import gc
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from hie_notify.policy import Policy, load_policy
from tests.support.paths import EXAMPLES, FIXTURES, ROOT, is_loopback

__all__ = ["EXAMPLES", "FIXTURES", "ROOT", "is_loopback"]


@pytest.fixture(scope="session")
def check_jsonschema() -> str:
    """check-jsonschema's path (GitLab's CI schema is vendored in it: validating is offline)."""
    from tests.support import tools

    return tools.require("check-jsonschema")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses a tool's fixture is a `tools` test (`pytest -m tools` selects it)."""
    from tests.support import tools

    for item in items:
        used = getattr(item, "fixturenames", ())
        names = [tool for fixture, tool in tools.FIXTURES.items() if fixture in used]
        if names:
            item.add_marker(pytest.mark.tools(*names))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    from tests.support import tools

    for mark in item.iter_markers("tools"):
        for name in mark.args:
            tools.require(name)


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy()


@pytest.fixture(autouse=True)
def _no_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = socket.getaddrinfo
    tried: list[str] = []

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(host):
            tried.append(repr(host))
            # An OSError, as a failed look-up would be; the teardown check below fails the
            # test even when the code under test handles it.
            raise socket.gaierror(socket.EAI_NONAME, f"no look-up of {host!r} in tests")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield
    assert not tried, (
        f"the test tried to look up {', '.join(tried)}: tests reach nothing but loopback "
        "(use the HTTP fakes)"
    )


@pytest.fixture(autouse=True)
def _no_machine_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> datetime:
        raise AssertionError(
            "a test read the machine clock through Options.clock(): pass --now, or give "
            "Options a wall_clock"
        )

    monkeypatch.setattr("hie_notify.options._machine_now", refuse)


@pytest.fixture(autouse=True)
def _in_a_temporary_directory(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(autouse=True)
def _cycle_collector_given_back() -> Iterator[None]:
    """Reading a large plan file freezes what is alive (gc.freeze: a command ends soon after);
    the test session lives on, so every test gives the collector back what it froze."""
    yield
    gc.unfreeze()


@pytest.fixture
def machine_in_london(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's own zone has clock changes (CI runners are usually UTC; laptops are not)."""
    import time

    monkeypatch.setenv("TZ", "Europe/London")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def pytest_configure(config: pytest.Config) -> None:
    years = os.environ.get("HIE_TEST_CLOCK_SHIFT_YEARS")
    if not years:
        return
    import time_machine

    moved = datetime.now(timezone.utc) + timedelta(days=round(365.25 * float(years)))
    traveller = time_machine.travel(moved, tick=True)
    traveller.start()
    config.add_cleanup(traveller.stop)


def pytest_report_header(config: pytest.Config) -> str | None:
    years = os.environ.get("HIE_TEST_CLOCK_SHIFT_YEARS")
    if not years:
        return None
    return f"machine clock moved {years} years ahead: {datetime.now(timezone.utc).isoformat()}"


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries wait through time.sleep: record the waits instead of sleeping."""
    import time

    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", recorded.append)
    return recorded
