"""Fakes of the project's own seams: channels that count what they are given, a renderer that does
no templating, a file ledger that counts its locks or refuses to record, and the stage runner over
them (moved from tests/test_idempotency.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hie_notify.audiences import Audience
from hie_notify.change import ChangeRecord
from hie_notify.channels import Delivery, Outgoing
from hie_notify.classify import Classification
from hie_notify.errors import InputError, ServiceError
from hie_notify.ledger import Entry
from hie_notify.ledger.file import FileLedger
from hie_notify.notify import StageReport, run_stage
from hie_notify.policy import Policy
from hie_notify.render import Rendered
from tests.support.gate_records import audience, classification, record

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)


@dataclass
class FakeChannel:
    kind: str
    fail: int = 0  # fail the next N sends (still failing after retries)
    refuse: int = 0  # refuse the next N sends (a 4xx)
    note: str = ""
    sent: list[Outgoing] = field(default_factory=list)

    def send(self, outgoing: Outgoing) -> Delivery:
        if self.fail:
            self.fail -= 1
            raise ServiceError(f"{self.kind} is down")
        if self.refuse:
            self.refuse -= 1
            raise InputError(f"{self.kind} refused: check SLACK_BOT_TOKEN")
        self.sent.append(outgoing)
        n = len(self.sent)
        label = outgoing.rendered.audience.label
        return Delivery(self.kind, label, f"{self.kind}-{n}", note=self.note)


@dataclass
class FakeChannels:
    by_kind: dict[str, FakeChannel]
    kinds: dict[str, list[str]]  # audience id -> channel kinds
    fallbacks: dict[str, str] = field(default_factory=dict)

    def for_audience(self, audience: Audience) -> list[tuple[str, FakeChannel]]:
        return [(k, self.by_kind[k]) for k in self.kinds[audience.id]]


class FakeRenderer:
    def __init__(self) -> None:
        self.rendered: list[tuple[str, str]] = []
        self.contexts: list[Any] = []

    def mask(self, text: str) -> str:
        return text.replace("secret", "[MASKED]")

    def render(self, stage: str, audience: Audience, context: Any) -> Rendered:
        self.rendered.append((stage, audience.id))
        self.contexts.append(context)
        return Rendered(stage, audience, f"{stage} for {audience.id}", {"text": stage})


@dataclass
class Stage:
    policy: Policy
    ledger: FileLedger
    channels: FakeChannels
    renderer: FakeRenderer
    audiences: Sequence[Audience]

    def __call__(
        self,
        stage: str = "announce",
        *,
        result: Classification | None = None,
        change: ChangeRecord | None = None,
        now: datetime = NOW,
        **kw: Any,
    ) -> StageReport:
        return run_stage(
            stage=stage,
            policy=self.policy,
            change=change or record(),
            result=result or classification(),
            audiences=self.audiences,
            ledger=self.ledger,
            channels=self.channels,  # type: ignore[arg-type]
            renderer=self.renderer,  # type: ignore[arg-type]
            now=now,
            links={},
            **kw,
        )

    def sent(self, kind: str = "slack") -> list[Outgoing]:
        return self.channels.by_kind[kind].sent


@pytest.fixture
def stage(tmp_path: Path, policy: Policy) -> Stage:
    devops, product = audience("slack:#devops"), audience("slack:#product")
    channels = FakeChannels(
        {"slack": FakeChannel("slack"), "email": FakeChannel("email")},
        {devops.id: ["slack"], product.id: ["slack", "email"]},
    )
    return Stage(
        policy, FileLedger(tmp_path / "ledger.jsonl"), channels, FakeRenderer(), [devops, product]
    )


class LockingLedger(FileLedger):
    def __init__(self, path: Path, fail_record: bool = False) -> None:
        super().__init__(path)
        self.locks = 0
        self.fail_record = fail_record

    def lock(self) -> Any:
        self.locks += 1
        return super().lock()

    def record(self, entries: list[Entry]) -> list[Entry]:
        if self.fail_record:
            raise InputError("ledger.jsonl: read-only file system")
        return super().record(entries)
