"""A plan file's bytes read with typed msgspec structs: only the fields classification reads.

`terraform show -json` writes every attribute's value before and after the change, and most of
a plan's bytes are those values; classification needs names, actions and which attributes
differ. Here the values stay `msgspec.Raw` (a view of the file's bytes, never a Python object)
and an attribute's value is decoded only where its text differs before and after, so memory is
the file plus the model. Sensitive values are decoded only where they change, and never kept.

This path reads exactly what `plan.parse_plan` reads from the decoded document. Whatever it does
not read that way (a field of another type than Terraform writes, an unknown action, a version
it does not know, nesting deeper than it decodes, Terraform 1.0.0's drift without addresses)
raises `NotTyped`, and the caller reads the plan the general way, whose messages name the file,
the field and what was expected. What it keeps is counted against the budget before and as it
goes (`OverBudget`), from counts of the file's bytes and then of what was built.
"""

from __future__ import annotations

import codecs
import gc
from typing import Any

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from hie_notify import limits
from hie_notify.terraform.iam import DocumentChange, document_changes
from hie_notify.terraform.plan import (
    _ACTIONS,
    _PLAN_KEYS,
    NO_TAGS,
    SUPPORTED_MAJOR_VERSIONS,
    DriftEntry,
    OutputChange,
    Plan,
    ResourceChange,
    Tags,
    _differing_subkeys,
    _paths,
    _summary,
    _text,
    _truthy,
)


class NotTyped(Exception):
    """The plan is not as Terraform writes it: read it the general way (`plan.parse_plan`)."""


class OverBudget(Exception):
    """Reading on would take more memory than the budget; `need` is the estimate in bytes."""

    def __init__(self, need: int) -> None:
        super().__init__(need)
        self.need = need


_NO = Raw()  # a key the document does not have
_NULL = Raw(b"null")
_TRUE = Raw(b"true")
_SMALL = 4096  # a version string: anything longer is not Terraform's


class _Change(Struct, gc=False):
    actions: Raw
    before: Raw = _NO
    after: Raw = _NO
    after_unknown: Raw = _NO
    importing: Raw = _NO
    replace_paths: Raw = _NO


class _Resource(Struct, gc=False):
    address: str
    type: str
    change: _Change
    mode: str = "managed"
    name: str = ""
    provider_name: str = ""
    module_address: str | None = None
    action_reason: str | None = None
    previous_address: str | None = None
    deposed: str | None = None


class _Top(Struct, gc=False):
    format_version: Raw = _NO
    terraform_version: Raw = _NO
    errored: Raw = _NO
    resource_changes: list[_Resource] | UnsetType | None = UNSET
    resource_drift: list[_Resource] | None = None
    output_changes: Raw = _NO
    planned_values: Raw = _NO
    prior_state: Raw = _NO
    configuration: Raw = _NO


class _Output(Struct, gc=False):
    actions: Raw
    before_sensitive: Raw = _NO
    after_sensitive: Raw = _NO


class _IamChange(Struct, gc=False):
    before: Raw = _NO
    after: Raw = _NO
    after_unknown: Raw = _NO
    before_sensitive: Raw = _NO
    after_sensitive: Raw = _NO


class _IamResource(Struct, gc=False):
    change: _IamChange


class _IamTop(Struct, gc=False):
    resource_changes: list[_IamResource] | None = None


_TOP = msgspec.json.Decoder(_Top)
_IAM_TOP = msgspec.json.Decoder(_IamTop)
_OUTPUTS = msgspec.json.Decoder(dict[str, _Output] | None)
_OBJECT = msgspec.json.Decoder(dict[str, Raw] | None)
_ANY = msgspec.json.Decoder()
_STR = msgspec.json.Decoder(str)
# Each action list as Terraform writes it (`["delete","create"]`), and as a tuple.
_BY_TEXT = {
    msgspec.json.encode(list(actions)): (actions, action) for actions, action in _ACTIONS.items()
}
_BY_TUPLE = {actions: (actions, action) for actions, action in _ACTIONS.items()}
_NONE: frozenset[str] = frozenset()
_COMPARED = frozenset(("update", "create", "delete", "replace"))
_new_record = tuple.__new__


def read(raw: bytes, source: str, budget: int) -> Plan:
    """The plan in `raw`, as `plan.parse_plan(json.loads(raw), source)` would build it.

    NotTyped: read it the general way instead. OverBudget: it would take more than `budget`.
    """
    return _read(raw, source, _Meter(budget))


def counted(raw: bytes) -> int:
    """The least budget under which `read(raw, ...)` reads this plan: the most it counts at any
    point, every bound taken exactly (for bench/ and tests)."""
    meter = _Meter(1 << 62, exact=True)
    _read(raw, "plan", meter)
    return meter.peak


def _read(raw: bytes, source: str, meter: _Meter) -> Plan:
    # What is built here holds no cycles: the cycle collector would only walk it, again and
    # again as it grows.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _read_typed(raw, source, meter)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError):
        raise NotTyped from None
    finally:
        if collecting:
            gc.enable()


def _read_typed(raw: bytes, source: str, meter: _Meter) -> Plan:
    if not raw.isascii():
        _check_utf8(raw)  # orjson refuses bad UTF-8 anywhere; msgspec only where it decodes
    # The file, the strings copied out of it (at most its size again), and the structs of its
    # resources. The smallest resource takes 48 bytes, and each has a key `change`, written so
    # or with a `\u` escape. Counting takes time, so only where the quicker bound does not fit.
    kept = 2 * len(raw)
    structs = len(raw) // 48
    if meter.exact or kept + limits.TYPED_STRUCT_BYTES * structs > meter.budget:
        structs = raw.count(b'"change"') + raw.count(b"\\u")
    meter.need(kept + limits.TYPED_STRUCT_BYTES * structs)
    top = _TOP.decode(raw)
    version = _STR.decode(_small(top.format_version))
    if version.split(".")[0] not in SUPPORTED_MAJOR_VERSIONS:
        raise NotTyped
    present = (
        top.resource_changes is not UNSET,
        top.planned_values is not _NO,
        top.output_changes is not _NO,
        top.prior_state is not _NO,
        top.configuration is not _NO,
    )
    assert len(present) == len(_PLAN_KEYS)
    if not any(present):
        raise NotTyped
    changes = top.resource_changes if isinstance(top.resource_changes, list) else []
    drifted = top.resource_drift or []
    meter.used = kept + limits.TYPED_STRUCT_BYTES * (len(changes) + len(drifted))
    resources = meter.records(changes)
    drift = [
        DriftEntry(rc.address, rc.type, rc.action, rc.changed_attributes)
        for rc in meter.records(drifted)
    ]
    tf_version = _ANY.decode(_small(top.terraform_version)) if top.terraform_version else None
    iam = _iam(raw, resources) if b"Statement" in raw else ()
    return Plan(
        format_version=version,
        terraform_version=tf_version if isinstance(tf_version, str) else None,
        resource_changes=tuple(resources),
        drift=tuple(drift),
        outputs=meter.outputs(top.output_changes),
        errored=top.errored == _TRUE,
        source=source,
        summary=_summary(resources),
        iam=iam,
    )


def _iam(raw: bytes, resources: list[ResourceChange]) -> tuple[DocumentChange, ...]:
    """The IAM policy documents' changes (`terraform.iam`): only a plan that holds a policy
    statement somewhere is read again, and only the values of resources that hold one are
    decoded."""
    listed = _IAM_TOP.decode(raw).resource_changes or []
    if len(listed) != len(resources):
        raise NotTyped
    out: list[DocumentChange] = []
    for r, rc in zip(listed, resources, strict=True):
        c = r.change
        if rc.mode != "managed" or not (
            b"Statement" in bytes(c.before) or b"Statement" in bytes(c.after)
        ):
            continue
        change = {
            key: _ANY.decode(value) if len(value) else None
            for key, value in (
                ("before", c.before),
                ("after", c.after),
                ("after_unknown", c.after_unknown),
                ("before_sensitive", c.before_sensitive),
                ("after_sensitive", c.after_sensitive),
            )
        }
        out.extend(document_changes(rc.address, rc.action, change))
    return tuple(out)


class _Meter:
    """The bytes kept so far (`used`), counted against the budget as records are built, and
    the most counted at any point (`peak`). `exact`: every bound taken exactly, not only where
    a quicker one does not fit."""

    def __init__(self, budget: int, *, exact: bool = False) -> None:
        self.budget = budget
        self.exact = exact
        self.used = 0
        self.peak = 0
        # One frozenset for each set of changed attribute names: resources of a type mostly
        # change the same ones.
        self.shared: dict[frozenset[str], frozenset[str]] = {}
        # One Tags for each text of a resource's tags: resources mostly share a few tag sets.
        self.tag_sets: dict[bytes, Tags] = {}

    def need(self, total: int, *, shown: int | None = None) -> None:
        self.peak = max(self.peak, total)
        if total > self.budget:
            raise OverBudget(total if shown is None else shown)

    def transient(self, *values: Raw) -> None:
        """Room for decoding these values whole, besides what is kept."""
        need = self.used + limits.JSON_WORST_BYTES_PER_BYTE * sum(len(v) for v in values)
        if self.exact or need > self.budget:
            self.need(self.used + sum(limits.json_memory_estimate(bytes(v)) for v in values))

    def records(self, structs: list[_Resource]) -> list[ResourceChange]:
        out: list[ResourceChange] = []
        shared, tag_sets = self.shared, self.tag_sets
        used, budget = self.used, self.budget
        each, per_name = limits.TYPED_RESOURCE_BYTES, limits.TYPED_NAME_BYTES
        worst = limits.JSON_WORST_BYTES_PER_BYTE
        exact = self.exact
        for r in structs:
            c = r.change
            size = (
                len(c.before)
                + len(c.after)
                + len(c.after_unknown)
                + len(c.importing)
                + len(c.replace_paths)
            )
            if exact or used + worst * size > budget:
                self.used = used
                self.transient(c.before, c.after, c.after_unknown, c.importing, c.replace_paths)
            known, known_tags = len(shared), len(tag_sets)
            rc = _record(r, shared, tag_sets)
            used += each
            if len(shared) > known:  # a set of names not seen before
                used += per_name * len(rc.changed_attributes)
            if len(tag_sets) > known_tags:  # a tag set not seen before: names and values
                used += 2 * per_name * len(rc.tags)
            if exact or used > budget:
                self.need(used, shown=used + each * (len(structs) - len(out) - 1))
            out.append(rc)
        self.used = used
        self.peak = max(self.peak, used)
        return out

    def outputs(self, raw: Raw) -> tuple[OutputChange, ...]:
        if not raw:
            return ()
        self.transient(raw)
        outputs = []
        for name, out in (_OUTPUTS.decode(raw) or {}).items():
            sensitive = _truthy_raw(out.before_sensitive) or _truthy_raw(out.after_sensitive)
            outputs.append(OutputChange(name, _actions(out.actions)[1], sensitive))
        self.used += limits.TYPED_RESOURCE_BYTES * len(outputs)
        self.need(self.used)
        return tuple(outputs)


def _actions(raw: Raw) -> tuple[tuple[str, ...], str]:
    """The action list as one of the tuples `plan._ACTIONS` knows, and its action."""
    found = _BY_TEXT.get(bytes(raw)) if len(raw) < 64 else None
    if found is None:
        # Written otherwise (spaces, escapes): decoded, if it is short enough to be an action list.
        value = _ANY.decode(raw) if len(raw) < 256 else None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            found = _BY_TUPLE.get(tuple(value))
        if found is None:
            raise NotTyped
    return found


def _record(
    r: _Resource, shared: dict[frozenset[str], frozenset[str]], tag_sets: dict[bytes, Tags]
) -> ResourceChange:
    change = r.change
    actions, action = _actions(change.actions)
    if not r.address or not r.type:
        raise NotTyped
    import_id, importing = None, False
    if change.importing:
        value = _ANY.decode(change.importing)
        importing = isinstance(value, dict)
        import_id = _text(value.get("id")) if isinstance(value, dict) else None
    names, tags = _NONE, NO_TAGS
    if action in _COMPARED:
        # Each side's members are read once, for the attribute names and the tags alike.
        before = _object(change.before)
        after = before if change.after == change.before else _object(change.after)
        names = _changed_attributes(action, change, shared, before, after)
        tags = _tags(before, after, tag_sets)
    record: ResourceChange = _new_record(
        ResourceChange,
        (
            r.address,
            r.module_address,
            r.mode,
            r.type,
            r.name,
            r.provider_name,
            actions,
            action,
            r.action_reason,
            import_id,
            importing,
            r.previous_address,
            r.deposed,
            _paths(_ANY.decode(change.replace_paths)) if change.replace_paths else (),
            names,
            tags,
        ),
    )
    return record


def _tags(
    before: dict[str, Raw] | None, after: dict[str, Raw] | None, tag_sets: dict[bytes, Tags]
) -> Tags:
    """`plan._tags`: the string tags of the before and after `tags` and `tags_all`, each
    distinct text decoded once (AWS's `tags_all` mostly repeats `tags`, and an update mostly
    leaves them as they were)."""
    raws: list[Raw] = []
    for side in (before, after):
        if side:
            for key in ("tags", "tags_all"):
                raw = side.get(key)
                if raw and raw != _NULL and raw not in raws:
                    raws.append(raw)
    if not raws:
        return NO_TAGS
    text = b"\0".join([bytes(r) for r in raws])
    known = tag_sets.get(text)
    if known is not None:
        return known
    found: dict[tuple[str, str], None] = {}
    for raw in raws:
        value = _ANY.decode(raw)
        if isinstance(value, dict):
            for name, item in value.items():
                if isinstance(item, str):
                    found[(name, item)] = None
    tags = Tags(found) if found else NO_TAGS
    tag_sets[text] = tags
    return tags


def _small(raw: Raw) -> Raw:
    if not raw or len(raw) > _SMALL:
        raise NotTyped
    return raw


def _check_utf8(raw: bytes) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(raw)
    step = 1 << 20
    for start in range(0, len(raw), step):
        decoder.decode(view[start : start + step])
    decoder.decode(b"", final=True)


def _truthy_raw(raw: Raw) -> bool:
    return bool(raw) and bool(_ANY.decode(raw))


def _object(raw: Raw) -> dict[str, Raw] | None:
    """A JSON object's members, each value left as text; None for any other value."""
    if not raw:
        return None
    try:
        return _OBJECT.decode(raw)
    except msgspec.ValidationError:
        return None


def _value(raw: Raw | None) -> Any:
    return None if raw is None else _ANY.decode(raw)


def _changed_attributes(
    action: str,
    change: _Change,
    shared: dict[frozenset[str], frozenset[str]],
    before: dict[str, Raw] | None,
    after: dict[str, Raw] | None,
) -> frozenset[str]:
    """`plan._changed_attributes`, from the values' text: the same text is the same value;
    where the text differs, the values are decoded and compared as that function does."""
    if action == "update":
        names = _updated_attributes(change, before, after)
    else:
        names = set()
        for members in (before, after):
            if members:
                names.update([k for k, v in members.items() if v != _NULL])
    unknown = change.after_unknown
    if unknown and b"true" in bytes(unknown):  # no `true` in it: nothing becomes unknown
        members = _object(unknown)
        if members:
            names.update(
                [
                    k
                    for k, v in members.items()
                    if v == _TRUE or (b"true" in bytes(v) and _truthy(_ANY.decode(v)))
                ]
            )
    if not names:
        return _NONE
    found = frozenset(names)
    return shared.setdefault(found, found)


def _updated_attributes(
    change: _Change, before_members: dict[str, Raw] | None, after_members: dict[str, Raw] | None
) -> set[str]:
    names: set[str] = set()
    if change.before == change.after:
        return names
    before = before_members or {}
    after = after_members or {}
    get = after.get
    differ = [k for k, v in before.items() if get(k) != v]
    if len(after) > len(before) - len(differ):  # a key only after (or before and after differ)
        differ.extend([k for k in after if k not in before])
    for key in differ:
        b, a = _value(before.get(key)), _value(after.get(key))
        if b != a:
            names.add(key)
            if isinstance(b, (dict, list)) and isinstance(a, (dict, list)):
                names.update([f"{key}.{sub}" for sub in _differing_subkeys(b, a)])
    return names
