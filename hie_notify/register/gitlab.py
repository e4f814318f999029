"""The register as GitLab issues: one issue per change in the register project.

Labels say what it is (`hie-notify-change`, `change-type::TYPE`, `change-status::STATUS`) and
when (`hie-notify-month:YYYY-MM` for each UTC month its window touches, and
`hie-notify-by-month` on every issue so labelled), the
due date is the window's start (in the policy's zone), the description carries the record (a
readable summary and a hidden marker with the record as data), each registration of deliveries
is a note in the ledger's marker format, and the issue is closed when the change ends.

Only issues written by the notifier's own user count, and only notes that are its own, never
edited (`updated_at` equal to `created_at`) and exactly what `put` writes for the entries in
their marker, as the GitLab ledger reads its notes: a maintainer can edit any note, and one
that moved a `delivered_at` would make the report show notice that was never given. Every list
is paginated (100 a page); a range is read by its months' labels, so a long history (20,000
changes) costs no more calls than the weeks asked for. Issues written before the month labels
(no `hie-notify-by-month`) are read as before, newest due date first, stopping at the first
page past the range; each gets its labels when it is next written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hie_notify import gitlab_api, timetext
from hie_notify.errors import InputError
from hie_notify.gitlab_api import GitLabTarget, call, connect, gitlab_target
from hie_notify.ledger.gitlab import decode_marker, encode_marker, entry_line, pack, unpack
from hie_notify.lifecycle import LIFECYCLE
from hie_notify.records import Entry
from hie_notify.register.feed import FreezePeriod
from hie_notify.register.model import Registered, new_entries, settled, updated

if TYPE_CHECKING:
    from hie_notify.settings import Settings

LABEL = "hie-notify-change"
MARKER = "hie-notify-register:v1:"
PER_PAGE = 100
BY_MONTH = "hie-notify-by-month"
MONTH_LABEL = "hie-notify-month:"
# A window is labelled with at most this many months (a longer one is found by its first ones).
MAX_MONTHS = 24
# A window longer than this that started before a range may be missed by a range read (the
# read stops at due dates this far before the range).
LONGEST_WINDOW = timedelta(days=14)


def encode_record(record: Registered, keys: Sequence[str]) -> str:
    return pack(MARKER, {"record": record.to_json(), "keys": sorted(keys)})


def note_body(entries: Sequence[Entry]) -> str:
    """The whole body of a note registering deliveries: a line each for people, the marker."""
    deliveries = sum(e.stage != LIFECYCLE for e in entries)
    what = f"{deliveries} delivery(ies)" if deliveries else "the change's steps"
    if deliveries and deliveries < len(entries):
        what += " and the change's steps"
    lines = [f"**hie-notify** registered {what}:", ""]
    lines += [entry_line(e) for e in entries]
    return "\n".join(lines) + "\n\n" + encode_marker(list(entries))


def decode_record(body: str, where: str) -> tuple[Registered, set[str]] | None:
    data = unpack(body, MARKER, where, "register marker")
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise InputError(f"{where}: the register marker is not a record")
    return Registered.from_json(data.get("record"), where), {str(k) for k in data["keys"]}


def months(start: datetime, end: datetime, limit: int | None = None) -> list[str]:
    """The labels of the UTC months [start, end) touches, first to last (at most `limit`)."""
    first = start.astimezone(timezone.utc)
    last = (end - timedelta(microseconds=1)).astimezone(timezone.utc)
    year, month = first.year, first.month
    out: list[str] = []
    while (year, month) <= (last.year, last.month) and (limit is None or len(out) < limit):
        out.append(f"{MONTH_LABEL}{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


class GitLabRegister:
    def __init__(
        self,
        target: GitLabTarget,
        *,
        time_zone: str = "UTC",
        mask: Callable[[str], str] = str,
        writer: str = "",
    ) -> None:
        self.target = target
        self.project = writer  # stamped on each record `put` that does not say its own
        self.zone = ZoneInfo(time_zone)
        self.mask = mask
        self._gl: Any = None
        self._me: int | None = None
        self._issues: dict[str, Any] = {}
        self.calls = 0

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        project: str | None,
        *,
        time_zone: str = "UTC",
        mask: Callable[[str], str] = str,
        writer: str = "",
        settings: Settings | None = None,
    ) -> GitLabRegister:
        base = gitlab_target(env, "the GitLab register", settings)
        project = project or env.get("HIE_REGISTER_PROJECT") or base.project_id
        target = GitLabTarget(base.api_url, project, base.token)
        return cls(target, time_zone=time_zone, mask=mask, writer=writer)

    @property
    def description(self) -> str:
        return f"gitlab:{self.target.project_id} (issues labelled {LABEL})"

    def _project(self) -> Any:
        if self._gl is None:
            self._gl = connect(self.target)
        return self._gl.projects.get(self.target.project_id, lazy=True)

    def _my_id(self) -> int:
        if self._me is None:
            self._project()
            call("identify the notifier's user", self._gl.auth)
            self._me = int(self._gl.user.id)
        return self._me

    def _own(self, obj: Any) -> bool:
        return int((obj.attributes.get("author") or {}).get("id", -1)) == self._my_id()

    def _issue(self, change_id: str) -> tuple[Any, Registered, set[str]] | None:
        cached = self._issues.get(change_id)
        found = [cached] if cached is not None else None
        if found is None:
            project = self._project()
            found = call(
                f"find the register issue of {change_id}",
                lambda: list(
                    project.issues.list(
                        labels=[LABEL],
                        search=change_id,
                        **{"in": "title"},
                        state="all",
                        iterator=True,
                        per_page=PER_PAGE,
                    )
                ),
            )
        for issue in found:
            decoded = self._decode(issue)
            if decoded is not None and decoded[0].change_id == change_id:
                self._issues[change_id] = issue
                return issue, *decoded
        return None

    def _decode(self, issue: Any) -> tuple[Registered, set[str]] | None:
        if not self._own(issue):
            return None
        where = f"{self.description} issue #{issue.attributes.get('iid')}"
        decoded = decode_record(str(issue.attributes.get("description") or ""), where)
        if decoded is not None:
            # A list already read this issue: `get` and `put` need not search for it again.
            self._issues.setdefault(decoded[0].change_id, issue)
        return decoded

    def get(self, change_id: str) -> Registered | None:
        found = self._issue(change_id)
        if found is None:
            return None
        issue, record, _keys = found
        notes = call(
            f"read the register notes of {change_id}",
            lambda: list(issue.notes.list(iterator=True, sort="asc", order_by="created_at")),
        )
        entries: list[Entry] = []
        for note in notes:
            where = f"{self.description} issue #{issue.iid} note {note.id}"
            for entry in self._registered(note, where):
                if entry.change_id == change_id:
                    entries.append(entry)
        return settled(
            replace(record, entries=tuple(sorted(entries, key=lambda e: e.delivered_at)))
        )

    def _registered(self, note: Any, where: str) -> list[Entry]:
        """The deliveries a note registers; none unless it is one of ours as `put` wrote it."""
        attrs = note.attributes
        if attrs.get("system") or not self._own(note):
            return []
        if attrs.get("updated_at") != attrs.get("created_at"):
            return []  # edited: the register never edits its notes, so this is not one
        body = str(attrs.get("body", ""))
        raw = decode_marker(body, where)
        if not raw:
            return []
        entries = [Entry.from_json(item, where) for item in raw]
        written = note_body(entries)
        if body not in (written, self.mask(written)):
            return []  # a marker inside some other note (a quote, an imitation): not ours
        return entries

    def put(self, record: Registered, entries: Sequence[Entry], now: datetime) -> Registered:
        if self.project and not record.project:
            record = replace(record, project=self.project)
        found = self._issue(record.change_id)
        old, keys = (found[1], found[2]) if found else (None, set())
        stored = updated(old, record, now, entries)
        known = [e for e in entries if e.idempotency_key in keys]
        fresh = new_entries(known, entries)
        keys |= {e.idempotency_key for e in fresh}
        fields = {
            "title": self.mask(f"[{stored.change_id}] {stored.purpose}")[:255],
            "description": self._body(stored, keys),
            "labels": ",".join(self._labels(stored)),
            "due_date": self._due(stored),
        }
        project = self._project()
        if found is None:
            issue = call(
                f"open the register issue of {stored.change_id}",
                lambda: project.issues.create(fields),
            )
            if stored.ended:
                issue = self._update(project, issue, {"state_event": "close"}, stored.change_id)
        else:
            issue = found[0]
            state = issue.attributes.get("state")
            if stored.ended and state != "closed":
                fields["state_event"] = "close"
            elif not stored.ended and state == "closed":
                fields["state_event"] = "reopen"
            issue = self._update(project, issue, fields, stored.change_id)
        self._issues[stored.change_id] = issue
        if fresh:
            body = note_body(fresh)
            call(
                f"record deliveries on the register issue of {stored.change_id}",
                lambda: issue.notes.create({"body": self.mask(body)}),
            )
        return replace(stored, entries=(*known, *fresh))

    def _update(self, project: Any, issue: Any, fields: dict[str, Any], change_id: str) -> Any:
        iid = issue.attributes["iid"]
        data = call(
            f"update the register issue of {change_id}",
            lambda: project.issues.update(iid, fields),
        )
        return project.issues.get(iid, lazy=True) if not data else _Issue(project, data)

    def between(self, start: datetime, end: datetime) -> list[Registered]:
        """The issues labelled with the range's months (a list each), and those written before
        the month labels."""
        return self._ranged(start, end, "all")

    def _ranged(self, start: datetime, end: datetime, state: str) -> list[Registered]:
        out: dict[str, Registered] = {}
        for month in months(start, end):
            for issue in self._listed([LABEL, month], state):
                decoded = self._decode(issue)
                if decoded is not None and decoded[0].overlaps(start, end):
                    out.setdefault(decoded[0].change_id, self._current(decoded[0]))
        for record in self._unlabelled(start, end, state):
            out.setdefault(record.change_id, record)
        return sorted(out.values(), key=lambda r: (r.window_start or start, r.change_id))

    def _listed(self, labels: list[str], state: str) -> Any:
        """The issues with all of `labels`, page by page."""
        project = self._project()
        issues = call(
            "list the register",
            lambda: project.issues.list(
                labels=labels, state=state, iterator=True, per_page=PER_PAGE
            ),
        )
        return _reported_iter(issues, "list the register")

    def _unlabelled(self, start: datetime, end: datetime, state: str) -> list[Registered]:
        """Issues written before the month labels, in the range: newest due date first,
        stopping at the first one due too long before it."""
        project = self._project()
        first = self._local_date(start - LONGEST_WINDOW)
        last = self._local_date(end)
        out: list[Registered] = []
        issues = call(
            "list the register",
            lambda: project.issues.list(
                labels=[LABEL],
                state=state,
                order_by="due_date",
                sort="desc",
                iterator=True,
                per_page=PER_PAGE,
                **{"not[labels]": BY_MONTH},
            ),
        )
        with_reported = _reported_iter(issues, "list the register")
        for issue in with_reported:
            due = issue.attributes.get("due_date")
            if not due:
                break  # GitLab sorts issues without a due date last
            day = date.fromisoformat(str(due))
            if day > last:
                continue
            if day < first:
                break
            decoded = self._decode(issue)
            if decoded is not None and decoded[0].overlaps(start, end):
                out.append(self._current(decoded[0]))
        return out

    def between_with_entries(self, start: datetime, end: datetime) -> list[Registered]:
        """The issues of the range (one paginated list), then each one's notes: GitLab has no
        bulk read of notes across issues."""
        return [self.get(r.change_id) or r for r in self.between(start, end)]

    def open_changes(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[Registered]:
        if start is not None and end is not None:
            return [r for r in self._ranged(start, end, "opened") if not r.ended]
        project = self._project()
        issues = call(
            "list the open changes",
            lambda: project.issues.list(
                labels=[LABEL], state="opened", iterator=True, per_page=PER_PAGE
            ),
        )
        out = []
        for issue in _reported_iter(issues, "list the open changes"):
            decoded = self._decode(issue)
            if decoded is not None and not (record := self._current(decoded[0])).ended:
                out.append(record)
        return sorted(out, key=lambda r: (r.window_start is None, r.window_start, r.change_id))

    def _current(self, record: Registered) -> Registered:
        """A record as it reads now: one written before its status was the lifecycle state is
        read with its notes, which say what became of it (not "done" after a rollback)."""
        if not record.legacy:
            return record
        full = self.get(record.change_id) or record
        return replace(record, status=full.status)

    def _labels(self, record: Registered) -> list[str]:
        labels = [LABEL, f"change-status::{record.status}"]
        if record.change_type:
            labels.append(f"change-type::{record.change_type}")
        labels.append(BY_MONTH)
        if record.window_start and record.window_end:
            labels += months(record.window_start, record.window_end, MAX_MONTHS)
        return labels

    def _due(self, record: Registered) -> str | None:
        return self._local_date(record.window_start).isoformat() if record.window_start else None

    def _local_date(self, when: datetime) -> date:
        return when.astimezone(self.zone).date()

    def _body(self, record: Registered, keys: set[str]) -> str:
        window = (
            timetext.span(record.window_start, record.window_end, self.zone)
            if record.window_start and record.window_end
            else "not scheduled"
        )
        lines = [
            f"**Change** {record.change_id}: {record.purpose}",
            "",
            f"- Status: {record.status}",
            f"- Type: {record.change_type or 'not classified'}"
            + (" (service-impacting)" if record.service_impacting else ""),
            f"- Window: {window}",
            f"- Customers: {', '.join(record.customers) or 'none named'}",
            f"- Audiences: {', '.join(record.audiences) or 'none'}",
            *([f"- Project: {record.project}"] if record.project else []),
            "",
            "Kept by hie-notify: edits to this description are overwritten.",
        ]
        return self.mask("\n".join(lines)) + "\n\n" + encode_record(record, sorted(keys))


class _Issue:
    """An issue as the update answered it: what `put` reads back (attributes, iid, notes)."""

    def __init__(self, project: Any, data: Mapping[str, Any]) -> None:
        self.attributes = dict(data)
        self.iid = data["iid"]
        self.notes = project.issues.get(self.iid, lazy=True).notes


def _reported_iter(items: Any, what: str) -> Any:
    """Iterate a paginated list, turning a failure on a later page into the tool's error."""
    iterator = iter(items)
    end = object()
    while (item := call(what, lambda: next(iterator, end))) is not end:
        yield item


def freeze_periods(
    env: Mapping[str, str], settings: Settings | None = None
) -> list[FreezePeriod] | None:
    """The project's deploy freeze periods, or None when GitLab is not configured."""
    periods = gitlab_api.freeze_periods(env, settings)
    if periods is None:
        return None
    return [
        FreezePeriod(
            str(p.get("freeze_start") or ""),
            str(p.get("freeze_end") or ""),
            str(p.get("cron_timezone") or "UTC"),
            f"GitLab deploy freeze {p.get('id')}",
        )
        for p in periods
    ]
