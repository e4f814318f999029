"""In GitLab CI the policy comes from a protected source, so a merge request cannot weaken it.

The protected policy is the policy file on the project's default branch (CI_DEFAULT_BRANCH), or
in a central policy project (HIE_POLICY_PROJECT, HIE_POLICY_REF), read through the GitLab API.
The file in the branch being deployed may change only the keys the protected policy lists as
`overridable`, may only make notice periods longer, and may only add to audiences (channels,
contacts, environments, customers), never remove, empty, replace or downgrade one, and may only
add to a change type's `requires` (what Phase 1 needs before anyone outside is told). Templates,
`trial`, `ledger`, `classification` (which resources are service-impacting), each change
type's `alerts` (who is paged, which channels are mentioned) and `overridable` are the
protected policy's alone. Outside CI the local file
is used, and the tool says so; in CI, HIE_LOCAL_POLICY is refused unless the protected policy
declares a trial.
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
from hie_notify.policy.model import PHASE1_FIELDS, Channels, Policy
from hie_notify.settings import Settings, refused_in_ci, settings_or_env
from hie_notify.switches import in_gitlab_ci, switch
from hie_notify.yamlfile import format_validation_error, parse_yaml_mapping, read_yaml_mapping

DEFAULT_PATH = ".hie-notify/policy.yaml"
_NOTICE_KEYS = ("internal_notice", "external_notice")
# Keys only the protected policy may set, whatever its `overridable` list says. The protected
# policy alone decides which resources are service-impacting (`classification`): a branch that
# declares downtime can raise impact, never lower it.
_PROTECTED_ONLY = ("overridable", "templates", "trial", "ledger", "classification")


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    source: str  # where it came from, for people to read


def local_policy_flag(env: Mapping[str, str]) -> bool:
    return switch(env, "HIE_LOCAL_POLICY")


def load_effective(
    path: Path | None, env: Mapping[str, str], settings: Settings | None = None
) -> LoadedPolicy:
    """The policy in force: protected in GitLab CI, the local file elsewhere."""
    if not in_gitlab_ci(env):
        name = f"local file {path}" if path else DEFAULT_NAME
        return LoadedPolicy(load_policy(path), f"{name} (not protected: outside GitLab CI)")
    raw, where = _fetch_protected(env, path, settings_or_env(settings, env))
    named = path is not None or bool(env.get("HIE_POLICY_PATH") or env.get("HIE_POLICY_PROJECT"))
    if raw is None and named:
        # A named protected policy that is not there must not quietly become the built-in
        # default (which may ask for less notice than the file the branch meant).
        raise InputError(
            f"HIE_POLICY / --policy: the protected policy {where} does not exist on the "
            "protected ref: add it there, or unset HIE_POLICY to use "
            f"{DEFAULT_PATH} (or the built-in default)"
        )
    protected = default_policy_data()
    if raw is not None:
        protected = deep_merge(protected, parse_yaml_mapping(raw, where))
    protected_policy = _validate(protected, where if raw is not None else DEFAULT_NAME)
    source = (
        f"protected: {where}" if raw is not None else f"protected: {DEFAULT_NAME} ({where} absent)"
    )
    if local_policy_flag(env):
        if not protected_policy.trial:
            raise InputError(
                refused_in_ci("HIE_LOCAL_POLICY")
                + f"; the protected policy ({where}) does not declare trial: true"
            )
        name = f"local file {path}" if path else DEFAULT_NAME
        # The trial is the protected policy's to declare, and stays declared.
        local = load_policy(path).model_copy(update={"trial": True})
        return LoadedPolicy(local, f"{name} (not protected: HIE_LOCAL_POLICY under a trial)")
    # With HIE_POLICY unset the branch's file is still the one at the default path.
    path = path if path is not None else Path(DEFAULT_PATH)
    if not path.exists():
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
        if path[0] == "direct_contacts":
            # People told directly: a branch may add contacts, never drop or change one.
            yield from _contact_weakenings(path, value, before, _get(protected, path[:1]))
            continue
        if path[0] in _PROTECTED_ONLY:
            yield f"{key}: {path[0]} can only be set in the protected policy"
            continue
        if len(path) >= 3 and path[0] == "change_types" and path[2] == "alerts":
            # Who is paged and which channels are alerted for an emergency or a failure: a
            # branch could otherwise silence them or send the page to a key it controls.
            yield (
                f"{key}: alerts (Slack mentions and PagerDuty incidents) can only be set in the "
                "protected policy"
            )
            continue
        if _new_customer(path, protected):
            continue  # a branch may add an audience
        if len(path) >= 3 and path[0] == "change_types" and path[2] == "acknowledgements":
            yield from _ack_weakening(key, path, value, before)
            continue  # a branch may add acknowledgements it requires, never drop or delay one
        if not any(_matches(path, pattern) for pattern in overridable):
            yield (
                f"{key}: may not be changed from a merge request (not in the protected "
                "policy's overridable keys)"
            )
            continue
        if path[-1] == "external_when" and value != "always":
            # `digest` (or `service_impacting`) tells the external audience less often, or
            # only in the weekly digest: a branch may only make it tell them at every stage.
            yield (
                f"{key}: would tell the external audience {value!r} instead of {before!r}; a "
                "branch may only set it to 'always'"
            )
            continue
        if path[-1] == "internal_cadence":
            order = ("none", "biweekly", "weekly")
            if value not in order or before not in order:
                continue  # reported by validation with the field named
            if order.index(value) < order.index(before or "none"):
                yield (
                    f"{key}: would remind internal channels {value!r} instead of {before!r}; a "
                    "branch may only remind them more often"
                )
            continue
        if len(path) == 3 and path[0] == "change_types" and path[2] == "requires":
            # Phase 1: what a change record must hold before anyone outside is told. A branch
            # may require more, never less than the protected policy (or the default: all).
            was = before if isinstance(before, list) else list(PHASE1_FIELDS)
            now = value if isinstance(value, list) else [value]
            gone = [item for item in was if item not in now]
            if gone:
                yield (
                    f"{key}: would stop requiring {_describe(gone)} before anyone outside is "
                    "told; a branch may only require more (Phase 1)"
                )
            continue
        if path[-1] == "internal_digest":
            # The sprint update tells a channel once a week instead of at each change: a branch
            # may only take channels out of it (tell them more often), never put one in.
            added = [
                c
                for c in (value if isinstance(value, list) else [value])
                if c not in (before or [])
            ]
            if added:
                yield (
                    f"{key}: would move {_describe(added)} to the weekly digest; a branch may "
                    "only have channels told at each change"
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
            continue
        if path[0] == "customers" and path[-1] == "channels" and before is None:
            # What the customer had: the policy's channels for customers.
            before = _get(protected, ("channels", "customer")) or list(Channels().customer)
        if isinstance(before, list):
            if not isinstance(value, list):
                yield f"{key}: expected a list that keeps every entry of the protected one"
                continue
            gone = [item for item in before if item not in value]
            if gone:
                yield (
                    f"{key}: would remove {_describe(gone)}; audiences may only grow (add to "
                    "the list, never remove, empty, replace or downgrade an entry)"
                )
        elif before is not None and value is None:
            yield f"{key}: would remove it; audiences may only grow"


def _contact_weakenings(
    path: tuple[str, ...], value: Any, before: Any, protected: Any
) -> Iterator[str]:
    """A branch's `direct_contacts` must keep every protected entry as it is (a new rule, a
    new person: a new entry)."""
    key = ".".join(path)
    kept = protected if isinstance(protected, list) else []
    if len(path) > 1 or not isinstance(value, list):
        yield (
            f"{key}: expected the list of direct contacts, keeping every entry of the protected "
            "one as it is (a branch may add contacts, never remove or change one)"
        )
        return
    gone = [entry for entry in kept if not any(_same_contact(entry, v) for v in value)]
    if gone:
        yield (
            f"{key}: would remove or change {_describe(gone)}; direct contacts may only grow (a "
            "branch may add a contact, never remove one, shorten its notice or narrow its rules)"
        )


def _same_contact(protected: Any, branch: Any) -> bool:
    """The same contact, told of the same resources with the same notice (read as the policy
    reads them, so `notice: 2bd` is `{minimum: 2bd, recommended: 2bd}`)."""
    if protected == branch:
        return True
    from hie_notify.policy.model import DirectContact

    try:
        return DirectContact.model_validate(protected) == DirectContact.model_validate(branch)
    except ValidationError:
        return False


def _ack_weakening(key: str, path: tuple[str, ...], value: Any, before: Any) -> Iterator[str]:
    """A branch may require more acknowledgements, or sooner; never fewer, or later."""
    if before is None:
        return  # a requirement the protected policy does not have: added
    if value is None or value == {} or value == []:
        yield f"{key}: would remove it; a branch may only add acknowledgements it requires"
        return
    if path[-1] == "required_from" and isinstance(before, list):
        kept = value if isinstance(value, list) else [value]
        gone = [item for item in before if item not in kept]
        if gone:
            yield (
                f"{key}: would no longer require {_describe(gone)} to acknowledge; a branch may "
                "only add acknowledgements it requires"
            )
    elif path[-1] == "escalation" and isinstance(before, list):
        kept = value if isinstance(value, list) else [value]
        gone = [item for item in before if item not in kept]
        if gone:
            rungs = ", ".join(
                f"{g.get('to')} after {g.get('after')}" if isinstance(g, Mapping) else str(g)
                for g in gone
            )
            yield f"{key}: would drop {rungs} from the escalation; a branch may only add rungs"
    elif path[-1] == "by":
        try:
            new, old = parse_notice(value), parse_notice(before)
        except ValueError:
            return  # reported by validation with the field named
        if new.longer_than(old) or new.kind != old.kind:
            yield (
                f"{key}: would give them until {new} instead of {old} to acknowledge; a "
                "branch may only ask for it sooner"
            )


def _new_customer(path: tuple[str, ...], protected: Mapping[str, Any]) -> bool:
    return len(path) >= 2 and path[0] == "customers" and _get(protected, path[:2]) is None


def _describe(items: list[Any]) -> str:
    def one(item: Any) -> str:
        if isinstance(item, Mapping):
            return str(item.get("email") or item.get("name") or dict(item))
        return str(item)

    return ", ".join(repr(one(i)) for i in items[:5]) + (" ..." if len(items) > 5 else "")


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


def _fetch_protected(
    env: Mapping[str, str], path: Path | None, settings: Settings
) -> tuple[bytes | None, str]:
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
    if not env.get("HIE_POLICY_PROJECT") and _protected_default_branch_checkout(env, settings):
        # GitLab's job token cannot read repository files through the API; but a pipeline of
        # the protected default branch has that branch checked out: its file is the one the
        # API would return (a trial needs no token).
        checkout = Path(file_path)  # the job runs in its checkout, as for every other file
        raw = checkout.read_bytes() if checkout.is_file() else None
        return raw, f"{project}@{ref}:{file_path} (this pipeline's checkout)"
    raw, resolved_ref = read_repository_file(env, project, file_path, ref, settings=settings)
    return raw, f"{project}@{resolved_ref}:{file_path}"


def _protected_default_branch_checkout(env: Mapping[str, str], settings: Settings) -> bool:
    """A pipeline of the protected default branch with no GitLab token to read the API."""
    return (
        settings.gitlab_token is None
        and env.get("CI_PIPELINE_SOURCE") != "merge_request_event"
        and bool(env.get("CI_COMMIT_BRANCH"))
        and env.get("CI_COMMIT_BRANCH") == env.get("CI_DEFAULT_BRANCH")
        and env.get("CI_COMMIT_REF_PROTECTED") == "true"
    )
