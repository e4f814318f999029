"""Whole-process start-up of hie-notify against `python -c "import pydantic, jinja2, yaml"`,
and classifying a generated 20,000-resource plan against `json.load` of it, in one run.

Run: .venv/bin/python bench/startup.py [--rounds N] [--resources N]

Every case is a fresh process of this interpreter, the cases interleaved round by round so
that a busy machine slows them alike. Reported per case: wall time (best and median of the
rounds), CPU time (user + system, best) and peak RSS, all from the child's own rusage. The
ratios use the best wall times. Bytecode is written and used, as for an installed wheel (pip
compiles it at install), whatever PYTHONDONTWRITEBYTECODE says here. Targets (issue 14):
--help, classify and gate at most 1.5x the baseline; the 20k plan (issue 13's target) no
slower than json.load with at most 1.5x its peak memory. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@dataclass
class Case:
    name: str
    argv: list[str]
    ok_codes: tuple[int, ...] = (0,)
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)

    def run(self, env: dict[str, str], cwd: Path) -> None:
        start = time.perf_counter()
        proc = subprocess.Popen(
            self.argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(proc.pid, 0)
        self.wall.append(time.perf_counter() - start)
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if code not in self.ok_codes:
            raise SystemExit(f"{self.name}: exit {code}\n{err}")
        self.cpu.append(usage.ru_utime + usage.ru_stime)
        self.rss_kb.append(usage.ru_maxrss)

    @property
    def best(self) -> float:
        return min(self.wall)

    def line(self, base: Case | None = None) -> str:
        ratio = (
            f"  {self.best / base.best:4.2f}x (cpu {min(self.cpu) / min(base.cpu):4.2f}x)"
            if base
            else ""
        )
        return (
            f"  {self.name:34} wall best {self.best * 1000:7.1f} ms  "
            f"median {statistics.median(self.wall) * 1000:7.1f} ms  "
            f"cpu {min(self.cpu) * 1000:7.1f} ms  rss {max(self.rss_kb) / 1024:6.1f} MB{ratio}"
        )


def hie_notify() -> list[str]:
    script = Path(sys.executable).parent / "hie-notify"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hie_notify"]


def clean_env(home: Path) -> dict[str, str]:
    """This environment without CI's variables (they would switch on the protected policy) and
    with bytecode on."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CI_", "GITLAB_", "HIE_", "TF_", "SLACK_", "SMTP_"))
        and k not in ("PYTHONDONTWRITEBYTECODE", "CI")
    }
    env["HOME"] = str(home)
    return env


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--resources", type=int, default=20_000)
    args = parser.parse_args()
    cli = hie_notify()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = clean_env(work)
        big = work / "plan-20k.json"
        # Made by a child: a parent holding the plan would lend its size to every child's RSS.
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import json, sys; from classify_bench import generate; "
                "open(sys.argv[1], 'w').write(json.dumps(generate(int(sys.argv[2]))))",
                str(big),
                str(args.resources),
            ],
            cwd=Path(__file__).resolve().parent,
            check=True,
        )
        size = big.stat().st_size
        gate = [
            *cli,
            "--policy",
            str(EXAMPLES / "policy.yaml"),
            "--change",
            str(EXAMPLES / "change.yaml"),
            "--now",
            "2026-12-08T19:05:00+00:00",
            "--ledger",
            f"file:{work / 'ledger.jsonl'}",
            "--outbox",
            str(work / "outbox"),
            "gate",
            "--plan",
            str(EXAMPLES / "plan.json"),
            "--dotenv",
            str(work / "gate.env"),
        ]
        baseline = Case(
            "python -c 'import pydantic, jinja2, yaml'",
            [sys.executable, "-c", "import pydantic, jinja2, yaml"],
        )
        startup = [
            Case("hie-notify --help", [*cli, "--help"]),
            Case(
                "hie-notify classify (example plan)",
                [*cli, "classify", "--plan", str(EXAMPLES / "plan.json")],
            ),
            Case("hie-notify gate (example plan)", gate, ok_codes=(0, 1)),
        ]
        load = Case(
            f"json.load ({args.resources} resources)",
            [sys.executable, "-c", f"import json; json.load(open({str(big)!r}, 'rb'))"],
        )
        classify = Case(
            f"hie-notify classify ({args.resources})", [*cli, "classify", "--plan", str(big)]
        )
        # Floors, not targets: what any command that validates the policy pays before its own
        # work. `import pydantic` alone is lazy (pydantic's `__getattr__`) and loads none of the
        # model machinery a BaseModel needs; validating the policy adds building its schema.
        floors = [
            Case(
                "python -c 'from pydantic import BaseModel; ...'",
                [sys.executable, "-c", "from pydantic import BaseModel; import jinja2, yaml"],
            ),
            Case(
                "policy validated, nothing else",
                [
                    sys.executable,
                    "-c",
                    "from hie_notify.policy.loader import load_policy; load_policy()",
                ],
            ),
        ]
        cases = [baseline, *floors, *startup, load, classify]
        for case in cases:  # warm-up: bytecode written, files in the page cache
            case.run(env, work)
            case.wall.clear(), case.cpu.clear(), case.rss_kb.clear()
        for _ in range(args.rounds):
            for case in cases:
                case.run(env, work)

    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores, {args.rounds} rounds")
    print("start-up (target: at most 1.5x the baseline's best wall time)")
    print(baseline.line())
    print("floors (what the policy model costs any command; not targets)")
    for case in floors:
        print(case.line(baseline))
    missed = []
    for case in startup:
        print(case.line(baseline))
        if case.best / baseline.best > 1.5:
            missed.append(case.name)
    print(
        f"a {args.resources}-resource plan{f' ({size / 1e6:.1f} MB)' if size else ''}"
        " (target: time at most 1.0x, peak memory at most 1.5x json.load's)"
    )
    print(load.line())
    print(classify.line(load))
    mem = max(classify.rss_kb) / max(load.rss_kb)
    print(f"  peak memory ratio {mem:4.2f}x")
    if classify.best / load.best > 1.0 or mem > 1.5:
        missed.append(classify.name)
    print("MISSED: " + "; ".join(missed) if missed else "PASS")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
