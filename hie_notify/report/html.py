"""The report as one self-contained HTML page: inline styles, inline SVG charts, no script and
nothing fetched when it is opened; printable on A4. Every chart is followed by its table."""

from __future__ import annotations

from importlib import resources

import jinja2

from hie_notify.report import charts
from hie_notify.report.model import Report, columns

# Tables shown on the page, with their headings; each carries every column of its rows.
SECTIONS = (
    ("breaches", "Breaches: short notice let through"),
    ("emergencies", "Emergencies"),
    ("postmortems", "Post-mortems"),
    ("downtime", "Downtime per customer per month"),
    ("changes", "Every change"),
    ("notices", "Notice per audience"),
)


def _header(name: str) -> str:
    return name.replace("_", " ")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def render(report: Report) -> str:
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["cell"] = _cell
    source = resources.files("hie_notify.report").joinpath("report.html.j2").read_text("utf-8")
    template = env.from_string(source)
    rows = report.tables
    figures = [
        (
            "Notice given against notice required, by audience kind",
            charts.notice_by_kind(rows["notice_by_kind"]),
            "notice_by_kind",
        ),
        (
            "Downtime budget used per customer per month",
            charts.downtime(rows["downtime"], report.warn_at_percent),
            "downtime",
        ),
        (
            "Changes per week by type and outcome",
            charts.changes_by_week(rows["changes_by_week"]),
            "changes_by_week",
        ),
    ]
    return template.render(
        report=report,
        summary={r["metric"]: r["value"] for r in report.rows("summary")},
        figures=figures,
        sections=SECTIONS,
        columns=columns,
        header=_header,
        rows=report.rows,
    )
