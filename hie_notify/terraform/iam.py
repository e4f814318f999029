"""What changes in each IAM policy document of a plan: per statement, the actions, resource ARNs
and principals added and removed, from the resource's `before` and `after` (pure).

A policy document is a JSON string in an attribute of the resource: `policy` (aws_iam_policy,
aws_iam_role_policy, aws_iam_user_policy, aws_iam_group_policy, aws_s3_bucket_policy,
aws_kms_key, aws_sqs_queue_policy, ...), `assume_role_policy` (aws_iam_role) and each
`inline_policy[].policy` of aws_iam_role. A document marked sensitive (`before_sensitive` /
`after_sensitive`) is never read: it is reported as "(sensitive)", with no statement. One whose
new value is known only after apply says so.

Statements are matched by `Sid`; statements without one are matched by content first (an
unchanged statement is not reported), the rest in order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

# Attributes that hold one policy document, and those that hold a list of {name, policy}.
DOCUMENT_ATTRIBUTES = ("policy", "assume_role_policy")
INLINE_ATTRIBUTES = ("inline_policy",)
# A policy document is at most 10,240 characters in AWS (a resource policy 20,480); well past
# that it is not one, and is not read.
_MAX_DOCUMENT = 1 << 20
_MAX_SHOWN = 50  # entries per list, per statement: a longer list says "and N more"


class StatementChange(NamedTuple):
    label: str  # the Sid, or "statement 2"
    effect: str  # Allow | Deny (after, else before)
    change: str  # "added" | "removed" | "changed"
    actions_added: tuple[str, ...] = ()
    actions_removed: tuple[str, ...] = ()
    resources_added: tuple[str, ...] = ()
    resources_removed: tuple[str, ...] = ()
    principals_added: tuple[str, ...] = ()
    principals_removed: tuple[str, ...] = ()


class DocumentChange(NamedTuple):
    address: str
    attribute: str  # "policy", "assume_role_policy", "inline_policy[ecr-pull]"
    action: str  # create | update | replace | delete
    sensitive: bool = False
    unknown: bool = False  # the new document is known only after apply
    statements: tuple[StatementChange, ...] = ()


def document_changes(
    address: str, action: str, change: Mapping[str, Any]
) -> tuple[DocumentChange, ...]:
    """The policy documents a resource change (its `change` object) touches, each with what its
    statements gain and lose. Documents that do not change are left out."""
    if action not in ("create", "update", "replace", "delete"):
        return ()
    before = _mapping(change.get("before"))
    after = _mapping(change.get("after"))
    unknown = _mapping(change.get("after_unknown"))
    b_sens, a_sens = change.get("before_sensitive"), change.get("after_sensitive")
    out: list[DocumentChange] = []
    for attr in DOCUMENT_ATTRIBUTES:
        if attr not in before and attr not in after and attr not in unknown:
            continue
        found = _document(
            address,
            attr,
            action,
            before.get(attr),
            after.get(attr),
            unknown.get(attr) is True,
            _marked(b_sens, attr) or _marked(a_sens, attr),
        )
        if found is not None:
            out.append(found)
    for attr in INLINE_ATTRIBUTES:
        olds = _inline(before.get(attr))
        news = _inline(after.get(attr))
        sensitive = _marked(b_sens, attr) or _marked(a_sens, attr)
        for name in dict.fromkeys([*olds, *news]):
            found = _document(
                address,
                f"{attr}[{name}]",
                action,
                olds.get(name),
                news.get(name),
                False,
                sensitive,
            )
            if found is not None:
                out.append(found)
    return tuple(out)


def _document(
    address: str,
    attribute: str,
    action: str,
    old: object,
    new: object,
    unknown: bool,
    sensitive: bool,
) -> DocumentChange | None:
    if sensitive:
        # Read only to know it is a policy document whose statements change; nothing of it is
        # kept.
        old_doc, new_doc = _parse(old), _parse(new)
        if old_doc is None and new_doc is None:
            return None
        if not unknown and not diff_statements(_statements(old_doc), _statements(new_doc)):
            return None
        return DocumentChange(address, attribute, action, sensitive=True)
    old_doc, new_doc = _parse(old), _parse(new)
    if old_doc is None and new_doc is None:
        return None  # not a policy document (or one only known after apply, new)
    if unknown:
        # What it becomes is known only after apply: nothing to compare it with.
        return DocumentChange(address, attribute, action, unknown=True)
    statements = diff_statements(_statements(old_doc), _statements(new_doc))
    if not statements:
        return None
    return DocumentChange(address, attribute, action, False, False, statements)


def diff_statements(
    before: list[Mapping[str, Any]], after: list[Mapping[str, Any]]
) -> tuple[StatementChange, ...]:
    """Per statement: what it gains and loses (matched by Sid, else by content, else in order)."""
    pairs: list[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]] = []
    by_sid_before = {s["Sid"]: s for s in before if _sid(s)}
    by_sid_after = {s["Sid"]: s for s in after if _sid(s)}
    for sid in dict.fromkeys([*by_sid_after, *by_sid_before]):
        pairs.append((sid, by_sid_before.get(sid), by_sid_after.get(sid)))
    plain_before = [s for s in before if not _sid(s)]
    plain_after = [s for s in after if not _sid(s)]
    # An unchanged statement without a Sid is matched by its content, wherever it moved.
    keys_after: list[str | None] = [_normal(s) for s in plain_after]
    left_before = []
    for s in plain_before:
        key = _normal(s)
        if key in keys_after:
            i = keys_after.index(key)
            keys_after[i] = None
            continue
        left_before.append(s)
    left_after = [s for s, k in zip(plain_after, keys_after, strict=True) if k is not None]
    positions = {id(s): i + 1 for i, s in enumerate(after)}
    old_positions = {id(s): i + 1 for i, s in enumerate(before)}
    for i in range(max(len(left_before), len(left_after))):
        old = left_before[i] if i < len(left_before) else None
        new = left_after[i] if i < len(left_after) else None
        at = positions[id(new)] if new is not None else old_positions[id(old)]
        pairs.append((f"statement {at}", old, new))
    out = []
    for label, old, new in pairs:
        found = _statement_change(label, old, new)
        if found is not None:
            out.append(found)
    return tuple(out)


def _statement_change(
    label: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> StatementChange | None:
    change = "added" if old is None else "removed" if new is None else "changed"
    effect = str((new or old or {}).get("Effect") or "")
    before_effect = str((old or {}).get("Effect") or "")
    o_act, n_act = _field(old, "Action", "NotAction"), _field(new, "Action", "NotAction")
    o_res, n_res = _field(old, "Resource", "NotResource"), _field(new, "Resource", "NotResource")
    o_pri, n_pri = _principals(old), _principals(new)
    if change == "changed" and before_effect != effect:
        # Allow became Deny (or back): everything in it changes meaning.
        return StatementChange(
            label, effect, change, _shown(n_act), _shown(o_act), _shown(n_res), _shown(o_res),
            _shown(n_pri), _shown(o_pri),
        )  # fmt: skip
    result = StatementChange(
        label,
        effect,
        change,
        _shown(_minus(n_act, o_act)),
        _shown(_minus(o_act, n_act)),
        _shown(_minus(n_res, o_res)),
        _shown(_minus(o_res, n_res)),
        _shown(_minus(n_pri, o_pri)),
        _shown(_minus(o_pri, n_pri)),
    )
    if change == "changed" and not any(result[3:]):
        return None  # conditions or ordering only: no action, resource or principal changes
    return result


def _sid(statement: Mapping[str, Any]) -> bool:
    sid = statement.get("Sid")
    return isinstance(sid, str) and sid != ""


def _field(statement: Mapping[str, Any] | None, *keys: str) -> list[str]:
    """Action / Resource (and their Not- forms, marked `not:`) as a list of strings."""
    if statement is None:
        return []
    out: list[str] = []
    for key in keys:
        prefix = "not " if key.startswith("Not") else ""
        out += [prefix + v for v in _strings(statement.get(key))]
    return list(dict.fromkeys(out))


def _principals(statement: Mapping[str, Any] | None) -> list[str]:
    if statement is None:
        return []
    out: list[str] = []
    for key in ("Principal", "NotPrincipal"):
        prefix = "not " if key == "NotPrincipal" else ""
        value = statement.get(key)
        if isinstance(value, Mapping):
            for kind, names in value.items():
                out += [f"{prefix}{kind}: {n}" for n in _strings(names)]
        else:
            out += [prefix + v for v in _strings(value)]
    return list(dict.fromkeys(out))


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _minus(a: list[str], b: list[str]) -> list[str]:
    gone = set(b)
    return [x for x in a if x not in gone]


def _shown(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


def _normal(statement: Mapping[str, Any]) -> str:
    return json.dumps(statement, sort_keys=True, default=str)


def _statements(doc: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if doc is None:
        return []
    found = doc.get("Statement")
    if isinstance(found, Mapping):
        found = [found]
    if not isinstance(found, list):
        return []
    return [s for s in found if isinstance(s, Mapping)]


def _parse(value: object) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        return value
    if not isinstance(value, str) or len(value) > _MAX_DOCUMENT or "Statement" not in value:
        return None
    try:
        doc = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, Mapping) and "Statement" in doc else None


def _inline(value: object) -> dict[str, object]:
    out: dict[str, object] = {}
    if not isinstance(value, list):
        return out
    for i, entry in enumerate(value):
        if isinstance(entry, Mapping):
            name = entry.get("name")
            out[str(name) if isinstance(name, str) and name else f"#{i + 1}"] = entry.get("policy")
    return out


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _marked(sensitive: object, attr: str) -> bool:
    """Is `attr` (or all of the object) marked sensitive? Any true inside it counts."""
    if sensitive is True:
        return True
    if isinstance(sensitive, Mapping):
        return _any_true(sensitive.get(attr))
    return False


def _any_true(value: object) -> bool:
    if value is True:
        return True
    if isinstance(value, Mapping):
        return any(_any_true(v) for v in value.values())
    if isinstance(value, list):
        return any(_any_true(v) for v in value)
    return False


def lines(doc: DocumentChange, limit: int = _MAX_SHOWN) -> Iterator[str]:
    """Plain text lines (unescaped) describing one document's change: for logs and tests."""
    head = f"{doc.address} {doc.attribute}"
    if doc.sensitive:
        yield f"{head}: (sensitive)"
        return
    if doc.unknown:
        yield f"{head}: known after apply"
    for s in doc.statements:
        yield f"{head} {s.label} ({s.effect}, {s.change}): {statement_text(s, limit)}"


def statement_text(s: StatementChange, limit: int = _MAX_SHOWN) -> str:
    """What one statement gains and loses, in words (unescaped): `actions added: a, b; ...`,
    at most `limit` entries of a list, then "and N more"."""
    parts = []
    for word, items in (
        ("actions added", s.actions_added),
        ("actions removed", s.actions_removed),
        ("resources added", s.resources_added),
        ("resources removed", s.resources_removed),
        ("principals added", s.principals_added),
        ("principals removed", s.principals_removed),
    ):
        if items:
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            parts.append(f"{word}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts)
