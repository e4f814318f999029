"""Read a YAML file into plain data, and turn validation errors into lines that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from hie_notify.errors import InputError

MAX_FILE_BYTES = 5 * 1024 * 1024


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
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "invalid YAML"
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
