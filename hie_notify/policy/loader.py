"""Load the built-in default policy and merge a user's file over it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hie_notify.errors import InputError
from hie_notify.policy.model import Policy
from hie_notify.yamlfile import format_validation_error, read_yaml_mapping

DEFAULT_NAME = "built-in default policy"


def default_policy_data() -> dict[str, Any]:
    text = resources.files("hie_notify.policy").joinpath("default.yaml").read_text("utf-8")
    # The built-in file is ours and plain: libyaml's loader reads it ~10x faster where PyYAML
    # has it (every command reads this file; see bench/startup.py).
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert isinstance(data, dict)
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merged key by key; any other value (lists included) replaced whole."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_policy(path: Path | None = None) -> Policy:
    """The default policy, with `path` merged over it when given. InputError (exit 2) if invalid."""
    data = default_policy_data()
    source = DEFAULT_NAME
    if path is not None:
        data = deep_merge(data, read_yaml_mapping(path))
        source = str(path)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise InputError(format_validation_error(source, exc, Policy)) from None
