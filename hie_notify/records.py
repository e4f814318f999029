"""Records that several layers share: a delivery recorded in the ledger, an audience.

Plain data: nothing here does I/O or decides anything, and nothing of the project's own
behaviour is imported (only its error type and the notice-period value).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from hie_notify.durations import NoticePeriod
from hie_notify.errors import InputError

ENTRY_VERSION = 2


@dataclass(frozen=True)
class Entry:
    """One delivered notice."""

    change_id: str
    stage: str
    audience: str
    channel: str
    recipient: str
    fingerprint: str
    change_type: str | None
    service_impacting: bool
    resources: tuple[tuple[str, str], ...]
    delivered_at: datetime
    message_id: str
    idempotency_key: str
    emergency: bool = False
    dry_run: bool = False
    categories: tuple[str, ...] = ()
    impacting_categories: tuple[str, ...] = ()
    window_start: str = ""
    window_end: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)
    # What the service returned when it accepted the message (Slack channel id, ts, permalink;
    # SMTP reply and Message-ID; HTTP status and id; GitLab note or issue id).
    receipt: Mapping[str, str] = field(default_factory=dict)
    # The ledger's seal: the digest of the previous entry for the change, this entry's own
    # digest, and an HMAC of it when HIE_LEDGER_KEY is set (hie_notify/ledger/seal.py).
    prev: str = ""
    digest: str = ""
    mac: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["v"] = ENTRY_VERSION
        data["delivered_at"] = self.delivered_at.isoformat()
        data["resources"] = [list(r) for r in self.resources]
        data["categories"] = list(self.categories)
        data["impacting_categories"] = list(self.impacting_categories)
        data["extra"] = dict(self.extra)
        data["receipt"] = dict(self.receipt)
        return data

    @classmethod
    def from_json(cls, data: object, where: str) -> Entry:
        if not isinstance(data, dict):
            raise InputError(f"{where}: expected a ledger entry object")
        try:
            delivered = datetime.fromisoformat(str(data["delivered_at"]))
            if delivered.tzinfo is None:
                raise ValueError("delivered_at has no offset")
            resources = tuple((str(a), str(b)) for a, b in data["resources"])
            return cls(
                change_id=str(data["change_id"]),
                stage=str(data["stage"]),
                audience=str(data["audience"]),
                channel=str(data["channel"]),
                recipient=str(data["recipient"]),
                fingerprint=str(data["fingerprint"]),
                change_type=None if data["change_type"] is None else str(data["change_type"]),
                service_impacting=bool(data["service_impacting"]),
                resources=resources,
                delivered_at=delivered,
                message_id=str(data["message_id"]),
                idempotency_key=str(data["idempotency_key"]),
                emergency=bool(data.get("emergency", False)),
                dry_run=bool(data.get("dry_run", False)),
                categories=tuple(str(c) for c in data.get("categories") or ()),
                impacting_categories=tuple(str(c) for c in data.get("impacting_categories") or ()),
                window_start=str(data.get("window_start") or ""),
                window_end=str(data.get("window_end") or ""),
                extra={str(k): str(v) for k, v in dict(data.get("extra") or {}).items()},
                receipt={str(k): str(v) for k, v in dict(data.get("receipt") or {}).items()},
                prev=str(data.get("prev") or ""),
                digest=str(data.get("digest") or ""),
                mac=str(data.get("mac") or ""),
            )
        except KeyError as exc:
            raise InputError(f"{where}: ledger entry has no {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: malformed ledger entry ({exc})") from None


PHASES = ("pre_deployment", "during", "post_deployment")


@dataclass(frozen=True)
class Audience:
    id: str  # "slack:#devops", "customer:EoE", "stakeholders:business", "meeting:Wednesday..."
    kind: str  # internal | customer | stakeholder | meeting
    label: str
    time_zone: str
    phases: frozenset[str]
    minimum: NoticePeriod
    recommended: NoticePeriod
    change_types: tuple[str, ...]
    slack_channel: str | None = None
    emails: tuple[str, ...] = ()

    @property
    def external(self) -> bool:
        return self.kind in ("customer", "stakeholder")


@dataclass(frozen=True)
class Audiences:
    audiences: tuple[Audience, ...]
    problems: tuple[str, ...]  # required audiences that cannot be worked out

    def for_phase(self, phase: str) -> list[Audience]:
        return [a for a in self.audiences if phase in a.phases]
