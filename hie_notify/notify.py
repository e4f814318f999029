"""Send one stage's messages to its audiences: deliver each once, record each as it goes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hie_notify.audiences import Audience
from hie_notify.change import ChangeRecord
from hie_notify.channels import Channel
from hie_notify.classify import Classification
from hie_notify.errors import HieError, ServiceError
from hie_notify.ledger import Entry, Ledger, idempotency_key
from hie_notify.policy.model import Policy
from hie_notify.render import Rendered, Renderer, context


@dataclass
class StageReport:
    stage: str
    delivered: list[Entry] = field(default_factory=list)
    already: list[Entry] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (audience, why)
    previews: list[Rendered] = field(default_factory=list)

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
            "failed": [{"audience": a, "error": why} for a, why in self.failed],
            "dry_run": [{"audience": r.audience.id, "subject": r.subject} for r in self.previews],
        }


def run_stage(
    *,
    stage: str,
    policy: Policy,
    change: ChangeRecord,
    result: Classification,
    audiences: Sequence[Audience],
    ledger: Ledger,
    channel_for: Callable[[Audience], Channel],
    renderer: Renderer,
    now: datetime,
    links: Mapping[str, str],
    status: Mapping[str, Any] | None = None,
    dry_run: bool = False,
) -> StageReport:
    """Deliver `stage` to every audience not already told (same change, stage, audience, plan).

    Each delivery is recorded as soon as it is made, so a failure part-way loses nothing that
    was sent. A channel that still fails after its retries is reported; the others still go out,
    and a ServiceError (exit 3) at the end lists what was and was not delivered.
    """
    report = StageReport(stage)
    with ledger.lock():
        done = {e.idempotency_key: e for e in ledger.read(change.id)}
        for audience in audiences:
            key = idempotency_key(change.id, stage, audience.id, result.fingerprint)
            if key in done:
                report.already.append(done[key])
                continue
            message = renderer.render(
                stage,
                audience,
                context(
                    policy=policy,
                    result=result,
                    change=change,
                    audience=audience,
                    now=now,
                    links=links,
                    status=status,
                ),
            )
            if dry_run:
                report.previews.append(message)
                continue
            channel = channel_for(audience)
            try:
                delivery = channel.send(message, key)
            except ServiceError as exc:
                report.failed.append((audience.id, str(exc)))
                continue
            entry = Entry(
                change_id=change.id,
                stage=stage,
                audience=audience.id,
                channel=delivery.channel,
                recipient=delivery.recipient,
                fingerprint=result.fingerprint,
                change_type=result.change_type,
                service_impacting=result.service_impacting,
                resources=tuple((r.address, r.action) for r in result.resources),
                delivered_at=delivery.delivered_at or now,
                message_id=delivery.message_id,
                idempotency_key=key,
                emergency=bool(
                    result.change_type
                    and policy.change_type(result.change_type).notice_overrides_others
                ),
            )
            try:
                report.delivered.extend(ledger.record([entry]))
            except HieError as exc:
                raise StageFailed(
                    report,
                    f"{audience.id} was delivered ({delivery.message_id}) but could not be "
                    f"recorded in the ledger ({exc}); a re-run may send it again",
                ) from None
    if report.failed:
        sent = ", ".join(e.audience for e in report.delivered) or "nothing"
        failed = "; ".join(f"{a}: {why}" for a, why in report.failed)
        raise StageFailed(report, f"delivered: {sent}. NOT delivered: {failed}")
    return report


class StageFailed(ServiceError):
    """Some audiences of a stage could not be reached; the others were delivered and recorded."""

    def __init__(self, report: StageReport, message: str) -> None:
        super().__init__(message)
        self.report = report


__all__ = ["HieError", "StageFailed", "StageReport", "run_stage"]
