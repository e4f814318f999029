"""Argument parsing and dispatch only; each command lives in `hie_notify.commands`."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from importlib import import_module
from typing import TYPE_CHECKING, NoReturn, TextIO, cast

from hie_notify import __version__, progress, switches
from hie_notify.errors import EXIT_BAD_INPUT, EXIT_SERVICE, HieError, InputError
from hie_notify.masking import Masker
from hie_notify.options import Options

if TYPE_CHECKING:
    from hie_notify.settings import Settings

# Global options may come before or after the command, or from these variables.
_GLOBALS: list[tuple[str, str | None, dict[str, object]]] = [
    (
        "--policy",
        "HIE_POLICY",
        {
            "metavar": "FILE",
            "help": "policy YAML merged over the built-in default (HIE_POLICY; in GitLab CI the "
            "protected policy decides)",
        },
    ),
    ("--change", "HIE_CHANGE", {"metavar": "FILE", "help": "change record YAML (HIE_CHANGE)"}),
    (
        "--ledger",
        "HIE_LEDGER",
        {
            "metavar": "URI",
            "help": "file:PATH or gitlab (HIE_LEDGER; default file:.hie-notify/ledger.jsonl)",
        },
    ),
    (
        "--register",
        "HIE_REGISTER",
        {
            "metavar": "URI",
            "help": "sqlite:PATH, gitlab or none (HIE_REGISTER; default register.sqlite3 beside "
            "a file ledger, none with a GitLab ledger)",
        },
    ),
    (
        "--now",
        "HIE_NOW",
        {"metavar": "ISO8601", "help": "pretend it is this time (HIE_NOW; default: the clock)"},
    ),
    (
        "--outbox",
        "HIE_OUTBOX",
        {
            "metavar": "DIR",
            "help": "folder for undelivered messages (HIE_OUTBOX; default hie-notify-outbox)",
        },
    ),
    (
        "--format",
        None,
        {
            "choices": ["text", "json", "html", "csv", "ics"],
            "metavar": "FORMAT",
            "help": "text or json (default text); report: html, csv or json (default html); "
            "calendar: text, json or ics (default text)",
        },
    ),
    (
        "--dry-run",
        "HIE_DRY_RUN",
        {"action": "store_true", "help": "send, record and write nothing (HIE_DRY_RUN)"},
    ),
    (
        "--debug",
        None,
        {"action": "store_true", "help": "on an unexpected error, print the traceback"},
    ),
]

_COMMANDS: dict[str, str] = {
    "classify": "print the classification of a plan; sends nothing",
    "plan": "classify, send the pre-deployment notices the policy requires, record them",
    "announce": "announce a change with no plan (incident, emergency, not Terraform) to its "
    "declared type's audiences; a plan attached later must be no more severe",
    "gate": "decide whether the apply may go ahead now; exit 1 when blocked, with every reason",
    "earliest": "the earliest window start the required notice allows if notices go out now",
    "apply": "stage notices for the apply (--status started|succeeded|failed)",
    "rollback": "stage notices for a rollback (--status started|succeeded|failed)",
    "complete": "completion notices once the key user flows were checked; opens the "
    "post-mortem issue where the policy owes one",
    "cancel": "tell everyone who was told that the change will not go ahead",
    "preview": "render every message of a stage (plan, apply --status S, rollback --status S, "
    "complete, cancel), for every audience, without sending",
    "watch": "follow an HCP Terraform run until it is final, sending each stage once; exit 3 "
    "when --timeout ends first",
    "receive": "serve the HCP Terraform run task (the gate) and notification webhooks",
    "validate": "check the policy and change files and render every message template the policy "
    "uses; exit 2 with every problem found",
    "calendar": "registered changes, deploy freezes and bank holidays in a range (text, json, ics)",
    "remind": "scheduled (hourly): reminders, window opens, overrun and overdue post-mortem "
    "notices the register owes",
    "digest": "scheduled (weekly): the weekly summary, the meeting's agenda and the "
    "stakeholders' update, each once a week",
    "update": "an ad-hoc progress or delay update to the change's 'during' audiences, once",
    "postmortem": "the change's post-mortem (owed, due, overdue); --closed --link URL records "
    "that it was held",
    "report": "compliance report from the register: notice, breaches, post-mortems, downtime",
    "ack": "who acknowledged the change's notices and who objected; --resolve --reason TEXT "
    "records that the open objections were resolved (not by the change's author)",
}


def _add_globals(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    for flag, _env, kwargs in _GLOBALS:
        extra: dict[str, object] = dict(kwargs)
        if suppress:
            extra["default"] = argparse.SUPPRESS
        parser.add_argument(flag, **extra)  # type: ignore[arg-type]


def output_formats(module: object) -> tuple[str, ...]:
    """The formats a command's `--format` takes, its default first (text and json unless the
    command's module says otherwise in OUTPUT_FORMATS)."""
    formats: tuple[str, ...] = getattr(module, "OUTPUT_FORMATS", ("text", "json"))
    return formats


class _UsageError(Exception):
    """A command line argparse refuses: exit 2, with the usage of the parser that refused it."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(self, message)


class _CommandParser(_Parser):
    """A command's parser that imports its module and adds its arguments only when the command
    is chosen (or its help is shown): `hie-notify --help` and one command import nothing of the
    other commands, which pull in the channels, templates and service clients."""

    command = ""

    def _load(self) -> None:
        if self.command:
            name, self.command = self.command, ""
            module = import_module(f"hie_notify.commands.{name}")
            module.add_arguments(self)
            # `--format` after the command: the formats this command writes, its true default.
            formats = output_formats(module)
            action = self._option_string_actions["--format"]
            action.choices = list(formats)
            action.metavar = None
            action.help = f"{', '.join(formats[:-1])} or {formats[-1]} (default {formats[0]})"

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._load()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._load()
        return super().format_usage()

    def format_help(self) -> str:
        self._load()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hie-notify",
        description="Deployment notices for regulated production infrastructure, "
        "and a gate that holds the apply until the policy's notice was given.",
        epilog="Exit codes: 0 done/allowed, 1 gate blocked, 2 bad input or configuration, "
        "3 an outside service still failing after retries.",
    )
    parser.add_argument("--version", action="version", version=f"hie-notify {__version__}")
    _add_globals(parser, suppress=False)
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser
    )
    for name, help_text in _COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        _add_globals(cmd, suppress=True)
        cmd.command = name
    return parser


def _options(
    args: argparse.Namespace,
    env: Mapping[str, str],
    clock: Callable[[], datetime] | None = None,
    formats: tuple[str, ...] = ("text", "json"),
    settings: Settings | None = None,
) -> Options:
    values: dict[str, object] = {}
    for flag, var, _kwargs in _GLOBALS:
        key = flag.lstrip("-").replace("-", "_")
        value = getattr(args, key, None)
        if value in (None, False) and var is not None and env.get(var):
            raw = env[var]
            value = switches.parse(var, raw) if key == "dry_run" else raw
        values[key] = value
    values["format"] = values["format"] or formats[0]
    return Options.from_raw(values, env, clock, settings)


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> int:
    from hie_notify.pipes import reader_may_leave

    with reader_may_leave():  # `hie-notify ... | head`: the work goes on, quietly
        return _main(argv, env, clock)


def _main(
    argv: Sequence[str] | None,
    env: Mapping[str, str] | None,
    clock: Callable[[], datetime] | None,
) -> int:
    env = os.environ if env is None else env
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        command = import_module(f"hie_notify.commands.{args.command}")
        formats = output_formats(command)
        if args.format is not None and args.format not in formats:  # given before the command
            raise _UsageError(
                parser,
                f"argument --format: {args.command} writes {', '.join(formats[:-1])} or "
                f"{formats[-1]}, not {args.format!r}",
            )
    except _UsageError as exc:
        exc.parser.print_usage(sys.stderr)
        print(f"{exc.parser.prog}: error: {exc}", file=sys.stderr)
        if _json_asked(argv):
            _json_error(env, f"usage: {exc}", EXIT_BAD_INPUT)
        return EXIT_BAD_INPUT
    as_json = (args.format or formats[0]) == "json"
    stdout = _Watched(sys.stdout)
    try:
        switches.check(env)
        from hie_notify.settings import Settings

        # The face: the environment read once into the typed settings, passed down in Options.
        settings = Settings.from_env(env)
        options = _options(args, env, clock, formats, settings)
        run: Callable[[argparse.Namespace, Options], int] = command.run
        if args.command != "receive":  # the service logs; everything else shows its progress
            progress.start(sys.stderr, env, Masker.from_settings(settings))
        try:
            with contextlib.redirect_stdout(cast(TextIO, stdout)):
                return run(args, options)
        finally:
            progress.stop()
    except HieError as exc:
        mask = Masker.from_env(env)
        label = "invalid input" if isinstance(exc, InputError) else "error"
        lines = exc.problems if isinstance(exc, InputError) else [str(exc)]
        print(f"hie-notify: {label}:", file=sys.stderr)
        for line in lines:
            print(f"  {mask(line)}", file=sys.stderr)
        if as_json and not stdout.written:  # else the command's own JSON says it
            more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
            problems = lines if isinstance(exc, InputError) else []
            _json_error(env, f"{label}: {lines[0]}{more}", exc.exit_code, problems)
        return exc.exit_code
    except Exception as exc:  # the one place every other error becomes a message
        debug = bool(getattr(args, "debug", False))
        return _unexpected(exc, env, debug=debug, as_json=as_json and not stdout.written)


class _Watched:
    """stdout, noting whether the command wrote to it: under --format json one JSON object."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.written = False

    def write(self, text: str) -> int:
        self.written = self.written or bool(text)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


def _json_asked(argv: Sequence[str]) -> bool:
    """`--format json` anywhere on a command line argparse refused."""
    return any(
        a == "--format=json" or (a == "--format" and argv[i + 1 : i + 2] == ["json"])
        for i, a in enumerate(argv)
    )


def _json_error(
    env: Mapping[str, str], error: str, exit_code: int, problems: Sequence[str] = ()
) -> None:
    """Under `--format json` an error is a JSON object on stdout too (the text on stderr)."""
    import json

    mask = Masker.from_env(env)
    data: dict[str, object] = {"error": mask(error), "exit_code": exit_code}
    if problems:
        data["problems"] = [mask(p) for p in problems]
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _unexpected(
    exc: Exception, env: Mapping[str, str], *, debug: bool, as_json: bool = False
) -> int:
    """One masked line for an error no reader turned into a message; the traceback (masked too)
    only under --debug. A network or service library's error is exit 3 (an outside service
    failing); anything else is exit 2, so a gate that cannot decide never lets the apply go."""
    mask = Masker.from_env(env)
    service = _is_service_error(exc)
    code = EXIT_SERVICE if service else EXIT_BAD_INPUT
    detail = " ".join(str(exc).split())
    if len(detail) > 300:
        detail = detail[:300] + "..."
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (in {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    kind = "an outside service failed" if service else "unexpected error"
    print(
        mask(f"hie-notify: {kind}: {type(exc).__name__}: {detail}{where}"),
        file=sys.stderr,
    )
    if as_json:
        _json_error(env, f"{kind}: {type(exc).__name__}: {detail}{where}", code)
    if debug:
        print(mask("".join(traceback.format_exception(exc))), file=sys.stderr)
    else:
        print(
            "  the input could not be used as it is; run again with --debug for the traceback "
            "(secrets masked) and report it if the input looks right",
            file=sys.stderr,
        )
    return code


def _is_service_error(exc: BaseException) -> bool:
    """Errors that mean a network service, not the input: connections, timeouts, TLS, HTTP
    client libraries (checked by module, so no client library is imported here)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    module = type(exc).__module__.split(".")[0]
    return module in ("requests", "urllib3", "smtplib", "ssl", "http", "gitlab", "slack_sdk")
