"""The Statuspage incident body, built piece by piece (channels/statuspage.py): the scheduling
fields, the status for each lifecycle state, the plain text, the components and the refusals'
fixes (the mutation bench's `statuspage` target). Times: a window in GMT, in BST or across a
clock change is scheduled at its UTC instants, as Statuspage's API documents (ISO 8601, UTC)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hie_notify.channels.statuspage import (
    BODY_LIMIT,
    NAME_LIMIT,
    _refused,
    _utc,
    components_for,
    incident,
    plain,
)
from hie_notify.lifecycle import State
from hie_notify.policy.model import Statuspage
from tests.support.payloads import (
    DAYS,
    LONDON,
    SETTINGS,
    UTC,
    outgoing,
)


def test_the_announcement_schedules_the_maintenance_with_every_field() -> None:
    custom = Statuspage(
        page_id="8m2l51279rpl",
        components={"EoE": ["y6ssccsqgy81"]},
        remind_prior=False,
        auto_in_progress=False,
        auto_completed=True,
        deliver_notifications=False,
    )
    body = incident(
        outgoing(text="  Encrypt <b>it</b>\n"), custom, ["y6ssccsqgy81", "y6ssccsqgy89"]
    )
    assert body == {
        "incident": {
            "body": "Encrypt \u2039b\u203ait\u2039/b\u203a",
            "name": "Planned change (ref FFAPP-1)",
            "status": "scheduled",
            "scheduled_for": "2026-12-08T19:00:00Z",
            "scheduled_until": "2026-12-08T21:00:00Z",
            "scheduled_remind_prior": False,
            "scheduled_auto_in_progress": False,
            "scheduled_auto_completed": True,
            "auto_transition_to_maintenance_state": False,
            "auto_transition_to_operational_state": True,
            "auto_transition_deliver_notifications_at_start": False,
            "auto_transition_deliver_notifications_at_end": False,
            "deliver_notifications": False,
            "component_ids": ["y6ssccsqgy81", "y6ssccsqgy89"],
            "metadata": {"hie": {"change_id": "FFAPP-1"}},
            "impact_override": "maintenance",
        }
    }
    defaults = incident(outgoing(), SETTINGS, [])["incident"]
    assert defaults["scheduled_remind_prior"] is True
    assert defaults["scheduled_auto_in_progress"] is True
    assert defaults["auto_transition_to_maintenance_state"] is True
    assert defaults["scheduled_auto_completed"] is False
    assert defaults["auto_transition_to_operational_state"] is False
    assert defaults["deliver_notifications"] is True
    assert defaults["auto_transition_deliver_notifications_at_start"] is True
    assert defaults["auto_transition_deliver_notifications_at_end"] is True


def test_the_name_and_body_are_cut_to_statuspages_limits_after_escaping() -> None:
    body = incident(
        outgoing(text="<" * (BODY_LIMIT + 5), subject="]" + "(" * NAME_LIMIT), SETTINGS, []
    )
    out = body["incident"]
    assert out["body"] == "\u2039" * BODY_LIMIT
    assert out["name"] == "] " + "(" * (NAME_LIMIT - 2)
    assert len(out["name"]) == NAME_LIMIT


@pytest.mark.parametrize(
    ("state", "status", "components"),
    [
        (State.IN_PROGRESS, "in_progress", "under_maintenance"),
        (State.MITIGATING, "in_progress", "under_maintenance"),
        (State.FAILED, "in_progress", "under_maintenance"),
        (State.ROLLING_BACK, "in_progress", "under_maintenance"),
        (State.ROLLBACK_FAILED, "in_progress", "under_maintenance"),
        (State.ROLLED_BACK, "verifying", None),
        (State.COMPLETED, "completed", "operational"),
        (State.WITHDRAWN, "completed", "operational"),
        (State.SUCCEEDED, None, None),
        (State.ANNOUNCED, None, None),
        (State.CANCELLED, None, None),
    ],
)
def test_a_later_notice_sets_the_status_its_lifecycle_state_means(
    state: State, status: str | None, components: str | None
) -> None:
    body = incident(
        outgoing("apply_started", text="Started", state=state.value, window=None),
        SETTINGS,
        ["y6ssccsqgy81", "y6ssccsqgy82"],
    )
    expected: dict[str, object] = {"body": "Started"}
    if status:
        expected["status"] = status
    if components:
        expected["components"] = {"y6ssccsqgy81": components, "y6ssccsqgy82": components}
    assert body == {"incident": expected}


def test_a_notice_with_a_flag_reads_its_state_before_the_flag() -> None:
    # `overrun` is shown as "in progress, overrunning": not a state Statuspage knows.
    body = incident(outgoing("overrun", state=State.IN_PROGRESS.value, window=None), SETTINGS, [])
    assert "status" not in body["incident"]


def test_components_are_the_mapped_ids_in_order_once() -> None:
    assert components_for(SETTINGS, ["EoE"], ["prod"]) == [
        "y6ssccsqgy81",
        "y6ssccsqgy82",
        "y6ssccsqgy83",
    ]
    assert components_for(SETTINGS, ["Nobody"], ["prod"]) == ["y6ssccsqgy82", "y6ssccsqgy83"]
    assert components_for(SETTINGS, [], []) == []
    assert components_for(SETTINGS, ["EoE", "EoE"], []) == ["y6ssccsqgy81", "y6ssccsqgy82"]


def test_plain_replaces_tags_and_markdown_links() -> None:
    assert plain("<a href=x>[here](https://evil)</a>") == (
        "\u2039a href=x\u203a[here] (https://evil)\u2039/a\u203a"
    )
    assert plain("a (b) [c]") == "a (b) [c]"


def test_a_refusal_names_the_fix_for_its_code() -> None:
    assert _refused("pg1", 404) == (
        "page pg1 (statuspage.page_id in the policy) does not exist, or the user of "
        "STATUSPAGE_API_KEY has no role on it"
    )
    assert _refused("pg1", 422) == (
        "fix what Statuspage names: the policy's statuspage section (component ids of page "
        "pg1) or the change record's window"
    )
    assert _refused("pg1", 409) == ""
    assert _refused("pg1", 500) == ""


def test_utc_is_written_to_the_second_with_a_z(machine_in_london: None) -> None:
    assert _utc(datetime(2026, 6, 16, 9, 30, 15, 999, tzinfo=LONDON)) == "2026-06-16T08:30:15Z"
    assert _utc(datetime(2026, 1, 13, 9, 30, tzinfo=LONDON)) == "2026-01-13T09:30:00Z"


@st.composite
def windows(draw: st.DrawFn) -> tuple[datetime, datetime]:
    """A window starting on a quarter-hour of a GMT, a BST or a clock-change day, given at
    London's offset then (as a change record in London time reads)."""
    day = draw(st.sampled_from(DAYS))
    start = datetime.combine(day, time(0), UTC) + timedelta(minutes=15 * draw(st.integers(0, 95)))
    end = start + timedelta(minutes=15 * draw(st.integers(1, 24)))
    return start.astimezone(LONDON), end.astimezone(LONDON)


def _read(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.removesuffix("Z") + "+00:00")


@given(window=windows())
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_property_the_maintenance_is_scheduled_at_the_instants_meant(
    window: tuple[datetime, datetime], machine_in_london: None
) -> None:
    out = incident(outgoing(window=window), SETTINGS, ["y6ssccsqgy81"])["incident"]
    # Compared in UTC: Python never finds a repeated wall time (01:30 on 25 October) equal to
    # a time in another zone (PEP 495), whatever instant it is.
    assert _read(out["scheduled_for"]) == window[0].astimezone(UTC)
    assert _read(out["scheduled_until"]) == window[1].astimezone(UTC)
