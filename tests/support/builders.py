"""Small builders for plan JSON shaped like `terraform show -json` (format 1.2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def rc(
    address: str,
    actions: list[str],
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    after_unknown: dict[str, Any] | None = None,
    mode: str = "managed",
    **extra: Any,
) -> dict[str, Any]:
    parts = address.split(".")
    if parts[0] == "module":
        module = ".".join(parts[:2])
        rest = parts[2:]
    else:
        module = None
        rest = parts
    if rest[0] == "data":
        rest = rest[1:]
    rtype, name = rest[0], rest[1].split("[")[0]
    change: dict[str, Any] = {
        "actions": actions,
        "before": before,
        "after": after,
        "after_unknown": after_unknown or {},
        "before_sensitive": {},
        "after_sensitive": {},
    }
    for key in ("importing", "replace_paths"):
        if key in extra:
            change[key] = extra.pop(key)
    out: dict[str, Any] = {
        "address": address,
        "mode": mode,
        "type": rtype,
        "name": name,
        "provider_name": "registry.terraform.io/hashicorp/aws",
        "change": change,
    }
    if module:
        out["module_address"] = module
    out.update(extra)
    return out


def plan(*changes: dict[str, Any], **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format_version": "1.2",
        "terraform_version": "1.9.8",
        "planned_values": {"root_module": {}},
        "resource_changes": list(changes),
    }
    doc.update(top)
    return doc


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def fired(out: dict[str, Any], level: str = "block") -> list[str]:
    """The gate rules that fired at `level` (block, warn, info) in `gate --format json`'s
    output, in order: tests name the rule, not a substring of its words."""
    return [f["rule"] for f in out["findings"] if f["level"] == level]


def policy_without(tmp: Path, base: Path | None, change_type: str, *dropped: str) -> Path:
    """A copy of the policy `base` (None: an empty one over the built-in default) whose
    `change_type` no longer `requires` the Phase 1 items `dropped` (a team that does not ask,
    say, for a downtime estimate of its scheduled maintenance: messages then say the impact is
    not known yet)."""
    import yaml

    from hie_notify.policy.model import PHASE1_FIELDS

    data = yaml.safe_load(base.read_text()) if base else {}
    types = data.setdefault("change_types", {})
    types.setdefault(change_type, {})["requires"] = [
        item for item in PHASE1_FIELDS if item not in dropped
    ]
    out = tmp / f"policy-without-{'-'.join(dropped)}.yaml"
    out.write_text(yaml.safe_dump(data))
    return out
