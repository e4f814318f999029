"""The Slack `chat.postMessage` payload for a rendered message, within Slack's limits."""

from __future__ import annotations

from typing import Any

from hie_notify.render import Rendered, escape_slack

SECTION_LIMIT = 3000
BLOCK_LIMIT = 50
TEXT_LIMIT = 3000  # the notification text: a summary, not the message
ALERTS = ("<!here>", "<!channel>")  # the only mentions a payload may carry


def _chunks(body: str, limit: int) -> list[str]:
    """Split at blank lines, then at lines, then hard, so no piece exceeds `limit`."""
    out: list[str] = []
    for para in body.split("\n\n"):
        para = para.strip("\n")
        if not para:
            continue
        current = ""
        for line in para.split("\n"):
            while len(line) > limit:
                if current:
                    out.append(current)
                    current = ""
                out.append(line[:limit])
                line = line[limit:]
            candidate = f"{current}\n{line}" if current else line
            if len(candidate) > limit:
                out.append(current)
                current = line
            else:
                current = candidate
        if current:
            out.append(current)
    return out


ACK_ACTION = "hie_ack"  # the Acknowledge button's action_id (handled at /slack/interactions)


def payload(
    message: Rendered,
    channel: str,
    link: str | None = None,
    alert: str = "",
    ack_token: str = "",
) -> dict[str, Any]:
    """Block Kit payload: sections of at most 3,000 characters, at most 50 blocks; with
    `ack_token`, an Acknowledge button whose value is the signed token.

    `alert`: the product's own mention (`<!here>`, `<!channel>`) for an alert, put before the
    notification text and the first section; text from the change is escaped, so only this
    mentions anyone."""
    pieces = _chunks(message.body("slack"), SECTION_LIMIT)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": p}} for p in pieces
    ]
    if len(blocks) > BLOCK_LIMIT:
        blocks = blocks[: BLOCK_LIMIT - 1]
        more = f"…message shortened to fit Slack's {BLOCK_LIMIT}-block limit."
        if link:
            more += f" Full details: <{escape_slack(link)}|here>."
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    text = escape_slack(message.subject)
    if alert in ALERTS:
        text = f"{alert} {text}"
        if blocks and blocks[0]["type"] == "section":
            first = blocks[0]["text"]
            first["text"] = f"{alert} {first['text']}"[:SECTION_LIMIT]
    if ack_token:
        if len(blocks) >= BLOCK_LIMIT:
            blocks = blocks[: BLOCK_LIMIT - 1]
        blocks.append(
            {
                "type": "actions",
                "block_id": "hie_ack",
                "elements": [
                    {
                        "type": "button",
                        "action_id": ACK_ACTION,
                        "text": {"type": "plain_text", "text": "Acknowledge"},
                        "style": "primary",
                        "value": ack_token,
                    }
                ],
            }
        )
    return {
        "channel": channel,
        "text": text[:TEXT_LIMIT],
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }
