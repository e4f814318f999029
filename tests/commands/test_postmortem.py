"""Post-mortems tracked and overdue reminders, over both register backends (SQLite real; GitLab
through the issues/notes fake), time injected with --now.

The change (tests/support/cli_flow.py) declares an hour of downtime: a significant planned
infrastructure update, so it owes a post-mortem. Its window is Tuesday 8 December 2026
19:00-21:00 GMT; its apply succeeds at 20:50 (the work ended then: `complete` follows at 20:55),
so with the default deadline (5 business days) its post-mortem is due Tuesday 15 December at
20:50."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hie_notify.calendar import BusinessCalendar
from hie_notify.durations import parse_notice
from hie_notify.policy.loader import load_policy
from hie_notify.records import Audience, Entry
from hie_notify.register import reminders
from hie_notify.register.model import Registered
from hie_notify.register.store import open_register
from tests.support.builders import rc
from tests.support.cli_flow import Flow
from tests.support.register_fake import ENV, RegisterFake

UTC = timezone.utc
NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])
INTERNAL = ["slack:#devops", "slack:#infrastructure", "slack:#product"]
DUE = "2026-12-15T20:50:00+00:00"
LINK = "https://gitlab.example.com/hie/sde/-/issues/31"


@pytest.fixture(params=["sqlite", "gitlab"])
def flow(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Flow]:
    def done(f: Flow, reg: str) -> Flow:
        run = _runner(f, reg)
        assert run("plan", "--plan", str(f.plan), now="2026-12-01T10:00:00+00:00")[0] == 0
        assert run("apply", "--status", "started", now="2026-12-08T19:05:00+00:00")[0] == 0
        assert run("apply", "--status", "succeeded", now="2026-12-08T20:50:00+00:00")[0] == 0
        code, out = run("complete", "--verified-by", "ollie", now="2026-12-08T20:55:00+00:00")
        assert code == 0 and out["postmortem"], f.err
        return f

    if request.param == "sqlite":
        f = Flow(tmp_path, capsys, NODES)
        f.register = f"sqlite:{tmp_path}/register.sqlite3"  # type: ignore[attr-defined]
        yield done(f, f.register)  # type: ignore[attr-defined]
        return
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        RegisterFake(rsps).install()
        f = Flow(tmp_path, capsys, NODES, env=dict(ENV))
        f.register = "gitlab"  # type: ignore[attr-defined]
        yield done(f, "gitlab")


def _runner(f: Flow, register: str) -> Any:
    def run(*args: str, now: str) -> tuple[int, Any]:
        return f("--register", register, *args, now=now)

    return run


def run(f: Flow, *args: str, now: str) -> tuple[int, Any]:
    return _runner(f, f.register)(*args, now=now)  # type: ignore[attr-defined]


def overdue(out: dict[str, Any]) -> list[str]:
    return sorted(r["audience"] for r in out["sent"] if r["stage"] == "postmortem_overdue")


def _record(f: Flow) -> Registered:
    reg = open_register(f.register, f.env)  # type: ignore[attr-defined]
    assert reg is not None
    rec = reg.get("FFAPP-4458")
    assert rec is not None
    return rec


def test_an_overdue_postmortem_is_reminded_once(flow: Flow) -> None:
    code, out = run(flow, "postmortem", now="2026-12-09T10:00:00+00:00")
    assert code == 0
    assert out["state"] == "opened" and out["due"] == DUE and out["overdue"] is False
    assert out["owed"] == [
        "a significant change (service-impacting, destroys or replaces resources)"
    ]

    assert overdue(run(flow, "remind", now="2026-12-15T20:00:00+00:00")[1]) == []
    code, out = run(flow, "remind", now="2026-12-15T21:00:00+00:00")
    assert code == 0 and overdue(out) == INTERNAL, flow.err
    assert "FFAPP-4458: the post-mortem is overdue" in flow.err
    body = (flow.tmp / "outbox/FFAPP-4458/postmortem_overdue/slack-devops.json").read_text()
    assert "Post-mortem overdue" in body and "hie-notify postmortem --closed" in body
    # Hourly after that, and a retried job: nothing more.
    for hour in (
        "2026-12-15T21:00:00+00:00",
        "2026-12-15T22:00:00+00:00",
        "2026-12-18T09:00:00+00:00",
    ):
        assert overdue(run(flow, "remind", now=hour)[1]) == []
    assert run(flow, "postmortem", now="2026-12-16T10:00:00+00:00")[1]["overdue"] is True

    # Closed: recorded in the ledger and the register; the report counts it closed.
    code, out = run(flow, "postmortem", "--closed", "--link", LINK, now="2026-12-16T11:00:00+00:00")
    assert code == 0 and out["state"] == "closed" and out["recorded"] is True
    assert out["overdue"] is False and out["closed_at"] == "2026-12-16T11:00:00+00:00"
    closing = [e for e in _record(flow).entries if e.extra.get("state") == "closed"]
    assert [(e.stage, e.message_id) for e in closing] == [("postmortem", LINK)]
    code, out = run(flow, "postmortem", "--closed", "--link", LINK, now="2026-12-16T12:00:00+00:00")
    assert out["recorded"] is False and out["notes"][0].startswith("already recorded as closed")
    assert len([e for e in _record(flow).entries if e.extra.get("state") == "closed"]) == 1


def test_a_postmortem_closed_in_time_is_never_reminded(flow: Flow) -> None:
    code, out = run(flow, "postmortem", "--closed", "--link", LINK, now="2026-12-10T15:00:00+00:00")
    assert code == 0 and out["state"] == "closed"
    for day in range(15, 24):
        assert overdue(run(flow, "remind", now=f"2026-12-{day}T21:00:00+00:00")[1]) == []


def test_a_job_down_for_days_catches_up_with_one_reminder(flow: Flow) -> None:
    # Nothing ran from Tuesday's due time until Friday: one notice per channel, once.
    code, out = run(flow, "remind", now="2026-12-18T09:00:00+00:00")
    assert code == 0 and overdue(out) == INTERNAL
    assert overdue(run(flow, "remind", now="2026-12-18T10:00:00+00:00")[1]) == []


def test_the_report_uses_the_recorded_closing(flow: Flow) -> None:
    run(flow, "postmortem", "--closed", "--link", LINK, now="2026-12-17T11:00:00+00:00")
    code, out = run(
        flow,
        "report",
        "--from",
        "2026-12-01",
        "--to",
        "2026-12-31",
        "--format",
        "json",
        now="2026-12-20T10:00:00+00:00",
    )
    assert code == 0, flow.err
    (row,) = out["tables"]["postmortems"]
    assert row["state"] == "closed" and row["closed_at"] == "2026-12-17T11:00:00+00:00"
    assert row["due"] == DUE and row["overdue"] is False


def test_the_deadline_comes_from_the_policy(flow: Flow) -> None:
    policy = flow.tmp / "policy.yaml"
    policy.write_text(yaml.safe_dump({"postmortems": {"due": "48h"}}))
    flow.policy = policy
    code, out = run(flow, "postmortem", now="2026-12-09T10:00:00+00:00")
    assert code == 0 and out["due"] == "2026-12-10T20:50:00+00:00"
    assert overdue(run(flow, "remind", now="2026-12-10T21:00:00+00:00")[1]) == INTERNAL


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--closed"], "--closed: give --link URL"),
        (["--closed", "--link", "javascript:alert(1)"], "--link: expected an http(s) URL"),
        (["--closed", "--link", "https://x.example/a b"], "--link: expected an http(s) URL"),
        (["--link", LINK], "--link: only with --closed"),
    ],
)
def test_bad_postmortem_input_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    f = Flow(tmp_path, capsys, NODES)
    code, _ = f("postmortem", *args)
    assert code == 2 and message in f.err and "Traceback" not in f.err


@pytest.mark.parametrize("due", ["soon", "3 days", "-1h", "99999bd", True])
def test_a_bad_deadline_in_the_policy_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], due: object
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"postmortems": {"due": due}}))
    f = Flow(tmp_path, capsys, NODES, policy=policy)
    code, _ = f("validate")
    assert code == 2 and "postmortems.due" in f.err and "Traceback" not in f.err


# --- the pure rule, as a property -------------------------------------------------------------

_POLICY = load_policy()
_CAL = BusinessCalendar.from_policy(_POLICY)
_START = datetime(2026, 12, 8, 19, tzinfo=UTC)
_ZERO = parse_notice("0")
_AUDIENCES = (
    *(Audience(a, "internal", a, "Europe/London", frozenset(), _ZERO, _ZERO, ()) for a in INTERNAL),
    Audience("customer:EoE", "customer", "EoE", "Europe/London", frozenset(), _ZERO, _ZERO, ()),
)


def _entry(stage: str, at: datetime, **kw: Any) -> Entry:
    return Entry(
        "C-1",
        stage,
        kw.pop("audience", "slack:#devops"),
        "outbox",
        "x",
        kw.pop("fingerprint", "sha256:a"),
        None,
        False,
        (),
        at,
        "m",
        f"{stage}{at}{kw}",
        **kw,
    )


@settings(max_examples=150, deadline=None)
@given(
    status=st.sampled_from(
        ["announced", "in progress", "done", "rolled back", "failed", "cancelled"]
    ),
    ended_after=st.integers(0, 60 * 24 * 3),
    due=st.sampled_from(["0", "1h", "48h", "1bd", "5bd", "10bd"]),
    runs=st.lists(st.integers(0, 60 * 24 * 30), min_size=1, max_size=12),
    closed_after=st.one_of(st.none(), st.integers(0, 60 * 24 * 30)),
)
def test_property_overdue_is_sent_once_after_the_due_time_and_never_once_closed(
    status: str, ended_after: int, due: str, runs: list[int], closed_after: int | None
) -> None:
    ended = _START + timedelta(minutes=ended_after)
    period = parse_notice(due)
    entries: list[Entry] = [_entry("complete", ended)]
    if closed_after is not None:
        entries.append(
            _entry("postmortem", ended + timedelta(minutes=closed_after), extra={"state": "closed"})
        )
    record = Registered(
        "C-1",
        status,
        "planned_infra_update",
        "p",
        _START,
        _START + timedelta(hours=2),
        entries=tuple(entries),
    )
    due_at = reminders.postmortem_due(record, _CAL, period)
    assert due_at is not None and due_at >= ended
    sent: dict[str, int] = {}
    for minutes in sorted(runs):
        now = ended + timedelta(minutes=minutes)
        visible = tuple(e for e in record.entries if e.delivered_at <= now)
        for d in reminders.postmortem_overdue(
            Registered(**{**record.__dict__, "entries": visible}), _AUDIENCES, due_at, now
        ):
            assert d.audience.kind == "internal"  # the lead, never a customer
            assert now >= due_at and status in ("done", "rolled back", "failed")
            assert not any(e.extra.get("state") == "closed" for e in visible)
            sent[d.audience.id] = sent.get(d.audience.id, 0) + 1
            fp = reminders.variant("sha256:a", d.tag)
            record = Registered(
                **{
                    **record.__dict__,
                    "entries": (
                        *record.entries,
                        _entry("postmortem_overdue", now, audience=d.audience.id, fingerprint=fp),
                    ),
                }
            )
    assert all(n == 1 for n in sent.values())


# --- the post-mortem issue closed on GitLab --------------------------------------------------


@pytest.fixture
def on_gitlab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[tuple[Flow, Any]]:
    """The GitLab register, and the post-mortem issue `complete` opened on GitLab (as it does
    with GitLab configured for the merge request: recorded here in the change's ledger)."""
    from hie_notify.ledger import open_ledger
    from hie_notify.records import Entry as LedgerEntry

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = RegisterFake(rsps).install()
        f = Flow(tmp_path, capsys, NODES, env=dict(ENV))
        f.register = "gitlab"  # type: ignore[attr-defined]
        assert run(f, "plan", "--plan", str(f.plan), now="2026-12-01T10:00:00+00:00")[0] == 0
        assert run(f, "apply", "--status", "started", now="2026-12-08T19:05:00+00:00")[0] == 0
        iid = fake.add_issue("Post-mortem: FFAPP-4458", "...", {"id": 901}, labels=["post-mortem"])
        url = fake.issues[iid]["web_url"]
        open_ledger(f"file:{tmp_path}/ledger.jsonl", {}).record(
            [
                LedgerEntry(
                    "FFAPP-4458",
                    "postmortem",
                    "postmortem",
                    "gitlab",
                    "GitLab issue",
                    "sha256:x",
                    "planned_infra_update",
                    True,
                    (),
                    datetime(2026, 12, 8, 20, 50, tzinfo=UTC),
                    url,
                    "pm-opened",
                    receipt={"issue": url},
                )
            ]
        )
        assert run(f, "apply", "--status", "succeeded", now="2026-12-08T20:50:00+00:00")[0] == 0
        code, _ = run(f, "complete", "--verified-by", "ollie", now="2026-12-08T20:55:00+00:00")
        assert code == 0, f.err
        yield f, (fake, iid)


def _close(fake: Any, iid: int, at: str) -> None:
    fake.issues[iid]["state"] = "closed"
    fake.issues[iid]["closed_at"] = at


def test_complete_registers_the_postmortem_issue(on_gitlab: tuple[Flow, Any]) -> None:
    f, (fake, iid) = on_gitlab
    opened = [e for e in _record(f).entries if e.stage == "postmortem"]
    assert [e.message_id for e in opened] == [fake.issues[iid]["web_url"]]


def test_postmortem_shows_the_issue_closed_on_gitlab_and_records_nothing(
    on_gitlab: tuple[Flow, Any],
) -> None:
    """`postmortem` without --closed only reads (issue 23): it says the issue was closed on
    GitLab; `remind` (or --closed) records it."""
    f, (fake, iid) = on_gitlab
    code, out = run(f, "postmortem", now="2026-12-10T10:00:00+00:00")
    assert code == 0 and out["state"] == "opened" and out["recorded"] is False
    _close(fake, iid, "2026-12-11T09:30:00.000Z")
    code, out = run(f, "postmortem", now="2026-12-11T10:00:00+00:00")
    assert code == 0 and out["state"] == "closed" and out["recorded"] is False
    assert out["closed_at"] == "2026-12-11T10:00:00+00:00"  # when hie-notify saw it closed
    assert out["notes"][0] == (
        "the post-mortem issue was closed on GitLab (Fri 11 Dec 2026 09:30 GMT); not recorded "
        "here: `postmortem --closed --link URL` records it (and `remind` does once it is due)"
    )
    assert [e for e in _record(f).entries if e.extra.get("state") == "closed"] == []
    code, out = run(f, "remind", now="2026-12-15T21:00:00+00:00")  # once it would be due
    assert code == 0
    (closing,) = [e for e in _record(f).entries if e.extra.get("state") == "closed"]
    assert closing.message_id == fake.issues[iid]["web_url"]
    assert closing.extra["closed_at"] == "2026-12-11T09:30:00.000Z"


def test_remind_records_a_closed_issue_instead_of_reminding(on_gitlab: tuple[Flow, Any]) -> None:
    f, (fake, iid) = on_gitlab
    _close(fake, iid, "2026-12-14T16:00:00.000Z")
    code, out = run(f, "remind", now="2026-12-15T21:00:00+00:00")
    assert code == 0 and overdue(out) == []
    assert out["recorded"] == [
        f"FFAPP-4458: the post-mortem issue was closed on GitLab: {fake.issues[iid]['web_url']}"
    ]
    assert overdue(run(f, "remind", now="2026-12-15T22:00:00+00:00")[1]) == []
    assert run(f, "remind", now="2026-12-15T22:00:00+00:00")[1]["recorded"] == []


def test_an_open_issue_does_not_stop_the_reminder(on_gitlab: tuple[Flow, Any]) -> None:
    f, (_fake, _iid) = on_gitlab
    code, out = run(f, "remind", now="2026-12-15T21:00:00+00:00")
    assert code == 0 and overdue(out) == INTERNAL and out["recorded"] == []
    body = (f.tmp / "outbox/FFAPP-4458/postmortem_overdue/slack-devops.json").read_text()
    assert _fake.issues[_iid]["web_url"] in body


def test_an_issue_url_of_another_project_is_not_read_as_closed(
    on_gitlab: tuple[Flow, Any],
) -> None:
    from hie_notify.channels.gitlab import issue_closed

    f, (fake, iid) = on_gitlab
    _close(fake, iid, "2026-12-11T09:30:00.000Z")
    assert issue_closed(f.env, fake.issues[iid]["web_url"]) == "2026-12-11T09:30:00.000Z"
    other = f"https://gitlab.example.com/other/project/-/issues/{iid}"
    assert issue_closed(f.env, other) is None  # GitLab reports another web URL for it
    assert issue_closed(f.env, "outbox/FFAPP-4458/postmortem-issue.md") is None
