"""Mutation testing of the core with mutmut: which planted one-line bugs does the suite miss?

Not run in CI (minutes, not seconds). Needs mutmut 3 in the venv:

    .venv/bin/pip install 'mutmut>=3.3,<4'
    .venv/bin/python bench/mutation.py [TARGET ...] [--jobs N] [--show-survivors]

Each target is a set of files (optionally only some of their functions) and the unit tests
that should pin them (the CLI-level tests are left out: with them a run lasts hours). For each
target the repository is copied to a temporary folder (the working tree is never touched),
mutmut mutates the files there and runs, for each mutant, the target's tests that cover the
mutated function. The report gives killed / survived per target and the score, killed /
(all - known equivalent); the goal is 90%. Mutants of a function no selected test runs count as
survivors. Survivors known to be equivalent (no test can tell them from the original) are listed
with the reason, matched by function and by the line the mutant writes, so they survive
renumbering. Exit 1 when a target is under 90%. mutmut does not mutate module-level constants
(e.g. masking.SECRET_VARIABLES): named tests pin those.

Why mutmut rather than cosmic-ray: cosmic-ray starts a new pytest process per mutant, about 9 s
each on this shared 2-core machine (hours for these modules); mutmut 3 forks from a process that
has already imported everything, at 2-3 mutants a second.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 0.90


@dataclass(frozen=True)
class Target:
    files: tuple[str, ...]
    tests: tuple[str, ...]
    # Only mutants of these functions count ("name" or "Class.method"); None: every function.
    functions: tuple[str, ...] | None = None


TARGETS: dict[str, Target] = {
    "calendar": Target(
        ("hie_notify/calendar.py",),
        (
            "tests/test_calendar.py",
            "tests/test_calendar_edges.py",
            "tests/test_calendar_holidays.py",
            "tests/test_gate.py",
        ),
    ),
    "gate": Target(
        ("hie_notify/gate.py",),
        ("tests/test_gate.py", "tests/scenarios/test_announce_gate.py"),
    ),
    "classify": Target(
        ("hie_notify/classify.py",),
        (
            "tests/test_classify.py",
            "tests/test_classify_reasons.py",
            "tests/scenarios/test_fixture_plans.py",
        ),
    ),
    "masking": Target(
        ("hie_notify/masking.py",),
        ("tests/test_masking.py",),
    ),
    "protected": Target(
        ("hie_notify/policy/protected.py",),
        ("tests/policy/test_protected.py", "tests/policy/test_protected_ci.py"),
    ),
    "idempotency": Target(
        ("hie_notify/ledger/__init__.py", "hie_notify/notify.py"),
        ("tests/test_idempotency.py", "tests/ledger/test_file.py"),
        functions=("idempotency_key", "run_stage"),
    ),
    "hcp-redirects": Target(
        ("hie_notify/terraform/hcp.py",),
        ("tests/terraform/test_hcp.py", "tests/terraform/test_hcp_redirects.py"),
        functions=("HcpClient._json_output", "HcpClient._request"),
    ),
}

_SAME_INSTANT = (
    "astimezone(None) converts to the machine's zone as a fixed offset: the same instant, and "
    "aware datetimes compare, subtract and add by instant"
)
# (target, function, text in the line the mutant writes, reason it cannot be detected).
EQUIVALENT: list[tuple[str, str, str, str]] = [
    *(
        (
            "protected",
            "_matches",
            text,
            "zip's strict defaults to False, and None is as false: the same pairs either way",
        )
        for text in ("strict=None)", "zip(path, parts, )")
    ),
    *(
        (
            "protected",
            "weakenings",
            text,
            "a notice key's path has its change type in front (length 4); a shorter path with a "
            "notice key is one the protected policy cannot have (before is None), so the "
            "length test never decides",
        )
        for text in ("if len(path) > 2 and", "if len(path) >= 3 and")
    ),
    (
        "protected",
        "local_policy_flag",
        'or "XXXX").lower()',
        "an unset or empty HIE_LOCAL_POLICY becomes 'xxxx' instead of '', and neither is one "
        "of 1, true, yes: the flag is off either way",
    ),
    (
        "protected",
        "load_effective",
        "where if (raw is not None) or True else DEFAULT_NAME",
        "with no protected file the data validated is the built-in default alone, which always "
        "validates (the suite's `policy` fixture loads it), so the source that would name its "
        "errors is never shown",
    ),
    *(
        (
            "masking",
            "Masker.from_env",
            text,
            "a missing variable's value is dropped by __init__ "
            "either way: None and '' are falsy, 'XXXX' is under the 6-character minimum",
        )
        for text in ("env.get(name, None)", "env.get(name, )", 'env.get(name, "XXXX")')
    ),
    *(
        ("classify", f"_Rules.{f}", text, "a cache: a miss recomputes the same list")
        for f in ("category_candidates", "impact_candidates")
        for text in ("found = None", ".get(None)", "] = None")
    ),
    *(
        (
            "classify",
            "classify",
            text,
            "the state-only counts are keyed by action, so no two (action, count) pairs share an "
            "action: sorting the pairs whole orders them by action, as the key does",
        )
        for text in ("sorted(state_only.items(), key=None)", "sorted(state_only.items(), )")
    ),
    (
        "classify",
        "classify",
        "elif len(cats) >= 1:",
        "sorting a one-category list leaves it as it is",
    ),
    (
        "classify",
        "classify",
        "downtime and downtime >= timedelta(0)",
        "timedelta(0) is falsy, so `downtime and` has already ruled it out, and a declared "
        "downtime is never negative (parse_duration reads digits only)",
    ),
    *(
        (
            "hcp-redirects",
            "HcpClient._json_output",
            f'resp.headers.get("{name}")',
            "requests' response headers are case-insensitive",
        )
        for name in ("location", "LOCATION")
    ),
    *(
        (
            "hcp-redirects",
            "HcpClient._json_output",
            text,
            "`extra` appears only in the 403 and 404 messages, the codes the hint is for",
        )
        for text in ("(resp.status_code in (403, 404)) or True", 'in (403, 404) else "XXXX"')
    ),
    (
        "calendar",
        "BusinessCalendar.earliest_start",
        'period.kind == "XXelapsedXX" or',
        "an elapsed period has business_days == 0, so the other half of the `or` holds",
    ),
    (
        "calendar",
        "BusinessCalendar.earliest_start",
        'period.kind == "ELAPSED" or',
        "an elapsed period has business_days == 0, so the other half of the `or` holds",
    ),
    *(
        (
            "classify",
            "_what_happens",
            text,
            "only resources a service-impact rule caught reach it: rules name create, update, "
            "replace, delete, forget and state, and the no-ops a state rule catches are imports "
            "or moves, all in the table, so the fallback is never used",
        )
        for text in ("get(rc.effective_action, None)", "get(rc.effective_action, )")
    ),
    (
        "calendar",
        "_country_class",
        "if spec is None and spec.loader is None:",
        "spec_from_file_location of an existing .py file always returns a spec with a loader: "
        "the test is there for the type checker, and neither form of it is ever true",
    ),
    (
        "calendar",
        "BusinessCalendar._wall",
        "naive.replace(tzinfo=self.zone, )",
        "fold=0 is replace()'s default",
    ),
    (
        "hcp-redirects",
        "HcpClient._json_output",
        "urljoin(resp.url and url, location)",
        "with allow_redirects=False resp.url is the URL just requested: `and` and `or` give "
        "the same",
    ),
    (
        "idempotency",
        "run_stage",
        'message: Rendered | None = ""',
        "'' is falsy like None: `message or renderer.render(...)` renders either way",
    ),
    (
        "gate",
        "_told",
        "if told and not sent:",
        "`uncounted` is read only when nothing was told (the `told` branches come first), and "
        "with nothing sent its lists are empty: building it in more cases changes nothing",
    ),
    (
        "gate",
        "_differences",
        "(change) or True",
        "decide asks about notices only with a change record (none returns first)",
    ),
    (
        "gate",
        "_notice",
        "(facts.change) or True",
        "decide asks about notices only with a change record (none returns first)",
    ),
    (
        "gate",
        "_budget",
        "declared=change.downtime or timedelta(",
        "the budget is checked only for a declared downtime above zero (budget_month): the "
        "default after `or` is never used",
    ),
    ("calendar", "resolve_local", "naive.replace(tzinfo=tz, )", "fold=0 is replace()'s default"),
    ("calendar", "resolve_local", "first.astimezone(None).astimezone(tz)", _SAME_INSTANT),
    ("calendar", "BusinessCalendar.earliest_start", "time(0)", "time(0) is time(0, 0)"),
    ("calendar", "BusinessCalendar.earliest_start", "time(0, )", "time(0, ) is time(0, 0)"),
    (
        "calendar",
        "BusinessCalendar.earliest_start",
        "notice_at.astimezone(None) + period.elapsed",
        _SAME_INSTANT,
    ),
    ("calendar", "BusinessCalendar.notice_given", "start.astimezone(None) >=", _SAME_INSTANT),
    ("calendar", "BusinessCalendar._wall", "aware.astimezone(UTC).astimezone(None)", _SAME_INSTANT),
    (
        "calendar",
        "BusinessCalendar._wall",
        "aware.astimezone(None).astimezone(self.zone)",
        _SAME_INSTANT,
    ),
    ("calendar", "elapsed", "astimezone(None)", _SAME_INSTANT),
]

KILLED = {"killed", "timeout", "caught by type check", "segfault"}
# mutmut's names: module.x_function__mutmut_N, module.xǁClassǁmethod__mutmut_N
_NAME = re.compile(
    r"^(?P<module>[\w.]+)\.x(?:_(?P<func>\w+?)|ǁ(?P<cls>\w+)ǁ(?P<meth>\w+?))__mutmut_\d+$"
)


def function_of(mutant: str) -> str:
    m = _NAME.match(mutant)
    if not m:
        return "?"
    return m["func"] if m["func"] else f"{m['cls']}.{m['meth']}"


def _copy(dest: Path) -> None:
    shutil.copytree(
        ROOT,
        dest,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "mutants", "__pycache__", ".mypy_cache", ".ruff_cache", "node_modules"
        ),
    )


def _config(target: Target) -> str:
    def listing(items: tuple[str, ...]) -> str:
        return "\n".join(f"    {i}" for i in items)

    return (
        "[mutmut]\n"
        "source_paths=hie_notify\n"
        f"only_mutate=\n{listing(target.files)}\n"
        f"pytest_add_cli_args_test_selection=\n{listing(target.tests)}\n"
        "pytest_add_cli_args=\n    -p\n    no:randomly\n    -p\n    no:cacheprovider\n"
        "also_copy=\n    examples\n    README.md\n    docs\n    mkdocs.yml\n"
    )


def _selection(target: Target) -> list[str]:
    """mutmut's name patterns for a target's functions (none: every mutant of its files)."""
    if target.functions is None:
        return []
    patterns = []
    for file in target.files:
        module = file.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for func in target.functions:
            cls, _, meth = func.rpartition(".")
            mangled = f"xǁ{cls}ǁ{meth}" if cls else f"x_{func}"
            patterns.append(f"{module}.{mangled}__mutmut_*")
    return patterns


def _mutmut(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )


def _written_line(work: Path, mutant: str) -> str:
    """What the mutant changes, from `mutmut show`: `removed lines => added lines`."""
    diff = _mutmut(work, "show", mutant).stdout.splitlines()

    def lines(mark: str) -> str:
        return " | ".join(
            line[1:].strip()
            for line in diff
            if line.startswith(mark) and not line.startswith(mark * 3)
        )

    return f"{lines('-')} => {lines('+')}"


@dataclass
class Outcome:
    name: str
    counts: Counter[str]
    killed: int
    survived: list[tuple[str, str]]  # (mutant, line it writes)
    equivalent: list[tuple[str, str, str]]  # (mutant, line, reason)
    seconds: float

    @property
    def total(self) -> int:
        return self.killed + len(self.survived)

    @property
    def score(self) -> float:
        return self.killed / self.total if self.total else 1.0


def run_target(name: str, target: Target, jobs: int) -> Outcome:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"hie-mutation-{name}-") as tmp:
        work = Path(tmp) / "repo"
        _copy(work)
        (work / "setup.cfg").write_text(_config(target))
        done = _mutmut(work, "run", "--max-children", str(jobs), *_selection(target))
        if done.returncode not in (0, 1) and "mutations/second" not in done.stdout:
            sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
            raise SystemExit(f"mutmut failed on {name} (exit {done.returncode})")
        lines = _mutmut(work, "results", "--all", "true").stdout.splitlines()
        counts: Counter[str] = Counter()
        killed = 0
        survived: list[tuple[str, str]] = []
        equivalent: list[tuple[str, str, str]] = []
        for line in lines:
            mutant, sep, status = line.strip().partition(": ")
            if not sep:
                continue
            func = function_of(mutant)
            if target.functions is not None and func not in target.functions:
                continue
            counts[status] += 1
            if status in KILLED:
                killed += 1
                continue
            written = _written_line(work, mutant)
            reason = next(
                (
                    why
                    for t, f, text, why in EQUIVALENT
                    if t == name and f == func and text in written
                ),
                None,
            )
            if reason is not None:
                equivalent.append((mutant, written, reason))
            else:
                survived.append((mutant, written))
    return Outcome(name, counts, killed, survived, equivalent, time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=", ".join(TARGETS))
    parser.add_argument("--jobs", type=int, default=1, help="mutmut --max-children (default 1)")
    parser.add_argument("--show-survivors", action="store_true")
    args = parser.parse_args(argv)
    try:
        import mutmut  # noqa: F401
    except ImportError:
        raise SystemExit("no mutmut: .venv/bin/pip install 'mutmut>=3.3,<4'") from None
    names = args.targets or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    outcomes = []
    for name in names:
        print(f"== {name}: mutating {', '.join(TARGETS[name].files)}", flush=True)
        outcome = run_target(name, TARGETS[name], args.jobs)
        outcomes.append(outcome)
        print(
            f"   {outcome.killed} killed, {len(outcome.survived)} survived, "
            f"{len(outcome.equivalent)} equivalent: {outcome.score:.1%} "
            f"({dict(outcome.counts)}; {outcome.seconds:.0f}s)",
            flush=True,
        )
        if args.show_survivors:
            for mutant, written in outcome.survived:
                print(f"   survived {mutant}: {written}")
    print("\nMutation score (killed / (all - equivalent)), target 90% per module:")
    for o in outcomes:
        mark = "ok " if o.score >= GOAL else "LOW"
        print(
            f"  {mark} {o.name:14} {o.score:6.1%}  killed {o.killed:4}  survived "
            f"{len(o.survived):3}  equivalent {len(o.equivalent):3}"
        )
    equivalents = [(o.name, e) for o in outcomes for e in o.equivalent]
    if equivalents:
        print("\nKnown equivalent mutants (not counted):")
        for name, (mutant, written, reason) in equivalents:
            print(f"  {name}: {mutant}\n      writes: {written}\n      why: {reason}")
    return 0 if all(o.score >= GOAL for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
