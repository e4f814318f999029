"""The mutation bench (bench/mutation.py) measures every module or says why not, and CI runs a
fixed sample of it (issue 27 item 4): a new module cannot arrive unmeasured, and a test that
stops pinning a measured module fails here rather than in the next full run of the script."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "mutation.py"
# Which mutant of each function CI runs: a fixed sample, the same on every run.
SAMPLE = 2
# The target whose sample always runs (about 15 s): the bench still runs and still kills.
CANARY = "seal"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hie_mutation_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _modules() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "hie_notify").rglob("*.py")}


def test_every_module_is_a_target_or_named_with_why_it_is_not() -> None:
    bench = _bench()
    measured = {f for t in bench.TARGETS.values() for f in t.files}
    named = set(bench.NOT_MEASURED)
    modules = _modules()
    unmeasured = sorted(modules - measured - named)
    assert unmeasured == [], (
        f"{', '.join(unmeasured)}: neither a file of a target in bench/mutation.py (TARGETS) nor "
        "in its NOT_MEASURED with why; add a target with the tests that pin it"
    )
    assert sorted(measured & named) == [], "a target's file is also in NOT_MEASURED"
    assert sorted((measured | named) - modules) == [], "bench/mutation.py names a missing module"
    assert all(why.strip() for why in bench.NOT_MEASURED.values())


def test_every_target_names_tests_that_exist_and_every_equivalent_a_target() -> None:
    bench = _bench()
    for name, target in bench.TARGETS.items():
        for test in target.tests:
            assert (ROOT / test).is_file(), f"target {name}: no {test}"
        for node in target.deselect:
            assert (ROOT / node.partition("::")[0]).is_file(), f"target {name}: no {node}"
    for target, function, text, why in bench.EQUIVALENT:
        assert target in bench.TARGETS, target
        assert function and text and why.strip(), (target, function)


def test_the_sample_patterns_pick_one_mutant_of_each_function_of_its_own_module() -> None:
    from fnmatch import fnmatchcase

    bench = _bench()
    seal = bench.Target(("hie_notify/ledger/seal.py",), ())
    [pattern] = bench._selection(seal, "2")
    assert fnmatchcase("hie_notify.ledger.seal.x_verify__mutmut_2", pattern)
    assert fnmatchcase("hie_notify.ledger.seal.xǁVerifiedǁm__mutmut_2", pattern)
    assert not fnmatchcase("hie_notify.ledger.seal.x_verify__mutmut_12", pattern)
    package = bench.Target(("hie_notify/ledger/__init__.py",), ())
    [pattern] = bench._selection(package, "2")
    assert not fnmatchcase("hie_notify.ledger.seal.x_verify__mutmut_2", pattern)
    assert fnmatchcase("hie_notify.ledger.x_open_ledger__mutmut_2", pattern)
    only = bench.Target(("hie_notify/notify.py",), (), ("run_stage",))
    assert bench._selection(only, "*") == ["hie_notify.notify.x_run_stage__mutmut_*"]


@pytest.mark.tools("mutmut")
def test_a_fixed_sample_of_the_changed_targets_mutants_is_killed() -> None:
    """Mutant SAMPLE of each function of every target the last commit changed (HEAD~1, or
    HIE_MUTATION_SINCE), and of CANARY always, in one mutmut run: every one killed or listed as
    equivalent. The whole bench is `python bench/mutation.py [TARGET ...]`; all targets'
    sample is `python bench/mutation.py --sample 2` (about 3.5 min here)."""
    if os.environ.get("HIE_TEST_CLOCK_SHIFT_YEARS"):
        pytest.skip("the sample runs in other processes, whose clock a moved clock leaves alone")
    since = os.environ.get("HIE_MUTATION_SINCE") or "HEAD~1"
    known = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{since}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    bench = _bench()
    changed = bench.changed_targets(since) if known.returncode == 0 else []
    names = sorted({CANARY, *changed})
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(BENCH), "--sample", str(SAMPLE), "--jobs", "2", *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "survived hie_notify" not in done.stdout
    print(done.stdout, f"({', '.join(names)}: {time.monotonic() - started:.0f}s)")
