"""Two weeks of `hie-notify digest` (every hour, `--now` stepping from Monday 22 March to
Monday 5 April 2027) over both register backends. The clocks go forward on Sunday 28 March
(the second week starts at 23:00 UTC), Good Friday and Easter Monday are bank holidays. Five
changes: an infrastructure change that completes, an application update that is rolled back,
a cost optimisation, an application update planned for the second week, and one cancelled
before it all started. Each digest goes out once, with the changes asserted; the stakeholders
hear of the application updates only here (`external_when: digest`), and the gate never waits
for them."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml

from tests.support.builders import plan, rc, write
from tests.support.cli_flow import CHANGE, Flow
from tests.support.register_fake import BOT, ENV, RegisterFake

UTC = timezone.utc
START = datetime(2027, 3, 22, 0, 0, tzinfo=UTC)  # Monday, GMT
END = datetime(2027, 4, 5, 1, 0, tzinfo=UTC)
ANNOUNCED = datetime(2027, 3, 15, 10, 0, tzinfo=UTC)

NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])
CONFIG = rc("kubernetes_config_map.app", ["update"])
HELM = rc("helm_release.portal", ["delete", "create"])  # replaced: service-impacting
LIFECYCLE = rc("aws_s3_bucket_lifecycle_configuration.logs", ["update"])

POLICY = {
    "support": {"name": "the DevOps team", "email": "devops@example.org"},
    "stakeholders": {
        "business": {
            "name": "Product and business stakeholders",
            "contacts": [{"email": "product@example.org"}],
        }
    },
    "change_types": {"application_update": {"external_when": "digest"}},
}


def window(start: str, end: str) -> dict[str, str]:
    return {"start": f"2027-{start}", "end": f"2027-{end}"}


CHANGES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # (change record fields, plan resource)
    "A": (
        {
            "id": "FFAPP-201",
            "purpose": "Replace the EKS worker nodes",
            "customers": ["EoE"],
            "window": window("03-23T19:00:00+00:00", "03-23T21:00:00+00:00"),
        },
        NODES,
    ),
    "B": (
        {
            "id": "FFAPP-202",
            "purpose": "Portal <b>v2.3</b> & *config* @here",  # escaped in every format
            "customers": [],
            "downtime": "0",
            "window": window("03-25T19:00:00+00:00", "03-25T20:00:00+00:00"),
        },
        CONFIG,
    ),
    "C": (
        {
            "id": "FFAPP-203",
            "type": "cost_optimization",
            "purpose": "Move old logs to Glacier",
            "customers": [],
            "downtime": "0",
            "risk": "low",
            "window": window("03-30T10:00:00+01:00", "03-30T11:00:00+01:00"),
        },
        LIFECYCLE,
    ),
    "D": (
        {
            "id": "FFAPP-204",
            "purpose": "Portal v2.4",
            "customers": ["CUH"],
            "downtime": "0",
            "window": window("03-31T19:00:00+01:00", "03-31T20:00:00+01:00"),
        },
        HELM,
    ),
    "E": (
        {
            "id": "FFAPP-205",
            "purpose": "Resize the database",
            "customers": ["EoE"],
            "window": window("04-01T19:00:00+01:00", "04-01T21:00:00+01:00"),
        },
        NODES,
    ),
}


@pytest.fixture(params=["sqlite", "gitlab"])
def fortnight(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[tuple[Flow, RegisterFake, str]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = RegisterFake(rsps).install()
        flow = Flow(tmp_path, capsys, NODES, env=dict(ENV), policy=policy)
        register = f"sqlite:{tmp_path}/register.sqlite3" if request.param == "sqlite" else "gitlab"
        yield flow, fake, register


def _as(flow: Flow, name: str) -> Path:
    fields, resource = CHANGES[name]
    flow.fields = {**CHANGE, "downtime": "30m", **fields}
    flow.write_change()
    return write(flow.tmp / f"plan-{name}.json", plan(resource))


def iso(when: datetime) -> str:
    return when.isoformat()


def test_two_weeks_of_digests(fortnight: tuple[Flow, RegisterFake, str]) -> None:
    flow, fake, register = fortnight

    def run(*args: str, now: datetime) -> tuple[int, Any]:
        return flow("--register", register, *args, now=iso(now))

    for name in "ABCDE":
        path = _as(flow, name)
        code, out = run("plan", "--plan", str(path), now=ANNOUNCED)
        assert code == 0, flow.err
        told = {d["audience"] for d in out["delivered"]}
        # The application updates' stakeholders are told by the digest, not by `plan`.
        assert "stakeholders:business" not in told, name
        if name in "BD":
            opens = datetime.fromisoformat(CHANGES[name][0]["window"]["start"])
            code, gate = run("gate", "--plan", str(path), now=opens + timedelta(minutes=5))
            assert code == 0 and gate["allowed"], gate
            assert "stakeholders:business" not in {r["audience"] for r in gate["required"]}

    events = {
        datetime(2027, 3, 20, 12, tzinfo=UTC): ("E", ["cancel"]),
        datetime(2027, 3, 23, 19, 5, tzinfo=UTC): ("A", ["apply", "--status", "started"]),
        datetime(2027, 3, 23, 19, 50, tzinfo=UTC): ("A", ["apply", "--status", "succeeded"]),
        datetime(2027, 3, 23, 20, 30, tzinfo=UTC): ("A", ["complete"]),
        datetime(2027, 3, 25, 19, 5, tzinfo=UTC): ("B", ["apply", "--status", "started"]),
        datetime(2027, 3, 25, 19, 20, tzinfo=UTC): ("B", ["rollback", "--status", "started"]),
        datetime(2027, 3, 25, 19, 40, tzinfo=UTC): ("B", ["rollback", "--status", "succeeded"]),
    }
    for at, (name, args) in sorted(events.items()):
        if at < START:
            _as(flow, name)
            assert run(*args, now=at)[0] == 0, flow.err

    sent: list[tuple[str, str, str, str]] = []
    digests: dict[str, dict[str, Any]] = {}
    pending: list[tuple[str, str]] = []
    calls: list[tuple[int, int]] = []
    now = START
    while now < END:
        for at, (name, args) in sorted(events.items()):
            if now - timedelta(hours=1) < at <= now:
                _as(flow, name)
                assert run(*args, now=at)[0] == 0, flow.err
        fake.rsps.calls.reset()
        code, out = run("digest", now=now)
        assert code == 0, flow.err
        calls.append((len(fake.rsps.calls), len(out["sent"])))
        for row in out["sent"]:
            sent.append((now.strftime("%a %d %H:%M"), row["digest"], row["ref"], row["audience"]))
        for d in out["digests"]:
            digests.setdefault(d["ref"] + "/" + d["kind"], d["changes"])
        pending += [(now.strftime("%a %d %H:%M"), p) for p in out["pending"]]
        now += timedelta(hours=1)

    assert sent == [
        # The first run of the week: the summary, the stakeholders' update, and the agenda
        # (due from Sunday 10:00, three days before Wednesday's meeting).
        ("Mon 22 00:00", "summary", "digest-2027-W12", "slack:#devops"),
        ("Mon 22 00:00", "agenda", "agenda-2027-03-24", "meeting:Wednesday meeting"),
        ("Mon 22 00:00", "stakeholders", "digest-2027-W12", "stakeholders:business"),
        # Sunday 28, three days before Wednesday 31 March 10:00 BST (09:00 UTC).
        ("Sun 28 09:00", "agenda", "agenda-2027-03-31", "meeting:Wednesday meeting"),
        # The clocks went forward: the week of 29 March starts at 23:00 UTC on Sunday.
        ("Sun 28 23:00", "summary", "digest-2027-W13", "slack:#devops"),
        ("Sun 28 23:00", "stakeholders", "digest-2027-W13", "stakeholders:business"),
        ("Sun 04 09:00", "agenda", "agenda-2027-04-07", "meeting:Wednesday meeting"),
        ("Sun 04 23:00", "summary", "digest-2027-W14", "slack:#devops"),
        ("Sun 04 23:00", "stakeholders", "digest-2027-W14", "stakeholders:business"),
    ]
    # Wednesday 24 March after the meeting (10:00 GMT): the next agenda is next Wednesday's.
    assert (
        "Wed 24 10:00",
        "agenda for Wed 31 Mar 2027: goes out from "
        "Sun 28 Mar 2027 10:00 BST (digest.meeting.agenda_ahead)",
    ) in pending
    assert (
        "Wed 24 09:00",
        "agenda for Wed 31 Mar 2027: goes out from "
        "Sun 28 Mar 2027 10:00 BST (digest.meeting.agenda_ahead)",
    ) not in pending

    assert digests["digest-2027-W12/summary"] == {
        "last_week": [],
        "this_week": ["FFAPP-201", "FFAPP-202"],
    }
    assert digests["digest-2027-W12/stakeholders"] == {"last_week": [], "this_week": ["FFAPP-202"]}
    assert digests["agenda-2027-03-24/agenda"] == {
        "cost": ["FFAPP-203"],
        # A (Tuesday, service-impacting) falls in the week before the meeting.
        "significant": ["FFAPP-201"],
        "upcoming": ["FFAPP-204"],
    }
    assert digests["agenda-2027-03-31/agenda"] == {
        "cost": ["FFAPP-203"],
        "significant": ["FFAPP-202"],  # rolled back; A was before Wednesday 24th's meeting
        "upcoming": ["FFAPP-204"],
    }
    assert digests["digest-2027-W13/summary"] == {
        "last_week": ["FFAPP-201", "FFAPP-202"],
        "this_week": ["FFAPP-203", "FFAPP-204"],  # E was cancelled
    }
    assert digests["digest-2027-W13/stakeholders"] == {
        "last_week": ["FFAPP-202"],
        "this_week": ["FFAPP-204"],
    }

    if register == "gitlab":
        # A run that sends nothing: who am I, the range (a page per month it touches and one of
        # the issues written before the month labels: three here), one of the open changes,
        # each digest's register entry (found by title, then its notes) and, once the agenda
        # is due, the previous agenda's (where its significant changes start). Sending adds the
        # entry's upkeep and the agenda issue: bounded by what is sent, not the register's size.
        assert max(c for c, n in calls if n == 0) <= 12, calls
        assert all(c <= 12 + 6 * n for c, n in calls), calls
    # What people read.
    outbox = flow.tmp / "outbox"
    summary = (outbox / "digest-2027-W13" / "digest_summary" / "slack-devops.json").read_text()
    assert "FFAPP-201" in summary and "completed" in summary and "rolled back" in summary
    assert "&lt;b&gt;v2.3&lt;/b&gt; &amp;" in summary and "<b>" not in summary
    eml = email.message_from_bytes(
        (
            outbox / "digest-2027-W13" / "digest_stakeholders" / "stakeholders-business.eml"
        ).read_bytes(),
        policy=email.policy.default,
    )
    assert eml["To"] == "product@example.org"
    assert eml["Subject"] == (
        "Weekly update on the HIE Secure Data Environment: week of 29 March to 4 April 2027"
    )
    text = eml.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
    assert (
        "Portal <b>v2.3</b> & *config* @here, Thu 25 Mar 2027 19:00 to 20:00 GMT: "
        "rolled back" in text
    )
    assert "Portal v2.4, Wed 31 Mar 2027 19:00 to 20:00 BST" in text
    html = eml.get_body(("html",)).get_content()  # type: ignore[attr-defined]
    assert "&lt;b&gt;v2.3&lt;/b&gt;" in html

    # The agenda, a GitLab issue in the project due on the meeting day (both backends: the
    # agenda's channel is the policy's, whatever keeps the register).
    agendas = [i for i in fake.issues.values() if "hie-notify-agenda" in i["labels"]]
    assert [(i["title"], i["due_date"], i["author"]["id"]) for i in agendas] == [
        ("Agenda: Wednesday meeting, Wed 24 Mar 2027", "2027-03-24", BOT["id"]),
        ("Agenda: Wednesday meeting, Wed 31 Mar 2027", "2027-03-31", BOT["id"]),
        ("Agenda: Wednesday meeting, Wed 7 Apr 2027", "2027-04-07", BOT["id"]),
    ]
    body = agendas[1]["description"]
    assert "Agenda: Wednesday meeting, Wed 31 Mar 2027 10:00 BST" in body
    assert "Portal &lt;b&gt;v2.3&lt;/b&gt; &amp; \\*config\\* &#64;here" in body

    # The calendar never shows the digests' own register entries.
    code, cal = run("calendar", "--from", "2027-03-15", "--to", "2027-04-10", now=END)
    assert code == 0
    assert [c["id"] for c in cal["changes"]] == [
        "FFAPP-201",
        "FFAPP-202",
        "FFAPP-203",
        "FFAPP-204",
        "FFAPP-205",
    ]
