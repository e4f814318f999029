"""A `terraform show -json` plan read into a small typed model.

Only names, actions and the *names* of changed attributes are kept: attribute values (which may
be sensitive) are compared while reading and never copied into the model. The one exception is
IAM policy documents (`terraform.iam`): the actions, resource ARNs and principals their
statements gain and lose, never from a value marked sensitive.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from hie_notify import limits, safejson
from hie_notify.errors import InputError
from hie_notify.terraform.iam import DocumentChange, document_changes

SUPPORTED_MAJOR_VERSIONS = ("0", "1")
DEFAULT_BUDGET = limits.MemoryBudget(limits.DEFAULT_MEMORY_BUDGET)
# From this size a file is read the lean way (`plan_decode`); below it the general way is as
# quick, and the lean way's import (msgspec, about 4 ms) would slow every command's start-up.
LEAN_FROM_BYTES = 256 << 10
_ACTIONS: dict[tuple[str, ...], str] = {
    ("no-op",): "no-op",
    ("create",): "create",
    ("read",): "read",
    ("update",): "update",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
    ("delete",): "delete",
    ("forget",): "forget",
    ("create", "forget"): "create",
}
_PLAN_KEYS = (
    "resource_changes",
    "planned_values",
    "output_changes",
    "prior_state",
    "configuration",
)
SUMMARY_KEYS = ("add", "change", "destroy", "replace", "import", "move", "forget", "read", "no_op")
_SUMMARY_OF_ACTION = {
    "create": "add",
    "update": "change",
    "delete": "destroy",
    "replace": "replace",
    "forget": "forget",
    "read": "read",
    "no-op": "no_op",
}


class Tags(tuple[tuple[str, str], ...]):
    """A resource's (tag name, value) pairs: matched by the policy's direct contacts, never shown
    (a value is an attribute value: it does not appear in a repr, a log or a message)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Tags({len(self)})"


NO_TAGS = Tags()


class ResourceChange(NamedTuple):
    # A NamedTuple rather than a frozen dataclass: a plan can hold tens of thousands of these,
    # and building a tuple is several times cheaper than a frozen dataclass's __init__.
    address: str
    module: str | None
    mode: str
    type: str
    name: str
    provider: str
    actions: tuple[str, ...]
    action: str
    action_reason: str | None = None
    import_id: str | None = None
    importing: bool = False
    previous_address: str | None = None
    deposed: str | None = None
    replace_paths: tuple[str, ...] = ()
    changed_attributes: frozenset[str] = frozenset()
    # The resource's tags before and after the change (`tags` and `tags_all`, string values
    # only): for the policy's direct contacts, never shown to anyone.
    tags: Tags = NO_TAGS

    @property
    def moved(self) -> bool:
        return self.previous_address is not None and self.previous_address != self.address

    @property
    def is_change(self) -> bool:
        """Does applying the plan change anything (infrastructure or state) for it?"""
        return self.action not in ("no-op", "read") or self.importing or self.moved

    @property
    def effective_action(self) -> str:
        """The action, with `import` / `move` for no-ops that only change state."""
        if self.action == "no-op":
            if self.importing:
                return "import"
            if self.moved:
                return "move"
        return self.action


# NamedTuples too: defining a frozen dataclass costs every command's start-up about 0.7 ms.
class DriftEntry(NamedTuple):
    address: str
    type: str
    action: str
    changed_attributes: frozenset[str] = frozenset()


class OutputChange(NamedTuple):
    name: str
    action: str
    sensitive: bool


@dataclass(frozen=True, slots=True)
class Plan:
    format_version: str
    terraform_version: str | None
    resource_changes: tuple[ResourceChange, ...]
    drift: tuple[DriftEntry, ...] = ()
    outputs: tuple[OutputChange, ...] = ()
    errored: bool = False
    source: str = "plan"
    summary: dict[str, int] = field(default_factory=dict)
    # What each IAM policy document gains and loses (statements' actions, resources and
    # principals; never a document marked sensitive): `terraform.iam`.
    iam: tuple[DocumentChange, ...] = ()

    @property
    def changes(self) -> tuple[ResourceChange, ...]:
        return tuple(rc for rc in self.resource_changes if rc.is_change)

    @property
    def has_changes(self) -> bool:
        return any(rc.is_change for rc in self.resource_changes)

    def fingerprint(self) -> str:
        """Hash of the (address, actions) of every changing resource; order does not matter."""
        return fingerprint_of((rc.address, rc.effective_action) for rc in self.changes)


def fingerprint_of(pairs: Any) -> str:
    lines = sorted(f"{address}\t{action}" for address, action in pairs)
    return "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()


def load_plan(path: Path, memory_budget: int | limits.MemoryBudget = DEFAULT_BUDGET) -> Plan:
    """Read a `terraform show -json` file. InputError (exit 2) when it is not a usable plan.

    The file must be a regular file (never a device or a pipe that never ends) of at most half
    the memory budget. From LEAN_FROM_BYTES it is read the lean way (`plan_decode`: typed
    structs, only the fields classification reads, memory counted as it goes); a smaller file,
    or one that way cannot read, is read the general way, refused from its bytes when its
    decoded form could take more than the budget (see `limits.json_memory_estimate`). Both ways
    build the same plan and give the same errors.
    """
    budget = (
        memory_budget
        if isinstance(memory_budget, limits.MemoryBudget)
        else limits.MemoryBudget(memory_budget)
    )
    raw = _read_bounded(path, budget)
    try:
        return _read_typed(raw, path, budget) or _read_general(raw, path, budget)
    except MemoryError:
        # Only when something outside the budget took the memory first.
        raise InputError(
            f"{path}: ran out of memory reading this plan ({len(raw):,} bytes) within the "
            f"budget of {budget.bytes >> 20} MiB ({budget.source}); {budget.remedy}"
        ) from None


def _read_typed(raw: bytes, path: Path, budget: limits.MemoryBudget) -> Plan | None:
    if len(raw) < LEAN_FROM_BYTES:
        return None
    from hie_notify.terraform import plan_decode

    try:
        plan = plan_decode.read(raw, str(path), budget.bytes)
    except plan_decode.OverBudget as exc:
        raise _over_budget(path, raw, exc.need, budget) from None
    except plan_decode.NotTyped:
        return None
    # A plan file is read by a command that ends when it is done with it, and what is alive
    # now (modules, policy, the plan's records) lives until then: out of the cycle collector's
    # sight (gc.freeze) it is not walked again at each collection while the plan is classified
    # (about a tenth of `classify`'s CPU time for 20,000 resources, bench/classify_bench.py).
    # Reference counting still frees all of it. A caller that turned the collector off keeps
    # it as it was, and nothing is frozen.
    if gc.isenabled():
        gc.freeze()
    return plan


def _read_general(raw: bytes, path: Path, budget: limits.MemoryBudget) -> Plan:
    need = limits.json_memory_estimate(raw)
    if need > budget.bytes:
        raise _over_budget(path, raw, need, budget)
    # orjson sets aside far more address space than it touches: under an address-space limit
    # (`ulimit -v`) it decodes only when that fits too, else the standard library does.
    reserve = need + limits.ORJSON_RESERVE_PER_BYTE * len(raw)
    lean = budget.address_space is not None and reserve > budget.address_space
    try:
        data = safejson.loads(raw, lean=lean)
    except safejson.JsonError as exc:
        raise InputError(not_json(path, raw, exc)) from None
    return parse_plan(data, str(path))


def not_json(path: Path, raw: bytes, exc: Exception) -> str:
    """What a file that does not decode is: a binary or text file that is no JSON at all (the
    saved plan itself, a log), JSON cut short, or JSON with an error at a place."""
    head = raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if raw.startswith(b"PK\x03\x04"):  # `terraform plan -out` writes a zip archive
        return (
            f"{path}: not JSON: this is a saved plan file (a zip archive); give its JSON form: "
            "`terraform show -json PLANFILE > plan.json`"
        )
    if head not in (b"{", b"["):
        kind = "a binary file" if b"\x00" in raw[:4096] or _binary(raw[:4096]) else "a text file"
        return f"{path}: not JSON ({kind}; is this the `terraform show -json` output?)"
    sep = " " if str(exc).startswith("at line") else ": "
    if not raw.rstrip().endswith((b"}", b"]")):
        return (
            f"{path}: not valid JSON{sep}{exc} (the file looks truncated: it starts as JSON but "
            "does not end as it; expected the whole `terraform show -json PLANFILE` output)"
        )
    return (
        f"{path}: not valid JSON{sep}{exc} (expected the output of `terraform show -json PLANFILE`)"
    )


def _binary(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(sample) - 4  # not just a character cut at the sample's end
    return False


def _over_budget(path: Path, raw: bytes, need: int, budget: limits.MemoryBudget) -> InputError:
    return InputError(
        f"{path}: reading this plan ({len(raw):,} bytes) could take about {need >> 20} MiB of "
        f"memory, over the budget of {budget.bytes >> 20} MiB ({budget.source}); is it the "
        f"right file? If it is, {budget.remedy} (a plan of 20,000 resources needs about "
        f"{limits.TYPICAL_20K_PLAN_MIB} MiB)"
    )


def _read_bounded(path: Path, budget: limits.MemoryBudget) -> bytes:
    cap = budget.bytes // 2
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device or pipe"
        raise InputError(
            f"{path}: cannot read ({kind}, not a regular file; expected the `terraform show "
            "-json` output written to a file)"
        )
    if info.st_size > cap:
        os.close(fd)
        raise InputError(
            f"{path}: {info.st_size:,} bytes is too large for a plan (at most {cap:,}, half the "
            f"memory budget of {budget.bytes >> 20} MiB: {budget.source}); is it the right "
            f"file? If it is, {budget.remedy}"
        )
    with os.fdopen(fd, "rb") as fh:
        try:
            # read(n) sets aside n bytes first: ask for the size the file has, not the cap.
            raw = fh.read(info.st_size + 1)
            while len(raw) > info.st_size and len(raw) <= cap:  # it grew while being read
                more = fh.read(min(1 << 20, cap + 1 - len(raw)))
                if not more:
                    break
                raw += more
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > cap:
        raise InputError(f"{path}: grew past {cap} bytes while being read")
    return raw


def parse_plan(data: Any, source: str = "plan") -> Plan:
    """Build the model from decoded plan JSON; every problem names the field."""
    try:
        return _parse_plan(data, source)
    except RecursionError:
        # Comparing before/after values recurses; orjson already refuses past 1024 levels.
        raise InputError(
            f"{source}: attribute values are nested too deeply to compare (expected a plan "
            "written by Terraform)"
        ) from None


def _parse_plan(data: Any, source: str) -> Plan:
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a JSON object (a Terraform plan), got {_kind(data)}")
    version = data.get("format_version")
    if not isinstance(version, str):
        raise InputError(
            f"{source}: format_version: required key is missing or not a string "
            "(expected the output of `terraform show -json PLANFILE`)"
        )
    if version.split(".")[0] not in SUPPORTED_MAJOR_VERSIONS:
        raise InputError(
            f"{source}: format_version: unsupported plan format {version!r} "
            "(expected 0.x or 1.x, as written by Terraform 0.12 to 1.x)"
        )
    if not any(k in data for k in _PLAN_KEYS):
        what = "a state file" if "values" in data else "not a plan"
        raise InputError(
            f"{source}: this is {what}: none of {', '.join(_PLAN_KEYS)} is present "
            "(expected `terraform show -json PLANFILE`, not of the state)"
        )
    changes = _list(data, "resource_changes", source)
    resources = [
        _resource_change(raw, f"{source}: resource_changes[{i}]") for i, raw in enumerate(changes)
    ]
    drift = []
    for i, raw in enumerate(_list(data, "resource_drift", source)):
        if isinstance(raw, dict) and "address" not in raw:
            # Terraform 1.0.0 wrote drift entries without an address.
            raw = {**raw, "address": _address_of(raw)}
        rc = _resource_change(raw, f"{source}: resource_drift[{i}]")
        drift.append(DriftEntry(rc.address, rc.type, rc.action, rc.changed_attributes))
    outputs = []
    raw_outputs = data.get("output_changes")
    if raw_outputs is None:
        raw_outputs = {}
    if not isinstance(raw_outputs, dict):
        raise InputError(f"{source}: output_changes: expected an object, got {_kind(raw_outputs)}")
    for name, raw in raw_outputs.items():
        actions = _actions(
            raw.get("actions") if isinstance(raw, dict) else None,
            f"{source}: output_changes.{name}.actions",
        )
        sensitive = bool(raw.get("before_sensitive") or raw.get("after_sensitive"))
        outputs.append(OutputChange(str(name), _ACTIONS[actions], sensitive))
    tf_version = data.get("terraform_version")
    return Plan(
        format_version=version,
        terraform_version=tf_version if isinstance(tf_version, str) else None,
        resource_changes=tuple(resources),
        drift=tuple(drift),
        outputs=tuple(outputs),
        errored=data.get("errored") is True,
        source=source,
        summary=_summary(resources),
        iam=_iam(changes, resources),
    )


def _iam(raws: list[Any], resources: list[ResourceChange]) -> tuple[DocumentChange, ...]:
    out: list[DocumentChange] = []
    for raw, rc in zip(raws, resources, strict=True):
        change = raw.get("change") if isinstance(raw, dict) else None
        if rc.mode == "managed" and isinstance(change, dict):
            out.extend(document_changes(rc.address, rc.action, change))
    return tuple(out)


def _summary(resources: list[ResourceChange]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for rc in resources:
        counts[_SUMMARY_OF_ACTION[rc.action]] += 1
        if rc.importing:
            counts["import"] += 1
        if rc.moved:
            counts["move"] += 1
    return {k: counts.get(k, 0) for k in SUMMARY_KEYS}


def _list(data: dict[str, Any], key: str, source: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"{source}: {key}: expected a list, got {_kind(value)}")
    return value


def _address_of(raw: dict[str, Any]) -> str | None:
    rtype, name = raw.get("type"), raw.get("name")
    if not isinstance(rtype, str) or not isinstance(name, str):
        return None
    address = f"{rtype}.{name}"
    if raw.get("mode") == "data":
        address = "data." + address
    index = raw.get("index")
    if isinstance(index, int) and not isinstance(index, bool):
        address += f"[{index}]"
    elif isinstance(index, str):
        address += f"[{json.dumps(index)}]"
    module = raw.get("module_address")
    return f"{module}.{address}" if isinstance(module, str) and module else address


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _actions(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InputError(f'{where}: expected a list of actions like ["update"], got {_kind(value)}')
    odd = next((v for v in value if not isinstance(v, str)), None)
    if odd is not None or len(value) > 2:
        shown = f"holds {_kind(odd)}" if odd is not None else f"has {len(value)} entries"
        raise InputError(f'{where}: expected a list of action names like ["update"]; it {shown}')
    actions = tuple(value)
    if actions not in _ACTIONS:
        raise InputError(
            f"{where}: unknown action list {list(actions)!r} "
            f"(expected one of: {', '.join(json.dumps(list(a)) for a in _ACTIONS)})"
        )
    return actions


def _resource_change(raw: Any, where: str) -> ResourceChange:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected an object, got {_kind(raw)}")
    get = raw.get
    address = get("address")
    rtype = get("type")
    if not isinstance(address, str) or not address:
        raise InputError(f"{where}.address: expected a resource address string")
    if not isinstance(rtype, str) or not rtype:
        raise InputError(f"{where}.type: expected a resource type string ({address})")
    change = get("change")
    if not isinstance(change, dict):
        raise InputError(f"{where}.change: expected an object ({address})")
    raw_actions = change.get("actions")
    actions = _plain(raw_actions)
    action = _ACTIONS.get(actions) if actions is not None else None
    if actions is None or action is None:
        actions = _actions(raw_actions, f"{where}.change.actions")  # raises, naming the field
        action = _ACTIONS[actions]
    importing = change.get("importing")
    is_import = isinstance(importing, dict)
    import_id = _text(importing.get("id")) if isinstance(importing, dict) else None
    mode = get("mode")
    return ResourceChange(
        address,
        _text(get("module_address")),
        mode if isinstance(mode, str) else "managed",
        rtype,
        str(get("name", "")),
        str(get("provider_name", "")),
        actions,
        action,
        _text(get("action_reason")),
        import_id,
        is_import,
        _text(get("previous_address")),
        _text(get("deposed")),
        _paths(change.get("replace_paths")),
        _changed_attributes(action, change),
        _tags(change) if action in ("create", "update", "delete", "replace") else NO_TAGS,
    )


def _tags(change: dict[str, Any]) -> Tags:
    """(name, value) of every string tag in the before and after `tags` and `tags_all` (of a
    resource that is created, updated, deleted or replaced: not of a state-only move)."""
    found: dict[tuple[str, str], None] = {}
    for side in (change.get("before"), change.get("after")):
        if not isinstance(side, dict):
            continue
        for key in ("tags", "tags_all"):
            tags = side.get(key)
            if isinstance(tags, dict):
                for name, value in tags.items():
                    if isinstance(name, str) and isinstance(value, str):
                        found[(name, value)] = None
    return Tags(found) if found else NO_TAGS


def _plain(value: object) -> tuple[str, ...] | None:
    """The actions as a tuple that can be looked up (strings only), or None."""
    if isinstance(value, list) and len(value) <= 2 and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _paths(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    out = []
    for path in value:
        if isinstance(path, list):
            out.append(".".join(str(p) for p in path if isinstance(p, str)))
    return tuple(p for p in out if p)


_NONE: frozenset[str] = frozenset()


def _changed_attributes(action: str, change: dict[str, Any]) -> frozenset[str]:
    """Names (never values) of the attributes the change touches, one or two levels deep.

    For a create, delete or replace that is every attribute with a value; for an update, those
    whose value differs or becomes unknown.
    """
    if action == "update":
        return _updated_attributes(change)
    if action not in ("create", "delete", "replace"):
        return _NONE
    names: set[str] = set()
    for side in (change.get("before"), change.get("after")):
        if isinstance(side, dict):
            names.update([k for k, v in side.items() if v is not None])
    unknown = change.get("after_unknown")
    if isinstance(unknown, dict):
        names.update([k for k, v in unknown.items() if v is True or (v and _truthy(v))])
    return frozenset(names)


def _updated_attributes(change: dict[str, Any]) -> frozenset[str]:
    before = change.get("before")
    after = change.get("after")
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    names: set[str] = set()
    for key in before.keys() | after.keys():
        b, a = before.get(key), after.get(key)
        if b != a:
            names.add(key)
            if isinstance(b, (dict, list)) and isinstance(a, (dict, list)):
                names.update([f"{key}.{sub}" for sub in _differing_subkeys(b, a)])
    unknown = change.get("after_unknown")
    if isinstance(unknown, dict):
        names.update([k for k, v in unknown.items() if v is True or (v and _truthy(v))])
    return frozenset(names)


def _differing_subkeys(b: object, a: object) -> set[str]:
    if isinstance(b, list) and isinstance(a, list) and len(b) == len(a) == 1:
        b, a = b[0], a[0]
    if isinstance(b, dict) and isinstance(a, dict):
        return {k for k in b.keys() | a.keys() if b.get(k) != a.get(k)}
    return set()


def _truthy(value: object) -> bool:
    if isinstance(value, dict):
        return any(_truthy(v) for v in value.values())
    if isinstance(value, list):
        return any(_truthy(v) for v in value)
    return value is True
