"""In GitLab CI the policy comes from a protected source, so a merge request cannot weaken it.

The protected policy is the policy file on the project's default branch (CI_DEFAULT_BRANCH), or
in a central policy project (HIE_POLICY_PROJECT, HIE_POLICY_REF), read through the GitLab API.
The file in the branch being deployed may change only the keys the protected policy lists as
`overridable`, and may only make notice periods longer. Outside CI, or with HIE_LOCAL_POLICY=1,
the local file is used, and the tool says so.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hie_notify.durations import parse_notice
from hie_notify.errors import InputError
from hie_notify.policy.loader import DEFAULT_NAME, deep_merge, default_policy_data, load_policy
from hie_notify.policy.model import Policy
from hie_notify.yamlfile import format_validation_error, parse_yaml_mapping, read_yaml_mapping

DEFAULT_PATH = ".hie-notify/policy.yaml"
_NOTICE_KEYS = ("internal_notice", "external_notice")


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    source: str  # where it came from, for people to read


def in_gitlab_ci(env: Mapping[str, str]) -> bool:
    return env.get("GITLAB_CI") == "true"


def load_effective(path: Path | None, env: Mapping[str, str]) -> LoadedPolicy:
    """The policy in force: protected in GitLab CI, the local file elsewhere."""
    local_flag = (env.get("HIE_LOCAL_POLICY") or "").lower() in ("1", "true", "yes")
    if not in_gitlab_ci(env) or local_flag:
        why = "HIE_LOCAL_POLICY is set" if in_gitlab_ci(env) else "outside GitLab CI"
        name = f"local file {path}" if path else DEFAULT_NAME
        return LoadedPolicy(load_policy(path), f"{name} (not protected: {why})")
    raw, where = _fetch_protected(env, path)
    protected = default_policy_data()
    if raw is not None:
        protected = deep_merge(protected, parse_yaml_mapping(raw, where))
    protected_policy = _validate(protected, where if raw is not None else DEFAULT_NAME)
    source = (
        f"protected: {where}" if raw is not None else f"protected: {DEFAULT_NAME} ({where} absent)"
    )
    if path is None or not path.exists():
        return LoadedPolicy(protected_policy, source)
    branch = read_yaml_mapping(path)
    problems = list(weakenings(branch, protected, protected_policy.overridable))
    if problems:
        raise InputError([f"{path}: {p}; the protected policy ({where}) stands" for p in problems])
    changed = [".".join(p) for p, v in _leaves(branch) if _get(protected, p) != v]
    if not changed:
        return LoadedPolicy(protected_policy, source)
    merged = _validate(deep_merge(protected, branch), str(path))
    return LoadedPolicy(merged, f"{source}, with {path} changing {', '.join(changed)}")


def weakenings(
    branch: Mapping[str, Any], protected: Mapping[str, Any], overridable: list[str]
) -> Iterator[str]:
    """Every change the branch's file makes that it may not make."""
    for path, value in _leaves(branch):
        before = _get(protected, path)
        if before == value:
            continue
        key = ".".join(path)
        if path[0] == "overridable":
            yield f"{key}: the list of overridable keys can only be changed in the protected policy"
            continue
        if not any(_matches(path, pattern) for pattern in overridable):
            yield (
                f"{key}: may not be changed from a merge request (not in the protected "
                "policy's overridable keys)"
            )
            continue
        if len(path) >= 2 and path[-2] in _NOTICE_KEYS and before is not None:
            try:
                new, old = parse_notice(value), parse_notice(before)
            except ValueError:
                continue  # reported by validation with the field named
            if old.longer_than(new) or new.kind != old.kind:
                yield (
                    f"{key}: would shorten the notice from {old} to {new}; notice may only "
                    "get longer"
                )


def _leaves(
    data: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in data.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, path)
        else:
            yield path, value


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def _matches(path: tuple[str, ...], pattern: str) -> bool:
    parts = pattern.split(".")
    return len(path) >= len(parts) and all(
        fnmatch.fnmatchcase(p, q) for p, q in zip(path, parts, strict=False)
    )


def _validate(data: dict[str, Any], source: str) -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise InputError(format_validation_error(source, exc, Policy)) from None


def _fetch_protected(env: Mapping[str, str], path: Path | None) -> tuple[bytes | None, str]:
    """The protected policy file's bytes (None when it does not exist) and where it is."""
    from hie_notify.gitlab_api import read_repository_file

    project = env.get("HIE_POLICY_PROJECT") or env.get("CI_PROJECT_ID")
    if not project:
        raise InputError("CI_PROJECT_ID is not set: cannot find the protected policy")
    file_path = env.get("HIE_POLICY_PATH") or (str(path) if path else DEFAULT_PATH)
    if env.get("HIE_POLICY_PROJECT"):
        ref = env.get("HIE_POLICY_REF") or None
    else:
        ref = env.get("CI_DEFAULT_BRANCH")
        if not ref:
            raise InputError("CI_DEFAULT_BRANCH is not set: cannot find the protected policy")
    raw, resolved_ref = read_repository_file(env, project, file_path, ref)
    return raw, f"{project}@{resolved_ref}:{file_path}"
