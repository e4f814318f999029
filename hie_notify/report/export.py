"""The report as JSON and as CSV: the same tables, the same rows (see `model.TABLES`).

The CSV is one file of stacked tables: each table starts with a header row whose first cell is
`table`, and every row of it starts with the table's name, so `csv.reader` plus a filter on the
first column gives any one table back.
"""

from __future__ import annotations

import csv
import io
import operator
from typing import Any

from hie_notify.report.model import TABLES, Report, Scalar, columns


def to_json(report: Report) -> dict[str, Any]:
    return {
        "organisation": report.organisation,
        "generated_at": report.generated_at,
        "from": report.range_start,
        "to": report.range_end,
        "time_zone": report.time_zone,
        "uptime_percent": report.uptime_percent,
        "warn_at_percent": report.warn_at_percent,
        "notes": list(report.notes),
        "tables": {name: report.rows(name) for name in TABLES},
    }


def _cell(value: Scalar) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for name in TABLES:
        names = columns(name)
        writer.writerow(["table", *names])
        values = operator.attrgetter(*names)
        writer.writerows([name, *map(_cell, values(row))] for row in report.tables.get(name, []))
    return out.getvalue()
