"""Mutation testing of the core with mutmut: which planted one-line bugs does the suite miss?

The full run is a script, not CI (minutes per module). Needs mutmut 3 (in the dev extra):

    .venv/bin/pip install -e '.[dev]'
    .venv/bin/python bench/mutation.py [TARGET ...] [--jobs N] [--show-survivors]

Each target is a set of files (optionally only some of their functions) and the unit tests
that should pin them (the CLI-level tests are left out: with them a run lasts hours). For each
target the repository is copied to a temporary folder (the working tree is never touched),
mutmut mutates the files there and runs, for each mutant, the target's tests that cover the
mutated function. The report gives killed / survived per target and the score, killed /
(all - known equivalent); the goal is 95%. Mutants of a function no selected test runs count as
survivors. Survivors known to be equivalent (no test can tell them from the original) are listed
with the reason, matched by function and by the line the mutant writes, so they survive
renumbering. Exit 1 when a target is under 95%. mutmut does not mutate module-level constants
(e.g. masking.SECRET_VARIABLES): named tests pin those.

The reduced form, `--sample N`: mutant N of each function of the targets named (all by
default), in one mutmut run, failing on any survivor not listed as equivalent; with
`--changed-since REV`, only the targets with a file changed since REV. CI runs it
(tests/test_mutation_bench.py, a `tools` test) for the targets the last commit changed and one
canary target. Every module of hie_notify is a target's file or is in NOT_MEASURED with why
(the same test file checks it), so a new module cannot arrive unmeasured.

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
from fnmatch import fnmatchcase as fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 0.95


@dataclass(frozen=True)
class Target:
    files: tuple[str, ...]
    tests: tuple[str, ...]
    # Only mutants of these functions count ("name" or "Class.method"); None: every function.
    functions: tuple[str, ...] | None = None
    # Tests left out (pytest node ids): slow ones that pin something else (e.g. locking).
    deselect: tuple[str, ...] = ()
    # Why CI's sample leaves the target out, until its survivors are killed or listed ("": in).
    not_in_ci: str = ""


_OWED = "measured, not yet at the goal: its survivors are still to be killed or listed (issue 27)"
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
        (
            "tests/test_gate.py",
            "tests/scenarios/test_announce_gate.py",
            "tests/scenarios/test_unchanged_notice.py",
            "tests/test_gate_still_told.py",
            "tests/scenarios/test_checklists.py",
            "tests/scenarios/test_phase1.py",
        ),
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
    "seal": Target(
        ("hie_notify/ledger/seal.py",),
        ("tests/ledger/test_file.py", "tests/ledger/test_gitlab.py", "tests/ledger/test_seal.py"),
        deselect=("tests/ledger/test_file.py::test_two_processes_appending_at_once_lose_nothing",),
    ),
    "notifications": Target(
        ("hie_notify/service/notifications.py",),
        ("tests/service/test_notifications_stale.py", "tests/service/test_server.py"),
        functions=("stale", "_time"),
    ),
    "statuspage": Target(
        ("hie_notify/channels/statuspage.py",),
        ("tests/channels/test_statuspage_payload.py",),
        functions=("plain", "components_for", "incident", "_refused", "_utc"),
    ),
    "pagerduty": Target(
        ("hie_notify/channels/pagerduty.py",),
        ("tests/channels/test_pagerduty_payload.py",),
        functions=("event", "_refused"),
    ),
    "invite": Target(
        ("hie_notify/channels/email_message.py",),
        ("tests/channels/test_invite_payload.py",),
    ),
    "uptime": Target(
        ("hie_notify/report/uptime.py",),
        ("tests/report/test_uptime.py", "tests/report/test_uptime_units.py"),
    ),
    "lifecycle": Target(
        ("hie_notify/lifecycle.py",), ("tests/test_lifecycle.py",), not_in_ci=_OWED
    ),
    "feed": Target(
        ("hie_notify/register/feed.py",), ("tests/commands/test_calendar.py",), not_in_ci=_OWED
    ),
    "reminders": Target(
        ("hie_notify/register/reminders.py",), ("tests/commands/test_remind.py",), not_in_ci=_OWED
    ),
    "audiences": Target(
        ("hie_notify/audiences.py",), ("tests/test_audiences.py",), not_in_ci=_OWED
    ),
}

# Every module of hie_notify is a target's file above, or is named here with why it is not
# (tests/test_mutation_bench.py checks it: a new module cannot arrive unmeasured).
_NAMED = "the modules issue 27 names, not measured yet: each is a debt until it is a target"
_WIRING = (
    "a command's wiring: reads options, calls the measured core, prints; pinned by the CLI "
    "tests, whose run per mutant would last hours"
)
_PLAIN = "plain data, types or constants: no branch to mutate that a test of its users misses"
_IO = (
    "I/O plumbing (HTTP, files, processes, terminal) with no decision of its own; the outside "
    "services' fakes pin what it sends"
)
NOT_MEASURED: dict[str, str] = {
    # -- the list, still owed
    **{
        f"hie_notify/{m}.py": _NAMED
        for m in (
            "ledger/file",
            "ledger/gitlab",
            "service/runtask",
            "service/settings",
            "receiver",
            "terraform/runtask",
            "channels/__init__",
            "channels/email",
            "channels/gitlab",
            "channels/jira",
            "channels/slack",
            "channels/slack_blocks",
            "channels/teams",
            "channels/webhook",
            "register/model",
            "report/compute",
            "terraform/plan",
            "stages",
        )
    },
    # -- merged in this stop beside the bench's new check: they decide, so they are owed too
    **{
        f"hie_notify/{m}.py": (
            "merged in the same stop as this check (alerts, organisation service, IAM detail, "
            "acknowledgements, settings): decides, measured next; its tests pin it meanwhile"
        )
        for m in (
            "ack_gate",
            "acks",
            "channels/alerts",
            "service/ackpages",
            "service/org",
            "settings",
            "terraform/iam",
        )
    },
    "hie_notify/commands/ack.py": _WIRING,
    # -- entry points and wiring
    "hie_notify/__init__.py": _PLAIN,
    "hie_notify/__main__.py": "`python -m hie_notify`: calls cli.main",
    "hie_notify/cli.py": _WIRING,
    "hie_notify/context.py": _WIRING,
    "hie_notify/stagerun.py": _WIRING,
    **{
        f"hie_notify/commands/{m}.py": _WIRING
        for m in (
            "__init__",
            "announce",
            "apply",
            "calendar",
            "cancel",
            "classify",
            "complete",
            "digest",
            "earliest",
            "gate",
            "plan",
            "postmortem",
            "preview",
            "receive",
            "remind",
            "report",
            "rollback",
            "update",
            "validate",
            "watch",
        )
    },
    "hie_notify/service/__init__.py": _PLAIN,
    "hie_notify/service/app.py": _WIRING,
    "hie_notify/service/server.py": _IO,
    "hie_notify/service/logs.py": "log formatting of the service (JSON lines)",
    "hie_notify/service/changes.py": (
        "finds a run's change record and ledger (GitLab reads); the service tests pin it"
    ),
    # -- plain data and plumbing
    "hie_notify/errors.py": _PLAIN,
    "hie_notify/records.py": _PLAIN,
    "hie_notify/limits.py": _PLAIN,
    "hie_notify/policy/__init__.py": _PLAIN,
    "hie_notify/policy/model.py": "pydantic models of the policy: its validation is pydantic's",
    "hie_notify/policy/loader.py": "reads and merges the policy files; test_policy pins it",
    "hie_notify/register/__init__.py": _PLAIN,
    "hie_notify/report/__init__.py": _PLAIN,
    "hie_notify/report/model.py": _PLAIN,
    "hie_notify/terraform/__init__.py": _PLAIN,
    "hie_notify/output.py": _IO,
    "hie_notify/progress.py": _IO,
    "hie_notify/http.py": _IO,
    "hie_notify/gitlab_api.py": _IO,
    "hie_notify/pipes.py": _IO,
    "hie_notify/plan_source.py": _IO,
    "hie_notify/sandbox.py": "the Jinja2 sandbox's settings; test_trust_escaping attacks it",
    "hie_notify/yamlfile.py": "YAML reading (duplicate keys refused): test_strict_yaml",
    "hie_notify/safejson.py": "JSON reading limits: test_hardening_input",
    "hie_notify/switches.py": "one yes/no parser: test_switches pins every spelling",
    "hie_notify/options.py": "flag and variable merging: test_options",
    "hie_notify/change.py": "the change record's schema: test_change and the bad-input corpus",
    "hie_notify/durations.py": "a short parser: test_durations pins every form",
    "hie_notify/timetext.py": "how a time is shown: test_timetext and the DST payload tests",
    "hie_notify/tokens.py": "token scopes: test_tokens",
    "hie_notify/render.py": "Jinja2 rendering: the message tests pin each template's words",
    "hie_notify/template_check.py": "validate's template check: test_validate_templates",
    "hie_notify/template_files.py": _IO,
    "hie_notify/terraform/plan_decode.py": "JSON decoding of a plan (msgspec): test_plan_lean",
    "hie_notify/channels/api.py": _IO,
    "hie_notify/channels/outbox.py": _IO,
    "hie_notify/register/digest.py": "digest text: test_digest*",
    "hie_notify/register/gitlab.py": _IO,
    "hie_notify/register/jobs.py": _WIRING,
    "hie_notify/register/sqlite.py": _IO,
    "hie_notify/register/store.py": _IO,
    "hie_notify/register/sync.py": "register sync from ledgers: test_register_update",
    "hie_notify/report/charts.py": "matplotlib charts: test_report_html",
    "hie_notify/report/export.py": _IO,
    "hie_notify/report/generate.py": _WIRING,
    "hie_notify/report/html.py": "the report's HTML: test_report_html",
    "hie_notify/report/source.py": _IO,
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

EQUIVALENT += [
    *(
        (
            "seal",
            "content_digest",
            text,
            "Entry.to_json always has `digest` and `mac` (asdict), so pop's default is never used",
        )
        for text in ('data.pop("digest", )', 'data.pop("mac", )')
    ),
    (
        "seal",
        "content_digest",
        'separators=(",", ":"), )',
        "ensure_ascii=True is json.dumps' default",
    ),
    *(
        (
            "seal",
            "seal",
            text,
            "content_digest leaves `digest` and `mac` out of what it hashes, and the next line "
            "sets both: what they are cleared to never shows",
        )
        for text in (
            'digest=None, mac="")',
            'digest="", mac=None)',
            'or last(change), mac="")',
            'digest="", )',
            'digest="XXXX", mac="")',
            'digest="", mac="XXXX")',
        )
    ),
]

EQUIVALENT += [
    (
        "notifications",
        "_time",
        text,
        "Python 3.11's fromisoformat reads a trailing Z itself (the replace is for 3.10), and "
        "an ISO 8601 time has no other Z or z",
    )
    for text in ('replace("XXZXX", "+00:00")', 'replace("z", "+00:00")')
]

_CASELESS_ICS = (
    "icalendar keeps property and parameter names in a case-insensitive dict and writes them "
    "upper-case: the same file"
)
_CASELESS_MAIL = (
    "header field names, MIME types and their parameter names are case-insensitive (RFC 5322 "
    "1.2.2, RFC 2045 5.1): every reader takes them the same"
)
EQUIVALENT += [
    *(
        ("invite", "build", f'mail["{name}"]', _CASELESS_MAIL)
        for header in ("Subject", "From", "To", "Date", "Message-ID", "X-HIE-Notify-Key")
        for name in (header.lower(), header.upper())
    ),
    *(
        ("invite", "build", text, _CASELESS_MAIL)
        for text in ('subtype="HTML"', 'subtype="CALENDAR"', '{"METHOD": method}')
    ),
    *(
        ("invite", "calendar_invite", f'add("{name}"', _CASELESS_ICS)
        for name in (
            "PRODID",
            "VERSION",
            "METHOD",
            "UID",
            "SEQUENCE",
            "DTSTAMP",
            "DTSTART",
            "DTEND",
            "SUMMARY",
            "DESCRIPTION",
            "STATUS",
            "TRANSP",
            "ORGANIZER",
            "ATTENDEE",
        )
    ),
    *(("invite", "calendar_invite", f'params["{name}"]', _CASELESS_ICS) for name in ("CN", "ROLE")),
    *(
        ("invite", "vtimezone", f'add("{name}"', _CASELESS_ICS)
        for name in ("TZID", "DTSTART", "TZOFFSETFROM", "TZOFFSETTO", "TZNAME")
    ),
    *(
        (
            "invite",
            "calendar_invite",
            text,
            "icalendar's add returns a value that is already a vCalAddress as it is, encoded "
            "or not",
        )
        for text in ("encode=None)", "attendee, )", "encode=True)")
    ),
    *(
        (
            "invite",
            func,
            text,
            "icalendar writes a DATE-TIME to the second: the microseconds never show",
        )
        for func, text in (
            ("calendar_invite", "now.replace(microsecond=1)"),
            ("vtimezone", "replace(tzinfo=None, )"),
            ("vtimezone", "replace(tzinfo=None, microsecond=1)"),
        )
    ),
]
_SEARCH = (
    "the search still ends within a second after each change, and the VTIMEZONE writes the "
    "second: where the day grid starts, how wide a step is or how it is halved, the same file"
)
EQUIVALENT += [
    *(
        ("invite", "_clock_changes", text, _SEARCH)
        for text in (
            "replace(hour=0, second=0, microsecond=0)",
            "replace(hour=0, minute=0, microsecond=0)",
            "replace(hour=0, minute=0, second=0, )",
            "replace(hour=0, minute=1, second=0, microsecond=0)",
            "replace(hour=0, minute=0, second=1, microsecond=0)",
            "replace(hour=0, minute=0, second=0, microsecond=1)",
            "day + timedelta(days=2)",
            "hi - lo >= timedelta(seconds=1)",
            "hi - lo > timedelta(seconds=2)",
            "(hi - lo) / 2",
            "(hi - lo) // 3",
        )
    ),
    *(
        (
            "invite",
            func,
            'tzname() or "XXXX"',
            "zoneinfo names every offset (GMT, BST, EST, JST, UTC...): the fallback never shows",
        )
        for func in ("vtimezone", "_clock_changes")
    ),
    (
        "invite",
        "vtimezone",
        "first - timedelta(days=371)",
        "the observance kept is the latest change before the start: a day further back only "
        "finds older ones, which are dropped",
    ),
]

EQUIVALENT += [
    *(
        ("uptime", "split_by_month", text, _SAME_INSTANT)
        for text in (
            "hi.astimezone(None) - lo.astimezone(UTC)",
            "hi.astimezone(UTC) - lo.astimezone(None)",
        )
    ),
    ("uptime", "budget_findings", 'float("INF")', 'float("INF") is float("inf")'),
]
EQUIVALENT += [
    (
        "gate",
        "task_key",
        '"XX XX".join(text.split())',
        "a checklist item and a ticked line are both keyed by it and only compared: any one "
        "separator between the words keys them alike",
    ),
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
        + "".join(f"    --deselect\n    {test}\n" for test in target.deselect)
        + "also_copy=\n    examples\n    README.md\n    docs\n    mkdocs.yml\n"
    )


def _module(file: str) -> str:
    return file.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _selection(target: Target, nth: str = "*") -> list[str]:
    """mutmut's name patterns for a target's mutants: mutant `nth` ("*": every one) of each of
    its functions (of every function of its files when it names none)."""
    patterns = []
    for file in target.files:
        module = _module(file)
        if target.functions is None:
            patterns.append(f"{module}.x*__mutmut_{nth}")
            continue
        for func in target.functions:
            cls, _, meth = func.rpartition(".")
            mangled = f"xǁ{cls}ǁ{meth}" if cls else f"x_{func}"
            patterns.append(f"{module}.{mangled}__mutmut_{nth}")
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
    [outcome] = _run(name, {name: target}, jobs, nth="*")
    return outcome


# Left out of the one-run sample: it reads every source file's text for the variables it
# names, and mutmut's copies of the other targets' files are full of mutated names.
SAMPLE_DESELECT = (
    "tests/test_masking.py::test_every_variable_the_code_names_is_sorted_into_secret_or_not",
)


def run_sample(targets: dict[str, Target], jobs: int, nth: str) -> list[Outcome]:
    """Mutant `nth` of each function of every target, in one mutmut run over all their files
    with all their tests (so mutmut collects its test statistics once): what CI runs."""
    union = Target(
        tuple(f for t in targets.values() for f in t.files),
        tuple(dict.fromkeys(test for t in targets.values() for test in t.tests)),
        None,
        tuple(
            dict.fromkeys(
                [*(test for t in targets.values() for test in t.deselect), *SAMPLE_DESELECT]
            )
        ),
    )
    return _run("sample", targets, jobs, nth=nth, union=union)


def _run(
    label: str, targets: dict[str, Target], jobs: int, *, nth: str, union: Target | None = None
) -> list[Outcome]:
    started = time.monotonic()
    patterns = {name: _selection(t, nth) for name, t in targets.items()}
    selection = [p for ps in patterns.values() for p in ps]
    with tempfile.TemporaryDirectory(prefix=f"hie-mutation-{label}-") as tmp:
        work = Path(tmp) / "repo"
        _copy(work)
        (work / "setup.cfg").write_text(_config(union or next(iter(targets.values()))))
        plain = nth == "*" and all(t.functions is None for t in targets.values())
        done = _mutmut(work, "run", "--max-children", str(jobs), *([] if plain else selection))
        if "mutations/second" not in done.stdout:  # it stopped before testing any mutant
            sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
            raise SystemExit(f"mutmut failed on {label} (exit {done.returncode})")
        lines = _mutmut(work, "results", "--all", "true").stdout.splitlines()
        outcomes = {name: Outcome(name, Counter(), 0, [], [], 0.0) for name in targets}
        for line in lines:
            mutant, sep, status = line.strip().partition(": ")
            if not sep:
                continue
            name = next(
                (n for n, ps in patterns.items() if any(fnmatch(mutant, p) for p in ps)), None
            )
            if name is None:
                continue
            outcome, func = outcomes[name], function_of(mutant)
            outcome.counts[status] += 1
            if status in KILLED:
                outcome.killed += 1
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
                outcome.equivalent.append((mutant, written, reason))
            else:
                outcome.survived.append((mutant, written))
    seconds = time.monotonic() - started
    for outcome in outcomes.values():
        outcome.seconds = seconds
    return list(outcomes.values())


def changed_targets(rev: str, root: Path = ROOT) -> list[str]:
    """The targets CI samples with a file that differs between git revision `rev` and the
    working tree."""
    done = subprocess.run(
        ["git", "diff", "--name-only", rev, "--", "hie_notify"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"git diff {rev}: {done.stderr.strip()}")
    files = set(done.stdout.split())
    return [name for name, t in TARGETS.items() if files & set(t.files) and not t.not_in_ci]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=", ".join(TARGETS))
    parser.add_argument("--jobs", type=int, default=1, help="mutmut --max-children (default 1)")
    parser.add_argument("--show-survivors", action="store_true")
    parser.add_argument(
        "--changed-since",
        metavar="REV",
        help="only the targets with a file changed since git revision REV (e.g. main)",
    )
    parser.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="only mutant N of each function, all targets in one run (CI's reduced form); "
        "fails on any survivor not listed as equivalent",
    )
    args = parser.parse_args(argv)
    try:
        import mutmut  # noqa: F401
    except ImportError:
        raise SystemExit("no mutmut: .venv/bin/pip install 'mutmut>=3.3,<4'") from None
    names = args.targets or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    if args.changed_since:
        changed = changed_targets(args.changed_since)
        names = [n for n in names if n in changed] if args.targets else changed
        if not names:
            print(f"no target has a file changed since {args.changed_since}")
            return 0
    if args.sample is not None:
        return _sample(names, args)
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
    _summary(outcomes)
    return 0 if all(o.score >= GOAL for o in outcomes) else 1


def _sample(names: list[str], args: argparse.Namespace) -> int:
    chosen = {name: TARGETS[name] for name in names}
    print(f"== sample: mutant {args.sample} of each function of {', '.join(names)}", flush=True)
    outcomes = run_sample(chosen, args.jobs, str(args.sample))
    print(f"   {sum(o.total for o in outcomes)} mutants in {outcomes[0].seconds:.0f}s")
    for o in outcomes:
        for mutant, written in o.survived:
            print(f"   survived {mutant}: {written}")
    _summary(outcomes)
    return 0 if all(not o.survived for o in outcomes) else 1


def _summary(outcomes: list[Outcome]) -> None:
    print(f"\nMutation score (killed / (all - equivalent)), target {GOAL:.0%} per module:")
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


if __name__ == "__main__":
    raise SystemExit(main())
