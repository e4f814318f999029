"""`remind` chases a required acknowledgement along the policy's ladder: the contact again (with
its link), then the customer's account owner, then a PagerDuty incident for the change's owner;
each rung once, catch-up safe, stopping the moment the acknowledgement arrives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml

from tests.support.ack_harness import LINK, AckHarness, mail_parts

POLICY: dict[str, Any] = {
    "support": {"name": "the HIE SDE DevOps team", "email": "devops@hie.example"},
    "pagerduty": {"source": "gitlab.example/hie/infra"},
    "customers": {
        "EoE": {
            "name": "East of England",
            "contacts": [{"email": "ops@eoe.example", "critical": True}],
            "account_owner": {"name": "Sam Okafor", "email": "sam@hie.example"},
        }
    },
    "change_types": {
        "planned_infra_update": {
            "acknowledgements": {
                "required_from": ["critical"],
                "by": "2bd",
                "escalation": [
                    {"after": "1bd", "to": "contact"},
                    {"after": "2bd", "to": "account_owner"},
                    {"after": "3bd", "to": "pagerduty"},
                ],
            }
        }
    },
}
ENQUEUE = "https://events.pagerduty.com/v2/enqueue"


@pytest.fixture
def h(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[AckHarness]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    harness = AckHarness(tmp_path, capsys, policy=policy, owner="Priya Shah")
    harness.announce()  # Tue 1 Dec 2026 10:00 GMT
    yield harness
    harness.stop()


def remind(h: AckHarness, now: str) -> dict[str, Any]:
    code, out = h.flow("remind", now=now)
    assert code == 0, h.flow.err
    return dict(out)


def escalations(out: dict[str, Any]) -> list[str]:
    return [s["tag"] for s in out["sent"]] + list(out["recorded"])


def test_the_ladder_rung_by_rung_each_once_then_catch_up(h: AckHarness) -> None:
    assert escalations(remind(h, "2026-12-02T09:59:00+00:00")) == []  # not yet 1bd
    out = remind(h, "2026-12-02T10:30:00+00:00")
    (sent,) = out["sent"]
    assert sent["audience"] == "customer:EoE" and sent["stage"] == "reminder"
    mail = mail_parts(h.tmp / "outbox/FFAPP-4458/reminder/customer-EoE.eml")["text/plain"]
    assert len(LINK.findall(mail)) == 1  # the reminder carries the link again
    assert escalations(remind(h, "2026-12-02T11:30:00+00:00")) == []  # once

    # The job did not run for two days: both missed rungs are taken, once each.
    h.flow.env["PAGERDUTY_ROUTING_KEY"] = "R0UTINGKEY0000000000000000000000"
    with responses.RequestsMock() as rsps:
        rsps.post(
            ENQUEUE,
            status=202,
            json={"status": "success", "message": "Event processed", "dedup_key": "k"},
        )
        out = remind(h, "2026-12-04T10:30:00+00:00")
        (call,) = rsps.calls
    event = json.loads(call.request.body)
    assert event["event_action"] == "trigger"
    assert "East of England has not acknowledged" in event["payload"]["summary"]
    assert "Owner: Priya Shah" in event["payload"]["summary"]
    assert event["payload"]["custom_details"]["owner"] == "Priya Shah"
    assert [r.split(": ", 1)[1] for r in out["recorded"]] == [
        "acknowledgement overdue: escalation step 2: account_owner told (sam@hie.example)",
        "acknowledgement overdue: escalation step 3: pagerduty told (PagerDuty service)",
    ]
    (owner_mail,) = (h.tmp / "outbox/FFAPP-4458/escalation").iterdir()
    body = mail_parts(owner_mail)["text/plain"]
    assert "East of England has not acknowledged" in body and "Thu 3 Dec 2026 10:00 GMT" in body
    with responses.RequestsMock():  # nothing more: a call would fail here
        assert escalations(remind(h, "2026-12-05T10:30:00+00:00")) == []


def test_the_ladder_stops_the_moment_the_acknowledgement_arrives(h: AckHarness) -> None:
    remind(h, "2026-12-02T10:30:00+00:00")  # rung 1
    h.start()
    code, _ = h.answer(h.link("customer-EoE.eml"), "acknowledged")
    assert code == 200
    h.stop()
    with responses.RequestsMock():
        assert escalations(remind(h, "2026-12-04T10:30:00+00:00")) == []
    assert not (h.tmp / "outbox/FFAPP-4458/escalation").exists()
