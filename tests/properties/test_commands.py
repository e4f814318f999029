"""Property suite (issue 13): mutated plans, change records, policies and ledgers through every
command that reads them, in process through `hie_notify.cli.main([...], env)`.

For every input: the exit code is 0, 1 or 2; 1 only from `gate` (a gate decision); no traceback
is printed; a secret planted in the environment (and often in the input) appears in no output
and no outbox file; the command finishes within TIME_LIMIT seconds (measured, never slept on).

Profiles (HIE_FUZZ_PROFILE): `ci` (the default: about 300 examples in all, a couple of minutes on
a loaded machine) and `long` (several thousand). The seed is printed in the test header;
HIE_FUZZ_SEED=N repeats a run. HIE_FUZZ_STATS=FILE writes the tally of exit codes and the
slowest cases there, HIE_FUZZ_LOG=FILE one line per example (command, exit code, the mutated
file, the start of the message). `watch` and `receive` are left out: they need HCP Terraform
(tests/ci and tests/test_hcp_*.py cover their input).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from hie_notify.cli import main
from tests.support.builders import plan, rc

TIME_LIMIT = 20.0
SECRET = "Planted-s3cret-9f8e7d6c5b4a"
ENV = {"SMTP_PASSWORD": SECRET, "HIE_WEBHOOK_SECRET": SECRET + "-webhook"}
SECRETS = (SECRET, ENV["HIE_WEBHOOK_SECRET"])

_COMMON = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
}
settings.register_profile("hie-fuzz-ci", max_examples=75, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("hie-fuzz-long", max_examples=1500, **_COMMON)  # type: ignore[arg-type]
PROFILE = "hie-fuzz-" + os.environ.get("HIE_FUZZ_PROFILE", "ci")
SEED = int(os.environ.get("HIE_FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))
FUZZ = settings(settings.get_profile(PROFILE))

NOW = "2026-12-01T10:00:00+00:00"
STATS: Counter[str] = Counter()
SLOWEST: list[tuple[float, str]] = []


@pytest.fixture(autouse=True, scope="module")
def _announce_seed(request: pytest.FixtureRequest) -> Iterator[None]:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = f"hie-notify fuzz: profile {PROFILE}, seed {SEED} (HIE_FUZZ_SEED={SEED} repeats it)"
    if reporter is not None:
        reporter.write_line(line)
    yield
    summary = {
        "profile": PROFILE,
        "seed": SEED,
        "exit_codes": dict(sorted(STATS.items())),
        "slowest": [{"seconds": round(s, 3), "case": c} for s, c in sorted(SLOWEST)[-5:]],
    }
    if reporter is not None:
        reporter.write_line(f"hie-notify fuzz: {json.dumps(summary['exit_codes'])}")
    target = os.environ.get("HIE_FUZZ_STATS")
    if target:
        Path(target).write_text(json.dumps(summary, indent=2) + "\n")


# -- the valid inputs that get mutated

BASE_PLAN = plan(
    rc("aws_route53_record.api", ["update"], before={"ttl": 60}, after={"ttl": 300}),
    rc(
        "aws_db_instance.main",
        ["delete", "create"],
        before={"storage_encrypted": False},
        after={"storage_encrypted": True},
        replace_paths=[["storage_encrypted"]],
    ),
    rc("aws_iam_role.deploy", ["create"], after={"name": "deploy"}, after_unknown={"arn": True}),
    rc("module.app.aws_s3_bucket.logs", ["delete"], before={"bucket": "logs"}),
    rc("data.aws_caller_identity.me", ["read"], mode="data"),
    rc("aws_kms_key.k", ["no-op"], importing={"id": "key-1"}),
    output_changes={"endpoint": {"actions": ["update"], "before_sensitive": False}},
    resource_drift=[rc("aws_security_group.sg", ["update"], before={"x": 1}, after={"x": 2})],
)
BASE_CHANGE: dict[str, Any] = {
    "id": "FFAPP-4458",
    "type": "planned_infra_update",
    "purpose": "Encrypt the database",
    "window": {"start": "2026-12-08T19:00:00+00:00", "end": "2026-12-08T21:00:00+00:00"},
    "downtime": "1h",
    "customers": ["EoE"],
    "risk": "medium",
    "rollback": "Restore the snapshot",
    "monitoring": "Grafana",
    "on_call": "Leon",
    "approvers": ["Ollie"],
}
BASE_POLICY: dict[str, Any] = {
    "support": {"name": "the DevOps team", "email": "devops@example.org"},
    "calendar": {
        "time_zone": "Europe/London",
        "holidays": {"country": "GB", "subdivision": "ENG"},
        "working_hours": {"start": "09:00", "end": "17:30", "days": ["mon", "tue", "wed"]},
    },
    "customers": {
        "EoE": {
            "name": "East of England",
            "contacts": [{"email": "desk@example.org"}],
            "environments": ["eoe-prod"],
        }
    },
    "change_types": {
        "planned_infra_update": {
            "internal_notice": {"minimum": "24h", "recommended": "48h"},
            "external_notice": {"minimum": "3bd", "recommended": "5bd"},
        }
    },
    "templates": {"announce.internal.j2": "{{ change.id }}: {{ change.purpose }}\n"},
}


@functools.cache
def _base_ledger() -> list[dict[str, Any]]:
    """The ledger `hie-notify plan` writes for the base inputs (sealed as the tool seals it)."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for file, content in _files(ledger=False).items():
            (tmp / file).write_text(content)
        args = ["--now", NOW, "--outbox", str(tmp / "outbox"), "--policy", str(tmp / "policy.yaml")]
        args += ["--ledger", f"file:{tmp}/ledger.jsonl", "--change", str(tmp / "change.yaml")]
        args += ["plan", "--plan", str(tmp / "plan.json")]
        args += ["--terraform-report", str(tmp / "report.json")]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(args, env=dict(ENV)) == 0
        lines = (tmp / "ledger.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


# -- what mutations put in

SPECIAL_STRINGS = [
    "",
    " ",
    "\u200b",
    "\n",
    "FFAPP-1\n",
    "2026-02-30",
    "2026-12-08T19:00:00",
    "2026-12-08T25:00:00+00:00",
    "2026-12-08T19:00:00+99:00",
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59+00:00",
    "2027-03-28T01:30:00",
    SECRET,
    "xoxb-123456789012-123456789012-abcdefABCDEF",
    "{{ 7 * 7 }}",
    "<!channel> @here <script>",
    "../../etc/passwd",
    "create",
    "delete",
    "no-op",
    "9" * 40 + "bd",
    "9" * 5000,
    "99999999h",
    "400d",
    "0",
    "24h",
    "3bd",
    "-1h",
    "emergency_fix",
    "bogus_type",
    "x" * 20_000,
    "Europe/London",
    "Mars/Olympus",
    "#devops",
]
TEMPLATES = [
    "{{ change.id }}",
    "{% for r in plan.resources %}{{ r.address }} {{ r.action }}\n{% endfor %}",
    "{{ range(10**6) | list | length }}",
    "{{ 'x' * 10**7 }}",
    "{{ 10 ** 10 ** 10 }}",
    "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}",
    "{% for a in range(9999) %}{% for b in range(9999) %}{% endfor %}{% endfor %}",
    "{{ ''.__class__.__mro__ }}",
    "{{ f.b(change.purpose) }} {{ f.link(links.run, 'run') }}",
    "{{ '%999999999d' % 1 }}",
    "{{ ('x' * 1000) | replace('x', 'y' * 10000) }}",
    "{{ lipsum(10**6) }}",
    "{% for a in range(5000) %}" + "z" * 500 + "{% endfor %}",
    "{{ undefined_name }}",
    "{% if %}",
    "{{ change.purpose | center(10**8) }}",
    "{% set ns = namespace(x=1) %}{% for i in range(20) %}{% set ns.x = ns.x * 1000 %}{% endfor %}"
    "{{ ns.x }}",
    "{% for r in plan.resources recursive %}{{ loop(plan.resources) }}{% endfor %}",
]


def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _leaf() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=10**18, max_value=10**40),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=30),
        st.sampled_from(SPECIAL_STRINGS),
    )


def _values() -> st.SearchStrategy[Any]:
    return st.one_of(
        _leaf(),
        st.lists(_leaf(), max_size=4),
        st.dictionaries(st.text(max_size=8), _leaf(), max_size=4),
        st.lists(st.dictionaries(st.text(max_size=3), _leaf(), max_size=2), max_size=3),
        st.sampled_from([[{}], [["create"]], {"a": [{}]}, [[]], {}]),
        st.integers(min_value=50, max_value=1100).map(_nest),
    )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict) and len(prefix) < 8:
        for key, sub in value.items():
            found += _paths(sub, (*prefix, key))
    elif isinstance(value, list) and len(prefix) < 8:
        for i, sub in enumerate(value[:6]):
            found += _paths(sub, (*prefix, i))
    return found


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@st.composite
def _mutated_tree(draw: st.DrawFn, base: Any) -> Any:
    """A deep copy of `base` with one to three values replaced, deleted, added or wrapped."""
    doc = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["replace", "replace", "delete", "add", "wrap", "template"]))
        if not path:
            if how in ("replace", "wrap"):
                doc = draw(_values()) if how == "replace" else [doc]
            continue
        parent, key = _at(doc, path[:-1]), path[-1]
        if how == "replace":
            parent[key] = draw(_values())
        elif how == "template":
            parent[key] = draw(st.sampled_from(TEMPLATES))
        elif how == "delete":
            del parent[key]
        elif how == "wrap":
            parent[key] = [parent[key]] if draw(st.booleans()) else {"x": parent[key]}
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "type", "window", "days", "templates"]))] = draw(
                _values()
            )
        else:
            parent.append(draw(_values()))
    return doc


JSON_SNIPPETS = [
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    '"',
    "\\",
    "9" * 5000,
    "1e400",
    "NaN",
    "\x00",
    "\ud800",
]
YAML_SNIPPETS = [
    "&a ",
    "*a",
    "*missing",
    "!!python/object/apply:os.system ['true']\n",
    "<<: *a\n",
    ": ",
    "- ",
    "\t",
    "{",
    "[",
    "'",
    '"',
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "? ",
    "2026-02-30",
    "9" * 5000,
    "[" * 200,
    "\u200b",
    "\x00",
]


@st.composite
def _mutated_text(draw: st.DrawFn, text: str, snippets: list[str]) -> str:
    """`text` with a few byte-level edits: snippets inserted, slices cut, the end cut off."""
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "insert", "cut", "truncate"]))
        if how == "insert":
            text = text[:at] + draw(st.sampled_from(snippets) | st.text(max_size=5)) + text[at:]
        elif how == "cut":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        else:
            text = text[:at]
    return text


def _as_yaml(doc: Any) -> str:
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, RecursionError):
        return json.dumps(doc)  # YAML is a superset of JSON


def _as_json(doc: Any) -> str:
    try:
        return json.dumps(doc)
    except (ValueError, RecursionError):
        return "{"


def _yaml_input(base: dict[str, Any]) -> st.SearchStrategy[str]:
    tree = _mutated_tree(base).map(_as_yaml)
    text = st.builds(_as_yaml, st.just(base)).flatmap(lambda t: _mutated_text(t, YAML_SNIPPETS))
    return st.one_of(tree, tree, text)


def _plan_input() -> st.SearchStrategy[str]:
    tree = _mutated_tree(BASE_PLAN).map(_as_json)
    return st.one_of(tree, tree, _mutated_text(json.dumps(BASE_PLAN), JSON_SNIPPETS))


def _ledger_input() -> st.SearchStrategy[str]:
    return st.deferred(_ledger_strategy)


def _ledger_strategy() -> st.SearchStrategy[str]:
    base = _base_ledger()
    lines = [json.dumps(e) + "\n" for e in base]
    return st.one_of(
        _mutated_tree(base).map(
            lambda doc: (
                "".join(_as_json(e) + "\n" for e in doc)
                if isinstance(doc, list)
                else _as_json(doc) + "\n"
            )
        ),
        _mutated_text("".join(lines), [*JSON_SNIPPETS, "\n"]),
    )


STATUSES = ["started", "succeeded", "failed"]
STAGES = ["announce", "plan", "apply_started", "apply_failed", "rollback_succeeded", "complete"]


@st.composite
def _command(draw: st.DrawFn) -> list[str]:
    name = draw(
        st.sampled_from(
            [
                "classify",
                "plan",
                "gate",
                "gate",
                "earliest",
                "apply",
                "rollback",
                "complete",
                "cancel",
                "preview",
                "validate",
            ]
        )
    )
    args = [name]
    if name in ("apply", "rollback"):
        args += ["--status", draw(st.sampled_from(STATUSES))]
    if name == "preview":
        args += [draw(st.sampled_from(STAGES))]
    needs_plan = name in ("classify", "plan", "gate", "earliest", "preview")
    if needs_plan or (name not in ("cancel", "validate") and draw(st.booleans())):
        args += ["--plan", "{tmp}/plan.json"]
    if name == "plan":
        args += ["--terraform-report", "{tmp}/report.json"]
    if name == "gate":
        args += ["--dotenv", "{tmp}/gate.env"]
    return args


# Valid times only: a refused --now stops every command before it reads the mutated file (the
# corpus covers --now itself).
NOWS = st.sampled_from([NOW, "2026-12-08T19:30:00+00:00", "2026-12-24T10:00:00+00:00"])


def _run(mutated: str, files: dict[str, str], command: list[str], now: str, fmt: str) -> None:
    """Run one command over the files and check every property."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for file, content in files.items():
            (tmp / file).write_text(content, encoding="utf-8", errors="surrogatepass")
        args = ["--format", fmt, "--now", now, "--outbox", str(tmp / "outbox")]
        args += ["--ledger", f"file:{tmp}/ledger.jsonl", "--change", str(tmp / "change.yaml")]
        if "policy.yaml" in files:
            args += ["--policy", str(tmp / "policy.yaml")]
        args += [part.replace("{tmp}", str(tmp)) for part in command]
        out, err = io.StringIO(), io.StringIO()
        started = time.monotonic()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args, env=dict(ENV))
        took = time.monotonic() - started
        printed = out.getvalue() + err.getvalue()
        outbox = _outbox_text(tmp / "outbox")
    shown = files[mutated] if len(files[mutated]) <= 300 else files[mutated][:300] + "..."
    case = f"{' '.join(command)} --now {now}; {mutated} ({len(files[mutated])} chars): {shown!r}"
    STATS[f"{command[0]}:{code}"] += 1
    log = os.environ.get("HIE_FUZZ_LOG")
    if log:
        lines = [line.strip() for line in err.getvalue().splitlines() if line.strip()]
        with open(log, "a") as fh:
            fh.write(f"{command[0]} {code} {mutated} {' | '.join(lines[:2])[:200]}\n")
    SLOWEST.append((took, case))
    SLOWEST.sort()
    del SLOWEST[:-5]
    assert code in (0, 1, 2), printed[-2000:]
    assert code != 1 or command[0] == "gate", f"exit 1 from {command[0]}: {printed[-2000:]}"
    assert "Traceback (most recent call last)" not in printed, printed[-4000:]
    for secret in SECRETS:
        assert secret not in printed, "a planted secret was printed"
        assert secret not in outbox, "a planted secret reached the outbox"
    assert took < TIME_LIMIT, f"{command[0]} took {took:.1f} s"


def _outbox_text(folder: Path) -> str:
    if not folder.exists():
        return ""
    parts = [p.read_text(errors="replace")[:1_000_000] for p in folder.rglob("*") if p.is_file()]
    return "\n".join(parts)


def _files(changed: dict[str, str] | None = None, *, ledger: bool = True) -> dict[str, str]:
    files = {
        "plan.json": json.dumps(BASE_PLAN),
        "change.yaml": _as_yaml(BASE_CHANGE),
        "policy.yaml": _as_yaml(BASE_POLICY),
    }
    if ledger:
        files["ledger.jsonl"] = "".join(json.dumps(e) + "\n" for e in _base_ledger())
    files.update(changed or {})
    return files


FORMATS = st.sampled_from(["text", "json"])
BASE_COMMANDS = [
    ["classify", "--plan", "{tmp}/plan.json"],
    ["plan", "--plan", "{tmp}/plan.json", "--terraform-report", "{tmp}/report.json"],
    ["gate", "--plan", "{tmp}/plan.json"],
    ["earliest", "--plan", "{tmp}/plan.json"],
    ["apply", "--status", "started"],
    # The base ledger is an announcement: a rollback or a completion may not follow it (the
    # lifecycle refuses them, exit 2), an apply's end may.
    ["apply", "--status", "failed"],
    ["apply", "--status", "succeeded"],
    ["cancel"],
    ["preview", "announce", "--plan", "{tmp}/plan.json"],
    ["validate"],
]


@pytest.mark.parametrize("command", BASE_COMMANDS, ids=[c[0] for c in BASE_COMMANDS])
def test_the_inputs_before_mutation_are_valid(command: list[str]) -> None:
    """Mutations start from inputs every command accepts (the ledger is what `plan` wrote;
    gate: blocked, the notice came too late for the window); otherwise the suite would only
    ever test one error."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for file, content in _files().items():
            (tmp / file).write_text(content)
        args = ["--now", NOW, "--outbox", str(tmp / "outbox"), "--policy", str(tmp / "policy.yaml")]
        args += ["--ledger", f"file:{tmp}/ledger.jsonl", "--change", str(tmp / "change.yaml")]
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main([*args, *(p.replace("{tmp}", str(tmp)) for p in command)], env=dict(ENV))
    assert code == (1 if command[0] == "gate" else 0), err.getvalue()


@seed(SEED)
@FUZZ
@given(_plan_input(), _command(), NOWS, FORMATS)
def test_mutated_plans(plan_text: str, command: list[str], now: str, fmt: str) -> None:
    _run("plan.json", _files({"plan.json": plan_text}), command, now, fmt)


@seed(SEED)
@FUZZ
@given(_yaml_input(BASE_CHANGE), _command(), NOWS, FORMATS)
def test_mutated_change_records(change: str, command: list[str], now: str, fmt: str) -> None:
    _run("change.yaml", _files({"change.yaml": change}), command, now, fmt)


@seed(SEED)
@FUZZ
@given(_yaml_input(BASE_POLICY), _command(), NOWS, FORMATS)
def test_mutated_policies(policy: str, command: list[str], now: str, fmt: str) -> None:
    _run("policy.yaml", _files({"policy.yaml": policy}), command, now, fmt)


@seed(SEED)
@FUZZ
@given(_ledger_input(), _command(), NOWS, FORMATS)
def test_mutated_ledgers(ledger: str, command: list[str], now: str, fmt: str) -> None:
    _run("ledger.jsonl", _files({"ledger.jsonl": ledger}), command, now, fmt)
