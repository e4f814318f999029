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
from hie_notify.limits import instant_problem

ENTRY_VERSION = 2
# The fingerprint `hie-notify announce` records for a notice given without a plan. A plan's
# fingerprint always starts "sha256:", so no plan can equal it; only the notifier's own ledger
# entries carry it (the gate's plan_differences says what such a notice covers).
PLANLESS = "planless"
# The change types of DESIGN.md; the policy model takes its list from here.
CHANGE_TYPES = (
    "emergency_fix",
    "planned_infra_update",
    "application_update",
    "scheduled_maintenance",
    "iam_permission_change",
    "cost_optimization",
)


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
        """An entry read back from a ledger; InputError naming the line and the field otherwise.

        Values are never repeated in the message: a damaged ledger may hold anything, a token
        included."""
        if not isinstance(data, dict):
            raise InputError(f"{where}: expected a ledger entry object")
        try:
            delivered = _instant(data["delivered_at"], "delivered_at", where)
            assert delivered is not None
            start = _instant(data.get("window_start"), "window_start", where)
            end = _instant(data.get("window_end"), "window_end", where)
            if (start is None) != (end is None):
                raise InputError(f"{where}: window_start and window_end: expected both or neither")
            change_type = data["change_type"]
            if change_type is not None and change_type not in CHANGE_TYPES:
                raise InputError(
                    f"{where}: change_type: expected one of {', '.join(CHANGE_TYPES)} or null"
                )
            resources = data["resources"]
            if not isinstance(resources, list) or not all(
                isinstance(r, list) and len(r) == 2 and all(isinstance(p, str) for p in r)
                for r in resources
            ):
                raise InputError(f"{where}: resources: expected a list of [address, action] pairs")
            extra = data.get("extra") or {}
            if not isinstance(extra, dict):
                raise InputError(f"{where}: extra: expected an object")
            if not all(isinstance(v, (str, int, float, bool)) for v in extra.values()):
                raise InputError(f"{where}: extra: expected an object of plain values")
            receipt = data.get("receipt") or {}
            if not isinstance(receipt, dict) or not all(
                isinstance(v, (str, int, float, bool)) for v in receipt.values()
            ):
                raise InputError(f"{where}: receipt: expected an object of plain values")
            text = {name: _text(data[name], name, where) for name in _TEXT_FIELDS}
            return cls(
                change_id=text["change_id"],
                stage=text["stage"],
                audience=text["audience"],
                channel=text["channel"],
                recipient=text["recipient"],
                fingerprint=text["fingerprint"],
                change_type=change_type,
                service_impacting=bool(data["service_impacting"]),
                resources=tuple((a, b) for a, b in resources),
                delivered_at=delivered,
                message_id=text["message_id"],
                idempotency_key=text["idempotency_key"],
                emergency=bool(data.get("emergency", False)),
                dry_run=bool(data.get("dry_run", False)),
                categories=_names(data.get("categories"), "categories", where),
                impacting_categories=_names(
                    data.get("impacting_categories"), "impacting_categories", where
                ),
                # As written (checked above): the ledger's seal covers these exact strings.
                window_start=str(data.get("window_start") or ""),
                window_end=str(data.get("window_end") or ""),
                extra={str(k): str(v) for k, v in extra.items()},
                receipt={str(k): str(v) for k, v in receipt.items()},
                prev=_optional_text(data.get("prev"), "prev", where),
                digest=_optional_text(data.get("digest"), "digest", where),
                mac=_optional_text(data.get("mac"), "mac", where),
            )
        except KeyError as exc:
            raise InputError(f"{where}: ledger entry has no {exc.args[0]!r}") from None


_TEXT_FIELDS = (
    "change_id",
    "stage",
    "audience",
    "channel",
    "recipient",
    "fingerprint",
    "message_id",
    "idempotency_key",
)


def _text(value: object, name: str, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(f"{where}: {name}: expected a string")
    return str(value)


def _optional_text(value: object, name: str, where: str) -> str:
    return "" if value is None or value == "" else _text(value, name, where)


def _instant(value: object, name: str, where: str) -> datetime | None:
    """An aware time within the range the tool computes with; None for a missing window."""
    if value in (None, "") and name != "delivered_at":
        return None
    expected = "expected an ISO 8601 time with offset, like 2026-12-01T20:00:00+00:00"
    if not isinstance(value, str) or len(value) > 40:
        raise InputError(f"{where}: {name}: {expected}")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{where}: {name}: {expected}") from None
    if when.tzinfo is None:
        raise InputError(f"{where}: {name}: has no offset ({expected})")
    problem = instant_problem(when)
    if problem:
        raise InputError(f"{where}: {name}: {problem}")
    return when


def _names(value: object, name: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where}: {name}: expected a list of change type names")
    return tuple(value)


PHASES = ("pre_deployment", "during", "post_deployment")


@dataclass(frozen=True)
class Audience:
    id: str  # "slack:#devops", "customer:EoE", "stakeholders:business", "meeting:Wednesday..."
    kind: str  # internal | customer | stakeholder | meeting | contact
    label: str
    time_zone: str
    phases: frozenset[str]
    minimum: NoticePeriod
    recommended: NoticePeriod
    change_types: tuple[str, ...]
    slack_channel: str | None = None
    emails: tuple[str, ...] = ()
    # A direct contact's (kind `contact`): the resources (addresses) that concern them.
    resources: tuple[str, ...] = ()

    @property
    def external(self) -> bool:
        return self.kind in ("customer", "stakeholder", "contact")


@dataclass(frozen=True)
class Audiences:
    audiences: tuple[Audience, ...]
    problems: tuple[str, ...]  # required audiences that cannot be worked out

    def for_phase(self, phase: str) -> list[Audience]:
        return [a for a in self.audiences if phase in a.phases]
