"""The HTML report in a real browser (Debian's `chromium`, headless; skipped where it is
missing, failing instead under .ci/run's HIE_REQUIRE_TOOLS=1): a screenshot, the charts and
tables are there, no request leaves the page, and nothing is wider than A4's printable width."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from hie_notify.cli import main
from tests.support import tools
from tests.support.report_seed import NOW, seed_register, seeds

A4_PRINTABLE_PX = 703  # 210 mm less the page's 12 mm margins, at 96 px to the inch
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # Nothing can reach a network even if something asked: every host name fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


pytestmark = pytest.mark.tools("chromium")


def _chromium() -> str:
    return tools.require("chromium")


def browse(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run(
        [_chromium(), *_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("html")
    seed_register(where / "register.sqlite3", seeds())
    out = where / "report.html"
    code = main(
        [
            "--register",
            f"sqlite:{where / 'register.sqlite3'}",
            "--now",
            NOW.isoformat(),
            "report",
            "--from",
            "2026-10-01",
            "--to",
            "2026-12-31",
            "--output",
            str(out),
        ],
        env={},
    )
    assert code == 0
    return out


def page_requests(netlog: Path) -> list[str]:
    """Every URL a request made on behalf of a file:// page asked for (Chromium's own
    background requests have another network isolation key)."""
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start and "file://" in e["params"].get("network_isolation_key", "")
    ]


def test_screenshot_shows_the_charts(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    run = browse(tmp_path, f"--screenshot={shot}", "--window-size=1280,2200", page.as_uri())
    assert shot.exists(), run.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_the_page_has_its_charts_and_tables(page: Path, tmp_path: Path) -> None:
    dom = browse(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert len(re.findall(r"<svg role=\"img\"", dom)) == 3
    captions = re.findall(r"<caption>([^<]*)</caption>", dom)
    assert captions == [
        "Notice given against notice required, by audience kind: the chart's data",
        "Downtime budget used per customer per month: the chart's data",
        "Changes per week by type and outcome: the chart's data",
    ]
    assert dom.count("<table") == 3 + 7  # each chart's table, then the seven report tables


def test_no_request_leaves_the_page(page: Path, tmp_path: Path) -> None:
    netlog = tmp_path / "net.json"
    browse(tmp_path, f"--log-net-log={netlog}", "--dump-dom", page.as_uri())
    assert [u for u in page_requests(netlog) if not u.startswith("file:")] == []


def test_the_request_check_sees_a_page_that_fetches(tmp_path: Path) -> None:
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<html><body><img src="http://leak.example/x.png"></body></html>')
    netlog = tmp_path / "net.json"
    browse(tmp_path, f"--log-net-log={netlog}", "--dump-dom", leaky.as_uri())
    assert page_requests(netlog) == ["http://leak.example/x.png"]


_PROBE = """<script>
addEventListener("load", () => {
  const width = document.documentElement.clientWidth, over = [];
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.right > width + 0.5) over.push(el.tagName + " " + Math.round(r.right));
  }
  document.body.dataset.layout = JSON.stringify(
    {width, scroll: document.documentElement.scrollWidth, over: over.slice(0, 10)});
});
</script>"""


def test_nothing_is_cut_off_at_a4_width(page: Path, tmp_path: Path) -> None:
    # A copy with a probe that measures every element's right edge at A4's printable width.
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    dom = browse(
        tmp_path, f"--window-size={A4_PRINTABLE_PX},1000", "--dump-dom", probe.as_uri()
    ).stdout
    found = re.search(r'data-layout="([^"]*)"', dom)
    assert found, dom[-2000:]
    layout = json.loads(found.group(1).replace("&quot;", '"'))
    assert layout == {"width": A4_PRINTABLE_PX, "scroll": A4_PRINTABLE_PX, "over": []}


def test_it_prints_on_a4(page: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    run = browse(tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", page.as_uri())
    assert pdf.exists(), run.stderr
    boxes = set(re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf.read_bytes()))
    assert {(round(float(w)), round(float(h))) for w, h in boxes} == {(595, 842)}  # A4 in pt
