"""The acknowledgement page and the portal in a real browser (Playwright driving the system's
Chromium, headless; no JavaScript needed by the pages): open the emailed link, acknowledge,
object with a reason, see the portal update; refused links; a GET records nothing; axe-core finds
no serious or critical accessibility violation. Screenshots go to the test's folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hie_notify import acks
from tests.support import tools
from tests.support.ack_harness import KEY, AckHarness

pytestmark = pytest.mark.tools("chromium")

POLICY = {
    "support": {"name": "the HIE SDE DevOps team", "email": "devops@hie.example"},
    "customers": {
        "EoE": {
            "name": "East of England",
            "contacts": [{"email": "ops@eoe.example", "critical": True}],
        }
    },
}


@pytest.fixture
def h(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[AckHarness]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    harness = AckHarness(tmp_path, capsys, policy=policy, owner="Priya Shah")
    harness.announce()
    harness.start()
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=tools.require("chromium"), args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


def serious(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']}: {v['help']}"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def ack_entries(h: AckHarness) -> list[dict[str, Any]]:
    return [e for e in map(json.loads, h.ledger_lines()) if e["stage"] == "ack"]


def test_acknowledge_then_object_from_the_emailed_link_and_see_the_portal_update(
    h: AckHarness, browser: Any, tmp_path: Path
) -> None:
    # Scripts off: the pages work without JavaScript (and a CSP of default-src 'none').
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    link = h.url + h.link("customer-EoE.eml")
    response = page.goto(link)
    assert response.status == 200
    assert response.headers["x-frame-options"] == "DENY"
    assert page.get_by_role("heading", level=1).inner_text() == (
        "Change FFAPP-4458: please confirm you have read it"
    )
    assert "Tue 8 Dec 2026 19:00 to 21:00 GMT" in page.inner_text("main")
    page.reload()  # a scanner, a preview: still nothing recorded
    assert ack_entries(h) == []
    page.screenshot(path=str(tmp_path / "ack-page.png"), full_page=True)

    page.get_by_label("Acknowledged: we have read this notice").check()
    page.get_by_role("button", name="Send my answer").click()
    assert "your acknowledgement is recorded" in page.get_by_role("status").inner_text()
    assert [e["extra"]["decision"] for e in ack_entries(h)] == ["acknowledged"]

    page.get_by_label("This window does not work for us").check()
    page.get_by_label("If the window does not work for you").fill(
        "Our month-end reporting runs that evening"
    )
    page.get_by_role("button", name="Send my answer").click()
    assert "your objection is recorded" in page.get_by_role("status").inner_text()
    page.screenshot(path=str(tmp_path / "ack-page-objected.png"), full_page=True)
    assert [e["extra"]["decision"] for e in ack_entries(h)] == ["acknowledged", "objected"]

    page.goto(h.url + f"/portal/EoE/{acks.portal_token(KEY.encode(), 'EoE')}")
    portal = page.inner_text("main")
    assert "Changes for East of England" in portal and "FFAPP-4458" in portal
    assert "Objected on Wed 2 Dec 2026 09:30 GMT: Our month-end reporting runs that evening" in (
        portal
    )
    page.screenshot(path=str(tmp_path / "portal.png"), full_page=True)
    context.close()


def test_refused_links_get_a_clear_page(h: AckHarness, browser: Any, tmp_path: Path) -> None:
    page = browser.new_context(java_script_enabled=False).new_page()
    good = h.link("customer-EoE.eml")
    token = good.removeprefix("/ack/")
    claim = acks.read(KEY.encode(), token, h.now)
    other = acks.sign(KEY.encode(), acks.Claim(**{**claim.__dict__, "audience": "customer:CUH"}))
    for path, status in (
        (f"/ack/{token[:-3]}xyz", 403),  # altered
        (f"/ack/{other}", 403),  # another customer
        (f"/portal/EoE/{acks.portal_token(KEY.encode(), 'CUH')}", 403),  # CUH's portal token
    ):
        response = page.goto(h.url + path)
        assert response.status == status, path
        assert "This link cannot be used" in page.inner_text("h1")
        assert page.get_by_role("alert").is_visible()
    page.screenshot(path=str(tmp_path / "refused.png"), full_page=True)
    h.now = claim.expires
    response = page.goto(h.url + good)
    assert response.status == 410 and "expired" in page.get_by_role("alert").inner_text()
    assert ack_entries(h) == []


def test_no_serious_or_critical_accessibility_violations(h: AckHarness, browser: Any) -> None:
    # axe-core runs as a script: this context lets Playwright inject it despite the CSP.
    page = browser.new_context(bypass_csp=True).new_page()
    for path in (
        h.link("customer-EoE.eml"),
        f"/portal/EoE/{acks.portal_token(KEY.encode(), 'EoE')}",
        "/ack/not-a-token",
    ):
        page.goto(h.url + path)
        assert serious(page) == [], path
    assert ack_entries(h) == []
