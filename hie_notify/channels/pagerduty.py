"""PagerDuty change events (Events API v2): the deployment shows beside incidents.

Change events page nobody and have no de-duplication key: each accepted POST is a new entry.
The ledger keeps one delivery per stage, so a re-run sends nothing already accepted; a retry
after a failure whose outcome is unknown may duplicate, which is accepted rather than block.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from hie_notify import http
from hie_notify.channels import Delivery, Outgoing
from hie_notify.channels.api import Api
from hie_notify.masking import Masker

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
