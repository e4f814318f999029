"""Each customer's portal in `receive`: its own changes only (upcoming and recent, status, window
in its zone, what it may notice, whom to contact, its answer and a link to give one), an
iCalendar feed of them; another customer's token, an altered one, or one from before the key
changed is refused."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import icalendar
import pytest
import yaml

from hie_notify import acks
from hie_notify.cli import main
from tests.support.ack_harness import ENV, KEY, AckHarness

POLICY = {
    "support": {"name": "the HIE SDE DevOps team", "email": "devops@hie.example"},
    "customers": {"CUH": {"name": "Cambridge University Hospitals", "time_zone": "Europe/Paris"}},
}


@pytest.fixture
def h(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[AckHarness]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    harness = AckHarness(tmp_path, capsys, policy=policy, owner="Priya Shah")
    harness.announce()  # FFAPP-4458, for East of England
    # Another change, for Cambridge University Hospitals only.
    harness.flow.write_change(
        id="FFAPP-5000",
        customers=["CUH"],
        purpose="Rotate the TLS certificates",
        customer_summary="New security certificates",
        window={"start": "2026-12-10T19:00:00+00:00", "end": "2026-12-10T20:00:00+00:00"},
    )
    harness.announce()
    harness.start()
    try:
        yield harness
    finally:
        harness.stop()


def portal(customer: str, key: str = KEY) -> str:
    return f"/portal/{customer}/{acks.portal_token(key.encode(), customer)}"


def test_the_portal_link_is_printed_by_ack_portal(
    h: AckHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {**ENV}
    assert (
        main(["--format", "json", "--policy", str(h.policy), "ack", "--portal", "EoE"], env=env)
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["portal_url"] == "https://notify.example.org" + portal("EoE")
    assert main(["--policy", str(h.policy), "ack", "--portal", "Nobody"], env=env) == 2
    assert "'Nobody' is not a customer in the policy" in capsys.readouterr().err
    assert main(["--policy", str(h.policy), "ack", "--portal", "EoE"], env={}) == 2
    assert "set HIE_ACK_KEY" in capsys.readouterr().err


def test_a_customer_sees_only_its_own_changes_in_its_zone(h: AckHarness) -> None:
    code, headers, page = h.request("GET", portal("EoE"))
    assert code == 200
    assert "FFAPP-4458" in page and "FFAPP-5000" not in page
    assert "Encrypt the database" in page and "Tue 8 Dec 2026 19:00 to 21:00 GMT" in page
    assert "The service may be unavailable for up to 1 hour during this time." in page
    assert "Priya Shah" in page and "No answer yet." in page
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and "<script" not in page
    code, _, page = h.request("GET", portal("CUH"))
    assert code == 200
    assert "FFAPP-5000" in page and "FFAPP-4458" not in page
    assert "New security certificates" in page
    assert "Thu 10 Dec 2026 20:00 to 21:00 CET" in page  # Paris


def test_another_customers_altered_or_old_token_is_refused(h: AckHarness) -> None:
    cuh_token = acks.portal_token(KEY.encode(), "CUH")
    for path in (
        f"/portal/EoE/{cuh_token}",  # CUH's token on EoE's portal
        portal("EoE")[:-1] + ("A" if portal("EoE")[-1] != "A" else "B"),
        portal("EoE", key="an-older-key-0123456789"),
        f"/portal/Nobody/{cuh_token}",
        "/portal/EoE/",
        f"/portal/EoE/{cuh_token}/calendar.ics",
    ):
        code, headers, page = h.request("GET", path)
        assert code == 403, path
        assert "This portal link is not valid" in page and "FFAPP" not in page
        assert headers["x-frame-options"] == "DENY"
    code, _, _ = h.request("POST", portal("EoE"), {"x": "y"})
    assert code == 405


def test_the_calendar_feed_holds_only_the_customers_changes(h: AckHarness) -> None:
    code, headers, text = h.request("GET", portal("EoE") + "/calendar.ics")
    assert code == 200 and headers["content-type"].startswith("text/calendar")
    cal = icalendar.Calendar.from_ical(text)
    (event,) = cal.walk("VEVENT")
    assert str(event["uid"]) == "change-FFAPP-4458@hie-notify"
    assert str(event["summary"]) == "FFAPP-4458: Encrypt the database"
    assert "CUH" not in text and "Cambridge" not in text and "FFAPP-5000" not in text


def test_answering_from_the_portal_updates_it(h: AckHarness) -> None:
    _, _, page = h.request("GET", portal("EoE"))
    (link,) = re.findall(r'href="(/ack/[^"]+)"', page)
    code, answer = h.answer(link, "objected", "Our clinics run late that evening")
    assert code == 200 and "objection is recorded" in answer
    _, _, page = h.request("GET", portal("EoE"))
    assert "Objected on Wed 2 Dec 2026 09:30 GMT: Our clinics run late that evening" in page
    entries = [json.loads(x) for x in h.ledger_lines()]
    (entry,) = [e for e in entries if e["stage"] == "ack"]
    assert entry["recipient"] == "portal" and entry["audience"] == "customer:EoE"
    _, _, page = h.request("GET", portal("CUH"))
    assert "Objected" not in page
