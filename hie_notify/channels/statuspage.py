"""Atlassian Statuspage scheduled maintenance for a customer-facing, service-impacting change.

Created at the announcement (on the components the policy maps to the affected customers or
environments), moved when the window moves, in progress from the apply's start (and through a
failure and a rollback), verifying once rolled back, completed at `complete`, deleted on
`cancel` (a maintenance that will not happen should not stay on the page; subscribers hear the
cancellation through their own channels): which one follows the change's lifecycle state.
Statuspage has no idempotency key: the incident carries `metadata.hie.change_id`, found again
before creating one.

Bodies are plain text: `<`, `>` and Markdown link brackets from a merge request or a plan are
replaced so the page renders nothing from them as markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from hie_notify.channels import Delivery, Outgoing, thread_parent
from hie_notify.channels.api import Api, arr, obj, once
from hie_notify.errors import ServiceError
from hie_notify.lifecycle import State
from hie_notify.policy.model import Statuspage

BASE = "https://api.statuspage.io/v1"
PERMISSIONS = (
    "STATUSPAGE_API_KEY must be the API key of a user with a role on this page that may "
    "create and update scheduled maintenance"
)
NAME_LIMIT, BODY_LIMIT = 255, 25_000
S = State
# The maintenance's status (and its components') for the change's lifecycle state.
IN_PROGRESS = frozenset({S.IN_PROGRESS, S.MITIGATING, S.FAILED, S.ROLLING_BACK, S.ROLLBACK_FAILED})
VERIFYING = frozenset({S.ROLLED_BACK})
COMPLETED = frozenset({S.COMPLETED, S.WITHDRAWN})
_STATES = {s.value: s for s in State}


def plain(text: str) -> str:
    """Text the page shows as it is: no HTML tag, no Markdown link."""
    return text.replace("<", "\u2039").replace(">", "\u203a").replace("](", "] (")


def components_for(
    settings: Statuspage, customers: Sequence[str], environments: Sequence[str]
) -> list[str]:
    """The component ids the policy maps to these customers or environments, in order, once."""
    out: list[str] = []
    for name in (*customers, *environments):
        for cid in settings.components.get(name, []):
            if cid not in out:
                out.append(cid)
    return out


def incident(
    outgoing: Outgoing, settings: Statuspage, component_ids: Sequence[str]
) -> dict[str, Any]:
    """The `incident` body for this stage (the scheduling fields at the announcement)."""
    message = outgoing.rendered
    body = plain(message.body("text").strip())[:BODY_LIMIT]
    out: dict[str, Any] = {"body": body}
    stage = outgoing.stage
    if stage == "announce":
        assert outgoing.window is not None
        start, end = outgoing.window
        out.update(
            {
                "name": plain(message.subject)[:NAME_LIMIT],
                "status": "scheduled",
                "scheduled_for": _utc(start),
                "scheduled_until": _utc(end),
                "scheduled_remind_prior": settings.remind_prior,
                "scheduled_auto_in_progress": settings.auto_in_progress,
                "scheduled_auto_completed": settings.auto_completed,
                "auto_transition_to_maintenance_state": settings.auto_in_progress,
                "auto_transition_to_operational_state": settings.auto_completed,
                "auto_transition_deliver_notifications_at_start": settings.deliver_notifications,
                "auto_transition_deliver_notifications_at_end": settings.deliver_notifications,
                "deliver_notifications": settings.deliver_notifications,
                "component_ids": list(component_ids),
                "metadata": {"hie": {"change_id": outgoing.change_id}},
                "impact_override": "maintenance",
            }
        )
        return {"incident": out}
    state = _STATES.get(outgoing.state)
    if state in COMPLETED:
        out["status"] = "completed"
        out["components"] = {cid: "operational" for cid in component_ids}
    elif state in VERIFYING:
        out["status"] = "verifying"
    elif state in IN_PROGRESS:
        out["status"] = "in_progress"
        out["components"] = {cid: "under_maintenance" for cid in component_ids}
    return {"incident": out}


def _refused(page: str, code: int) -> str:
    """The fix for a refusal other than 401/403."""
    if code == 404:
        return (
            f"page {page} (statuspage.page_id in the policy) does not exist, or the user of "
            "STATUSPAGE_API_KEY has no role on it"
        )
    if code == 422:
        return (
            "fix what Statuspage names: the policy's statuspage section (component ids of page "
            f"{page}) or the change record's window"
        )
    return ""


def _receipt(incident_id: str, action: str) -> dict[str, str]:
    return {"incident_id": incident_id, "action": action}


def _utc(when: Any) -> str:
    from datetime import UTC

    return str(when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


class StatuspageChannel:
    kind = "statuspage"

    def __init__(self, api: Api, settings: Statuspage, component_ids: Sequence[str]) -> None:
        self.api = api
        self.settings = settings
        self.component_ids = list(component_ids)
        self.page = f"/pages/{quote(settings.page_id, safe='')}/incidents"

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        settings: Statuspage,
        component_ids: Sequence[str],
        **kwargs: Any,
    ) -> StatuspageChannel:
        page = settings.page_id
        api = Api(
            "Statuspage",
            env.get("STATUSPAGE_API_URL") or BASE,
            {"Authorization": f"OAuth {env['STATUSPAGE_API_KEY']}"},
            permissions=PERMISSIONS,
            credential="STATUSPAGE_API_KEY",
            rejected="it must be the API key of a user of the organization that owns page "
            f"{page} (Statuspage: your avatar, API info), not revoked",
            refused=lambda code, words: _refused(page, code),
            **kwargs,
        )
        return cls(api, settings, component_ids)

    def find(self, change_id: str) -> str | None:
        """The open maintenance this tool made for the change (by its metadata), if any."""
        response = self.api.call(
            "GET",
            self.page,
            what="search the page's incidents",
            params={"q": change_id, "limit": "100"},
        )
        for item in arr(response, "Statuspage: search the page's incidents"):
            meta = (item.get("metadata") or {}).get("hie") or {}
            if meta.get("change_id") == change_id and item.get("status") != "completed":
                return str(item["id"])
        return None

    def send(self, outgoing: Outgoing) -> Delivery:
        body = incident(outgoing, self.settings, self.component_ids)
        parent = thread_parent(outgoing.history, "statuspage")
        looked = parent is None
        known = parent.message_id if parent else self.find(outgoing.change_id)
        recipient = f"Statuspage {self.settings.page_id}"
        if outgoing.stage == "announce":
            if known:  # announced again: the window (or the text) moved
                self._patch(known, body, "move the scheduled maintenance")
                return Delivery("statuspage", recipient, known, receipt=_receipt(known, "moved"))
            created = once(
                self.api,
                lambda: self.find(outgoing.change_id),
                lambda: self._create(body),
                looked=looked,
            )
            return Delivery("statuspage", recipient, created, receipt=_receipt(created, "created"))
        if not known:
            return Delivery(
                "statuspage",
                recipient,
                "none",
                receipt={"action": "none"},
                note="no scheduled maintenance of this change is on the page: nothing to update",
            )
        if outgoing.stage == "cancelled":
            self.api.call(
                "DELETE",
                f"{self.page}/{quote(known, safe='')}",
                what="delete the cancelled maintenance",
                expect=(404,),
            )
            return Delivery("statuspage", recipient, known, receipt=_receipt(known, "deleted"))
        self._patch(known, body, f"update the maintenance ({outgoing.stage})")
        return Delivery("statuspage", recipient, known, receipt=_receipt(known, "updated"))

    def _create(self, body: Mapping[str, Any]) -> str:
        what = "create the scheduled maintenance"
        response = self.api.call("POST", self.page, what=what, body=body, retries=0)
        created = obj(response, f"Statuspage: {what}").get("id")
        if not created:
            raise ServiceError(f"Statuspage: {what}: the answer has no incident id")
        return str(created)

    def _patch(self, incident_id: str, body: Mapping[str, Any], what: str) -> None:
        self.api.call("PATCH", f"{self.page}/{quote(incident_id, safe='')}", what=what, body=body)
