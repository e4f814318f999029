"""An entry recorded instead of an unchanged message stands only on a real announcement
(gate.still_told; the gate filters dry runs before it asks, so it is asked here directly)."""

from __future__ import annotations

from dataclasses import replace

from hie_notify.gate import still_told
from hie_notify.policy import Policy
from tests.support.gate_records import ORIGINAL, STANDS


def test_only_a_real_announcement_can_be_stood_on(policy: Policy) -> None:
    assert still_told(ORIGINAL, STANDS, policy) == []
    not_one = ["not an announcement"]
    assert still_told(replace(ORIGINAL, dry_run=True), STANDS, policy) == not_one
    assert still_told(replace(ORIGINAL, stage="apply_started"), STANDS, policy) == not_one
    assert still_told(ORIGINAL, replace(STANDS, stage="reminder"), policy) == not_one
