"""Every error the tool raises on purpose; `cli` turns each into a message and an exit code."""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK = 0
EXIT_BLOCKED = 1
EXIT_BAD_INPUT = 2
EXIT_SERVICE = 3


class HieError(Exception):
    """Base of the tool's own errors; carries the exit code the CLI returns."""

    exit_code = EXIT_BAD_INPUT


class InputError(HieError):
    """A file or option the user gave is unreadable or invalid (exit 2).

    `problems` holds one line per problem, each naming the file, the field and what was expected.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ServiceError(HieError):
    """An outside service still failed after bounded retries (exit 3)."""

    exit_code = EXIT_SERVICE
