"""Property suite beside tests/properties/test_commands.py: large plans of many shapes classified
in a
child process under an address-space limit (`ulimit -v`), the case an in-process run cannot
show. A child killed by a signal (SIGSEGV inside a decoder, SIGKILL) is a failure; so is any
exit but 0 or 2, a traceback, or a refusal that does not name the file and the budget.

Profiles as in tests/properties/test_commands.py (HIE_FUZZ_PROFILE `ci`, the default, or `long`;
HIE_FUZZ_SEED=N repeats a run). Files go to tmp_path and are removed with it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st

from tests.support.big_plans import MIB, eks_update, repeated, run_limited

EXAMPLES = {"ci": 6, "long": 60}[os.environ.get("HIE_FUZZ_PROFILE", "ci")]
SEED = int(os.environ.get("HIE_FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))


def _plan(shape: str, count: int) -> bytes:
    """A large plan of one shape, each read by a different way or refused by a different bound."""
    if shape == "updates":  # the lean way
        return repeated(eks_update(), count)
    if shape == "general":  # one field the lean way does not read: the general way
        return repeated(eks_update(), count, odd=eks_update(mode=None))
    if shape == "non-ascii":  # checked as UTF-8 before the lean way
        return repeated(eks_update(name="wörker-ß-😀"), count)
    if shape == "creates":
        entry: dict[str, Any] = eks_update()
        entry["change"] = {**entry["change"], "actions": ["create"], "before": None}
        return repeated(entry, count)
    if shape == "empty objects":  # the most memory per byte for a general decoder
        return (
            b'{"format_version":"1.2","resource_changes":[],"x":['
            + b",".join([b"{}"] * (count * 100))
            + b"]}"
        )
    if shape == "truncated":
        raw = repeated(eks_update(), count)
        return raw[: len(raw) * 2 // 3]
    raise AssertionError(shape)


SHAPES = ["updates", "general", "non-ascii", "creates", "empty objects", "truncated"]


@seed(SEED)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    shape=st.sampled_from(SHAPES),
    count=st.integers(1_000, 90_000),
    limit_mib=st.integers(320, 2048),
)
# Each of these died with SIGSEGV inside orjson before.
@example(shape="updates", count=60_000, limit_mib=650)
@example(shape="general", count=60_000, limit_mib=700)
def test_no_plan_under_any_address_space_limit_kills_the_process(
    tmp_path_factory: pytest.TempPathFactory, shape: str, count: int, limit_mib: int
) -> None:
    tmp = tmp_path_factory.mktemp("fuzz-memory")
    try:
        path = tmp / "plan.json"
        path.write_bytes(_plan(shape, count))
        proc = run_limited(tmp, ["classify", "--plan", str(path)], limit_mib * MIB)
    finally:
        shutil.rmtree(tmp)
    case = f"{shape} x{count} under {limit_mib} MiB"
    if proc.returncode < 0:
        raise AssertionError(f"{case}: killed by {signal.Signals(-proc.returncode).name}")
    assert proc.returncode in (0, 2), (case, proc.returncode, proc.stderr[-1500:])
    assert "Traceback" not in proc.stderr, (case, proc.stderr[-1500:])
    if proc.returncode == 2:
        assert f"{path}:" in proc.stderr, (case, proc.stderr[-1500:])
        assert "MiB" in proc.stderr or shape == "truncated", (case, proc.stderr[-1500:])
    elif shape == "truncated":
        raise AssertionError(f"{case}: classified a file that is not JSON")
