"""Every message variant (change type x transition x audience kind x what happened before),
drawn by Hypothesis and rendered by the built-in templates: none contradicts the lifecycle it
is told, whatever the combination."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hie_notify.change import ChangeRecord
from hie_notify.durations import NoticePeriod
from hie_notify.policy import Policy
from hie_notify.records import Audience
from hie_notify.render import STAGES, Renderer, context
from hie_notify.stages import planless

NOW = datetime(2026, 12, 1, 10, tzinfo=timezone.utc)
START = datetime(2026, 12, 8, 19, tzinfo=timezone.utc)
KINDS = ("internal", "meeting", "customer", "stakeholder")
FOLLOW_UPS = (*STAGES[1:], "cancelled", "update", "overrun", "reminder")


def _audience(kind: str) -> Audience:
    zero = NoticePeriod("elapsed")
    aid = {"internal": "slack:#devops", "meeting": "meeting:Wednesday meeting"}.get(
        kind, f"{kind}:EoE"
    )
    phases = frozenset({"pre_deployment", "during", "post_deployment"})
    return Audience(aid, kind, "East of England", "Europe/London", phases, zero, zero, ())


@st.composite
def variants(draw: st.DrawFn, policy: Policy) -> tuple[str, Audience, dict[str, Any]]:
    change_type = draw(st.sampled_from(sorted(policy.change_types)))
    stage = draw(st.sampled_from((*STAGES, *FOLLOW_UPS)))
    audience = _audience(draw(st.sampled_from(KINDS)))
    data: dict[str, Any] = {
        "id": "FFAPP-4458",
        "type": change_type,
        "purpose": "Resize the EKS nodes (tf-deployment role)",
        "justification": "A live incident",
    }
    downtime = draw(st.sampled_from([None, "0", "30m"]))
    if downtime is not None:
        data["downtime"] = downtime
    if draw(st.booleans()):
        data["window"] = {"start": START, "end": START + timedelta(hours=2)}
    if draw(st.booleans()):
        data["customer_summary"] = "Larger servers for your analyses"
    if draw(st.booleans()):
        data["rollback"] = "Revert"
    change = ChangeRecord.model_validate(data)
    result = planless(policy, change)
    moved = draw(st.booleans()) and change.window is not None
    # An announcement is also rendered as the Slack parent of a later stage.
    shown_at = (stage, "rollback_succeeded", "complete") if stage == "announce" else (stage,)
    facts = {
        "transition": draw(st.sampled_from(shown_at)),
        "told_before": draw(st.booleans()),
        "rolled_back": draw(st.booleans()),
        "started": draw(st.booleans()),
        "moved_from": {
            "start": (START - timedelta(days=2)).isoformat(),
            "end": (START - timedelta(days=2, hours=-2)).isoformat(),
        }
        if moved
        else None,
    }
    ctx = context(
        policy=policy,
        result=result,
        change=change,
        audience=audience,
        now=NOW,
        links={},
        status={
            "verified_by": "ollie",
            "detail": "",
            "starts_in": "in 2 hours",
            "register_status": "announced",
        },
        run={"id": "run-1", "created_by": "ollie"},
        lifecycle=facts,
    )
    return stage, audience, ctx


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_no_message_contradicts_its_lifecycle(policy: Policy, data: st.DataObject) -> None:
    stage, audience, ctx = data.draw(variants(policy))
    message = Renderer().render(stage, audience, ctx)
    life, change = ctx["lifecycle"], ctx["change"]
    texts = [message.subject, *message.bodies.values()]
    every = "\n".join(texts)
    external = audience.kind in ("customer", "stakeholder")
    if not change["downtime_known"]:
        assert "none expected" not in every and "not expect any interruption" not in every
        assert "not known yet" in every or stage not in ("announce", "reminder")
    if external:
        # never an internal name; the customer-facing description, when there is one
        assert "ollie" not in every and "run-1" not in every
        if change["summary"] != change["purpose"]:
            assert "tf-deployment" not in every
            if stage not in ("update", "overrun"):
                assert "Larger servers for your analyses" in message.bodies["text"]
    if external and life["emergency"]:
        plain = (message.subject + message.bodies["text"]).lower()
        assert "planned" not in plain, (stage, plain)
        assert "not scheduled yet" not in plain
        if life["rolled_back"] and stage in ("rollback_succeeded", "complete"):
            assert "may still affect the service" in plain
            assert "nothing you need to do" not in plain
            assert "running as it was before" not in plain
    if stage == "announce" and ctx["moved"]:
        assert ("has moved from" if external else "rescheduled)") in message.bodies["text"]
    if stage != "announce" or not ctx["moved"]:
        assert "moved from" not in every.lower()
    # The announcement shown again (the Slack parent of a later stage) is not a new try.
    if stage == "announce" and life["transition"] != "announce":
        assert "trying again" not in every.lower() and "try it again" not in every.lower()
