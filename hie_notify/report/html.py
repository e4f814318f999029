"""The report as one self-contained HTML page: inline styles, inline SVG charts, no script and
nothing fetched when it is opened; printable on A4. Every chart is followed by its table."""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup, escape

from hie_notify import timetext
from hie_notify.report import charts
from hie_notify.report.model import DATE_COLUMNS, TIME_COLUMNS, Report, columns

# Tables shown on the page, with their headings; each carries every column of its rows.
SECTIONS = (
    ("breaches", "Breaches: short notice let through"),
    ("emergencies", "Emergencies"),
    ("postmortems", "Post-mortems"),
    ("acknowledgements", "Acknowledgements and objections"),
    ("downtime", "Downtime per customer per month"),
    ("changes", "Every change"),
    ("notices", "Notice per audience"),
)


def _header(name: str) -> str:
    return name.replace("_", " ")


def _cell(value: object) -> str:
    """A value as the text of its cell, escaped."""
    kind = type(value)
    if kind is str:
        return _escaped(value)  # type: ignore[arg-type]
    if value is None:
        return ""
    if kind is bool:
        return "yes" if value else "no"
    if kind is float:
        return f"{value:g}"
    return _escaped(str(value))


# What HTML escaping changes; most cells hold none of it and are used as they are.
_SPECIAL = re.compile(r"[&<>\"']")


def _escaped(text: str) -> str:
    return str(escape(text)) if _SPECIAL.search(text) else text


_FLAGGED = frozenset({"overdue", "over_budget"})


def _shown(zone: str) -> Callable[[str], str]:
    """A row's ISO 8601 time (or date) as people read it, in the policy's zone, escaped (a
    change's window recurs in several tables: each text is worked out once)."""

    @functools.cache
    def shown(text: str) -> str:
        if len(text) == len("YYYY-MM-DD"):
            try:
                return timetext.day(date.fromisoformat(text))
            except ValueError:
                return _escaped(text)
        return _escaped(timetext.of_iso(text, zone))

    return shown


def table(report: Report, name: str, caption: str = "") -> Markup:
    """One table of the report as HTML, every value escaped. Built here rather than in the
    template: a report of 10,000 changes has some 700,000 cells, and a template loop costs
    seconds on them."""
    names = columns(name)
    head = "".join(f'<th scope="col">{escape(_header(c))}</th>' for c in names)
    values = operator.attrgetter(*names) if len(names) > 1 else lambda r: (getattr(r, names[0]),)
    flagged = [i for i, c in enumerate(names) if c in _FLAGGED]
    times = [i for i, c in enumerate(names) if c in TIME_COLUMNS or c in DATE_COLUMNS]
    shown = _shown(report.time_zone)
    body = []
    for row in report.tables.get(name, []):
        raw = values(row)
        cells = [_cell(v) for v in raw]
        for i in times:
            if raw[i]:
                cells[i] = shown(raw[i])
        if flagged:
            line = "".join(
                f'<td class="bad">{v}</td>'
                if i in flagged and getattr(row, names[i]) is True
                else f"<td>{v}</td>"
                for i, v in enumerate(cells)
            )
        else:
            line = "<td>" + "</td><td>".join(cells) + "</td>"
        body.append("<tr>" + line + "</tr>")
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return Markup(
        f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>\n"
        + "\n".join(body)
        + "\n</tbody></table>"
    )


# The charts, each drawn from one table and followed by it.
FIGURES = (
    ("notice_by_kind", "Notice given against notice required, by audience kind"),
    ("downtime", "Downtime budget used per customer per month"),
    ("changes_by_week", "Changes per week by type and outcome"),
)


def chart_data(report: Report) -> tuple[dict[str, list[Any]], float]:
    """What the charts are drawn from: their tables' rows (and every week of the range), and
    the warning line's level."""
    rows: dict[str, list[Any]] = {name: report.tables[name] for name, _ in FIGURES}
    rows["weeks"] = weeks_of(report)
    return rows, report.warn_at_percent


def weeks_of(report: Report) -> list[tuple[str, str]]:
    """Every week the report's range touches, as (Monday, ISO week), in the policy's zone."""
    zone = ZoneInfo(report.time_zone)
    first = _instant(report.range_start).astimezone(zone).date()
    last = (_instant(report.range_end) - timedelta(microseconds=1)).astimezone(zone).date()
    monday = first - timedelta(days=first.weekday())
    out = []
    while monday <= last:
        year, week, _ = monday.isocalendar()
        out.append((monday.isoformat(), f"{year}-W{week:02d}"))
        monday += timedelta(days=7)
    return out


def draw(rows: dict[str, list[Any]], warn_at: float) -> list[str]:
    """The charts as SVG, in FIGURES order."""
    return [
        charts.notice_by_kind(rows["notice_by_kind"]),
        charts.downtime(rows["downtime"], warn_at),
        charts.changes_by_week(rows["changes_by_week"], rows.get("weeks", [])),
    ]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def render(report: Report, drawn: Callable[[], list[str] | None] = lambda: None) -> str:
    """The page. `drawn` gives the charts when something else drew them (called once the
    tables are made), else None and they are drawn here."""
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    source = resources.files("hie_notify.report").joinpath("report.html.j2").read_text("utf-8")
    template = env.from_string(source)
    tables = {
        (name, f"{title}: the chart's data"): table(report, name, f"{title}: the chart's data")
        for name, title in FIGURES
    }
    tables |= {(name, ""): table(report, name) for name, _ in SECTIONS}
    svgs = drawn() or draw(*chart_data(report))
    zone = report.time_zone
    return template.render(
        report=report,
        period=timetext.period(_instant(report.range_start), _instant(report.range_end), zone),
        generated=timetext.of_iso(report.generated_at, zone),
        summary={r["metric"]: r["value"] for r in report.rows("summary")},
        figures=[(title, svg, name) for (name, title), svg in zip(FIGURES, svgs, strict=True)],
        sections=SECTIONS,
        table=lambda name, caption="": tables[(name, caption)],
        header=_header,
    )
