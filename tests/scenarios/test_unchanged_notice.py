"""Announced again with nothing new to tell: an audience that would read exactly the message it
read before is sent nothing, and the entry recorded instead names the delivery it stands on.
The gate counts that delivery's time for it only while the message, the window, the declared
downtime, the change type and the service impact are what that delivery told."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hie_notify.calendar import BusinessCalendar
from hie_notify.gate import standing, still_told
from hie_notify.policy import Policy
from tests.support.builders import plan, rc, write
from tests.support.cli_flow import Flow
from tests.support.gate_records import (
    END,
    NOW,
    ORIGINAL,
    STANDS,
    START,
    TOLD,
    Gate,
    audience,
    entry,
    only,
    record,
)
from tests.support.paths import EXAMPLES

ALARM = rc("aws_cloudwatch_metric_alarm.cpu", ["create"], after={"threshold": 80})
ALARM2 = rc("aws_cloudwatch_metric_alarm.mem", ["create"], after={"threshold": 90})
NODEGROUP = rc(
    "module.eks.aws_eks_node_group.workers",
    ["delete", "create"],
    replace_paths=[["instance_types"]],
)
CUSTOMER = "customer:EoE"


# --- the gate, on hand-built entries ------------------------------------------------------------


@pytest.fixture
def gate(policy: Policy) -> Gate:
    return Gate(policy, BusinessCalendar.from_policy(policy))


def test_an_unchanged_message_keeps_its_notice_when_the_plan_grows(gate: Gate) -> None:
    # without it, the first notice is of another plan: the gate blocks
    alone = gate(entries=[ORIGINAL])
    assert not alone.allowed and "was told about a different plan" in alone.reasons[0]
    decision = gate(entries=[ORIGINAL, STANDS])
    assert decision.allowed, decision.reasons
    (req,) = decision.requirements
    # counted from when it was told, with that delivery's receipt
    assert req.given_at == TOLD and req.receipts == ("slack C0DEVOPS 1764583200.000100",)


# Each way an entry could claim an earlier notice it has no right to: one thing changed.
ATTACKS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # (changes to ORIGINAL, changes to STANDS)
    "the message differs": ({}, {"extra": {**STANDS.extra, "told": "m2"}}),
    "downtime raised": ({}, {"extra": {**STANDS.extra, "downtime": "4h"}}),
    "no downtime recorded": ({"extra": {"told": "m1"}}, {}),
    "window moved": (
        {
            "window_start": (START - timedelta(days=2)).isoformat(),
            "window_end": (END - timedelta(days=2)).isoformat(),
        },
        {},
    ),
    "newly service-impacting": ({}, {"service_impacting": True}),
    "type stricter": ({}, {"change_type": "scheduled_maintenance"}),
    "names no delivery": ({}, {"extra": {**STANDS.extra, "same_as": "nowhere"}}),
    "names another audience's delivery": ({"audience": "slack:#product"}, {}),
    "names another channel's delivery": ({"channel": "teams"}, {}),
    "names an entry that was not delivered": (
        {"extra": {**ORIGINAL.extra, "same_as": "elsewhere"}},
        {},
    ),
    "names a delivery made after it": ({"delivered_at": NOW - timedelta(minutes=30)}, {}),
    "names a delivery with no receipt": ({"receipt": {}}, {}),
    "names a dry run": ({"dry_run": True}, {}),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_an_entry_cannot_keep_a_notice_when_what_was_told_changed(gate: Gate, attack: str) -> None:
    to_original, to_stands = ATTACKS[attack]
    original, stands = replace(ORIGINAL, **to_original), replace(STANDS, **to_stands)
    decision = gate(entries=[original, stands])
    assert not decision.allowed
    assert all(r.given_at != TOLD for r in decision.requirements)


_MUTATIONS = {
    "told": lambda o, s: (o, replace(s, extra={**s.extra, "told": "other"})),
    "downtime": lambda o, s: (o, replace(s, extra={**s.extra, "downtime": "30m"})),
    "window": lambda o, s: (
        replace(o, window_start=(START - timedelta(hours=1)).isoformat()),
        s,
    ),
    "impact": lambda o, s: (o, replace(s, service_impacting=True)),
    "type": lambda o, s: (o, replace(s, change_type="emergency_fix")),
    "audience": lambda o, s: (replace(o, audience="slack:#other"), s),
    "channel": lambda o, s: (o, replace(s, channel="email")),
    "order": lambda o, s: (replace(o, delivered_at=s.delivered_at + timedelta(seconds=1)), s),
    "ref": lambda o, s: (o, replace(s, extra={**s.extra, "same_as": "x"})),
}
# Changes that tell the audience less, not more: the earlier notice still covers them.
_HARMLESS = {
    "lower type": lambda o, s: (o, replace(s, change_type="cost_optimization")),
    "no longer impacting": lambda o, s: (replace(o, service_impacting=True), s),
}


@settings(max_examples=60, deadline=None)
@given(
    harmful=st.sets(st.sampled_from(sorted(_MUTATIONS))),
    harmless=st.sets(st.sampled_from(sorted(_HARMLESS))),
)
def test_property_an_entry_stands_exactly_when_nothing_told_changed(
    policy: Policy, harmful: set[str], harmless: set[str]
) -> None:
    if "impact" in harmful:  # an earlier notice of impact covers it: not a change then
        harmless.discard("no longer impacting")
    original, stands = ORIGINAL, STANDS
    for name in sorted(harmless):
        original, stands = _HARMLESS[name](original, stands)
    for name in sorted(harmful):
        original, stands = _MUTATIONS[name](original, stands)
    # (naming no delivery is found by `standing`: there is nothing to compare with)
    reasons = still_told(original, stands, policy)
    assert bool(reasons) == bool(harmful - {"ref"}), (harmful, reasons)
    counted = standing([original, stands], policy)
    kept = [e for e in counted if e.idempotency_key == "second"]
    if harmful:
        assert kept == []  # it tells nobody
    else:
        assert [e.delivered_at for e in kept] == [original.delivered_at]
        assert kept[0].fingerprint == stands.fingerprint  # of the plan it was recorded for


def test_property_holds_at_the_gate_too(gate: Gate) -> None:
    # every harmful change alone, through decide(): blocked for #devops
    for name, mutate in _MUTATIONS.items():
        original, stands = mutate(ORIGINAL, STANDS)
        d = gate(entries=[original, stands], audiences=[audience()])
        assert not d.allowed, name


# --- through the commands -----------------------------------------------------------------------


def _customer_policy(tmp: Path, constant: bool) -> Path:
    """The example policy; with `constant`, its customer announcement says the same whatever
    the change (a policy's own templates: what an attacker would like)."""
    data = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())
    if constant:
        data["templates"] = {
            "announce.external.j2": "{% set subject %}A change{% endset %}Something will change.\n"
        }
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _flow(tmp: Path, capsys: pytest.CaptureFixture[str], *res: Any, constant: bool = False) -> Flow:
    return Flow(tmp, capsys, *res, policy=_customer_policy(tmp, constant))


def _emails(tmp: Path, who: str = "customer-EoE") -> list[str]:
    return sorted(p.name for p in (tmp / "outbox/FFAPP-4458/announce").glob(f"{who}*.eml"))


def _replan(flow: Flow, *resources: Any, now: str = "2026-12-01T11:00:00+00:00") -> Any:
    path = write(flow.tmp / "plan2.json", plan(*resources))
    code, out = flow("plan", "--plan", str(path), now=now)
    assert code == 0, flow.err
    return out


def test_a_grown_plan_that_tells_the_customer_nothing_new_sends_it_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _flow(tmp_path, capsys, NODEGROUP)
    code, _ = flow("plan", "--plan", str(flow.plan))
    assert code == 0, flow.err
    out = _replan(flow, NODEGROUP, ALARM)
    # the customer's message would be the same: not sent, and said so
    assert _emails(tmp_path) == ["customer-EoE.eml"]
    assert [u["audience"] for u in out["unchanged"]] == [CUSTOMER]
    assert out["unchanged"][0]["delivered_at"] == "2026-12-01T10:00:00+00:00"
    assert CUSTOMER not in {d["audience"] for d in out["delivered"]}
    assert "unchanged customer:EoE" in flow.err and "not sent" in flow.err
    # the team reads the new plan (one more resource): told again
    assert {d["audience"] for d in out["delivered"]} >= {"slack:#devops"}
    # a re-run: still nothing new, nothing sent, said the same way
    again = _replan(flow, NODEGROUP, ALARM, now="2026-12-01T11:05:00+00:00")
    assert [u["audience"] for u in again["unchanged"]] == [CUSTOMER] and again["delivered"] == []
    assert _emails(tmp_path) == ["customer-EoE.eml"]
    # the gate counts the customer's notice from when it was told, for the grown plan
    flow.write_change()  # unchanged record
    code, gate = flow(
        "gate", "--plan", str(tmp_path / "plan2.json"), now="2026-12-08T19:30:00+00:00"
    )
    assert code == 0, gate["reasons"]
    told = {r["audience"]: r["given_at"] for r in gate["required"]}
    assert told[CUSTOMER] == "2026-12-01T10:00:00+00:00"
    # ... and the merge request note says it was not sent
    note = (tmp_path / "outbox/FFAPP-4458/merge-request-note.md").read_text()
    assert "unchanged: told exactly this before, not sent" in note


# Each change that alters what a customer is told, made by a branch that also overrides the
# customer template so the message reads the same: the customer is told again, from now.
CHANGES: dict[str, dict[str, Any]] = {
    "downtime raised": {"downtime": "4h"},
    "window moved": {
        "window": {"start": "2026-12-09T19:00:00+00:00", "end": "2026-12-09T21:00:00+00:00"}
    },
    "type stricter": {"type": "scheduled_maintenance"},
    "newly service-impacting": {"downtime": "0"},
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_changed_notice_is_sent_however_the_message_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str
) -> None:
    # a scheduled maintenance reaches every customer, service-impacting or not
    impacting = change != "newly service-impacting"
    flow = _flow(tmp_path, capsys, NODEGROUP if impacting else ALARM, constant=True)
    flow.write_change(
        type="planned_infra_update" if impacting else "scheduled_maintenance",
        downtime="1h" if impacting else "0",
    )
    assert flow("plan", "--plan", str(flow.plan))[0] == 0
    flow.write_change(**CHANGES[change])
    out = _replan(flow, *((NODEGROUP,) if impacting else (ALARM, NODEGROUP)))
    assert out["unchanged"] == []
    assert CUSTOMER in {d["audience"] for d in out["delivered"]}
    assert len(_emails(tmp_path)) == 2
    rows = [
        json.loads(line)
        for line in (tmp_path / "ledger.jsonl").read_text().splitlines()
        if json.loads(line)["audience"] == CUSTOMER
    ]
    assert not any(r["extra"].get("same_as") for r in rows)


def test_a_dry_run_says_what_would_not_be_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _flow(tmp_path, capsys, NODEGROUP)
    flow("plan", "--plan", str(flow.plan))
    lines = (tmp_path / "ledger.jsonl").read_text().count("\n")
    path = write(tmp_path / "plan2.json", plan(NODEGROUP, ALARM2))
    code, out = flow("--dry-run", "plan", "--plan", str(path), now="2026-12-01T11:00:00+00:00")
    assert code == 0, flow.err
    assert [u["audience"] for u in out["unchanged"]] == [CUSTOMER]
    assert (tmp_path / "ledger.jsonl").read_text().count("\n") == lines


def test_a_notice_of_less_downtime_than_now_declared_no_longer_counts(gate: Gate) -> None:
    told = entry(extra={"told": "m1", "downtime": "30m"})
    assert gate(entries=[told], change=record(downtime="30m")).allowed
    assert gate(entries=[told], change=record(downtime="15m")).allowed  # less: still covered
    reason = only(gate(entries=[told], change=record(downtime="4h")), "notice.other_plan")
    assert reason.startswith(
        "#devops was told about a different plan (downtime raised from 30 minutes to 4 hours)"
    )
    unknown = entry(extra={"told": "m1", "downtime": "not known"})
    reason = only(gate(entries=[unknown], change=record(downtime="1h")), "notice.other_plan")
    assert "it said the downtime was not known; the change record now declares 1 hour" in reason
    # a notice recorded before downtimes were: judged as before
    assert gate(entries=[entry()], change=record(downtime="4h")).allowed


def test_an_emergencys_plan_after_its_announcement_repeats_nothing_and_warns_of_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # announced as soon as identified (no plan yet), its window already open; then its plan
    rule = rc("aws_security_group_rule.block", ["create"], after={"type": "ingress"})
    flow = _flow(tmp_path, capsys, rule)
    flow.write_change(
        type="emergency_fix",
        justification="CVE-2026-0001 is being exploited",
        downtime="30m",
        window={"start": "2026-12-08T10:00:00+00:00", "end": "2026-12-08T12:00:00+00:00"},
    )
    assert flow("announce", now="2026-12-08T10:00:00+00:00")[0] == 0
    code, out = flow("plan", "--plan", str(flow.plan), now="2026-12-08T10:20:00+00:00")
    assert code == 0, flow.err
    assert _emails(tmp_path) == ["customer-EoE.eml"]
    assert CUSTOMER in {u["audience"] for u in out["unchanged"]}
    assert "the gate will block" not in flow.err and out["window_too_early"] is False
    assert "An emergency fix has no notice period" in flow.err
    code, gate = flow("gate", "--plan", str(flow.plan), now="2026-12-08T10:21:00+00:00")
    assert code == 0 and gate["allowed"], gate["reasons"]
