"""Send one stage's messages to its audiences: deliver each once, record each as it goes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from hie_notify import acks as acks_module
from hie_notify import timetext
from hie_notify.acks import AckLinks, contact_of
from hie_notify.audiences import Audience
from hie_notify.change import ChangeRecord
from hie_notify.channels import INTEGRATIONS, Channels, Outgoing
from hie_notify.channels.alerts import mention
from hie_notify.classify import CONTACT_RESOURCES, Classification
from hie_notify.durations import format_duration
from hie_notify.errors import HieError, InputError
from hie_notify.gate import DOWNTIME, NOT_KNOWN, SAME_AS, TOLD, has_receipt, still_told
from hie_notify.ledger import Entry, Ledger, idempotency_key
from hie_notify.policy.model import Policy
from hie_notify.render import Rendered, Renderer, context


class Unchanged(NamedTuple):
    """An announcement not sent, because its audience was told exactly this before: the entry
    recorded for it, and the delivery it stands on."""

    entry: Entry
    original: Entry


class Failure(NamedTuple):
    """A delivery that did not happen: to whom, through which channel, and why (a refusal, or
    a service still failing after its retries), in words that name the fix."""

    audience: str
    channel: str
    why: str


@dataclass
class StageReport:
    stage: str
    delivered: list[Entry] = field(default_factory=list)
    already: list[Entry] = field(default_factory=list)
    unchanged: list[Unchanged] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    previews: list[tuple[Rendered, str]] = field(default_factory=list)  # (message, route)
    notes: list[str] = field(default_factory=list)

    @property
    def unchanged_entries(self) -> list[Entry]:
        """The entries recorded for announcements not sent (each naming its delivery)."""
        return [u.entry for u in self.unchanged]

    def fail(self, audience: str, channel: str, exc: HieError | str) -> None:
        why = "; ".join(exc.problems) if isinstance(exc, InputError) else str(exc)
        self.failed.append(Failure(audience, channel, why))

    def to_json(self) -> dict[str, Any]:
        def row(e: Entry) -> dict[str, Any]:
            return {
                "audience": e.audience,
                "channel": e.channel,
                "recipient": e.recipient,
                "message_id": e.message_id,
                "delivered_at": e.delivered_at.isoformat(),
            }

        return {
            "stage": self.stage,
            "delivered": [row(e) for e in self.delivered],
            "already_delivered": [row(e) for e in self.already],
            # Not sent: told exactly this before (`delivered_at`: when).
            "unchanged": [row(u.original) for u in self.unchanged],
            "failed": [
                {"audience": f.audience, "channel": f.channel, "error": f.why} for f in self.failed
            ],
            "dry_run": [
                {"audience": r.audience.id, "subject": r.subject, "via": via}
                for r, via in self.previews
            ],
            "notes": list(self.notes),
            "audiences": self.outcomes(),
        }

    def outcomes(self) -> list[dict[str, str]]:
        """Each audience and channel of the stage: delivered now, delivered before (and when),
        what a dry run would send, and not delivered (and why), in that order."""
        out = [
            {"audience": e.audience, "channel": e.channel, "outcome": "delivered", "detail": ""}
            for e in self.delivered
        ]
        out += [
            {
                "audience": e.audience,
                "channel": e.channel,
                "outcome": "already delivered",
                "detail": e.delivered_at.isoformat(),
            }
            for e in self.already
        ]
        out += [
            {
                "audience": u.original.audience,
                "channel": u.original.channel,
                "outcome": "unchanged",
                "detail": u.original.delivered_at.isoformat(),
            }
            for u in self.unchanged
        ]
        out += [
            {"audience": r.audience.id, "channel": via, "outcome": "dry run", "detail": r.subject}
            for r, via in self.previews
        ]
        out += [
            {
                "audience": f.audience,
                "channel": f.channel,
                "outcome": "not delivered",
                "detail": f.why,
            }
            for f in self.failed
        ]
        return out

    def lines(self, local: Callable[[datetime], datetime] | None = None) -> list[str]:
        """The report for people; `local` turns a delivery time into the policy's zone."""
        out = []
        for e in self.delivered:
            out.append(f"  sent      {e.audience:28} via {e.channel}: {e.message_id}")
        for e in self.already:
            at = local(e.delivered_at) if local else e.delivered_at
            out.append(
                f"  already   {e.audience:28} via {e.channel} {timetext.moment(at)} "
                "(not sent again)"
            )
        for u in self.unchanged:
            at = local(u.original.delivered_at) if local else u.original.delivered_at
            out.append(
                f"  unchanged {u.original.audience:28} via {u.original.channel}: told exactly "
                f"this {timetext.moment(at)} (nothing new to tell, not sent)"
            )
        for r, via in self.previews:
            out.append(f"  dry run   {r.audience.id:28} would send via {via}: {r.subject}")
        for f in self.failed:
            out.append(f"  NOT SENT  {f.audience:28} via {f.channel}: {f.why}")
        out.extend(f"  note      {n}" for n in self.notes)
        return out

    def failure_line(self) -> str:
        """What was not delivered, for the error line after the report (which says why)."""
        missed = ", ".join(f"{f.audience} via {f.channel}" for f in self.failed)
        tried = len(self.failed) + len(self.delivered)
        return (
            f"{len(self.failed)} of {tried} deliveries failed, NOT delivered: {missed} (why: "
            "above). Everything else was delivered and recorded: once fixed, a re-run of the "
            "same command sends only what is missing."
        )

    def summary(self) -> str:
        """One line: what was delivered and what was not (with why)."""
        sent = ", ".join(dict.fromkeys(e.audience for e in self.delivered)) or "nothing"
        failed = "; ".join(f"{f.audience} via {f.channel}: {f.why}" for f in self.failed)
        return f"delivered: {sent}. NOT delivered: {failed or 'nothing'}"


def told_before(history: Sequence[Entry], entry: Entry, policy: Policy) -> Entry | None:
    """The delivery that already told this audience, through `entry`'s channel, exactly what
    `entry` would tell it, when nothing since told it otherwise (a later announcement, a
    cancellation) and the gate will count it for `entry` (gate.still_told): then nothing is
    sent, and `entry` is recorded naming it."""
    through = [
        e
        for e in history
        if e.channel == entry.channel and e.stage in ("announce", "cancelled") and not e.dry_run
    ]
    if not through or through[-1].stage != "announce":
        return None
    last = through[-1]
    original = _stands_on(last, history) or last
    if original.channel != "outbox" and not has_receipt(original):
        return None  # no proof it reached anyone: tell it again
    return None if still_told(original, entry, policy) else original


def _stands_on(entry: Entry, history: Sequence[Entry]) -> Entry | None:
    """The delivery an announcement recorded without one names (None for a delivery)."""
    ref = entry.extra.get(SAME_AS)
    return next((e for e in history if ref and e.idempotency_key == ref), None)


def _told(
    renderer: Renderer,
    stage: str,
    audience: Audience,
    ctx: Mapping[str, Any],
    message: Rendered,
) -> str:
    """The digest of what `message` tells its reader, less the news of a move: the message as
    it would read had the window always been where it is."""
    life = ctx.get("lifecycle") or {}
    if ctx.get("moved") or life.get("kind") == "replan":
        # Nor the news that its details were updated (a re-plan): what it tells is compared.
        plain = {**ctx, "moved": None, "lifecycle": {**life, "kind": "new"}}
        message = renderer.render(stage, audience, plain)
    return message.told


def _downtime(change: ChangeRecord) -> str:
    return NOT_KNOWN if change.downtime is None else format_duration(change.downtime)


def told_window(
    history: Sequence[Entry], window: tuple[datetime, datetime] | None
) -> dict[str, str] | None:
    """The window an audience was last told of (ISO `start` and `end`), when `window` moves it;
    None when it was told of none, of this one, or last that the change was cancelled."""
    told = [
        e
        for e in history
        if e.stage in ("announce", "cancelled") and e.window_start and not e.dry_run
    ]
    if window is None or not told or told[-1].stage == "cancelled":
        return None
    last = told[-1]
    start, end = datetime.fromisoformat(last.window_start), datetime.fromisoformat(last.window_end)
    if (start, end) == window:
        return None
    return {"start": last.window_start, "end": last.window_end}


def told_before_now(history: Sequence[Entry]) -> bool:
    """Was the audience told of the change, and not last told that it was cancelled?"""
    told = [e for e in history if e.stage in ("announce", "cancelled") and not e.dry_run]
    return bool(told) and told[-1].stage == "announce"


def run_stage(
    *,
    stage: str,
    policy: Policy,
    change: ChangeRecord,
    result: Classification,
    audiences: Sequence[Audience],
    ledger: Ledger,
    channels: Channels,
    renderer: Renderer,
    now: datetime,
    links: Mapping[str, str],
    status: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    run: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] | None = None,
    lifecycle: Mapping[str, Any] | None = None,
    key_extra: str = "",
    acks: AckLinks | None = None,
) -> StageReport:
    """Deliver `stage` to every audience, through each channel the policy names for it, unless
    already delivered (same change, stage, audience, channel and plan).

    Every channel is set up before anything is sent, so a configuration error (exit 2) sends
    nothing. Each delivery is recorded as soon as it is made, so a failure part-way loses
    nothing that was sent. A channel that refuses a message (a 4xx: a credential, a permission,
    a request it will not take) or is still failing after its retries is a failed delivery:
    the others still go out, and the report lists what was and was not delivered (the caller
    exits 3 when anything was not). A ledger that cannot record a delivery stops the stage
    there: sending on would send what a re-run cannot know was sent.

    `lifecycle`: the change's lifecycle facts for the templates (render.context); an
    announcement tells each audience of a moved window as moved from the one *it* was told of.
    `key_extra`: what its transition adds to the delivery keys (`Lifecycle.variant`: a new
    attempt, a second rollback, an announcement after a cancellation).
    `acks`: when set, every notice to a customer or stakeholder carries a personal link to
    acknowledge it or object to its window (hie_notify/acks.py); what the audience is told
    (the `told` digest) is the message without it.
    """
    report = StageReport(stage)
    window = (change.window.start, change.window.end) if change.window else None
    # An announcement is of a plan *and* a window: a moved window is announced again.
    variant = legacy = result.fingerprint
    if stage == "announce":
        # An announcement is of a plan, a change type, a service impact, a window and a
        # declared downtime: whatever the gate compares. Any of them changed, and `plan`
        # announces again (no deadlock where the gate asks for a new notice and `plan` says it
        # was already sent).
        legacy = variant = (
            variant
            + "|"
            + "|".join(
                (
                    result.change_type or "",
                    "impacting" if result.service_impacting else "not-impacting",
                    window[0].isoformat() if window else "no-window",
                    window[1].isoformat() if window else "",
                )
            )
        )
        variant += f"|downtime:{_downtime(change)}"
    variant += key_extra
    legacy += key_extra
    # A dry run writes nothing, not even the ledger's lock file.
    with nullcontext() if dry_run else ledger.lock():
        entries = ledger.read(change.id)
        done = {e.idempotency_key: e for e in entries}
        routes = [(audience, channels.for_audience(audience)) for audience in audiences]
        stopped = False
        for number, (audience, channel_routes) in enumerate(routes):
            if stopped:
                break
            history = tuple(
                sorted(
                    (e for e in entries if e.audience == audience.id), key=lambda e: e.delivered_at
                )
            )
            facts = {"transition": stage, **(lifecycle or {})}
            if stage == "announce":
                facts["moved_from"] = told_window(history, window)
                facts["told_before"] = told_before_now(history)
            ctx = context(
                policy=policy,
                result=result,
                change=change,
                audience=audience,
                now=now,
                links=links,
                status=status,
                run=run,
                lifecycle=facts,
            )
            message: Rendered | None = None
            told = ""  # the digest of what an announcement tells this audience
            plain_ctx = ctx
            if acks is not None and audience.external:
                if stage == "announce":
                    first = renderer.render(stage, audience, ctx)
                    told = announcement = _told(renderer, stage, audience, ctx, first)
                else:
                    told_of = [str(e.extra.get(TOLD, "")) for e in history if e.stage == "announce"]
                    announcement = told_of[-1] if told_of else ""
                url = acks.url(
                    change_id=change.id,
                    announcement=announcement,
                    audience=audience.id,
                    contact=contact_of(audience.emails, audience.label),
                    zone=audience.time_zone,
                    now=now,
                    window_end=window[1] if window else None,
                )
                ctx = {**ctx, "ack": {"url": url}}
            for kind, channel in channel_routes:
                key = idempotency_key(change.id, stage, audience.id, variant, kind)
                before = done.get(idempotency_key(change.id, stage, audience.id, legacy, kind))
                if key not in done and before is not None and DOWNTIME not in before.extra:
                    key = before.idempotency_key  # recorded before the downtime was part of it
                if key in done:
                    earlier = done[key]
                    original = _stands_on(earlier, history)
                    if original is not None:
                        report.unchanged.append(Unchanged(earlier, original))
                    else:
                        report.already.append(earlier)
                    continue
                message = message or renderer.render(stage, audience, ctx)
                base = Entry(
                    change_id=change.id,
                    stage=stage,
                    audience=audience.id,
                    channel=channel.kind,
                    recipient="",
                    fingerprint=result.fingerprint,
                    change_type=result.change_type,
                    service_impacting=result.service_impacting,
                    # A ledger on GitLab is readable by the project: mask here too.
                    resources=tuple((renderer.mask(r.address), r.action) for r in result.resources),
                    delivered_at=now,
                    message_id="",
                    idempotency_key=key,
                    emergency=bool(
                        result.change_type
                        and policy.change_type(result.change_type).notice_overrides_others
                    ),
                    categories=result.categories,
                    impacting_categories=result.impacting_categories,
                    window_start=window[0].isoformat() if window else "",
                    window_end=window[1].isoformat() if window else "",
                )
                if stage == "announce" and audience.id.split(":", 1)[0] not in INTEGRATIONS:
                    # What the audience is told, less the news that the window moved: a
                    # re-run after a move tells it nothing new.
                    told = told or _told(renderer, stage, audience, plain_ctx, message)
                    extra = {TOLD: told, DOWNTIME: _downtime(change)}
                    if audience.kind == "contact":
                        # What a direct contact was told of, for completion without a plan.
                        extra[CONTACT_RESOURCES] = "\n".join(
                            renderer.mask(a) for a in audience.resources
                        )
                    if acks is not None and acks.ledger:
                        # Where the answers go: the portal's links name this ledger too.
                        extra[acks_module.LEDGER] = acks.ledger
                    base = replace(base, extra=extra)
                    original = told_before(history, base, policy)
                    if original is not None:
                        carry = replace(
                            base,
                            channel=original.channel,
                            recipient=original.recipient,
                            message_id=original.message_id,
                            delivered_at=clock() if clock else now,
                            extra={**base.extra, SAME_AS: original.idempotency_key},
                        )
                        if dry_run:
                            report.unchanged.append(Unchanged(carry, original))
                            continue
                        try:
                            recorded = ledger.record([carry])
                        except HieError as exc:
                            report.fail(audience.id, kind, f"NOT recorded in the ledger ({exc})")
                            for later, _ in routes[number + 1 :]:
                                report.fail(
                                    later.id, "-", "not tried: the ledger could not be written"
                                )
                            stopped = True
                            break
                        report.unchanged.extend(Unchanged(e, original) for e in recorded)
                        history = (*history, *recorded)
                        continue
                if dry_run:
                    via = kind if channel.kind == kind else f"{channel.kind} (for {kind})"
                    report.previews.append((message, via))
                    continue
                parent = renderer.render("announce", audience, ctx) if stage != "announce" else None
                state = str((lifecycle or {}).get("state") or "")
                token = ""
                if acks is not None and stage == "announce" and kind == "slack" and told:
                    token = acks.slack_token(
                        change_id=change.id,
                        announcement=told,
                        audience=audience.id,
                        zone=audience.time_zone,
                        now=now,
                        window_end=window[1] if window else None,
                    )
                outgoing = Outgoing(
                    change.id,
                    message,
                    key,
                    kind,
                    history,
                    parent,
                    window,
                    state,
                    alert=mention(policy, result.change_type, stage, audience),
                    ack_token=token,
                )
                try:
                    delivery = channel.send(outgoing)
                except HieError as exc:
                    report.fail(audience.id, kind, exc)
                    continue
                if delivery.note:
                    report.notes.append(f"{audience.id}: {delivery.note}")
                entry = replace(
                    base,
                    channel=delivery.channel,
                    recipient=delivery.recipient,
                    # The time this process saw the service accept it, never the service's.
                    delivered_at=clock() if clock else now,
                    message_id=delivery.message_id,
                    receipt=dict(delivery.receipt),
                )
                try:
                    recorded = ledger.record([entry])
                except HieError as exc:
                    report.fail(
                        audience.id,
                        kind,
                        f"delivered ({delivery.message_id}) but NOT recorded in the ledger "
                        f"({exc}); a re-run may send it again",
                    )
                    for later, _ in routes[number + 1 :]:
                        report.fail(later.id, "-", "not tried: the ledger could not be written")
                    stopped = True
                    break
                report.delivered.extend(recorded)
                history = (*history, *recorded)
    for kind, why in channels.fallbacks.items():
        done_or_not = "would be written" if dry_run else "written"
        report.notes.append(f"{kind}: {why}: {done_or_not} to the outbox instead")
    return report
