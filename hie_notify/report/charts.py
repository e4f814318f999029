"""The report's charts as inline SVG, drawn by matplotlib (its SVG backend: no browser-side
script, no fonts or files fetched; text stays text). Each chart is drawn from a table the page
also shows, for screen readers."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hie_notify.report.model import DowntimeRow, NoticeKindRow, WeekRow

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Okabe-Ito: told apart with the common colour-vision deficiencies, and in grey print.
GOOD, FAIR, BAD, NONE = "#009E73", "#E69F00", "#D55E00", "#999999"
SERIES = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
BARS_UP_TO = 60  # weeks
LABELS_UP_TO = 26  # labels on a time axis
_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)


def warm_up() -> None:
    """Import what drawing needs (matplotlib: half a second)."""
    import matplotlib.backends.backend_svg
    import matplotlib.collections
    import matplotlib.figure  # noqa: F401


def _figure(height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(7.0, height), layout="constrained")


def _svg(fig: Figure, label: str) -> str:
    import matplotlib

    out = io.StringIO()
    with matplotlib.rc_context(
        {"svg.fonttype": "none", "svg.hashsalt": "hie-notify", "font.size": 9}
    ):
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    text = _PROLOGUE.sub("", out.getvalue(), count=1)
    safe = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return text.replace("<svg ", f'<svg role="img" aria-label="{safe}" ', 1)


def _bars(
    ax: Axes, xs: Sequence[float], heights: Sequence[float], width: float, colour: str, label: str
) -> None:
    """`ax.bar` drawn as one shape collection: the same rectangles from 0 (the axis starts at
    0 as it does under bars), one artist instead of one per bar (a report over years has
    hundreds of customer-months)."""
    from matplotlib.collections import PolyCollection

    half = width / 2
    shapes = [
        [(x - half, 0.0), (x - half, h), (x + half, h), (x + half, 0.0)]
        for x, h in zip(xs, heights, strict=True)
    ]
    bars = PolyCollection(shapes, facecolors=colour, edgecolors="none", linewidths=0, label=label)
    bars.sticky_edges.y.append(0.0)
    ax.add_collection(bars, autolim=True)
    ax.autoscale_view()


def _style(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def notice_by_kind(rows: Sequence[NoticeKindRow]) -> str:
    fig = _figure(0.6 + 0.45 * max(len(rows), 1))
    ax = fig.add_subplot()
    names = [r.kind for r in rows]
    left = [0] * len(rows)
    parts = (
        ("recommended or more", [r.recommended for r in rows], GOOD),
        ("minimum met", [r.minimum for r in rows], FAIR),
        ("short", [r.short for r in rows], BAD),
        ("not given", [r.not_given for r in rows], NONE),
    )
    for label, values, colour in parts:
        ax.barh(names, values, left=left, color=colour, label=label)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("pre-deployment notices")
    ax.legend(loc="lower right", fontsize=8, frameon=False, ncols=4, bbox_to_anchor=(1, 1))
    _style(ax)
    return _svg(fig, "Notice given against notice required, by audience kind")


def downtime(rows: Sequence[DowntimeRow], warn_at: float) -> str:
    months = sorted({r.month for r in rows})
    customers = list(dict.fromkeys(r.customer for r in rows))
    fig = _figure(2.8)
    ax = fig.add_subplot()
    width = 0.8 / max(len(customers), 1)
    value = {(r.customer, r.month): r for r in rows}
    for i, name in enumerate(customers):
        xs = [m + (i - (len(customers) - 1) / 2) * width for m in range(len(months))]
        actual = [value[(name, m)].actual_percent if (name, m) in value else 0 for m in months]
        declared = [value[(name, m)].declared_percent if (name, m) in value else 0 for m in months]
        colour = SERIES[i % len(SERIES)]
        _bars(ax, xs, actual, width * 0.9, colour, name)
        ax.scatter(xs, declared, marker="_", s=120, color="#000000", zorder=3)
    ax.axhline(100, color=BAD, linewidth=1, linestyle="-")
    ax.axhline(warn_at, color=FAIR, linewidth=1, linestyle="--")
    ax.text(len(months) - 0.5, 100, " budget", color=BAD, va="center", fontsize=8)
    ax.text(len(months) - 0.5, warn_at, f" warn {warn_at:g}%", color=FAIR, va="center", fontsize=8)
    if len(months) <= LABELS_UP_TO:
        ax.set_xticks(range(len(months)), months)
    else:  # every month labelled would be a smear: every step-th, slanted as the weeks are
        step = -(-len(months) // LABELS_UP_TO)
        ticks = range(0, len(months), step)
        ax.set_xticks(ticks, [months[t] for t in ticks], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("downtime budget used (%)")
    ax.legend(
        fontsize=8,
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.08, 1),
        title="actual (bars)\ndeclared (marks)",
        title_fontsize=8,
    )
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig, "Downtime budget used per customer per month")


def changes_by_week(rows: Sequence[WeekRow], weeks: Sequence[tuple[str, str]] = ()) -> str:
    """Stacked bars per week; beyond BARS_UP_TO weeks, one stepped band per series instead (the
    same picture, drawn as a handful of shapes rather than thousands of bars). `weeks`, as
    (Monday, ISO week) pairs, are every week of the report's range: a week without a change
    keeps its place on the axis (at 0), so the gaps show. The counts are whole numbers, and so
    are the ticks."""
    from matplotlib.ticker import MaxNLocator

    weeks = sorted({*weeks, *((r.week_start, r.week) for r in rows)})
    index = {w: i for i, (_, w) in enumerate(weeks)}
    fig = _figure(4.6)
    top, bottom = fig.subplots(2, 1, sharex=True)
    xs = list(range(len(weeks)))
    for ax, attr, title in ((top, "change_type", "by type"), (bottom, "outcome", "by outcome")):
        series: dict[str, list[int]] = {}
        for r in rows:
            series.setdefault(getattr(r, attr), [0] * len(weeks))[index[r.week]] += r.changes
        keys = sorted(series)
        colours = [SERIES[i % len(SERIES)] for i in range(len(keys))]
        if len(weeks) <= BARS_UP_TO:
            base = [0] * len(weeks)
            for key, colour in zip(keys, colours, strict=True):
                ax.bar(xs, series[key], bottom=base, color=colour, label=key)
                base = [a + b for a, b in zip(base, series[key], strict=True)]
        else:
            ax.stackplot(xs, *(series[k] for k in keys), labels=keys, colors=colours, step="mid")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"changes {title}")
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
        ax.spines[["top", "right"]].set_visible(False)
    step = max(1, len(weeks) // LABELS_UP_TO)  # at most about 26 labels
    bottom.set_xticks(
        xs[::step], [w for w, _ in weeks][::step], rotation=60, ha="right", fontsize=7
    )
    bottom.set_xlabel("week starting")
    return _svg(fig, "Changes per week by type and by outcome")
