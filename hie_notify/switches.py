"""Yes/no environment variables: one reading for every switch the tool and its CI templates use.

`1`, `true`, `yes`, `on` and `0`, `false`, `no`, `off`, in any case and with spaces around;
unset or empty is the switch's default. Anything else is an error naming the variable: a
`HIE_DRY_RUN=enabled` read as "no" would really send.
"""

from __future__ import annotations

from collections.abc import Mapping

from hie_notify.errors import InputError

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")

# Every switch, with what it turns on. hie-notify checks them all at start (`check`), so one
# that only the CI templates read (their rules, their scripts) is refused by the first
# hie-notify command of the job, naming it.
SWITCHES: dict[str, str] = {
    "HIE_DRY_RUN": "send, record and write nothing (as --dry-run)",
    "HIE_LOCAL_POLICY": "use the branch's policy file in GitLab CI (only under a trial)",
    "HIE_GATE_REQUIRED": "CI templates: a blocked gate fails its job (false: advisory)",
    "HIE_PAGES": "CI templates: a scheduled pipeline publishes the report on GitLab Pages",
    "HIE_NOTIFY_DIGEST": "CI templates: a scheduled pipeline sends the weekly digest",
    "GITLAB_CI": "set by GitLab in every CI job",
}


def _problem(name: str, raw: str) -> str:
    shown = repr(raw) if len(raw) <= 40 else repr(raw[:40]) + "..."
    return (
        f"{name}: expected {', '.join(TRUE)} (on) or {', '.join(FALSE)} (off), in any case, "
        f"got {shown}"
    )


def parse(name: str, raw: str | None, default: bool = False) -> bool:
    """The switch's value; InputError naming `name` when `raw` is neither on nor off."""
    if raw is None:
        return default
    word = raw.strip().lower()
    if not word:
        return default
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise InputError(_problem(name, raw))


def switch(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    """The switch `name` as the environment sets it (`default` when unset or empty)."""
    return parse(name, env.get(name), default)


def check(env: Mapping[str, str]) -> None:
    """InputError listing every switch in `env` that is set to neither on nor off."""
    problems = []
    for name in SWITCHES:
        try:
            switch(env, name)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)


def in_gitlab_ci(env: Mapping[str, str]) -> bool:
    """Running in a GitLab CI job (GitLab sets GITLAB_CI=true in every job)."""
    return switch(env, "GITLAB_CI")
