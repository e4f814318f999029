"""Every real third-party plan in $HIE_PLANS_DIR classifies, with the DESIGN.md fields.

These files are not part of the project (see ../shared/plans/SOURCES.md); CI points
HIE_PLANS_DIR at them. Without the variable the tests are skipped, saying so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hie_notify.cli import main

PLANS_DIR = os.environ.get("HIE_PLANS_DIR")
PLANS = sorted(Path(PLANS_DIR).glob("*.json")) if PLANS_DIR else []

pytestmark = pytest.mark.skipif(
    not PLANS, reason="HIE_PLANS_DIR is not set (or holds no *.json): real-plan suite skipped"
)


def _sensitive_values(value: Any, mask: Any) -> Iterator[str]:
    """Leaf values that the plan marks sensitive (strings long enough to search for)."""
    if mask is True:
        if isinstance(value, str) and len(value) >= 6:
            yield value
        elif isinstance(value, (dict, list)):
            yield from _sensitive_values(value, _all_true(value))
        return
    if isinstance(mask, dict) and isinstance(value, dict):
        for key, sub in mask.items():
            yield from _sensitive_values(value.get(key), sub)
    elif isinstance(mask, list) and isinstance(value, list):
        for v, m in zip(value, mask, strict=False):
            yield from _sensitive_values(v, m)


def _all_true(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: True for k in value}
    return [True] * len(value)


@pytest.mark.parametrize("path", PLANS, ids=[p.name[:60] for p in PLANS])
def test_real_plan_classifies(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = json.loads(path.read_text())
    assert main(["--format", "json", "classify", "--plan", str(path)]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    for key in (
        "change_type",
        "categories",
        "service_impacting",
        "summary",
        "reasons",
        "resources",
    ):
        assert key in out
    for key in ("add", "change", "destroy", "replace", "import", "no_op", "read"):
        assert isinstance(out["summary"][key], int)
    changes = raw.get("resource_changes") or []
    counted = sum(
        out["summary"][k]
        for k in ("add", "change", "destroy", "replace", "forget", "read", "no_op")
    )
    assert counted == len(changes)
    changing = [
        rc
        for rc in changes
        if rc["change"]["actions"] not in (["no-op"], ["read"])
        or "importing" in rc["change"]
        or rc.get("previous_address") not in (None, rc["address"])
    ]
    assert [r["address"] for r in out["resources"]] == [rc["address"] for rc in changing]
    # Moves, imports and forgets change only the state: no category, no notice (by default).
    real = [rc for rc in changing if rc["change"]["actions"] not in (["no-op"], ["forget"])]
    state_only = [r for r in out["resources"] if r["address"] not in {x["address"] for x in real}]
    assert all(r["categories"] == [] for r in state_only)
    if real:
        assert out["change_type"] in out["categories"]
        assert all(r["categories"] for r in out["resources"] if r not in state_only)
    elif changing:
        assert out["change_type"] is None and out["has_changes"] is False
        assert out["reasons"][0].startswith("state only: ")
    else:
        assert out["change_type"] is None
        assert any("no changes" in r for r in out["reasons"])
    for rc in changes + (raw.get("resource_drift") or []):
        ch = rc["change"]
        for side in ("before", "after"):
            for secret in _sensitive_values(ch.get(side), ch.get(f"{side}_sensitive")):
                assert secret not in captured.out and secret not in captured.err


def test_the_corpus_covers_what_the_issue_lists() -> None:
    """Modules, indexes, data sources, replacements, imports and moves all appear."""
    seen: set[str] = set()
    for path in PLANS:
        for rc in json.loads(path.read_text()).get("resource_changes") or []:
            actions = rc["change"]["actions"]
            seen.update(
                name
                for name, hit in (
                    ("module", "module_address" in rc),
                    ("index", "index" in rc),
                    ("data", rc.get("mode") == "data"),
                    ("replace", "delete" in actions and "create" in actions),
                    ("import", "importing" in rc["change"]),
                    ("move", "previous_address" in rc),
                )
                if hit
            )
    assert seen == {"module", "index", "data", "replace", "import", "move"}


@pytest.mark.parametrize("path", PLANS, ids=[p.name[:60] for p in PLANS])
def test_real_plan_read_the_lean_way_is_the_general_ways_plan(path: Path) -> None:
    """The lean reader (issue 28) builds the same plan from every real file; it steps aside only
    for Terraform 1.0.0's drift entries, which have no address."""
    from hie_notify import safejson
    from hie_notify.terraform import plan_decode
    from hie_notify.terraform.plan import parse_plan

    raw = path.read_bytes()
    general = parse_plan(safejson.loads(raw), str(path))
    drift = json.loads(raw).get("resource_drift") or []
    if any("address" not in entry for entry in drift):
        with pytest.raises(plan_decode.NotTyped):
            plan_decode.read(raw, str(path), 1 << 40)
        return
    assert plan_decode.read(raw, str(path), 1 << 40) == general
