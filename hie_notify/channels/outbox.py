"""The embedded default: every message written as a file, in the form its real channel takes.

Slack audiences get the `chat.postMessage` JSON payload, customers and stakeholders an RFC 5322
`.eml`, meetings and merge-request notes Markdown. Files are laid out as
`OUTBOX/CHANGE/STAGE/AUDIENCE.EXT`, and never overwritten: a second message for the same
audience and stage gets a numbered name.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from hie_notify.channels import Delivery, Outgoing, email_message, slack_blocks
from hie_notify.render import escape_markdown

_SLUG = re.compile(r"[^A-Za-z0-9._]+")


def slug(text: str) -> str:
    """A file name part: `slack:#devops` -> `slack-devops`."""
    return _SLUG.sub("-", text).strip("-.") or "x"


class Outbox:
    kind = "outbox"

    def __init__(self, root: Path, change_id: str, now: datetime, sender: str) -> None:
        self.root = root
        self.change_id = change_id
        self.now = now
        self.sender = sender
        # Integrations (Jira, Statuspage, PagerDuty): their request bodies, set by Channels.
        self.payloads: Mapping[str, Callable[[Outgoing], Any]] = {}

    def send(self, outgoing: Outgoing) -> Delivery:
        """Write what the configured channel (`outgoing.channel_kind`) would have received."""
        message = outgoing.rendered
        audience = message.audience
        kind = outgoing.channel_kind
        stem = slug(audience.id)
        recipient = audience.label
        if kind == "slack" and audience.slack_channel:
            ext = "json"
            payload = slack_blocks.payload(
                message, audience.slack_channel, alert=outgoing.alert, ack_token=outgoing.ack_token
            )
            data = json.dumps(payload, indent=2).encode()
            recipient = audience.slack_channel
        elif kind == "email":
            ext = "eml"
            data = bytes(email_message.build(outgoing, self.sender, self.now))
            recipient = ", ".join(audience.emails) or audience.label
        elif kind == "teams":
            from hie_notify.channels.teams import card

            ext, stem = "json", stem + ".teams"
            data = json.dumps(card(outgoing), indent=2).encode()
        elif kind == "webhook":
            from hie_notify.channels.webhook import body

            ext, stem = "json", stem + ".webhook"
            data = json.dumps(body(outgoing), indent=2, sort_keys=True).encode()
        elif kind in self.payloads:
            ext, stem = "json", stem + "." + kind
            data = json.dumps(self.payloads[kind](outgoing), indent=2, sort_keys=True).encode()
        else:
            ext = "md"
            title = escape_markdown(message.subject)
            data = f"# {title}\n\n{message.body('markdown')}".encode()
        folder = self.root / slug(self.change_id) / slug(message.stage)
        path = self._write_new(folder, stem, ext, data)
        return Delivery("outbox", recipient, str(path), receipt={"path": str(path)})

    @staticmethod
    def _write_new(folder: Path, stem: str, ext: str, data: bytes) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        n = 1
        while True:
            name = f"{stem}.{ext}" if n == 1 else f"{stem}.{n}.{ext}"
            path = folder / name
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                n += 1
                continue
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return path
