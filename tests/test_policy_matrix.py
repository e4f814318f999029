"""The built-in default policy read against the policy document, row by row: who hears what,
how early, and when a notice of 0 business days is due."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hie_notify.calendar import UTC, BusinessCalendar
from hie_notify.durations import parse_notice
from tests.builders import rc
from tests.cli_flow import Flow

HELM = rc(
    "helm_release.app",
    ["update"],
    before={"version": "1.0.0", "name": "app"},
    after={"version": "1.1.0", "name": "app"},
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
    return Flow(tmp, capsys, HELM, customers=[], downtime="0", **change)


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
