"""The change record: every key of DESIGN.md, and an error naming the field for each mistake."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hie_notify.change import load_change
from hie_notify.errors import InputError
from hie_notify.policy import Policy

GOOD = """\
id: FFAPP-4458
type: planned_infra_update
purpose: Resize EKS worker nodes to m6i.xlarge
window:
  start: 2026-12-01T20:00:00+00:00
  end: 2026-12-01T22:00:00+00:00
  zone: Europe/London
downtime: 30m
customers: [EoE, CUH]
risk: medium
rollback: Revert the merge request and re-apply the previous node group
monitoring: Grafana EKS dashboard; pod restart alerts
on_call: Leon
approvers: [Ollie]
"""


def _write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "change.yaml"
    f.write_text(text)
    return f


def test_design_keys_are_read(tmp_path: Path, policy: Policy) -> None:
    c = load_change(_write(tmp_path, GOOD), policy)
    assert c.id == "FFAPP-4458"
    assert c.type == "planned_infra_update"
    assert c.window is not None
    assert c.window.start == datetime(2026, 12, 1, 20, tzinfo=timezone.utc)
    assert c.downtime == timedelta(minutes=30)
    assert c.customers == ["EoE", "CUH"]
    assert (c.risk, c.on_call, c.approvers) == ("medium", "Leon", ["Ollie"])
    assert c.phase1_gaps() == []


def test_local_window_with_zone(tmp_path: Path, policy: Policy) -> None:
    text = GOOD.replace("2026-12-01T20:00:00+00:00", "2026-07-01T20:00:00").replace(
        "2026-12-01T22:00:00+00:00", "2026-07-01T22:00:00"
    )
    c = load_change(_write(tmp_path, text), policy)
    assert c.window is not None
    # British Summer Time: 20:00 local is 19:00 UTC
    assert c.window.start.astimezone(timezone.utc) == datetime(2026, 7, 1, 19, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        ("id: FFAPP-4458", "id: ffapp 4458", "id: expected a Jira key like FFAPP-4458"),
        ("type: planned_infra_update", "type: hotfix", "type: expected 'emergency_fix'"),
        ("downtime: 30m", "downtime: half an hour", "downtime: expected a duration"),
        (
            "customers: [EoE, CUH]",
            "customers: [EoE, Addenbrookes]",
            "customers: unknown customer 'Addenbrookes'",
        ),
        ("risk: medium", "risk: moderate", "risk: expected 'low', 'medium' or 'high'"),
        (
            "purpose: Resize EKS worker nodes to m6i.xlarge",
            "purpose: ''",
            "purpose: String should have at least 1 character",
        ),
        ("approvers: [Ollie]", "approvers: Ollie", "approvers: expected a valid list"),
        ("on_call: Leon", "on_cal: Leon", "on_cal: unknown key (expected one of: id, type"),
        (
            "end: 2026-12-01T22:00:00+00:00",
            "end: 2026-12-01T19:00:00+00:00",
            "window: end (2026-12-01T19:00:00+00:00) must be after start",
        ),
        (
            "start: 2026-12-01T20:00:00+00:00",
            "start: next tuesday",
            "window.start: expected a date and time",
        ),
        ("  zone: Europe/London\n", "", None),
    ],
)
def test_bad_change_record(
    tmp_path: Path, policy: Policy, replace: str, by: str, expected: str | None
) -> None:
    assert replace in GOOD
    f = _write(tmp_path, GOOD.replace(replace, by))
    if expected is None:  # removing the zone is fine: the times carry offsets
        c = load_change(f, policy)
        assert c.window is not None and c.window.zone is None
        assert c.window.start == datetime(2026, 12, 1, 20, tzinfo=timezone.utc)
        assert c.window.end == datetime(2026, 12, 1, 22, tzinfo=timezone.utc)
        return
    with pytest.raises(InputError) as info:
        load_change(f, policy)
    assert any(line.startswith(f"{f}: ") and expected in line for line in info.value.problems), (
        info.value.problems
    )


def test_window_in_the_spring_gap_is_refused(tmp_path: Path, policy: Policy) -> None:
    text = GOOD.replace("2026-12-01T20:00:00+00:00", "2026-03-29T01:30:00").replace(
        "2026-12-01T22:00:00+00:00", "2026-03-29T04:00:00"
    )
    with pytest.raises(
        InputError, match="window: start: 2026-03-29 01:30 does not exist in Europe/London"
    ):
        load_change(_write(tmp_path, text), policy)


def test_ambiguous_autumn_time_needs_an_offset(tmp_path: Path, policy: Policy) -> None:
    text = GOOD.replace("2026-12-01T20:00:00+00:00", "2026-10-25T01:30:00").replace(
        "2026-12-01T22:00:00+00:00", "2026-10-25T04:00:00"
    )
    with pytest.raises(
        InputError, match=r"happens twice in Europe/London .* give an explicit offset"
    ):
        load_change(_write(tmp_path, text), policy)
    fixed = text.replace("2026-10-25T01:30:00", "2026-10-25T01:30:00+01:00")
    c = load_change(_write(tmp_path, fixed), policy)
    assert c.window is not None
    assert c.window.start.astimezone(timezone.utc) == datetime(
        2026, 10, 25, 0, 30, tzinfo=timezone.utc
    )


def test_local_time_without_zone_is_refused(tmp_path: Path, policy: Policy) -> None:
    text = GOOD.replace("2026-12-01T20:00:00+00:00", "2026-12-01T20:00:00").replace(
        "  zone: Europe/London\n", ""
    )
    with pytest.raises(InputError, match="window: start 2026-12-01T20:00:00 has no offset"):
        load_change(_write(tmp_path, text), policy)


def test_emergency_needs_a_justification(tmp_path: Path, policy: Policy) -> None:
    text = GOOD.replace("type: planned_infra_update", "type: emergency_fix")
    with pytest.raises(InputError, match="an emergency_fix needs a justification"):
        load_change(_write(tmp_path, text), policy)
    c = load_change(
        _write(tmp_path, text + "justification: CVE-2026-1234 exploited in the wild\n"), policy
    )
    assert c.type == "emergency_fix"


def test_phase1_gaps_are_listed(tmp_path: Path, policy: Policy) -> None:
    c = load_change(_write(tmp_path, "id: FFAPP-1\npurpose: Something\n"), policy)
    assert c.phase1_gaps() == [
        "window (precise start and end times)",
        "downtime (estimated downtime, 0 if none)",
        "rollback (the rollback plan)",
    ]


def test_customer_must_exist_in_the_users_policy(tmp_path: Path) -> None:
    from hie_notify.policy import load_policy

    pol = tmp_path / "p.yaml"
    pol.write_text("customers:\n  PAP: {name: Papworth}\n")
    p = load_policy(pol)
    c = load_change(_write(tmp_path, GOOD.replace("[EoE, CUH]", "[PAP]")), p)
    assert c.customers == ["PAP"]
