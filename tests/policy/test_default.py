"""The built-in default policy read against the policy document, row by row: who hears what,
how early, and when a notice of 0 business days is due."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hie_notify.calendar import UTC, BusinessCalendar
from hie_notify.durations import parse_notice
from tests.support.builders import rc
from tests.support.cli_flow import Flow

HELM = rc(
    "helm_release.app",
    ["update"],
    before={"version": "1.0.0", "name": "app"},
    after={"version": "1.1.0", "name": "app"},
)
# An application update that does not interrupt the service (a config map changing in place).
CONFIG = rc(
    "kubernetes_config_map.app",
    ["update"],
    before={"data": {"FLAG": "off"}},
    after={"data": {"FLAG": "on"}},
)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    "notice_at",
    [
        "2026-12-05T10:00:00+00:00",  # a Saturday
        "2026-12-25T23:00:00+00:00",  # Christmas Day, a bank holiday
        "2026-12-07T10:00:00+00:00",  # a Monday
    ],
)
def test_zero_business_days_asks_only_that_the_notice_come_first(notice_at: str) -> None:
    cal = BusinessCalendar("Europe/London")
    assert cal.earliest_start(_at(notice_at), parse_notice("0bd")) == _at(notice_at).astimezone(UTC)
    # one business day still follows the weekend and holiday rule
    assert cal.earliest_start(_at("2026-12-05T10:00:00+00:00"), parse_notice("1bd")) == _at(
        "2026-12-08T00:00:00+00:00"
    )


def _application_update(tmp: Path, capsys: pytest.CaptureFixture[str], **change: Any) -> Flow:
    return Flow(tmp, capsys, CONFIG, customers=[], downtime="0", **change)


@pytest.mark.parametrize(
    ("told", "start", "end", "allowed"),
    [
        # Saturday for Sunday: 26 hours, the internal 24 h alone decides; the stakeholders' 0bd
        # is not pushed to Monday 00:00 by the weekend rule
        (
            "2026-12-05T10:00:00+00:00",
            "2026-12-06T12:00:00+00:00",
            "2026-12-06T13:00:00+00:00",
            True,
        ),
        # spring clock change: Saturday 12:00 to Sunday 12:00 London is 23 real hours
        (
            "2026-03-28T12:00:00+00:00",
            "2026-03-29T11:00:00+00:00",
            "2026-03-29T12:00:00+00:00",
            False,
        ),
        # autumn clock change: Saturday 12:00 BST to Sunday 11:30 GMT is 24.5 real hours
        (
            "2026-10-24T11:00:00+00:00",
            "2026-10-25T11:30:00+00:00",
            "2026-10-25T12:30:00+00:00",
            True,
        ),
    ],
)
def test_weekend_application_update_is_decided_by_the_internal_24_hours(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    told: str,
    start: str,
    end: str,
    allowed: bool,
) -> None:
    flow = _application_update(tmp_path, capsys, window={"start": start, "end": end})
    code, out = flow("plan", "--plan", str(flow.plan), now=told)
    assert code == 0
    assert {d["audience"] for d in out["delivered"]} == {
        "slack:#devops",
        "slack:#product",
        "stakeholders:business",
    }
    code, out = flow(
        "gate", "--plan", str(flow.plan), "--dotenv", str(tmp_path / "g.env"), now=start
    )
    assert out["allowed"] is allowed, out["reasons"]
    stakeholders = next(r for r in out["required"] if r["audience"] == "stakeholders:business")
    assert stakeholders["met"] is True and stakeholders["minimum"] == "0bd"
    internal = next(r for r in out["required"] if r["audience"] == "slack:#devops")
    assert internal["met"] is allowed


def test_a_service_impacting_application_update_tells_the_affected_customers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, CONFIG, customers=["EoE"], downtime="30m")
    code, out = flow("classify", "--plan", str(flow.plan))
    assert out["change_type"] == "application_update" and out["service_impacting"]
    external = next(n for n in out["notice"] if n["audience"] == "external")
    assert (external["minimum"], external["recommended"]) == ("3bd", "5bd")
    code, out = flow("plan", "--plan", str(flow.plan), now="2026-12-01T10:00:00+00:00")
    assert code == 0
    assert "customer:EoE" in {d["audience"] for d in out["delivered"]}
    code, out = flow("gate", "--plan", str(flow.plan), "--dotenv", str(tmp_path / "g.env"))
    eoe = next(r for r in out["required"] if r["audience"] == "customer:EoE")
    assert eoe["minimum"] == "3bd"
    # without downtime nothing interrupts the service: customers are not owed it
    (tmp_path / "q").mkdir()
    quiet = Flow(tmp_path / "q", capsys, CONFIG, customers=["EoE"], downtime="0")
    code, out = quiet("classify", "--plan", str(quiet.plan))
    assert [n["audience"] for n in out["notice"]] == ["internal", "external"]
    assert next(n for n in out["notice"] if n["audience"] == "external")["minimum"] == "0bd"


DB_UPDATE = rc("aws_db_instance.main", ["update"], before={"instance_class": "a"}, after={"x": 1})


def _maintenance(tmp: Path, capsys: pytest.CaptureFixture[str]) -> Flow:
    """Scheduled maintenance with 2 h of downtime and no customer list in the change record."""
    return Flow(
        tmp,
        capsys,
        DB_UPDATE,
        type="scheduled_maintenance",
        customers=[],
        downtime="2h",
        window={"start": "2026-12-15T19:00:00+00:00", "end": "2026-12-15T21:00:00+00:00"},
    )


def test_scheduled_maintenance_with_no_customer_list_tells_everyone_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _maintenance(tmp_path, capsys)
    code, out = flow("plan", "--plan", str(flow.plan), now="2026-12-01T10:00:00+00:00")
    told = {d["audience"] for d in out["delivered"]}
    assert {"customer:EoE", "customer:CUH", "customer:MKUH", "customer:NNUH"} <= told
    code, out = flow(
        "gate",
        "--plan",
        str(flow.plan),
        "--dotenv",
        str(tmp_path / "g.env"),
        now="2026-12-15T19:05:00+00:00",
    )
    assert code == 0 and out["reasons"] == [] and out["allowed"] is True


def test_failed_maintenance_updates_the_customers_and_owes_a_post_mortem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _maintenance(tmp_path, capsys)
    flow("plan", "--plan", str(flow.plan), now="2026-12-01T10:00:00+00:00")
    for stage, status in (("apply", "failed"), ("rollback", "succeeded")):
        code, out = flow(stage, "--status", status, now="2026-12-15T19:30:00+00:00")
        assert code == 0
        told = {d["audience"] for d in out["delivered"]}
        assert "customer:EoE" in told and "slack:#devops" in told, (stage, told)
    code, out = flow("complete", now="2026-12-15T21:00:00+00:00")
    assert any("significant change (service-impacting" in r for r in out["postmortem"])


def test_every_category_shows_its_own_lead_and_audiences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, DB_UPDATE, type="cost_optimization", downtime="0")
    code, out = flow("preview", "plan", "--plan", str(flow.plan))
    assert code == 0
    devops = next(m for m in out["messages"] if m["audience"] == "slack:#devops")
    assert "DevOps Engineer/FinOps (Cost Optimization)" in devops["text"]
    assert "DevOps Engineer/Lead (Planned Infra Update)" in devops["text"]
    assert "meeting:Wednesday meeting" in {m["audience"] for m in out["messages"]}
