"""The acknowledgement page (`/ack/<token>`) and each customer's portal
(`/portal/<customer>/<token>`).

A GET never records anything: mail security scanners open every link in a message. The page
shows the change as the reader was told it, in their zone, and a form; the form's POST records an
acknowledgement or an objection in the change's ledger (stage `ack`, sealed and chained like
every entry) and in the register, once: the same answer posted again records nothing. The form
carries a value bound to the link (HMAC of it under HIE_ACK_KEY), checked on POST.

An objection is posted at once to the change's internal channels.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

import jinja2

from hie_notify import acks, timetext
from hie_notify.acks import Claim, TokenError
from hie_notify.channels.slack_blocks import ACK_ACTION
from hie_notify.durations import describe_timedelta, parse_duration
from hie_notify.errors import HieError, InputError
from hie_notify.gate import TOLD
from hie_notify.ledger import Entry, Ledger, idempotency_key, open_ledger
from hie_notify.lifecycle import WAITING
from hie_notify.options import Options
from hie_notify.policy.model import Policy
from hie_notify.records import Audience
from hie_notify.register.model import ENDED, Registered, status_of
from hie_notify.register.store import Register, open_register
from hie_notify.service.settings import Settings

log = logging.getLogger(__name__)

ACK_PREFIX = "/ack/"
WAITING_STATES = frozenset(s.value for s in WAITING)  # not started: the window may still move
PORTAL_PREFIX = "/portal/"
MAX_REASON = 2000
RECENT = timedelta(days=30)
UPCOMING = timedelta(days=180)
PORTAL_LINK_LIFE = timedelta(days=2)
OBJECTION = "objection"  # the ledger stage of an objection's notice to the internal channels
# Strict for every page: nothing but the page itself and its inline style; no framing.
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Page:
    status: int
    body: str
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class AckPages:
    settings: Settings
    base: Options
    clock: Callable[[], datetime] | None = None

    def __post_init__(self) -> None:
        self.key = self.settings.ack_key.encode()
        self.masker = self.settings.masker(self.base.env)
        self._pages = jinja2.Environment(
            loader=jinja2.PackageLoader("hie_notify", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def now(self) -> datetime:
        return (self.clock or self.base.clock)()

    @cached_property
    def policy(self) -> Policy:
        from hie_notify.policy.protected import load_effective

        return load_effective(self.base.policy, self.base.env).policy

    def register(self, *, read_only: bool) -> Register:
        register = open_register(
            self.base.register,
            self.base.env,
            ledger=self.base.ledger,
            time_zone=self.policy.calendar.time_zone,
            mask=self.masker,
            read_only=read_only,
        )
        if register is None:
            raise InputError("the service has no change register (HIE_REGISTER)")
        return register

    def ledger(self, claim_ledger: str) -> Ledger:
        """Opened for each request: a ledger's lock is re-entrant within one object, so two
        requests must never share one."""
        return open_ledger(claim_ledger or self.base.ledger, self.base.env)

    # --- pages ----------------------------------------------------------------------------

    def handle(self, method: str, path: str, form: Mapping[str, str]) -> Page:
        try:
            if path.startswith(ACK_PREFIX):
                token = path[len(ACK_PREFIX) :]
                if method == "POST":
                    return self.answer(token, form)
                return self.show(token)
            customer, _, rest = path[len(PORTAL_PREFIX) :].partition("/")
            token, _, tail = rest.partition("/")
            return self.portal(urllib.parse.unquote(customer), token, tail)
        except HieError as exc:
            log.error("%s %s: %s", method, _redacted(path), self.masker(str(exc)))
            return self.refuse(503, "We cannot show this page right now; please try again later.")

    def _page(self, name: str, status: int, **values: Any) -> Page:
        policy = self.policy
        support = policy.support.name + (
            f" at {policy.support.email}" if policy.support.email else ""
        )
        body = self._pages.get_template(f"pages/{name}.html.j2").render(
            organisation=policy.organisation,
            service_title=policy.service_name[:1].upper() + policy.service_name[1:],
            service=policy.service_name,
            contact=support,
            **values,
        )
        return Page(status, self.masker(body))

    def refuse(self, status: int, reason: str) -> Page:
        return self._page("refused", status, title="This link cannot be used", reason=reason)

    def _claim(
        self, token: str, *, slack: bool = False
    ) -> tuple[Claim, Registered, list[Entry]] | Page:
        """The claim, the change and its announcements to the reader; or the refusal page."""
        try:
            claim = acks.read(self.key, token, self.now())
        except TokenError as exc:
            status = 410 if "expired" in str(exc) else 403
            return self.refuse(status, f"This link cannot be used: {exc}.")
        if claim.contact == acks.SLACK and not slack:
            return self.refuse(
                403, "This is a Slack button's token: acknowledge with the button in Slack."
            )
        record = self.register(read_only=True).get(claim.change_id)
        if record is None:
            return self.refuse(404, f"We have no record of the change {claim.change_id}.")
        entries = list(self.ledger(claim.ledger).read(claim.change_id)) or list(record.entries)
        told = [
            e
            for e in entries
            if e.stage == "announce" and e.audience == claim.audience and not e.dry_run
        ]
        if not any(e.extra.get(TOLD) == claim.announcement for e in told):
            return self.refuse(
                403, f"This link is not for a notice of {claim.change_id} that we sent you."
            )
        # The state the ledger replays to: it may be ahead of the register's copy.
        record = replace(record, entries=tuple(entries), status=status_of(entries, record.status))
        return claim, record, told

    def show(self, token: str, recorded: str = "", status: int = 200) -> Page:
        found = self._claim(token)
        if isinstance(found, Page):
            return found
        claim, record, told = found
        mine = [e for e in told if e.extra.get(TOLD) == claim.announcement][-1]
        latest = told[-1]
        stale = ""
        if latest.extra.get(TOLD) != claim.announcement:
            stale = (
                "We have sent you a newer notice of this change since this one: it is shown "
                "as it now stands below. Please answer from the newest notice."
            )
        answer = _answer_text(record.entries, claim)
        ended = record.status in ENDED
        form = None
        if not ended and not stale:
            form = {
                "action": f"{ACK_PREFIX}{token}",
                "token": acks.form_token(self.key, token),
                "max_reason": MAX_REASON,
                # Once the work started the window can no longer move: nothing to object to.
                "may_object": record.status in WAITING_STATES,
            }
        return self._page(
            "ack",
            status,
            title=f"Change {record.change_id}: please confirm you have read it",
            recorded=recorded,
            stale=stale,
            change=self._change(record, latest if stale else mine, claim.zone),
            reader=_reader(claim, _audience_label(self.policy, claim.audience)),
            answer=answer,
            form=form,
            closed=f"This change is {record.status}: there is nothing more to answer."
            if ended
            else "",
        )

    def _change(self, record: Registered, told: Entry, zone: str) -> dict[str, str]:
        change = record.change
        when = "no window set"
        if told.window_start and told.window_end:
            start = datetime.fromisoformat(told.window_start)
            end = datetime.fromisoformat(told.window_end)
            when = timetext.span(start, end, zone)
        return {
            "id": record.change_id,
            "summary": str(change.get("customer_summary") or record.purpose),
            "when": when,
            "notice": notice_line(
                change.get("downtime"), told.service_impacting, bool(told.window_start)
            ),
            "status": _status_text(record.status),
        }

    def answer(self, token: str, form: Mapping[str, str]) -> Page:
        found = self._claim(token)
        if isinstance(found, Page):
            return found
        claim, record, told = found
        if not acks.form_ok(self.key, token, form.get("form_token", "")):
            return self.refuse(
                403,
                "This answer did not come from the page we showed you (its form value is "
                "missing or wrong): open the link from your email again and answer there.",
            )
        if told[-1].extra.get(TOLD) != claim.announcement or record.status in ENDED:
            return self.show(token, status=409)
        decision = form.get("decision", "")
        if decision == acks.OBJECTED and record.status not in WAITING_STATES:
            return self.show(
                token, "The work has started: the window can no longer change.", status=409
            )
        if decision not in acks.DECISIONS:
            return self.show(token, "Please choose one of the two answers.", status=400)
        reason = " ".join(_CONTROL.sub("", form.get("reason", "")).split())[:MAX_REASON]
        if decision == acks.OBJECTED and not reason:
            return self.show(
                token, "Please tell us why the window does not work for you.", status=400
            )
        if decision == acks.ACKNOWLEDGED:
            reason = ""
        recorded = self.record(claim, record, decision, reason)
        text = (
            "Thank you: your acknowledgement is recorded."
            if decision == acks.ACKNOWLEDGED
            else "Thank you: your objection is recorded, and the team has been told at once."
        )
        if not recorded:
            text = "We already have this answer from you; nothing changed."
        return self.show(token, text)

    def record(self, claim: Claim, record: Registered, decision: str, reason: str) -> bool:
        """Record the answer (False: this contact's standing answer is the same already)."""
        ledger = self.ledger(claim.ledger)
        now = self.now()
        with ledger.lock():
            entries = ledger.read(claim.change_id)
            standing = [
                a
                for a in acks.answers(entries)
                if a.audience == claim.audience and a.contact == claim.contact
            ]
            last = standing[-1] if standing else None
            if last is not None and (last.decision, last.reason) == (decision, reason):
                return False
            mine = [e for e in entries if e.stage == acks.ACK]
            entry = Entry(
                change_id=claim.change_id,
                stage=acks.ACK,
                audience=claim.audience,
                channel="web",
                recipient=claim.contact,
                fingerprint=record.fingerprint,
                change_type=record.change_type,
                service_impacting=record.service_impacting,
                resources=(),
                delivered_at=now,
                message_id="",
                idempotency_key=idempotency_key(
                    claim.change_id,
                    acks.ACK,
                    claim.audience,
                    f"{claim.announcement}|{decision}|{len(mine)}",
                    claim.contact,
                ),
                window_start=record.window_start.isoformat() if record.window_start else "",
                window_end=record.window_end.isoformat() if record.window_end else "",
                extra={
                    "decision": decision,
                    "reason": self.masker(reason),
                    "announcement": claim.announcement,
                },
            )
            stored = ledger.record([entry])
        try:
            register = self.register(read_only=False)
            current = register.get(claim.change_id)
            if current is not None:
                register.put(current, stored, now)
        except HieError as exc:  # the ledger has it; the next stage registers it
            log.warning("%s: answer not registered: %s", claim.change_id, self.masker(str(exc)))
        log.info("%s: %s %s for %s", claim.change_id, claim.contact, decision, claim.audience)
        if decision == acks.OBJECTED:
            self.tell_objection(claim, record, stored[0])
        return True

    def tell_objection(self, claim: Claim, record: Registered, entry: Entry) -> None:
        """Post the objection to the change's internal channels at once (a failure is logged:
        the objection is recorded, and the gate blocks on it whatever happens here)."""
        from hie_notify.channels import Channels, Outgoing

        policy = self.policy
        ledger = self.ledger(claim.ledger)
        channels = Channels(
            policy, self.base.env, self.base.outbox, claim.change_id, entry.delivered_at
        )
        internal = [a for a in record.audiences if a.startswith("slack:")]
        label = _audience_label(policy, claim.audience)
        for aid in internal:
            audience = Audience(
                aid,
                "internal",
                aid,
                policy.calendar.time_zone,
                frozenset(),
                *_zero(),
                (),
                slack_channel=aid.split(":", 1)[1],
            )
            message = objection_message(
                audience,
                record,
                claim.contact,
                label,
                entry.extra.get("reason", ""),
                self.masker,
            )
            history = tuple(e for e in record.entries if e.audience == aid)
            for kind, channel in channels.for_audience(audience):
                key = idempotency_key(claim.change_id, OBJECTION, aid, entry.idempotency_key, kind)
                outgoing = Outgoing(claim.change_id, message, key, kind, history)
                try:
                    delivery = channel.send(outgoing)
                    ledger.record(
                        [
                            replace(
                                entry,
                                stage=OBJECTION,
                                audience=aid,
                                channel=delivery.channel,
                                recipient=delivery.recipient,
                                message_id=delivery.message_id,
                                idempotency_key=key,
                                receipt=dict(delivery.receipt),
                                extra={"about": entry.idempotency_key},
                            )
                        ]
                    )
                except HieError as exc:
                    log.error(
                        "%s: objection not posted to %s: %s",
                        claim.change_id,
                        aid,
                        self.masker(str(exc)),
                    )

    # --- Slack's Acknowledge button ------------------------------------------------------

    def slack(self, body: bytes, timestamp: str, signature: str) -> tuple[int, str]:
        """A click on an announcement's Acknowledge button (Slack's `block_actions`), verified
        with the app's signing secret (`X-Slack-Signature` v0, timestamp within 5 minutes)."""
        import json

        from slack_sdk.signature import Clock, SignatureVerifier

        clock = self.now

        class _Injected(Clock):  # the service's clock, never the machine's in tests
            def now(self) -> float:
                return clock().timestamp()

        verifier = SignatureVerifier(self.settings.slack_signing_secret, clock=_Injected())
        try:
            valid = timestamp.isdigit() and verifier.is_valid(
                body=body, timestamp=timestamp, signature=signature
            )
        except ValueError:
            valid = False
        if not valid:
            return 401, "missing or wrong X-Slack-Signature, or a timestamp over 5 minutes old"
        try:
            form = urllib.parse.parse_qs(body.decode(), max_num_fields=5)
            data = json.loads(form["payload"][0])
            action = next(a for a in data["actions"] if a.get("action_id") == ACK_ACTION)
            token = str(action["value"])
            user = data["user"]
            who = f"{user.get('username') or user.get('name') or user['id']} (Slack {user['id']})"
        except (KeyError, ValueError, TypeError, StopIteration, UnicodeDecodeError):
            return 400, "not an Acknowledge button's block_actions payload"
        found = self._claim(token, slack=True)
        if isinstance(found, Page):
            return found.status, "this button's notice cannot be acknowledged"
        claim, record, told = found
        if told[-1].extra.get(TOLD) != claim.announcement:
            return 409, "a newer announcement replaced this one: use its button"
        claim = replace(claim, contact=self.masker(who))
        recorded = self.record(claim, record, acks.ACKNOWLEDGED, "")
        return 200, "acknowledged" if recorded else "already acknowledged"

    # --- the portal -----------------------------------------------------------------------

    def portal(self, customer: str, token: str, tail: str) -> Page:
        if customer not in self.policy.customers or not acks.portal_ok(self.key, customer, token):
            return self.refuse(
                403,
                "This portal link is not valid: it was changed, is for another customer, or was "
                "issued before our keys were renewed. Ask us for a new one.",
            )
        now = self.now()
        info = self.policy.customers[customer]
        zone = info.time_zone or self.policy.calendar.time_zone
        audience = f"customer:{customer}"
        register = self.register(read_only=True)
        changes = [
            r
            for r in register.between_with_entries(now - RECENT, now + UPCOMING)
            if audience in r.audiences or customer in r.customers
        ]
        changes = [c for c in changes if any(e.audience == audience for e in c.entries)]
        if tail == "calendar.ics":
            return self._calendar(customer, changes, now)
        if tail:
            return self.refuse(404, "There is no such page.")
        upcoming: list[dict[str, str]] = []
        recent: list[dict[str, str]] = []
        for c in sorted(changes, key=lambda r: r.window_start or now):
            row = self._portal_row(c, audience, zone, now)
            (recent if c.ended or (c.window_end and c.window_end <= now) else upcoming).append(row)
        return self._page(
            "portal",
            200,
            title=f"Changes for {info.name}",
            customer=info.name,
            zone=zone,
            calendar_url=f"{PORTAL_PREFIX}{urllib.parse.quote(customer)}/{token}/calendar.ics",
            groups=[
                ("Upcoming", upcoming, "No upcoming changes."),
                ("Recent", recent, f"No changes in the last {RECENT.days} days."),
            ],
        )

    def _portal_row(self, c: Registered, audience: str, zone: str, now: datetime) -> dict[str, str]:
        told = [
            e
            for e in c.entries
            if e.stage == "announce" and e.audience == audience and not e.dry_run
        ]
        info = (
            self._change(c, told[-1], zone)
            if told
            else {
                "summary": str(c.change.get("customer_summary") or c.purpose),
                "when": timetext.span(c.window_start, c.window_end, zone)
                if c.window_start and c.window_end
                else "no window set",
                "notice": notice_line(
                    c.change.get("downtime"), c.service_impacting, bool(c.window_start)
                ),
                "status": _status_text(c.status),
            }
        )
        state = acks.by_audience(c.entries).get(audience)
        answer = "No answer yet."
        if state is not None:
            if state.objections:
                o = state.objections[-1]
                answer = f"Objected on {timetext.moment(o.at, zone)}: {o.reason}"
            elif state.acknowledged:
                a = state.acknowledged[-1]
                answer = f"Acknowledged by {a.contact} on {timetext.moment(a.at, zone)}."
        ack_url = ""
        announced = str(told[-1].extra.get(TOLD) or "") if told else ""
        if announced and not c.ended:
            claim = Claim(
                c.change_id,
                announced,
                audience,
                "portal",
                zone,
                now + PORTAL_LINK_LIFE,
                _ledger_ref(told[-1]),
            )
            ack_url = f"{ACK_PREFIX}{acks.sign(self.key, claim)}"
        return {
            **info,
            "id": c.change_id,
            "contact": str(c.change.get("owner") or self.policy.support.name),
            "answer": answer,
            "ack_url": ack_url,
            "ack_label": "Acknowledge or object to"
            if c.status in WAITING_STATES
            else "Acknowledge",
        }

    def _calendar(self, customer: str, changes: Sequence[Registered], now: datetime) -> Page:
        """The customer's own feed: what it is told of each change (its summary, what it may
        notice, whom to ask), never the register's internal view (other customers, projects)."""
        import icalendar

        from hie_notify.register import feed

        cal = icalendar.Calendar()
        cal.add("prodid", "-//hie-notify//customer changes//EN")
        cal.add("version", "2.0")
        cal.add("method", "PUBLISH")
        cal.add("x-wr-calname", f"Changes for {self.policy.customers[customer].name}")
        stamp = now.astimezone(timezone.utc).replace(microsecond=0)
        for c in changes:
            if c.window_start is None or c.window_end is None:
                continue
            summary = str(c.change.get("customer_summary") or c.purpose)
            ev = icalendar.Event()
            ev.add("uid", feed.uid(c))
            ev.add("sequence", c.sequence)
            ev.add("dtstamp", stamp)
            ev.add("dtstart", c.window_start)
            ev.add("dtend", c.window_end)
            ev.add("summary", f"{c.change_id}: {summary}")
            ev.add("status", "CANCELLED" if c.status == "cancelled" else "CONFIRMED")
            notice = notice_line(c.change.get("downtime"), c.service_impacting, True)
            contact = str(c.change.get("owner") or self.policy.support.name)
            ev.add("description", f"{_status_text(c.status)}. {notice} Contact: {contact}.")
            cal.add_component(ev)
        return Page(200, self.masker(cal.to_ical().decode()), "text/calendar; charset=utf-8")


def _ledger_ref(announcement: Entry) -> str:
    """The ledger an announcement names for its answers (a merge request's), else ""."""
    ref = str(announcement.extra.get(acks.LEDGER) or "")
    return ref if re.fullmatch(r"gitlab:(mr|issue):[0-9]{1,12}", ref) else ""


def _zero() -> tuple[Any, Any]:
    from hie_notify.durations import NoticePeriod

    zero = NoticePeriod("elapsed")
    return zero, zero


def _redacted(path: str) -> str:
    """A path with its token left out: logs never hold a working link."""
    if path.startswith(ACK_PREFIX):
        return ACK_PREFIX + "..."
    parts = path.split("/")
    return "/".join([*parts[:3], "..."]) if len(parts) > 3 else path


def _reader(claim: Claim, label: str) -> str:
    if claim.contact == "portal":
        return f"{label} (from your portal)"
    return label if claim.contact == label else f"{claim.contact} ({label})"


def _audience_label(policy: Policy, audience: str) -> str:
    kind, _, name = audience.partition(":")
    if kind == "customer" and name in policy.customers:
        return policy.customers[name].name
    if kind == "stakeholders":
        group = policy.stakeholders.get(name)  # type: ignore[call-overload]
        return str(group.name) if group else f"{name} stakeholders"
    return audience


def _status_text(status: str) -> str:
    return {
        "announced": "Planned (announced)",
        "in progress": "In progress",
        "completed": "Completed",
        "cancelled": "Cancelled: it will not go ahead",
        "rolled back": "Undone (rolled back)",
        "failed": "Did not complete",
    }.get(status, status[:1].upper() + status[1:])


def notice_line(downtime: object, impacting: bool, windowed: bool) -> str:
    """What the reader may notice, as the notices say it (`_macros.j2` notice_line)."""
    during = " during this time." if windowed else " while we work on it."
    known: timedelta | None = None
    if downtime is not None:
        try:
            known = parse_duration(downtime)
        except InputError:
            known = None
    if known is not None and known > timedelta(0):
        return f"The service may be unavailable for up to {describe_timedelta(known)}{during}"
    if known is None:
        if impacting:
            return (
                "The service may be slower or interrupted; how much is not known yet, and we "
                "will tell you as soon as we know."
            )
        return "The impact on the service is not known yet; we will tell you as soon as we know."
    if impacting:
        return f"The service may be briefly slower or interrupted{during}"
    return "We do not expect any interruption."


def _answer_text(entries: Sequence[Entry], claim: Claim) -> str:
    mine = [
        a
        for a in acks.answers(entries)
        if a.audience == claim.audience and a.contact == claim.contact
    ]
    if not mine:
        return ""
    last = mine[-1]
    when = timetext.moment(last.at, claim.zone)
    if last.decision == acks.ACKNOWLEDGED:
        return (
            f"You acknowledged this notice on {when}. You can still tell us the window does "
            "not work for you."
        )
    if last.decision == acks.OBJECTED:
        return f"You told us on {when} that this window does not work for you: {last.reason}"
    return ""


def objection_message(
    audience: Audience,
    record: Registered,
    contact: str,
    label: str,
    reason: str,
    mask: Callable[[str], str],
) -> Any:
    """The notice of an objection for an internal channel, escaped for each format."""
    from hie_notify.render import FORMATS, Format, Rendered

    bodies = {}
    for fmt in FORMATS:
        f = Format(fmt, mask)
        bodies[fmt] = "\n\n".join(
            str(x)
            for x in (
                f.p(
                    f.join(
                        f.b("Objection"),
                        ": ",
                        contact,
                        " (",
                        label,
                        ") says the window of ",
                        record.change_id,
                        " does not work for them.",
                    )
                ),
                f.p(f.join(f.b("Reason"), ": ", reason)),
                f.p(
                    "The gate blocks this change until the objection is resolved: talk to them, "
                    "then someone other than the change's author runs "
                    "hie-notify ack --resolve --reason TEXT."
                ),
            )
        )
    bodies["email_html"] = bodies["html"]
    subject = mask(f"Objection to {record.change_id} from {label}")
    return Rendered(OBJECTION, audience, subject, bodies)
