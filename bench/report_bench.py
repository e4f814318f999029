"""Generate the compliance report for 10,000 registered changes (SQLite register, each with its
ledger) and time it end to end: the `hie-notify report` command, register read included.

Target (issue 18): under 5 s for each format on this machine.
Run: .venv/bin/python bench/report_bench.py [--changes N] [--repeat R]
The register is the test seed's weekly cohorts (tests/test_report_seed.py) repeated over as many
weeks as it takes; time is the best of R runs. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hie_notify.cli import main
from tests.test_report_seed import seed_register, week

TARGET_S = 5.0
FIRST = datetime(2015, 1, 5, tzinfo=timezone.utc)  # a Monday


def run(register: Path, fmt: str, out: Path, last: str) -> tuple[float, float]:
    argv = [
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
    started, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stderr(io.StringIO()):
        code = main(argv, env={})
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert code == 0, f"report --format {fmt} exited {code}"
    return elapsed, cpu


def main_bench() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
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
        register = Path(tmp) / "register.sqlite3"
        started = time.perf_counter()
        seed_register(register, items)
        print(
            f"seeded {len(items)} changes over {k} weeks in {time.perf_counter() - started:.1f} s"
        )
        for fmt in ("json", "csv", "html"):
            out = Path(tmp) / f"report.{fmt}"
            best, cpu = min(run(register, fmt, out, last) for _ in range(args.repeat))
            ok = best < TARGET_S
            failed |= not ok
            size = out.stat().st_size / 1e6
            print(
                f"report --format {fmt}: {best:.2f} s wall, {cpu:.2f} s CPU (best of "
                f"{args.repeat}), {size:.1f} MB, {'ok' if ok else 'MISSED'} (target < "
                f"{TARGET_S:.0f} s wall; the machine's load: {os.getloadavg()[0]:.1f})"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main_bench())
