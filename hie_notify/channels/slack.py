"""Slack through slack-sdk: one parent message per change and channel, later stages as replies
in its thread, and the parent refreshed in place (chat.update) to show the current state.

Slack has no idempotency key for posting, so every post carries the delivery's key in its
message metadata; after a server error or a dropped connection the channel looks for that key
before it posts again, and a post that did go through is never sent twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from hie_notify import progress
from hie_notify.channels import Delivery, Outgoing, slack_blocks, thread_parent
from hie_notify.errors import InputError, ServiceError
from hie_notify.render import escape_slack

DEFAULT_API = "https://slack.com/api/"
EVENT_TYPE = "hie_notify_notice"
# After a failed post, how far back to look for it: the newest 2 x 100 messages of the channel
# (or thread). A post that went through seconds ago is among them unless the channel is flooded.
LOOKBACK_PAGES = 2
LOOKBACK_PAGE_SIZE = 100
BROADCAST_STAGES = ("apply_failed", "rollback_started", "rollback_failed", "complete")


# Slack's answers that mean the token itself is not usable, and what to do about each.
TOKEN_ERRORS = {
    "invalid_auth": "is not a valid token for this workspace",
    "not_authed": "was not sent (it is empty)",
    "token_expired": "has expired: rotate it, or turn token rotation off and reinstall the app",
    "token_revoked": "was revoked: reinstall the app to the workspace",
    "account_inactive": "belongs to a deactivated user or an app that was removed",
    "no_permission": "may not do this (a workspace token must be a member of the channel)",
}
_FIX = "set SLACK_BOT_TOKEN to the app's Bot User OAuth Token (xoxb-..., OAuth & Permissions)"


def refusal(channel: str, status: int, data: Mapping[str, Any]) -> str:
    """Why Slack refused a message, and the fix: the scope it asked for, the variable that
    holds the token (never the token), or what the channel needs."""
    error = str(data.get("error") or f"HTTP {status}")[:80]
    head = f"Slack refused the message for {channel}: {error}"
    if error == "missing_scope":
        needed = str(data.get("needed") or "")[:120] or "a scope Slack did not name"
        provided = str(data.get("provided") or "")[:300]
        return (
            f"{head}: the token in SLACK_BOT_TOKEN lacks the {needed} scope"
            + (f" (it has {provided})" if provided else "")
            + "; add it under the app's OAuth & Permissions, Bot Token Scopes, reinstall the "
            "app, and put the new token in SLACK_BOT_TOKEN"
        )
    if error in TOKEN_ERRORS:
        return f"{head}: the token in SLACK_BOT_TOKEN {TOKEN_ERRORS[error]}; {_FIX}"
    if error == "not_in_channel":
        return f"{head} (invite the app to the channel: /invite @app in {channel})"
    if error == "channel_not_found":
        return (
            f"{head}: no channel {channel} that the app can see (check the policy's channel "
            "name; a private channel must invite the app first)"
        )
    if error == "is_archived":
        return f"{head}: the channel is archived (name another in the policy)"
    return head


def rate_limit_handler(max_retries: int) -> Any:
    """slack-sdk's handler for 429s (it waits Retry-After), saying how long it waits."""
    from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

    class Announcing(RateLimitErrorRetryHandler):
        def prepare_for_next_attempt(self, **kwargs: Any) -> None:
            response = kwargs.get("response")
            wait = 1.0
            if response is not None:
                headers = {str(k).lower(): v for k, v in response.headers.items()}
                value = headers.get("retry-after")
                raw = str(value[0] if isinstance(value, list) and value else value or "1")
                try:
                    wait = float(raw)
                except (TypeError, ValueError):
                    wait = 1.0
            with progress.waiting(wait, "Slack is rate-limiting (HTTP 429, Retry-After)"):
                super().prepare_for_next_attempt(**kwargs)  # it sleeps Retry-After

    return Announcing(max_retry_count=max_retries)


class SlackChannel:
    kind = "slack"

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_API,
        *,
        max_retries: int = 3,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        from slack_sdk import WebClient
        from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

        base_url = base_url if base_url.endswith("/") else base_url + "/"
        # Posting retries only 429s on its own (Slack did not process them); after a server
        # error or a dropped connection we look for the message before posting again.
        self._post_client = WebClient(
            token=token,
            base_url=base_url,
            timeout=20,
            retry_handlers=[rate_limit_handler(max_retries)],
        )
        # Reads and in-place updates are safe to repeat.
        self._client = WebClient(
            token=token,
            base_url=base_url,
            timeout=20,
            retry_handlers=[
                ConnectionErrorRetryHandler(max_retry_count=2),
                rate_limit_handler(max_retries),
            ],
        )
        self.max_retries = max_retries
        self.sleep = sleep or time.sleep  # looked up now, so tests can replace it
        self._channel_ids: dict[str, str] = {}

    def __repr__(self) -> str:
        return "SlackChannel()"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SlackChannel:
        return cls(env["SLACK_BOT_TOKEN"], env.get("SLACK_API_URL") or DEFAULT_API)

    def send(self, outgoing: Outgoing) -> Delivery:
        audience = outgoing.rendered.audience
        name = audience.slack_channel
        if not name:
            raise InputError(f"{audience.id}: no Slack channel to post to")
        payload = slack_blocks.payload(
            outgoing.rendered, name, alert=outgoing.alert, ack_token=outgoing.ack_token
        )
        payload["metadata"] = {
            "event_type": EVENT_TYPE,
            "event_payload": {
                "key": outgoing.key,
                "change": outgoing.change_id,
                "stage": outgoing.stage,
            },
        }
        parent = thread_parent(outgoing.history, "slack") if outgoing.stage != "announce" else None
        parent_ts = None
        if parent is not None:
            channel_id, parent_ts = parent.message_id.split(":", 1)
            payload["channel"] = channel_id
            payload["thread_ts"] = parent_ts
            if outgoing.stage in BROADCAST_STAGES:
                payload["reply_broadcast"] = True
        channel_id, ts = self._post(payload, parent_ts)
        note = ""
        if parent_ts is not None and outgoing.parent is not None:
            note = self._refresh_parent(channel_id, parent_ts, outgoing)
        # The delivery counts from the time this process saw Slack accept it (the caller's
        # clock), never from the `ts` the far side reports: `ts` is kept only as a receipt.
        receipt = {"channel_id": channel_id, "ts": ts}
        permalink = self._permalink(channel_id, ts)
        if permalink:
            receipt["permalink"] = permalink
        return Delivery("slack", name, f"{channel_id}:{ts}", note, receipt)

    def _permalink(self, channel_id: str, ts: str) -> str:
        """The message's link (chat.getPermalink), for people checking the receipt; a Slack that
        cannot give one leaves it out (the channel id and ts still identify the message)."""
        from slack_sdk.errors import SlackApiError

        try:
            response = self._client.chat_getPermalink(channel=channel_id, message_ts=ts)
        except (SlackApiError, OSError):
            return ""
        return str(response.get("permalink") or "")

    def _post(self, payload: dict[str, Any], thread_ts: str | None) -> tuple[str, str]:
        from slack_sdk.errors import SlackApiError

        key = payload["metadata"]["event_payload"]["key"]
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                response = self._post_client.chat_postMessage(**payload)
                return str(response["channel"]), str(response["ts"])
            except SlackApiError as exc:
                status = exc.response.status_code
                data = exc.response.data if isinstance(exc.response.data, dict) else {}
                if status == 429:
                    raise ServiceError(
                        f"Slack still rate-limiting {payload['channel']} after "
                        f"{self.max_retries} retries"
                    ) from None
                if status < 500:
                    raise InputError(refusal(payload["channel"], status, data)) from None
                last = f"HTTP {status}"
            except OSError as exc:  # URLError, connection reset, timeout
                last = type(exc).__name__
            found = self._find_posted(payload["channel"], key, thread_ts)
            if found is not None:
                return found
            if attempt < self.max_retries:
                wait = min(2.0**attempt, 20.0)
                with progress.waiting(wait, f"Slack, posting to {payload['channel']} ({last})"):
                    self.sleep(wait)
        raise ServiceError(
            f"Slack still failing for {payload['channel']} after {self.max_retries} retries "
            f"({last})"
        )

    def _find_posted(self, channel: str, key: str, thread_ts: str | None) -> tuple[str, str] | None:
        """The (channel id, ts) of a message already carrying `key`, if Slack has one.

        The search is by the idempotency key in the message metadata, over the newest messages
        of the channel (or of the thread): no time window, so it does not depend on this
        machine's clock, the injected `--now` and Slack's clock agreeing.
        """
        from slack_sdk.errors import SlackApiError

        try:
            channel_id = self._channel_id(channel)
            if channel_id is None:
                return None
            cursor: str | None = None
            for _ in range(LOOKBACK_PAGES):
                if thread_ts is not None:
                    response = self._client.conversations_replies(
                        channel=channel_id,
                        ts=thread_ts,
                        include_all_metadata=True,
                        limit=LOOKBACK_PAGE_SIZE,
                        cursor=cursor,
                    )
                else:
                    response = self._client.conversations_history(
                        channel=channel_id,
                        include_all_metadata=True,
                        limit=LOOKBACK_PAGE_SIZE,
                        cursor=cursor,
                    )
                for message in response.get("messages") or []:
                    meta = message.get("metadata") or {}
                    if (
                        meta.get("event_type") == EVENT_TYPE
                        and (meta.get("event_payload") or {}).get("key") == key
                    ):
                        return channel_id, str(message["ts"])
                cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    break
        except (SlackApiError, OSError):
            return None
        return None

    def _channel_id(self, channel: str) -> str | None:
        """Slack reads history by channel id; posts may name the channel."""
        if not channel.startswith("#"):
            return channel
        name = channel[1:]
        if name in self._channel_ids:
            return self._channel_ids[name]
        cursor = None
        for _ in range(20):
            response = self._client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=200,
                cursor=cursor,
            )
            for ch in response.get("channels") or []:
                self._channel_ids[str(ch.get("name"))] = str(ch.get("id"))
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if name in self._channel_ids or not cursor:
                break
        return self._channel_ids.get(name)

    def _refresh_parent(self, channel_id: str, parent_ts: str, outgoing: Outgoing) -> str:
        """Show the change's current state on the parent message; a failure here is a note."""
        from slack_sdk.errors import SlackApiError

        assert outgoing.parent is not None
        payload = slack_blocks.payload(outgoing.parent, channel_id)
        status = escape_slack(outgoing.state.upper())
        payload["blocks"].insert(
            0,
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"*Status:* {status}"}]},
        )
        payload["blocks"] = payload["blocks"][: slack_blocks.BLOCK_LIMIT]
        try:
            self._client.chat_update(
                channel=channel_id, ts=parent_ts, text=payload["text"], blocks=payload["blocks"]
            )
        except (SlackApiError, OSError) as exc:
            return f"the parent message could not be updated ({type(exc).__name__})"
        return ""
