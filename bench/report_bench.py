"""Generate the compliance report for 10,000 registered changes (SQLite register, each with its
ledger) and time it end to end: `python -m hie_notify report` as a process of its own, so the
interpreter's start, every import (matplotlib's for HTML) and the register read are counted.

Target (issue 18): under 5 s for each format on this machine.
Run: .venv/bin/python bench/report_bench.py [--changes N] [--repeat R] [--register FILE]
The register is the test seed's weekly cohorts (tests/support/report_seed.py) repeated over as many
weeks as it takes (kept in FILE when given, and reused if it is there); each format is run R
times, formats taking turns, and its best time is reported, with its CPU time and the machine's
load (the machine is shared: the best run is the one least slowed by others). Exits 1 when a
target is missed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.report_seed import seed_register, week

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 5.0
FORMATS = ("json", "csv", "html")
FIRST = datetime(2015, 1, 5, tzinfo=timezone.utc)  # a Monday


def run(register: Path, fmt: str, out: Path, last: str) -> tuple[float, float]:
    """Wall and CPU seconds of one `hie-notify report` process."""
    argv = [
        sys.executable,
        "-m",
        "hie_notify",
        "--register",
        f"sqlite:{register}",
        "--now",
        "2030-01-01T00:00:00+00:00",
        "report",
        "--from",
        "2015-01-01",
        "--to",
        last,
        "--format",
        fmt,
        "--output",
        str(out),
    ]
    before = os.times()
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=out.parent, env=_ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    assert done.returncode == 0, f"report --format {fmt} exited {done.returncode}: {done.stderr}"
    return elapsed, cpu


# Nothing of the caller's environment but what Python needs: no HIE_* setting, no secret to mask.
_ENV = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
_ENV["PYTHONPATH"] = str(ROOT)


def main_bench() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--register", type=Path, help="keep the seeded register here (reused)")
    args = parser.parse_args()
    items = []
    k = 0
    while len(items) < args.changes:
        items += list(week(k, FIRST + timedelta(weeks=k), prefix=f"W{k}X"))
        k += 1
    items = items[: args.changes]
    last = max(s.end for s in items).date().isoformat()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        register = args.register or Path(tmp) / "register.sqlite3"
        if not register.exists():
            started = time.perf_counter()
            seed_register(register, items)
            print(
                f"seeded {len(items)} changes over {k} weeks in "
                f"{time.perf_counter() - started:.1f} s"
            )
        times: dict[str, list[tuple[float, float, float]]] = {f: [] for f in FORMATS}
        for _ in range(args.repeat):
            for fmt in FORMATS:
                wall, cpu = run(register, fmt, Path(tmp) / f"report.{fmt}", last)
                times[fmt].append((wall, cpu, os.getloadavg()[0]))
        for fmt in FORMATS:
            best, cpu, load = min(times[fmt])
            walls = ", ".join(f"{w:.2f}" for w, _, _ in times[fmt])
            ok = best < TARGET_S
            failed |= not ok
            size = (Path(tmp) / f"report.{fmt}").stat().st_size / 1e6
            print(
                f"report --format {fmt}: {best:.2f} s wall, {cpu:.2f} s CPU (best of "
                f"{args.repeat}: {walls}), {size:.1f} MB, {'ok' if ok else 'MISSED'} "
                f"(target < {TARGET_S:.0f} s wall; load average then {load:.1f})"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main_bench())
