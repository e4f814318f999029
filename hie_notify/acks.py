"""Acknowledgement links: signed, personal, expiring; and what the ledger says was acknowledged.

A link is `<HIE_PUBLIC_URL>/ack/<token>`. The token is `payload.mac`: the payload is the claim
(change, announcement key, audience, contact, the reader's zone, expiry, and where the change's
ledger is) as compact JSON, URL-safe base64; the mac is HMAC-SHA256 of it under HIE_ACK_KEY,
URL-safe base64. Nothing in the claim is secret; nothing in it can be changed without the key.
A portal token (`/portal/<customer>/<token>`) is the same, over the customer's name only, so a
new key (rotation) ends every old link at once.

Pure: no I/O, no clock (the caller passes `now`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from hie_notify.errors import InputError
from hie_notify.records import Entry

KEY_VARIABLE = "HIE_ACK_KEY"
URL_VARIABLE = "HIE_PUBLIC_URL"
ACK = "ack"  # the ledger stage of an acknowledgement, an objection, or a resolution
ACKNOWLEDGED = "acknowledged"
OBJECTED = "objected"
RESOLVED = "resolved"
LEDGER = "ledger"  # an announcement's extra: the ledger its answers are recorded in
SLACK = "slack"  # the contact of a Slack button's token: the clicking user is Slack's to say
DECISIONS = (ACKNOWLEDGED, OBJECTED)
MAX_TOKEN = 2048  # a real token is about 300 characters
# How long a link stays valid: until a week after the window ends (a reader may acknowledge a
# change that already happened, for the record), else 30 days from the notice.
AFTER_WINDOW = timedelta(days=7)
WITHOUT_WINDOW = timedelta(days=30)
_ACK_DOMAIN = b"hie-notify ack v1\x00"
_PORTAL_DOMAIN = b"hie-notify portal v1\x00"
_FORM_DOMAIN = b"hie-notify ack form v1\x00"


class TokenError(ValueError):
    """Why a token is refused; the text is shown to the reader, so it names no secret."""


@dataclass(frozen=True)
class Claim:
    change_id: str
    announcement: str  # the announcement's key (what this reader was told)
    audience: str  # audience id, like customer:EoE
    contact: str  # whom the link was sent to
    zone: str  # the reader's time zone (IANA)
    expires: datetime
    ledger: str = ""  # gitlab:mr:IID when the notice came from a merge request pipeline

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "c": self.change_id,
            "k": self.announcement,
            "a": self.audience,
            "p": self.contact,
            "z": self.zone,
            "x": int(self.expires.timestamp()),
        }
        if self.ledger:
            data["l"] = self.ledger
        return data


def ack_key(env: Mapping[str, str]) -> bytes | None:
    """The signing key, or None when HIE_ACK_KEY is not set (then no notice carries a link)."""
    value = env.get(KEY_VARIABLE) or ""
    if not value:
        return None
    if len(value) < 16:
        raise InputError(f"{KEY_VARIABLE}: expected at least 16 characters (a random secret)")
    return value.encode()


def public_url(env: Mapping[str, str]) -> str | None:
    """`receive`'s base URL (HIE_PUBLIC_URL), without a trailing slash; None when not set."""
    value = (env.get(URL_VARIABLE) or "").strip().rstrip("/")
    if not value:
        return None
    if not value.startswith(("https://", "http://")) or any(c in value for c in " <>\"'"):
        raise InputError(
            f"{URL_VARIABLE}: expected the service's base URL, like https://notify.example.org"
        )
    return value


def expiry(now: datetime, window_end: datetime | None) -> datetime:
    if window_end is not None and window_end + AFTER_WINDOW > now:
        return window_end + AFTER_WINDOW
    return now + WITHOUT_WINDOW


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or any(c not in _ALPHABET for c in text):
        raise TokenError("the link is damaged (it was cut or changed)")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("the link is damaged (it was cut or changed)") from None


_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _mac(key: bytes, domain: bytes, payload: str) -> str:
    return _b64(hmac.new(key, domain + payload.encode(), hashlib.sha256).digest())


def sign(key: bytes, claim: Claim) -> str:
    payload = _b64(json.dumps(claim.to_json(), separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_mac(key, _ACK_DOMAIN, payload)}"


def read(key: bytes, token: str, now: datetime) -> Claim:
    """The claim of a token signed with `key` that has not expired; TokenError otherwise."""
    if len(token) > MAX_TOKEN or token.count(".") != 1:
        raise TokenError("the link is damaged (it was cut or changed)")
    payload, mac = token.split(".")
    _unb64(mac)
    if not hmac.compare_digest(mac, _mac(key, _ACK_DOMAIN, payload)):
        raise TokenError(
            "the link was not issued by us, was changed, or was issued before the key changed"
        )
    try:
        data = json.loads(_unb64(payload))
        expires = datetime.fromtimestamp(int(data["x"]), timezone.utc)
        claim = Claim(
            change_id=str(data["c"]),
            announcement=str(data["k"]),
            audience=str(data["a"]),
            contact=str(data["p"]),
            zone=str(data["z"]),
            expires=expires,
            ledger=str(data.get("l") or ""),
        )
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        raise TokenError("the link is damaged (it was cut or changed)") from None
    if now >= claim.expires:
        raise TokenError(f"the link expired on {claim.expires:%Y-%m-%d %H:%M} UTC")
    return claim


def form_token(key: bytes, token: str) -> str:
    """The form's anti-forgery value: bound to the link, so a page for one link cannot post for
    another, and a site without the page cannot post at all."""
    return _mac(key, _FORM_DOMAIN, token)


def form_ok(key: bytes, token: str, given: str) -> bool:
    return hmac.compare_digest(given.encode(), form_token(key, token).encode())


def portal_token(key: bytes, customer: str) -> str:
    return _mac(key, _PORTAL_DOMAIN, customer)


def portal_ok(key: bytes, customer: str, given: str) -> bool:
    return len(given) <= MAX_TOKEN and hmac.compare_digest(
        given.encode(), portal_token(key, customer).encode()
    )


def link(base: str, token: str) -> str:
    return f"{base}/ack/{token}"


# --- what the ledger says --------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One acknowledgement or objection, or a resolution of an objection."""

    audience: str
    contact: str
    decision: str  # acknowledged | objected | resolved
    at: datetime
    reason: str = ""
    by: str = ""  # who resolved an objection
    announcement: str = ""  # the announcement answered (its `told` digest)

    def to_json(self) -> dict[str, str]:
        out = {
            "audience": self.audience,
            "contact": self.contact,
            "decision": self.decision,
            "at": self.at.isoformat(),
        }
        if self.reason:
            out["reason"] = self.reason
        if self.by:
            out["by"] = self.by
        return out


def answers(entries: Iterable[Entry]) -> list[Answer]:
    """The acknowledgements, objections and resolutions the ledger holds, in order."""
    out = []
    for e in entries:
        if e.stage != ACK or e.dry_run:
            continue
        out.append(
            Answer(
                audience=e.audience,
                contact=e.recipient,
                decision=str(e.extra.get("decision") or ""),
                at=e.delivered_at,
                reason=str(e.extra.get("reason") or ""),
                by=str(e.extra.get("by") or ""),
                announcement=str(e.extra.get("announcement") or ""),
            )
        )
    return out


@dataclass(frozen=True)
class AudienceAcks:
    audience: str
    acknowledged: tuple[Answer, ...]
    objections: tuple[Answer, ...]  # open: objected after the last resolution
    resolved: tuple[Answer, ...]  # objections answered, and the resolutions

    def to_json(self) -> dict[str, object]:
        return {
            "audience": self.audience,
            "acknowledged": [a.to_json() for a in self.acknowledged],
            "open_objections": [a.to_json() for a in self.objections],
            "resolved": [a.to_json() for a in self.resolved],
        }


def by_audience(entries: Iterable[Entry]) -> dict[str, AudienceAcks]:
    """Per audience: who acknowledged (latest per contact), open objections, and resolutions.

    A contact's latest answer stands (an objection after an acknowledgement is open; an
    acknowledgement after an objection closes it). A resolution closes every objection made
    before it."""
    grouped: dict[str, list[Answer]] = {}
    for a in answers(entries):
        grouped.setdefault(a.audience, []).append(a)
    out = {}
    for audience, items in grouped.items():
        latest: dict[str, Answer] = {}
        resolved: list[Answer] = []
        for a in items:
            if a.decision == RESOLVED:
                for contact, prior in list(latest.items()):
                    if prior.decision == OBJECTED:
                        resolved.append(prior)
                        del latest[contact]
                resolved.append(a)
            else:
                latest[a.contact] = a
        out[audience] = AudienceAcks(
            audience,
            tuple(a for a in latest.values() if a.decision == ACKNOWLEDGED),
            tuple(a for a in latest.values() if a.decision == OBJECTED),
            tuple(resolved),
        )
    return out


@dataclass(frozen=True)
class AckLinks:
    """What a notice needs to carry a personal acknowledgement link."""

    key: bytes
    base: str  # HIE_PUBLIC_URL
    ledger: str = ""  # gitlab:mr:IID, carried in the token so the service finds the ledger

    @classmethod
    def from_env(cls, env: Mapping[str, str], ledger: str | None = None) -> AckLinks | None:
        """None when HIE_ACK_KEY or HIE_PUBLIC_URL is not set: then no notice carries a link."""
        key, base = ack_key(env), public_url(env)
        if key is None or base is None:
            return None
        ref = ""
        if ledger and ledger.startswith("gitlab:"):
            ref = ledger
        elif ledger == "gitlab" and (env.get("CI_MERGE_REQUEST_IID") or "").isdigit():
            ref = f"gitlab:mr:{env['CI_MERGE_REQUEST_IID']}"
        return cls(key, base, ref)

    def url(
        self,
        *,
        change_id: str,
        announcement: str,
        audience: str,
        contact: str,
        zone: str,
        now: datetime,
        window_end: datetime | None,
    ) -> str:
        claim = Claim(
            change_id, announcement, audience, contact, zone, expiry(now, window_end), self.ledger
        )
        return link(self.base, sign(self.key, claim))

    def slack_token(
        self,
        *,
        change_id: str,
        announcement: str,
        audience: str,
        zone: str,
        now: datetime,
        window_end: datetime | None,
    ) -> str:
        """The value of a Slack announcement's Acknowledge button: who clicked it is what
        Slack's signed request says (`/slack/interactions`), never the token."""
        claim = Claim(
            change_id, announcement, audience, SLACK, zone, expiry(now, window_end), self.ledger
        )
        return sign(self.key, claim)

    def portal_url(self, customer: str) -> str:
        name = path_segment(customer)
        return f"{self.base}/portal/{name}/{portal_token(self.key, customer)}"


def path_segment(text: str) -> str:
    """`text` percent-encoded for one URL path segment (RFC 3986 unreserved kept)."""
    keep = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in text.encode())


def contact_of(emails: tuple[str, ...], label: str) -> str:
    """Whom a notice's link names: the audience's first address (one message goes to all of
    them), else its name."""
    return emails[0] if emails else label
