"""Read a YAML file into plain data, and turn validation errors into lines that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from hie_notify import limits
from hie_notify.errors import InputError

MAX_FILE_BYTES = 5 * 1024 * 1024


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, bounded: nesting depth while composing, the size of the document once
    aliases are expanded (a "billion laughs" file is a few hundred bytes), recursive aliases,
    and values that do not exist (2026-02-30, hour 25, an offset of +99:00, integers over
    4,300 digits) become errors with a line and column instead of a ValueError."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > limits.MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested more than {limits.MAX_YAML_DEPTH} levels deep",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expanded_size(node)
        found = self._duplicate_keys(node)
        if found:
            raise DuplicateKeys(found)
        return super().construct_document(node)

    def _duplicate_keys(self, root: yaml.Node) -> list[str]:
        """Every key a mapping repeats, with both lines: YAML keeps only the last silently (a
        second `customers:` would drop the first's audiences). Keys brought in by a merge
        (`<<: *base`) may be overridden; a key written twice may not."""
        found: list[tuple[int, int, str]] = []
        seen: set[int] = set()
        stack: list[tuple[yaml.Node, str]] = [(root, "")]
        while stack:
            node, path = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, yaml.SequenceNode):
                stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))
                continue
            if not isinstance(node, yaml.MappingNode):
                continue
            first: dict[tuple[str, Any], yaml.Node] = {}
            for key_node, value_node in node.value:
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                child = f"{path}.{name}" if path else str(name)
                stack.append((value_node, child))
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node)  # `1`, `0x1` and `"1"` as YAML reads them
                earlier = first.setdefault((type(key).__name__, key), key_node)
                if earlier is not key_node:
                    at, was = key_node.start_mark, earlier.start_mark
                    where = f"line {was.line + 1}" + (
                        f", column {was.column + 1}" if was.line == at.line else ""
                    )
                    found.append(
                        (
                            at.line,
                            at.column,
                            f"line {at.line + 1}, column {at.column + 1}: duplicate key "
                            f"{child!r} (first at {where}): remove one (YAML would silently keep "
                            "only the last)",
                        )
                    )
        return [line for _, _, line in sorted(found)]

    def _bounded(self, node: yaml.Node, what: str, construct: Any) -> Any:
        try:
            return construct(self, node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{what} {str(exc).split(';')[0]}", node.start_mark
            ) from None

    def construct_yaml_timestamp(self, node: yaml.Node) -> Any:
        return self._bounded(
            node,
            "not a date and time that exists:",
            yaml.constructor.SafeConstructor.construct_yaml_timestamp,
        )

    def construct_yaml_int(self, node: yaml.Node) -> Any:
        return self._bounded(
            node, "not a usable integer:", yaml.constructor.SafeConstructor.construct_yaml_int
        )


_MERGE = "tag:yaml.org,2002:merge"


class DuplicateKeys(yaml.YAMLError):
    """A mapping that names a key twice; `found` holds one line per repeated key."""

    def __init__(self, found: list[str]) -> None:
        super().__init__("; ".join(found))
        self.found = found


_BoundedLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", _BoundedLoader.construct_yaml_timestamp
)
_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def _check_expanded_size(root: yaml.Node) -> None:
    """Count the nodes the document holds with every alias expanded, without expanding it:
    a node's size is computed once and reused wherever an alias points at it."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > limits.MAX_YAML_NODES:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"holds more than {limits.MAX_YAML_NODES} values once its aliases are "
                    "expanded (an alias bomb?)",
                    node.start_mark,
                )
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise yaml.constructor.ConstructorError(
                None, None, "an alias refers to a node that contains it", node.start_mark
            )
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The mapping at the top of a YAML file; InputError naming the file otherwise."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if size > MAX_FILE_BYTES:
        raise InputError(f"{path}: {size} bytes is too large (at most {MAX_FILE_BYTES})")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_yaml_mapping(raw, str(path))


def parse_yaml_mapping(raw: bytes, source: str) -> dict[str, Any]:
    """The mapping at the top of a YAML document; InputError naming `source` otherwise."""
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(f"{source}: {len(raw)} bytes is too large (at most {MAX_FILE_BYTES})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{source}: not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader subclass
    except DuplicateKeys as exc:
        raise InputError([f"{source}: {line}" for line in exc.found]) from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        if isinstance(exc, yaml.reader.ReaderError):
            where = f" at character {exc.position + 1}"
            problem = f"character U+{exc.character:04X} is not allowed in YAML"
        raise InputError(f"{source}: not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(
            f"{source}: expected a mapping of keys at the top, got {type(data).__name__}"
        )
    return data


def format_validation_error(
    source: str, exc: ValidationError, model: type[BaseModel] | None = None
) -> list[str]:
    """One line per problem: `FILE: a.b.c: what was expected`."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"] if p != "[key]"]
        path = ".".join(loc) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        kind = err["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(model, err["loc"][:-1]) if model else None
            msg = "unknown key" + (f" (expected one of: {', '.join(allowed)})" if allowed else "")
        elif kind == "missing":
            msg = "required key is missing"
        elif kind == "literal_error" and "[key]" in [str(p) for p in err["loc"]]:
            msg = f"unknown name {loc[-1]!r}: {msg.replace('Input should be', 'expected')}"
        else:
            msg = msg.replace("Input should be", "expected")
            if kind not in ("value_error", "assertion_error") and "input" in err:
                shown = repr(err["input"])
                if len(shown) <= 60:
                    msg += f", got {shown}"
        lines.append(f"{source}: {path}: {msg}")
    return lines


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The keys a model accepts at `loc`, following nested models, dicts and lists."""
    import typing

    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin is dict and args:
            current = args[1]
        elif origin is list and args:
            current = args[0]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _unwrap(annotation: Any) -> Any:
    import types
    import typing

    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation
