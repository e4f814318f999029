"""`hie-notify calendar`: registered changes, deploy freezes (GitLab freeze periods), bank
holidays and conflicts, as text, JSON and an iCalendar feed."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import icalendar
import pytest
import responses

from hie_notify.calendar import BusinessCalendar
from hie_notify.errors import InputError
from hie_notify.register import feed
from hie_notify.register.model import Registered
from tests.support.builders import rc
from tests.support.cli_flow import Flow
from tests.support.register_fake import ENV, RegisterFake

UTC = timezone.utc
LONDON = BusinessCalendar("Europe/London", "GB", "ENG")
NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])


def t(day: int, hour: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def change(cid: str, start: datetime, hours: int = 2, **kw: Any) -> Registered:
    return Registered(
        change_id=cid,
        status=kw.pop("status", "announced"),
        change_type="planned_infra_update",
        purpose=f"work {cid}",
        window_start=start,
        window_end=start + timedelta(hours=hours),
        **kw,
    )


def test_a_weekend_freeze_is_on_from_friday_night_to_monday_morning() -> None:
    period = feed.FreezePeriod("0 23 * * 5", "0 7 * * 1", "Europe/London", "freeze 1")
    # From Saturday 5 December: the freeze that began on Friday the 4th is already on.
    found = feed.freezes_between([period], t(5, 12), t(14))
    assert [(f.start, f.end) for f in found] == [(t(4, 23), t(7, 7)), (t(11, 23), t(14, 7))]


def test_a_freeze_in_summer_time_follows_the_zone() -> None:
    period = feed.FreezePeriod("0 23 * * 5", "0 7 * * 1", "Europe/London")
    (found,) = feed.freezes_between([period], t(1, 0, 7), t(6, 0, 7))
    assert found.start == datetime(2026, 7, 3, 22, tzinfo=UTC)  # 23:00 BST


def test_a_freeze_period_gitlab_would_refuse_is_named() -> None:
    with pytest.raises(InputError, match=r"freeze 3: freeze_start '0 23 \* \*' .*cron"):
        feed.freezes_between(
            [feed.FreezePeriod("0 23 * *", "0 7 * * 1", source="freeze 3")], t(1), t(2)
        )


def test_bank_holidays_follow_the_policy_region() -> None:
    sct = BusinessCalendar("Europe/London", "GB", "SCT")
    assert [h.day for h in feed.holidays_between(sct, t(30, 0, 11), t(2))] == [date(2026, 11, 30)]
    assert feed.holidays_between(LONDON, t(30, 0, 11), t(2)) == []
    christmas = feed.holidays_between(LONDON, t(24), t(29))
    assert [(h.day.day, h.name) for h in christmas] == [
        (25, "Christmas Day"),
        (26, "Boxing Day"),
        (28, "Boxing Day (observed)"),
    ]


def test_conflicts_need_an_overlap_and_something_shared() -> None:
    a = change("FFAPP-1", t(8, 19), customers=("EoE",), environments=("eoe-prod",))
    b = change("FFAPP-2", t(8, 20), customers=("EoE",))  # overlaps, same customer
    c = change("FFAPP-3", t(8, 20), customers=("CUH",))  # overlaps, nothing shared
    d = change("FFAPP-4", t(8, 21), environments=("eoe-prod",))  # starts as FFAPP-1 ends
    e = change("FFAPP-5", t(8, 19), environments=("eoe-prod",), status="cancelled")
    f = change(
        "FFAPP-6",
        t(
            8,
            20,
        ),
        environments=("eoe-prod",),
    )
    found = feed.conflicts([a, b, c, d, e, f], [])
    assert [x.text() for x in found] == [
        "FFAPP-1 and FFAPP-2: windows overlap, both touch customer EoE",
        "FFAPP-1 and FFAPP-6: windows overlap, both touch environment eoe-prod",
        "FFAPP-4 and FFAPP-6: windows overlap, both touch environment eoe-prod",
    ]
    mine = feed.conflicts([a, b, c, d, e, f], [], among=["FFAPP-6"])
    assert [x.other for x in mine] == ["FFAPP-1", "FFAPP-4"]


def test_a_window_in_a_freeze_conflicts() -> None:
    period = feed.FreezePeriod("0 23 * * 5", "0 7 * * 1", "UTC", "GitLab deploy freeze 1")
    freezes = feed.freezes_between([period], t(1), t(14))
    found = feed.conflicts([change("FFAPP-1", t(6, 10)), change("FFAPP-2", t(8, 10))], freezes)
    assert [x.text() for x in found] == [
        "FFAPP-1 and GitLab deploy freeze 1 (0 23 * * 5 to 0 7 * * 1 UTC): the window is "
        "inside a deploy freeze"
    ]


def _run(flow: Flow, *args: str, now: str = "2026-12-02T10:00:00+00:00") -> tuple[int, Any]:
    return flow(*args, now=now)


def test_calendar_shows_changes_holidays_and_freezes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = RegisterFake(rsps).install()
        fake.add_freeze("0 23 * * 5", "0 7 * * 1", "Europe/London")
        env = dict(ENV)
        flow = Flow(tmp_path, capsys, NODES, env=env)
        flow("--register", f"sqlite:{tmp_path}/register.sqlite3", "plan", "--plan", str(flow.plan))
        flow.write_change(id="FFAPP-4459", customers=["EoE"])
        flow.window("2026-12-08T20:00:00+00:00", "2026-12-08T23:00:00+00:00")
        flow("--register", f"sqlite:{tmp_path}/register.sqlite3", "plan", "--plan", str(flow.plan))
        flow.write_change(id="FFAPP-4460", customers=["CUH"])
        flow.window("2026-12-12T10:00:00+00:00", "2026-12-12T12:00:00+00:00")
        flow("--register", f"sqlite:{tmp_path}/register.sqlite3", "plan", "--plan", str(flow.plan))
        code, out = flow(
            "--register",
            f"sqlite:{tmp_path}/register.sqlite3",
            "calendar",
            "--from",
            "2026-12-07",
            "--to",
            "2026-12-27",
        )
    assert code == 0
    assert out["from"] == "2026-12-07T00:00:00+00:00" and out["to"] == "2026-12-28T00:00:00+00:00"
    assert [(c["id"], c["status"]) for c in out["changes"]] == [
        ("FFAPP-4458", "announced"),
        ("FFAPP-4459", "announced"),
        ("FFAPP-4460", "announced"),
    ]
    assert [h["date"] for h in out["holidays"]] == ["2026-12-25", "2026-12-26"]
    assert [f["start"] for f in out["freezes"]] == [
        "2026-12-04T23:00:00+00:00",
        "2026-12-11T23:00:00+00:00",
        "2026-12-18T23:00:00+00:00",
        "2026-12-25T23:00:00+00:00",
    ]
    assert [(c["change"], c["other"]) for c in out["conflicts"]] == [
        ("FFAPP-4458", "FFAPP-4459"),
        ("FFAPP-4460", "GitLab deploy freeze 1 (0 23 * * 5 to 0 7 * * 1 Europe/London)"),
    ]
    assert "Christmas Day" in flow.err and "FFAPP-4460 and GitLab deploy freeze 1" in flow.err


def _events(text: str) -> dict[str, Any]:
    cal = icalendar.Calendar.from_ical(text)
    return {str(e["uid"]): e for e in cal.walk("VEVENT")}


def test_the_ics_feed_keeps_one_uid_per_change_through_moves_and_cancellation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = Flow(tmp_path, capsys, NODES)
    ics = tmp_path / "feed.ics"
    args = ("calendar", "--from", "2026-12-01", "--to", "2026-12-31", "--format", "ics")

    def feed_now() -> dict[str, Any]:
        assert flow(*args, "--output", str(ics))[0] == 0
        return _events(ics.read_text())

    flow("plan", "--plan", str(flow.plan))
    first = feed_now()["change-FFAPP-4458@hie-notify"]
    assert first["sequence"] == 0 and str(first["status"]) == "CONFIRMED"
    assert first.decoded("dtstart") == datetime(2026, 12, 8, 19, tzinfo=UTC)
    flow.window("2026-12-15T19:00:00+00:00", "2026-12-15T21:00:00+00:00")
    flow("plan", "--plan", str(flow.plan))
    moved = feed_now()["change-FFAPP-4458@hie-notify"]
    assert moved["sequence"] == 1 and moved.decoded("dtstart") == datetime(
        2026, 12, 15, 19, tzinfo=UTC
    )
    flow("cancel")
    events = feed_now()
    gone = events["change-FFAPP-4458@hie-notify"]
    assert gone["sequence"] == 2 and str(gone["status"]) == "CANCELLED"
    assert "holiday-20261225@hie-notify" in events
    assert str(events["holiday-20261225@hie-notify"]["summary"]) == "Bank holiday: Christmas Day"


def test_calendar_reads_the_gitlab_register(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        RegisterFake(rsps).install()
        flow = Flow(tmp_path, capsys, NODES, env=dict(ENV))
        flow("--register", "gitlab", "plan", "--plan", str(flow.plan))
        code, out = flow(
            "--register", "gitlab", "calendar", "--from", "2026-12-08", "--to", "2026-12-08"
        )
    assert code == 0 and [c["id"] for c in out["changes"]] == ["FFAPP-4458"]
    assert out["freezes"] == [] and out["notes"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "next week"], "--from: expected a date like 2026-12-07"),
        (["--to", "2026-12-08T10:00"], "--to: expected a date like"),
        (["--from", "2026-12-09", "--to", "2026-12-01"], "must be after --from"),
    ],
)
def test_a_bad_range_is_exit_2_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    flow = Flow(tmp_path, capsys, NODES)
    code, _ = flow("calendar", *args)
    assert code == 2 and message in flow.err and "Traceback" not in flow.err


def test_secrets_in_a_purpose_never_reach_the_feed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "tf-PLANTED-hcp-token-8812"
    flow = Flow(tmp_path, capsys, NODES, env={"TF_API_TOKEN": secret}, purpose=f"Rotate {secret}")
    flow("plan", "--plan", str(flow.plan))
    del flow.env["TF_API_TOKEN"]  # the register was written masked: later readers need not know
    code, out = flow("calendar", "--from", "2026-12-01")
    assert code == 0 and secret not in json.dumps(out) and secret not in flow.err
    assert out["changes"][0]["purpose"] == "Rotate [MASKED]"
    assert secret.encode() not in (tmp_path / "register.sqlite3").read_bytes()
