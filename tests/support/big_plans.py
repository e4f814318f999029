"""Large generated plans and a child process under an address-space limit (`ulimit -v`).

The plans are built by repeating one serialized `resource_changes` entry, so a 133 MB file takes
a fraction of a second to write; they go to the test's tmp_path and are never committed.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

MIB = 1 << 20


def node_group(desired: int) -> dict[str, Any]:
    return {
        "cluster_name": "prod",
        "id": "prod:workers",
        "instance_types": ["m5.large"],
        "node_group_name": "workers",
        "scaling_config": [{"desired_size": desired, "max_size": 6, "min_size": 1}],
        "version": "1.29",
    }


def eks_update(**extra: Any) -> dict[str, Any]:
    """An in-place update of an EKS node group with its before and after (issue 23 item 11)."""
    entry: dict[str, Any] = {
        "address": "module.eks.aws_eks_node_group.workers",
        "module_address": "module.eks",
        "mode": "managed",
        "type": "aws_eks_node_group",
        "name": "workers",
        "provider_name": "registry.terraform.io/hashicorp/aws",
        "change": {
            "actions": ["update"],
            "before": node_group(3),
            "after": node_group(4),
            "after_unknown": {},
            "before_sensitive": {},
            "after_sensitive": {},
        },
    }
    entry.update(extra)
    return entry


def repeated(entry: dict[str, Any], count: int, *, odd: dict[str, Any] | None = None) -> bytes:
    """A plan of `count` copies of `entry` (the last one replaced by `odd` when given), written
    compact as `terraform show -json` writes it."""
    items = [_compact(entry)] * count
    if odd is not None and count:
        items[-1] = _compact(odd)
    return (
        b'{"format_version":"1.2","terraform_version":"1.9.8","planned_values":'
        b'{"root_module":{}},"resource_changes":[' + b",".join(items) + b"]}"
    )


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def run_limited(
    tmp: Path, argv: list[str], address_space: int, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m hie_notify ARGV` in a child whose address space is limited (`ulimit -v`)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return subprocess.run(
        [sys.executable, "-m", "hie_notify", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), **(env or {})},
        cwd=tmp,
        check=False,
    )
