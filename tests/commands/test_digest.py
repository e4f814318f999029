"""`hie-notify digest`: the week and the meeting's date (pure), the policy's `digest:` section
(validated, Hypothesis over it), `external_when: digest` in classification and audiences, and the
command's dry run, channels, failures and bad input."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hie_notify.audiences import resolve, told_by_digest
from hie_notify.calendar import BusinessCalendar
from hie_notify.change import ChangeRecord
from hie_notify.classify import classify
from hie_notify.cli import main
from hie_notify.errors import InputError
from hie_notify.policy import load_policy
from hie_notify.policy.model import Meeting
from hie_notify.register.digest import agenda, next_meeting, significant, summary, week_of
from hie_notify.register.model import Registered
from hie_notify.terraform.plan import parse_plan
from tests.support.builders import plan, rc
from tests.support.register_fake import ENV, RegisterFake

UTC = timezone.utc
LONDON = BusinessCalendar("Europe/London")
WED = Meeting()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- the week and the meeting (pure) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "key", "start"),
    [
        ("2026-12-07T00:00:00+00:00", "2026-W50", "2026-12-07T00:00:00+00:00"),
        ("2026-12-13T23:59:59+00:00", "2026-W50", "2026-12-07T00:00:00+00:00"),
        # Spring forward: Monday 29 March 2027 00:00 BST is 23:00 UTC on Sunday.
        ("2027-03-28T22:59:59+00:00", "2027-W12", "2027-03-22T00:00:00+00:00"),
        ("2027-03-28T23:00:00+00:00", "2027-W13", "2027-03-28T23:00:00+00:00"),
        # Fall back: the week of 1 November 2027 starts at 00:00 GMT; the one before at BST.
        ("2027-10-31T23:30:00+00:00", "2027-W43", "2027-10-24T23:00:00+00:00"),
        ("2027-11-01T00:00:00+00:00", "2027-W44", "2027-11-01T00:00:00+00:00"),
        # ISO weeks across the new year.
        ("2027-01-01T12:00:00+00:00", "2026-W53", "2026-12-28T00:00:00+00:00"),
    ],
)
def test_the_week_is_monday_to_monday_local(now: str, key: str, start: str) -> None:
    week = week_of(at(now), "Europe/London")
    assert (week.key, week.start) == (key, at(start))
    assert week.before().end == week.start


@pytest.mark.parametrize(
    ("now", "sits", "moved_from"),
    [
        # The Wednesday meeting at 10:00: on the day, before the meeting, it is today's.
        ("2026-12-09T09:59:59+00:00", "2026-12-09T10:00:00+00:00", None),
        # From the meeting's start, the agenda is for next week's.
        ("2026-12-09T10:00:00+00:00", "2026-12-16T10:00:00+00:00", None),
        ("2026-12-09T15:00:00+00:00", "2026-12-16T10:00:00+00:00", None),
        ("2026-12-10T08:00:00+00:00", "2026-12-16T10:00:00+00:00", None),
        # After the clocks go forward, 10:00 BST is 09:00 UTC.
        ("2027-03-24T10:30:00+00:00", "2027-03-31T09:00:00+00:00", None),
        # Christmas Day 2030 is a Wednesday, Boxing Day a Thursday: Friday 27th, also when
        # asked on Christmas morning after the usual time.
        ("2030-12-20T12:00:00+00:00", "2030-12-27T10:00:00+00:00", date(2030, 12, 25)),
        ("2030-12-25T11:00:00+00:00", "2030-12-27T10:00:00+00:00", date(2030, 12, 25)),
        # New Year's Day 2031 is a Wednesday too.
        ("2030-12-27T10:00:00+00:00", "2031-01-02T10:00:00+00:00", date(2031, 1, 1)),
    ],
)
def test_the_next_meeting(now: str, sits: str, moved_from: date | None) -> None:
    sitting = next_meeting(at(now), WED, LONDON)
    assert (sitting.at, sitting.moved_from) == (at(sits), moved_from)
    assert bool(sitting.holiday) == (moved_from is not None)


def test_a_friday_meeting_on_good_friday_moves_past_easter_monday_and_the_clock_change() -> None:
    friday = Meeting(weekday="fri", time=time(10, 0))
    sitting = next_meeting(at("2027-03-22T09:00:00+00:00"), friday, LONDON)
    assert sitting.at == at("2027-03-30T09:00:00+00:00")  # Tuesday 10:00 BST
    assert (sitting.moved_from, sitting.holiday) == (date(2027, 3, 26), "Good Friday")
    # Scotland keeps Easter Monday as a working day.
    scotland = BusinessCalendar("Europe/London", "GB", "SCT")
    assert next_meeting(at("2027-03-22T09:00:00+00:00"), friday, scotland).at == at(
        "2027-03-29T09:00:00+00:00"
    )


def _rec(cid: str, start: str | None, **kw: Any) -> Registered:
    begin = at(start) if start else None
    return Registered(
        change_id=cid,
        status=kw.pop("status", "announced"),
        change_type=kw.pop("change_type", "planned_infra_update"),
        purpose=cid,
        window_start=begin,
        window_end=begin + timedelta(hours=2) if begin else None,
        **kw,
    )


def test_summary_and_agenda_pick_by_window_status_and_weight() -> None:
    policy = load_policy(None)
    records = [
        _rec("last-done", "2026-12-01T19:00:00+00:00", status="done"),
        _rec("last-cancelled", "2026-12-02T19:00:00+00:00", status="cancelled"),
        # A window running over midnight into the week counts in both weeks.
        _rec("across", "2026-12-06T23:00:00+00:00", status="done"),
        _rec("this", "2026-12-08T19:00:00+00:00", service_impacting=True),
        _rec("this-cancelled", "2026-12-09T19:00:00+00:00", status="cancelled"),
        _rec("later", "2026-12-15T19:00:00+00:00", service_impacting=True),
        _rec("far", "2026-12-24T19:00:00+00:00", service_impacting=True),
        _rec("risky", "2026-12-03T19:00:00+00:00", status="done", change={"risk": "high"}),
        _rec("replaced", "2026-12-04T19:00:00+00:00", status="done", summary={"replace": 1}),
        _rec("failed", "2026-12-05T19:00:00+00:00", status="failed"),
        _rec(
            "savings",
            None,
            change_type="cost_optimization",
            categories=("cost_optimization",),
        ),
        _rec(
            "savings-done-long-ago",
            "2026-11-01T10:00:00+00:00",
            status="done",
            categories=("planned_infra_update", "cost_optimization"),
        ),
    ]
    week = week_of(at("2026-12-07T08:00:00+00:00"), "Europe/London")
    s = summary(records, week)
    assert [r.change_id for r in s.last_week] == [
        "last-done",
        "last-cancelled",
        "risky",
        "replaced",
        "failed",
        "across",
    ]
    assert [r.change_id for r in s.this_week] == ["across", "this"]
    sitting = next_meeting(at("2026-12-07T08:00:00+00:00"), WED, LONDON)
    a = agenda(records, policy, WED, sitting)
    assert [r.change_id for r in a.cost] == ["savings"]
    assert [r.change_id for r in a.significant] == ["risky", "replaced", "failed", "this"]
    assert [r.change_id for r in a.upcoming] == ["later"]  # "far" is beyond two weeks
    assert not significant(_rec("plain", "2026-12-08T19:00:00+00:00"))


# -- the policy's digest section --------------------------------------------------------------

_WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_CHANNELS = ["gitlab_issue", "slack", "teams", "webhook", "outbox"]


def _meeting_section() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(st.text(min_size=0, max_size=120), st.integers()),
            "weekday": st.one_of(st.sampled_from(_WEEKDAYS), st.text(max_size=10)),
            "time": st.one_of(
                st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 30), st.integers(0, 70)),
                st.integers(-10, 2000),
                st.text(max_size=8),
            ),
            "channel": st.one_of(st.sampled_from(_CHANNELS), st.sampled_from(["email", "x"])),
            "slack_channel": st.one_of(
                st.sampled_from(["#devops", "#meet.ing", "devops"]), st.none()
            ),
            "agenda_ahead": st.one_of(
                st.sampled_from(["1m", "12h", "3d", "7d", "8d", "0", "soon"]), st.integers(-2, 2)
            ),
            "extra": st.just(1),
        },
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    section=st.fixed_dictionaries(
        {},
        optional={
            "meeting": _meeting_section(),
            "summary_to": st.lists(st.sampled_from(["#devops", "#ops", "ops", ""]), max_size=3),
        },
    ),
    now=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2032, 12, 31), timezones=st.just(UTC)
    ),
)
def test_any_digest_section_loads_or_names_the_field(
    tmp_path: Path, section: dict[str, Any], now: datetime
) -> None:
    f = tmp_path / "policy.yaml"
    f.write_text(yaml.safe_dump({"digest": section}))
    try:
        policy = load_policy(f)
    except InputError as exc:
        assert exc.problems and all(p.startswith(f"{f}: digest") for p in exc.problems), (
            exc.problems
        )
        return
    meeting = policy.digest.meeting
    assert "extra" not in section.get("meeting", {})
    assert policy.digest.summary_to and all(c.startswith("#") for c in policy.digest.summary_to)
    assert meeting.channel != "slack" or meeting.slack_channel
    assert timedelta(0) < meeting.agenda_ahead <= timedelta(days=7)
    calendar = BusinessCalendar.from_policy(policy)
    sitting = next_meeting(now, meeting, calendar)
    local = sitting.local(policy.calendar.time_zone)
    # Ahead of now, at the meeting's time, on its day or (a bank holiday) the next business
    # day after it, and never more than a week and the holidays after it away.
    assert now < sitting.at <= now + timedelta(days=7 + 5)
    assert (local.hour, local.minute) == (meeting.time.hour, meeting.time.minute)
    usual = sitting.moved_from or local.date()
    assert _WEEKDAYS[usual.weekday()] == meeting.weekday
    if sitting.moved_from:
        assert calendar.holiday_name(sitting.moved_from)
        assert calendar.is_business_day(local.date())


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"external_audience": "affected_customers", "external_when": "digest"},
            "external_when: digest is for stakeholder groups",
        ),
        ({"external_when": "weekly"}, "'always', 'service_impacting' or 'digest'"),
    ],
)
def test_external_when_digest_is_for_stakeholder_groups(
    tmp_path: Path, override: dict[str, str], expected: str
) -> None:
    f = tmp_path / "policy.yaml"
    f.write_text(yaml.safe_dump({"change_types": {"application_update": override}}))
    with pytest.raises(InputError) as info:
        load_policy(f)
    assert any(
        p.startswith(f"{f}: change_types.application_update") and expected in p
        for p in info.value.problems
    ), info.value.problems
    f.write_text(yaml.safe_dump({"change_types": {"emergency_fix": {"external_when": "digest"}}}))
    with pytest.raises(InputError, match="an emergency is told as soon as identified"):
        load_policy(f)


# -- external_when: digest --------------------------------------------------------------------


def _digest_policy(tmp_path: Path) -> Path:
    f = tmp_path / "policy.yaml"
    f.write_text(
        yaml.safe_dump({"change_types": {"application_update": {"external_when": "digest"}}})
    )
    return f


def test_a_digest_audience_is_owed_no_stage_notice(tmp_path: Path) -> None:
    policy = load_policy(_digest_policy(tmp_path))
    change = ChangeRecord.model_validate(
        {"id": "FFAPP-1", "purpose": "x", "downtime": "0"},
        context={"customers": set(policy.customers)},
    )
    quiet = classify(parse_plan(plan(rc("kubernetes_config_map.app", ["update"]))), policy, change)
    assert quiet.change_type == "application_update"
    ids = [a.id for a in resolve(policy, quiet, change).audiences]
    assert ids == ["slack:#devops", "slack:#product"]
    assert [n.audience for n in quiet.notice] == ["internal"]
    assert told_by_digest(policy, quiet.categories) == ["stakeholders:business"]
    assert any("weekly digest (external_when: digest)" in r for r in quiet.reasons)
    # Without it (the default policy), business stakeholders are told at each stage.
    default = load_policy(None)
    again = classify(parse_plan(plan(rc("kubernetes_config_map.app", ["update"]))), default, change)
    assert "stakeholders:business" in [a.id for a in resolve(default, again, change).audiences]
    assert told_by_digest(default, again.categories) == []
    # A service-impacting update still owes the affected customers their notice.
    impacting = change.model_copy(update={"customers": ["EoE"]})
    loud = classify(
        parse_plan(plan(rc("helm_release.portal", ["delete", "create"]))), policy, impacting
    )
    assert [a.id for a in resolve(policy, loud, impacting).audiences] == [
        "slack:#devops",
        "slack:#product",
        "customer:EoE",
    ]


def test_classify_says_who_the_digest_tells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "plan.json"
    p.write_text(json.dumps(plan(rc("kubernetes_config_map.app", ["update"]))))
    args = ["--policy", str(_digest_policy(tmp_path)), "--format", "json", "classify"]
    assert main([*args, "--plan", str(p)], env={}) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["told_by_digest"] == ["stakeholders:business"]
    assert any("business stakeholders hear of it in the weekly digest" in r for r in out["reasons"])


# -- the command ------------------------------------------------------------------------------


def _run(
    capsys: pytest.CaptureFixture[str], *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    code = main(["--format", "json", *args], env=env or {})
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out.strip() else {}, out.err


def test_dry_run_sends_and_records_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = f"sqlite:{tmp_path}/r.sqlite3"
    base = ["--register", reg, "--outbox", str(tmp_path / "out"), "--now", "2026-12-07T08:00:00Z"]
    code, out, _ = _run(capsys, *base, "--dry-run", "digest")
    assert code == 0 and out["sent"] == []
    assert [(r["digest"], r["audience"]) for r in out["dry_run"]] == [
        ("summary", "slack:#devops"),
        ("agenda", "meeting:Wednesday meeting"),
    ]
    assert not (tmp_path / "out").exists()
    code, out, _ = _run(capsys, *base, "digest")
    assert code == 0 and len(out["sent"]) == 2 and out["already_sent"] == []
    code, out, _ = _run(capsys, *base, "digest")
    assert code == 0 and out["sent"] == [] and len(out["already_sent"]) == 2


def test_the_agenda_as_a_slack_post(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "policy.yaml"
    f.write_text(
        yaml.safe_dump({"digest": {"meeting": {"channel": "slack", "slack_channel": "#wednesday"}}})
    )
    out_dir = tmp_path / "out"
    code, out, _ = _run(
        capsys,
        "--policy",
        str(f),
        "--register",
        f"sqlite:{tmp_path}/r.sqlite3",
        "--outbox",
        str(out_dir),
        "--now",
        "2026-12-07T08:00:00Z",
        "digest",
    )
    assert code == 0
    agenda_row = [r for r in out["sent"] if r["digest"] == "agenda"]
    assert [(r["recipient"], r["channel"]) for r in agenda_row] == [("#wednesday", "outbox")]
    payload = json.loads(
        (
            out_dir / "agenda-2026-12-09" / "digest_agenda" / "meeting-Wednesday-meeting.json"
        ).read_text()
    )
    assert payload["channel"] == "#wednesday"
    assert payload["text"] == "Agenda: Wednesday meeting, Wed 9 Dec 2026"
    assert "slack: SLACK_BOT_TOKEN is not set: written to the outbox instead" in out["notes"]
    # The agenda's own route says why it went to the outbox, not only the summary's.
    assert (
        out["notes"].count("slack: SLACK_BOT_TOKEN is not set: written to the outbox instead") == 2
    )


def test_without_a_register_it_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "--register", "none", "--now", "2026-12-07T08:00:00Z", "digest")
    assert code == 2
    assert "digest needs the change register: give --register sqlite:PATH or gitlab" in err
    assert "Traceback" not in err


def test_a_gitlab_that_keeps_failing_is_exit_3_and_a_rerun_sends_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], waits: list[float]
) -> None:
    reg = f"sqlite:{tmp_path}/r.sqlite3"
    base = ["--register", reg, "--outbox", str(tmp_path / "out"), "--now", "2026-12-07T08:00:00Z"]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = RegisterFake(rsps)
        for _ in range(20):  # every attempt, before the fake's own handler
            rsps.add(
                responses.POST,
                f"{ENV['CI_API_V4_URL']}/projects/42/issues",
                json={"message": "500 Internal Server Error"},
                status=500,
            )
        fake.install()
        code, out, err = _run(capsys, *base, "digest", env=dict(ENV))
        assert code == 3, err
        assert [r["digest"] for r in out.get("sent", [])] in ([], ["summary"])
        assert "agenda" in err and "glpat-SECRET-TOKEN-123" not in err
        assert waits  # retried with backoff before giving up
        rsps.remove(responses.POST, f"{ENV['CI_API_V4_URL']}/projects/42/issues")
        code, out, err = _run(capsys, *base, "digest", env=dict(ENV))
    assert code == 0, err
    assert [(r["digest"], r["channel"]) for r in out["sent"]] == [("agenda", "gitlab_issue")]
    assert [r["digest"] for r in out["already_sent"]] == ["summary"]
    (issue,) = fake.issues.values()
    assert issue["title"] == "Agenda: Wednesday meeting, Wed 9 Dec 2026"
    assert issue["due_date"] == "2026-12-09" and issue["labels"] == ["hie-notify-agenda"]
    assert out["sent"][0]["message_id"] == issue["web_url"]


@pytest.mark.parametrize("overridable", [[], ["change_types.*"], ["*"]])
def test_a_branch_cannot_move_its_stakeholders_to_the_digest(overridable: list[str]) -> None:
    """`external_when: digest` takes an audience out of the gate: in a branch's policy file it
    is refused even where the protected policy lets branches edit change types."""
    from hie_notify.policy.loader import default_policy_data
    from hie_notify.policy.protected import weakenings

    protected = default_policy_data()
    branch = {"change_types": {"application_update": {"external_when": "digest"}}}
    found = list(weakenings(branch, protected, overridable))
    assert len(found) == 1 and found[0].startswith(
        "change_types.application_update.external_when: "
    ), found
    # Telling them at every stage is always allowed where change types may be edited.
    stricter = {"change_types": {"planned_infra_update": {"external_when": "always"}}}
    assert list(weakenings(stricter, protected, ["change_types.*"])) == []


def test_the_agenda_covers_everything_since_the_last_agenda_went_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Wednesday 9 December's agenda goes out on Sunday 6 (three days ahead). A service-impacting
    # change planned on Monday 7 for Tuesday 8 comes after it, before its meeting: the next
    # agenda (16 December) lists it. One planned before (for Monday 7) was on the 9th's: not again.
    from tests.support.cli_flow import Flow

    nodes = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])
    flow = Flow(tmp_path, capsys, nodes)
    flow.write_change(id="FFAPP-501")
    flow.window("2026-12-07T19:00:00+00:00", "2026-12-07T21:00:00+00:00")
    assert flow("plan", "--plan", str(flow.plan), now="2026-12-01T10:00:00+00:00")[0] == 0
    code, out = flow("digest", now="2026-12-06T10:00:00+00:00")
    assert code == 0
    (first,) = [d for d in out["digests"] if d["kind"] == "agenda"]
    assert first["ref"] == "agenda-2026-12-09" and first["changes"]["significant"] == ["FFAPP-501"]
    flow.write_change(id="FFAPP-502")
    flow.window("2026-12-08T19:00:00+00:00", "2026-12-08T21:00:00+00:00")
    assert flow("plan", "--plan", str(flow.plan), now="2026-12-07T10:00:00+00:00")[0] == 0
    code, out = flow("digest", now="2026-12-13T10:00:00+00:00")
    assert code == 0
    (second,) = [d for d in out["digests"] if d["kind"] == "agenda"]
    assert second["ref"] == "agenda-2026-12-16"
    assert second["changes"]["significant"] == ["FFAPP-502"]
    agenda_md = next((tmp_path / "outbox/agenda-2026-12-16/digest_agenda").iterdir()).read_text()
    assert "since Sun 6 Dec 2026 10:00 GMT, when the last agenda went out" in agenda_md


def test_an_emergency_without_a_window_is_listed_as_one_not_as_unscheduled() -> None:
    from hie_notify.policy import load_policy
    from hie_notify.register.digest import item
    from tests.support.register_records import record

    policy = load_policy(None)
    now = at("2026-12-09T10:00:00+00:00")
    urgent = record(change_type="emergency_fix", window_start=None, window_end=None)
    assert item(urgent, policy, "Europe/London", now)["when"] == "no window (an emergency)"
    planned = record(window_start=None, window_end=None)
    assert item(planned, policy, "Europe/London", now)["when"] == "not scheduled yet"
