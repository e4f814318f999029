"""The window, audience and days the payload builders' tests share (moved from
tests/test_statuspage_payload.py): a window in GMT, in BST and across the clock changes."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from hie_notify.audiences import Audience
from hie_notify.channels import Outgoing
from hie_notify.durations import parse_notice
from hie_notify.policy.model import Statuspage
from hie_notify.render import Rendered

UTC = timezone.utc
LONDON = ZoneInfo("Europe/London")
ZERO = parse_notice("0")
AUD = Audience(
    "customer:EoE",
    "customer",
    "East of England",
    "Europe/London",
    frozenset({"pre_deployment"}),
    ZERO,
    ZERO,
    ("planned_infra_update",),
)
START = datetime(2026, 12, 8, 19, tzinfo=UTC)
END = datetime(2026, 12, 8, 21, tzinfo=UTC)
SETTINGS = Statuspage(
    page_id="8m2l51279rpl",
    components={"EoE": ["y6ssccsqgy81", "y6ssccsqgy82"], "prod": ["y6ssccsqgy82", "y6ssccsqgy83"]},
)
# The days the clocks change in London, their neighbours, and a winter and a summer day.
DAYS = (
    date(2026, 3, 28),
    date(2026, 3, 29),
    date(2026, 3, 30),
    date(2026, 10, 24),
    date(2026, 10, 25),
    date(2026, 10, 26),
    date(2026, 1, 13),
    date(2026, 6, 16),
)


def outgoing(
    stage: str = "announce",
    *,
    text: str = "Encrypt the database",
    subject: str = "Planned change (ref FFAPP-1)",
    state: str = "",
    window: tuple[datetime, datetime] | None = (START, END),
) -> Outgoing:
    msg = Rendered(stage, AUD, subject, {"text": text})
    return Outgoing("FFAPP-1", msg, "k", "statuspage", (), None, window, lifecycle_state=state)
