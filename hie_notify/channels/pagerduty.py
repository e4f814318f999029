"""PagerDuty change events (Events API v2): the deployment shows beside incidents.

Change events page nobody and have no de-duplication key: each accepted POST is a new entry.
The ledger keeps one delivery per stage, so a re-run sends nothing already accepted; a retry
after a failure whose outcome is unknown may duplicate, which is accepted rather than block.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from hie_notify import http
from hie_notify.channels import Delivery, Outgoing
from hie_notify.channels.api import Api
from hie_notify.masking import Masker
from hie_notify.records import Entry

BASE = "https://events.pagerduty.com/v2"
PERMISSIONS = (
    "PAGERDUTY_ROUTING_KEY must be the integration key of an Events API v2 integration on the "
    "service (a ruleset key, starting with R, is refused for change events)"
)
SUMMARY_LIMIT = 1024
LINK_TEXT = {
    "merge_request": "Merge request",
    "run": "HCP Terraform run",
    "jira": "Jira ticket",
    "pipeline": "Pipeline",
}


def event(
    outgoing: Outgoing,
    routing_key: str,
    links: Mapping[str, str],
    now: datetime,
    source: str,
) -> dict[str, Any]:
    message = outgoing.rendered
    return {
        "routing_key": routing_key,
        "payload": {
            "summary": message.subject[:SUMMARY_LIMIT],
            "timestamp": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "source": source,
            "custom_details": {
                "change_id": outgoing.change_id,
                "stage": outgoing.stage,
                "state": outgoing.state,
                "idempotency_key": outgoing.key,
            },
        },
        "links": [
            {"href": url, "text": LINK_TEXT[k]}
            for k, url in links.items()
            if k in LINK_TEXT and url.startswith(("https://", "http://"))
        ],
    }


def _refused(code: int, words: str) -> str:
    """The fix for a refused event: PagerDuty answers 400 for a routing key it does not know
    (or a ruleset key) as for a malformed event, and says which in `errors`."""
    if code == 400 and "routing" in words.lower():
        return PERMISSIONS
    if code == 404:
        return (
            "PAGERDUTY_EVENTS_URL must be the Events API v2 base, e.g. "
            "https://events.pagerduty.com/v2 (EU: https://events.eu.pagerduty.com/v2)"
        )
    return ""


class PagerdutyChannel:
    kind = "pagerduty"

    def __init__(
        self,
        routing_key: str,
        links: Mapping[str, str],
        masker: Masker,
        now: datetime,
        source: str,
        *,
        base: str = BASE,
        session: Any = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._routing_key = routing_key
        self.links = {k: masker(v) for k, v in links.items()}
        self.now = now
        self.source = source
        self.api = Api(
            "PagerDuty",
            base,
            {},
            permissions=PERMISSIONS,
            credential="PAGERDUTY_ROUTING_KEY",
            rejected=PERMISSIONS,
            refused=_refused,
            secrets=(routing_key,),
            session=session,
            sleep=sleep,
        )

    def __repr__(self) -> str:  # the routing key is a secret
        return "PagerdutyChannel()"

    def trigger(self, summary: str, dedup_key: str, details: Mapping[str, str]) -> Delivery:
        """An incident (Events API v2 `trigger`): it pages the service's on-call. The
        `dedup_key` makes a repeat the same incident, not a new one."""
        body = {
            "routing_key": self._routing_key,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": {
                "summary": summary[:SUMMARY_LIMIT],
                "source": self.source,
                "severity": "warning",
                "timestamp": self.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "custom_details": dict(details),
            },
        }
        response = self.api.call("POST", "/enqueue", what="open the incident", body=body)
        return Delivery("pagerduty", "PagerDuty service", dedup_key, receipt=http.receipt(response))

    def send(self, outgoing: Outgoing) -> Delivery:
        body = event(outgoing, self._routing_key, self.links, self.now, self.source)
        response = self.api.call("POST", "/change/enqueue", what="send the change event", body=body)
        return Delivery(
            "pagerduty", "PagerDuty service", outgoing.key, receipt=http.receipt(response)
        )


# Incidents (Events API v2 alert events on /v2/enqueue): they page whoever is on call for the
# service the change type's routing key belongs to. The dedup_key is the change id and the
# event, so PagerDuty itself folds a repeat into the open incident; the ledger keeps one
# delivery per trigger and per resolve, so a re-run sends neither again.
SEVERITY = {
    "announce": "critical",
    "apply_failed": "error",
    "rollback_failed": "critical",
    "overrun": "warning",
}
DEDUP_LIMIT = 255


def dedup_key(change_id: str, stage: str) -> str:
    return f"{change_id}/{stage}"[:DEDUP_LIMIT]


def incident_events(
    outgoing: Outgoing,
    routing_key: str,
    links: Mapping[str, str],
    now: datetime,
    source: str,
    incidents: Sequence[Entry] = (),
) -> list[dict[str, Any]]:
    """The trigger for an alerting stage, or a resolve for each incident still open (from the
    audience's history and `incidents`, those recorded elsewhere)."""
    from hie_notify.channels.alerts import RESOLVE_STAGES, open_incidents

    if outgoing.stage in RESOLVE_STAGES:
        return [
            {
                "routing_key": routing_key,
                "event_action": "resolve",
                "dedup_key": dedup_key(outgoing.change_id, stage),
            }
            for stage in open_incidents([*outgoing.history, *incidents])
        ]
    change = event(outgoing, routing_key, links, now, source)
    change["payload"]["severity"] = SEVERITY.get(outgoing.stage, "error")
    change["payload"]["custom_details"]["event"] = outgoing.stage
    return [
        {
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": dedup_key(outgoing.change_id, outgoing.stage),
            **{k: v for k, v in change.items() if k != "routing_key"},
        }
    ]


def incident_payload(
    outgoing: Outgoing,
    variable: str,
    links: Mapping[str, str],
    now: datetime,
    source: str,
    incidents: Sequence[Entry] = (),
) -> dict[str, Any]:
    """What the outbox writes in place of the incident events: the key's variable, never it."""
    return {"events": incident_events(outgoing, f"${variable}", links, now, source, incidents)}


class PagerdutyIncidentChannel:
    kind = "pagerduty_incident"

    def __init__(
        self,
        variable: str,
        routing_key: str,
        links: Mapping[str, str],
        masker: Masker,
        now: datetime,
        source: str,
        *,
        base: str = BASE,
        session: Any = None,
        sleep: Callable[[float], None] | None = None,
        incidents: Sequence[Entry] = (),
    ) -> None:
        self._routing_key = routing_key
        self.links = {k: masker(v) for k, v in links.items()}
        self.now = now
        self.source = source
        self.incidents = tuple(incidents)
        fix = (
            f"{variable} must be the integration key of an Events API v2 integration on the "
            "on-call service that should be paged"
        )
        self.api = Api(
            "PagerDuty",
            base,
            {},
            permissions=fix,
            credential=variable,
            rejected=fix,
            refused=lambda code, words: fix if code == 400 and "routing" in words.lower() else "",
            secrets=(routing_key,),
            session=session,
            sleep=sleep,
        )

    def __repr__(self) -> str:  # the routing key is a secret
        return "PagerdutyIncidentChannel()"

    def send(self, outgoing: Outgoing) -> Delivery:
        events = incident_events(
            outgoing, self._routing_key, self.links, self.now, self.source, self.incidents
        )
        receipts: dict[str, str] = {}
        for body in events:
            action = body["event_action"]
            response = self.api.call("POST", "/enqueue", what=f"{action} the incident", body=body)
            receipts = {**http.receipt(response), "event_action": action}
        # PagerDuty answers each event with its dedup_key: the receipt lists them all.
        receipts["dedup_keys"] = " ".join(e["dedup_key"] for e in events)
        return Delivery("pagerduty_incident", "PagerDuty on-call", outgoing.key, receipt=receipts)
