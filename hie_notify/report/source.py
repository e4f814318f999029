"""Read what the report and the gate's uptime check need from the change register."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from hie_notify.calendar import BusinessCalendar
from hie_notify.durations import parse_duration
from hie_notify.errors import InputError
from hie_notify.records import Entry
from hie_notify.register.model import Registered, utc_text
from hie_notify.register.sqlite import SqliteRegister
from hie_notify.register.store import Register
from hie_notify.report import uptime
from hie_notify.report.compute import actual_by_month


def whole_months(
    register: Register, start: datetime, end: datetime, calendar: BusinessCalendar
) -> list[Registered]:
    """Every change whose window touches a month that [start, end) touches, with its entries
    (downtime is counted per whole month)."""
    months = uptime.months_between(start, end, calendar.zone)
    lo, hi = months[0].start, months[-1].end
    if isinstance(register, SqliteRegister):
        return _sqlite_between(register, lo, hi)
    found = []
    for brief in register.between(lo, hi):
        full = register.get(brief.change_id)
        found.append(full if full is not None else brief)
    return found


# The entry fields the report reads, pulled out by SQLite itself: decoding every entry's whole
# JSON in Python is most of the time a report of 10,000 changes takes (some 80 MB of entries).
_FIELDS = (
    "stage",
    "audience",
    "channel",
    "recipient",
    "fingerprint",
    "change_type",
    "service_impacting",
    "delivered_at",
    "message_id",
    "idempotency_key",
    "emergency",
    "dry_run",
    "window_start",
    "window_end",
    "resources",
    "categories",
    "impacting_categories",
    "extra",
)


def _entry(row: tuple[Any, ...]) -> Entry:
    """An entry from its extracted fields (the register wrote them with `Entry.to_json`)."""
    (
        change_id,
        stage,
        audience,
        channel,
        recipient,
        fingerprint,
        change_type,
        impacting,
        delivered_at,
        message_id,
        key,
        emergency,
        dry_run,
        window_start,
        window_end,
        resources,
        categories,
        impacting_categories,
        extra,
    ) = row
    when = datetime.fromisoformat(delivered_at)
    if when.tzinfo is None:
        raise ValueError(f"delivered_at {delivered_at!r} has no offset")
    announce = stage == "announce"  # what only announcements are read for
    return Entry(
        change_id=str(change_id),
        stage=str(stage),
        audience=str(audience),
        channel=str(channel),
        recipient=str(recipient),
        fingerprint=str(fingerprint),
        change_type=None if change_type is None else str(change_type),
        service_impacting=bool(impacting),
        resources=tuple((str(a), str(b)) for a, b in json.loads(resources)) if announce else (),
        delivered_at=when,
        message_id=str(message_id),
        idempotency_key=str(key),
        emergency=bool(emergency),
        dry_run=bool(dry_run),
        categories=tuple(json.loads(categories or "[]")) if announce else (),
        impacting_categories=tuple(json.loads(impacting_categories or "[]")) if announce else (),
        window_start=str(window_start or ""),
        window_end=str(window_end or ""),
        extra={}
        if extra in (None, "{}")
        else {str(k): str(v) for k, v in json.loads(extra).items()},
    )


def _sqlite_between(register: SqliteRegister, start: datetime, end: datetime) -> list[Registered]:
    """`between` with every change's entries in two queries (the same records `get` gives; an
    entry's resources and categories are read for announcements only, the report's use)."""
    columns = ", ".join(f"json_extract(e.entry, '$.{f}')" for f in _FIELDS)
    records = {r.change_id: r for r in register.between(start, end)}
    where = f"{register.path}"
    try:
        db = sqlite3.connect(f"file:{register.path}?mode=ro", uri=True)
        try:
            rows = db.execute(
                f"SELECT e.change_id, {columns} FROM entries e JOIN changes c "
                "ON c.change_id = e.change_id WHERE c.window_start < ? AND c.window_end > ? "
                "ORDER BY e.change_id, e.delivered_at",
                (utc_text(end), utc_text(start)),
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise InputError(f"{where}: cannot read the register ({exc})") from None
    entries: dict[str, list[Entry]] = {}
    try:
        for row in rows:
            entries.setdefault(row[0], []).append(_entry(row))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: malformed ledger entry in the register ({exc})") from None
    return [replace(r, entries=tuple(entries.get(cid, ()))) for cid, r in records.items()]


def used_this_month(
    register: Register,
    *,
    change_id: str,
    customers: Sequence[str],
    month: uptime.Month,
    calendar: BusinessCalendar,
    now: datetime,
) -> list[uptime.Used]:
    """The real downtime other changes have used of each customer's month so far (from their
    stage times; a change that ran with none recorded counts its declared downtime)."""
    used: dict[str, timedelta] = {c: timedelta(0) for c in customers}
    by: dict[str, list[str]] = {c: [] for c in customers}
    # An outage can run into the month from a window that started before it.
    for brief in register.between(month.start - timedelta(days=1), month.end):
        if brief.change_id == change_id or brief.status == "cancelled":
            continue
        touched = [c for c in customers if c in affected(brief)]
        if not touched:
            continue
        full = register.get(brief.change_id) or brief
        declared = _declared(full)
        if not full.service_impacting and not declared:
            continue
        for m, part in actual_by_month(full, declared, now, calendar):
            if m.key != month.key or part <= timedelta(0):
                continue
            for c in touched:
                used[c] += part
                by[c].append(full.change_id)
    return [uptime.Used(c, month, used[c], tuple(dict.fromkeys(by[c]))) for c in customers]


def affected(record: Registered) -> set[str]:
    """The customers a registered change touches: named in it, or told of it."""
    told = {a.split(":", 1)[1] for a in record.audiences if a.startswith("customer:")}
    return told | set(record.customers)


def _declared(record: Registered) -> timedelta | None:
    raw = record.change.get("downtime")
    if raw is None:
        return None
    try:
        return parse_duration(raw)
    except ValueError:
        return None
