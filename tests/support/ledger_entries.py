"""A ledger entry to append (moved from tests/test_ledger_file.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hie_notify.ledger import Entry, idempotency_key

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)


def entry(n: int = 0, change: str = "FFAPP-1", audience: str = "slack:#devops") -> Entry:
    return Entry(
        change_id=change,
        stage="announce",
        audience=audience,
        channel="outbox",
        recipient="#devops",
        fingerprint="sha256:abc",
        change_type="planned_infra_update",
        service_impacting=True,
        resources=(("aws_db_instance.main", "replace"),),
        delivered_at=T0 + timedelta(seconds=n),
        message_id=f"msg-{n}",
        idempotency_key=idempotency_key(change, "announce", f"{audience}{n}", "sha256:abc"),
    )
