"""Channels deliver messages that are already rendered; one module per channel.

A channel is anything with `kind` and `send(message, key) -> Delivery`. `key` is the delivery's
idempotency key, for channels that can use one. Which channel serves an audience is chosen here,
from the policy's audience and the credentials in the environment; a channel without
credentials is replaced by the outbox, which writes what the real one would have received.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from hie_notify.render import Rendered


@dataclass(frozen=True)
class Delivery:
    channel: str  # slack | email | teams | webhook | gitlab | outbox
    recipient: str
    message_id: str
    delivered_at: datetime | None  # the service's own timestamp, where it gives one


class Channel(Protocol):
    kind: str

    def send(self, message: Rendered, key: str) -> Delivery: ...
