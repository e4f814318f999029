"""Every message variant (change type x transition x audience kind), rendered by `hie-notify
preview` through the command line as people run it, at the point of the change's lifecycle
where it would be sent, and checked for the facts that must hold in it.

Set HIE_VARIANTS_OUT to a folder to keep every rendered text there (one file per change type),
for a person to read them all.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import plan as plan_of
from tests.support.builders import policy_without, rc, write
from tests.support.cli_flow import Flow
from tests.support.paths import EXAMPLES

DB = rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["storage_encrypted"]])
TAGS = rc("aws_s3_bucket.logs", ["update"], before={"tags": {}}, after={"tags": {"a": "b"}})
LOGIN = "ollie.internal"  # who ran the jobs: never shown outside
PURPOSE = "Replace RDS main with storage_encrypted (tf-deployment role)"
SUMMARY = "Encrypting the database that stores your projects"
WINDOW = ("2026-12-08T19:00:00+00:00", "2026-12-08T21:00:00+00:00")
MOVED = ("2026-12-10T19:00:00+00:00", "2026-12-10T21:00:00+00:00")


@dataclass(frozen=True)
class Kind:
    """One change type under one policy; `downtime` None: no estimate; `windowless`: an
    emergency announced without a plan or a window (an incident)."""

    name: str
    policy: Path | None
    type: str
    downtime: str | None = "1h"
    windowless: bool = False

    @property
    def emergency(self) -> bool:
        return self.type == "emergency_fix"


KINDS = [
    Kind("planned_infra_update", EXAMPLES / "policy.yaml", "planned_infra_update"),
    Kind("scheduled_maintenance", EXAMPLES / "policy.yaml", "scheduled_maintenance", None),
    Kind("application_update", EXAMPLES / "policy.yaml", "application_update"),
    Kind("emergency_fix", EXAMPLES / "policy.yaml", "emergency_fix"),
    Kind("incident", EXAMPLES / "policy.yaml", "emergency_fix", None, windowless=True),
    Kind("default-planned_infra_update", None, "planned_infra_update"),
    Kind("default-cost_optimization", None, "cost_optimization", "0"),
    Kind("default-emergency_fix", None, "emergency_fix", None),
]


@dataclass(frozen=True)
class Message:
    variant: str
    audience: str
    kind: str  # the audience's kind (internal, meeting, customer, stakeholder)
    subject: str
    text: str

    @property
    def external(self) -> bool:
        return self.kind in ("customer", "stakeholder")


class Variants:
    """Runs the flow and collects what `preview` renders at each point."""

    def __init__(self, tmp: Path, capsys: pytest.CaptureFixture[str], kind: Kind) -> None:
        self.tmp, self.capsys, self.kind = tmp, capsys, kind
        self.messages: list[Message] = []

    def flow(self, name: str) -> Flow:
        folder = self.tmp / name
        folder.mkdir()
        k = self.kind
        fields: dict[str, Any] = {
            "type": k.type,
            "purpose": PURPOSE,
            "customer_summary": SUMMARY,
            "justification": "CVE-2026-0001 is being exploited",
            "downtime": k.downtime,
            "window": None if k.windowless else {"start": WINDOW[0], "end": WINDOW[1]},
        }
        # A planned change without a downtime estimate: only under a policy that does not
        # require one (Phase 1 holds it back otherwise).
        policy = (
            policy_without(folder, k.policy, k.type, "downtime")
            if k.downtime is None and not k.emergency
            else k.policy
        )
        return Flow(
            folder, self.capsys, DB, policy=policy, env={"GITLAB_USER_LOGIN": LOGIN}, **fields
        )

    def run(self, flow: Flow, *args: str, now: str) -> None:
        code, _ = flow(*args, now=now)
        assert code == 0, f"{args}: {flow.err}"

    def preview(self, flow: Flow, variant: str, *args: str, now: str) -> list[Message]:
        code, out = flow("preview", *args, now=now)
        assert code == 0, f"{variant}: {flow.err}"
        found = []
        for m in out["messages"]:
            if "request" in m:  # an integration (Statuspage, PagerDuty, ...): its request
                body = json.dumps(m["request"], ensure_ascii=False)
                found.append(Message(variant, m["audience"], m["kind"], "", body))
            else:
                found.append(Message(variant, m["audience"], m["kind"], m["subject"], m["text"]))
        assert found or variant.startswith("overrun"), f"{variant}: nobody hears it"
        self.messages += found
        return found

    def write(self, path: Path) -> None:
        lines = []
        for m in self.messages:
            lines += [
                "=" * 78,
                f"{self.kind.name} · {m.variant} · {m.audience} ({m.kind})",
                f"Subject: {m.subject}",
                "-" * 78,
                m.text.rstrip(),
            ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _day(hour: int, minute: int = 0, day: int = 8) -> str:
    return f"2026-12-{day:02d}T{hour:02d}:{minute:02d}:00+00:00"


def _render_all(v: Variants) -> None:
    k = v.kind
    announce = ("announce",) if k.windowless else ("plan", "--plan")
    # The way that succeeds.
    a = v.flow("succeeds")
    plan = (str(a.plan),) if not k.windowless else ()
    v.preview(a, "announce", *announce, *plan, now=_day(10, day=1))
    v.run(a, *announce, *plan, now=_day(10, day=1))
    if not k.windowless:
        a.window(*MOVED)
        v.preview(a, "announce rescheduled", *announce, *plan, now=_day(11, day=1))
        a.window(*WINDOW)
        other = write(a.tmp / "other.json", plan_of(DB, TAGS))
        v.preview(a, "announce re-planned", "plan", "--plan", str(other), now=_day(11, day=1))
        v.preview(a, "reminder", "reminder", now=_day(19, day=7))
        v.preview(a, "window_opens", "window_opens", now=_day(19, 5))
        v.preview(a, "overrun (not started)", "overrun", now=_day(21, 30))
    v.preview(a, "cancelled", "cancel", now=_day(18))
    v.preview(a, "update (not started)", "update", "--message", "Starting soon", now=_day(18))
    v.run(a, "apply", "--status", "started", now=_day(19, 5))
    v.preview(a, "apply_succeeded", "apply", "--status", "succeeded", now=_day(19, 10))
    v.preview(a, "apply_failed", "apply", "--status", "failed", now=_day(19, 10))
    v.preview(a, "rollback_started", "rollback", "--status", "started", now=_day(19, 10))
    v.preview(a, "update", "update", "--message", "Half way there", now=_day(19, 10))
    if not k.windowless:
        v.preview(a, "overrun (started)", "overrun", now=_day(21, 30))
    v.run(a, "apply", "--status", "succeeded", now=_day(19, 30))
    v.preview(a, "complete after success", "complete", now=_day(20))

    # The way that fails, is rolled back, and is tried again.
    b = v.flow("rolled-back")
    plan = (str(b.plan),) if not k.windowless else ()
    v.run(b, *announce, *plan, now=_day(10, day=1))
    v.preview(b, "apply_started", "apply", "--status", "started", now=_day(19, 5))
    v.run(b, "apply", "--status", "started", now=_day(19, 5))
    v.run(b, "apply", "--status", "failed", now=_day(19, 20))
    v.preview(b, "rollback_succeeded", "rollback", "--status", "succeeded", now=_day(19, 25))
    v.preview(b, "rollback_failed", "rollback", "--status", "failed", now=_day(19, 25))
    v.preview(b, "apply_started (second attempt)", "apply", "--status", "started", now=_day(19, 25))
    v.run(b, "rollback", "--status", "started", now=_day(19, 25))
    v.run(b, "rollback", "--status", "succeeded", now=_day(19, 50))
    v.preview(
        b, "apply_started (after the rollback)", "apply", "--status", "started", now=_day(19, 55)
    )
    if not k.windowless:  # announced again with a fixed plan, in a new window
        other = write(b.tmp / "other.json", plan_of(DB, TAGS))
        b.window(*MOVED)
        v.preview(b, "announce after the rollback", "plan", "--plan", str(other), now=_day(19, 55))
        b.window(*WINDOW)
    v.preview(b, "complete after rollback", "complete", now=_day(20))


Check = Callable[[Kind, Message], str | None]


def _never_planned(k: Kind, m: Message) -> str | None:
    text = m.subject + m.text
    if not m.external:  # the team reads the policy's name of each category the plan touches
        text = text.replace("Planned Infra Update", "")
    if k.emergency and re.search(r"\bplanned\b", text, re.IGNORECASE):
        return "an emergency called planned"
    return None


def _internal_names_stay_inside(k: Kind, m: Message) -> str | None:
    if m.external and (LOGIN in m.text or "tf-deployment" in m.subject + m.text):
        return "an internal name in an external message"
    if m.external and "request" not in m.variant and SUMMARY not in m.text and m.subject:
        return "customers not told what changes in their words (customer_summary)"
    return None


def _downtime_true(k: Kind, m: Message) -> str | None:
    text = m.subject + m.text
    if k.downtime is None and (
        "We do not expect any interruption" in text or "none expected" in text
    ):
        return "no estimate, yet says no interruption"
    told = m.external and m.variant.startswith("announce")
    if k.downtime is None and told and "not known yet" not in text:
        return "no estimate, and does not say the impact is not known yet"
    return None


def _outcome_true(k: Kind, m: Message) -> str | None:
    text = (m.subject + "\n" + m.text).lower()
    if m.variant == "complete after rollback":
        if "completed successfully" in text or ("is complete" in text and "withdrawn" not in text):
            return "a rolled-back change said to be complete"
        if (
            k.emergency
            and m.external
            and ("nothing you need to do" in text or "running as it was before" in text)
        ):
            return "an emergency's rollback told as if nothing were wrong"
        if k.emergency and m.external and "may still" not in text:
            return "an emergency rolled back, and not told the problem may persist"
    if m.variant == "complete after success" and ("withdrawn" in text or "rolled back" in text):
        return "a change that succeeded said to be withdrawn"
    rolled_back = m.variant == "rollback_succeeded" and k.emergency and m.external
    if rolled_back and "nothing you need to do" in text:
        return "an emergency's rollback told as if nothing were wrong"
    return None


def _attempt_true(k: Kind, m: Message) -> str | None:
    text = (m.subject + "\n" + m.text).lower()
    again = m.variant.startswith("apply_started (")
    if again and "second attempt" not in text:
        return "a second attempt not told as one"
    if not again and "second attempt" in text:
        return "a first attempt told as a second"
    return None


def _overrun_true(k: Kind, m: Message) -> str | None:
    if m.variant == "overrun (not started)":
        if m.kind != "internal":
            return "an overrun of work never started told outside the team"
        if "not been recorded as started" not in m.text:
            return "the team not told the work was never recorded as started"
    return None


def _times_true(k: Kind, m: Message) -> str | None:
    if m.variant == "reminder" and "in 1 day" not in m.subject + m.text:
        return "a reminder a day before that does not say so"
    if m.variant == "announce rescheduled" and m.external and "moved from" not in m.text:
        return "a moved window not told as moved"
    if m.variant == "announce re-planned":
        if m.external and "We have updated the details" not in m.text:
            return "a re-plan not told as an update of what was announced"
        if not m.external and m.subject and "(plan updated)" not in m.subject:
            return "the team not told the plan was updated"
    if m.variant == "announce" and ("updated the details" in m.text or "(plan updated)" in m.text):
        return "a first announcement told as an update"
    if m.variant == "announce after the rollback":
        if m.external and "we are going to try it again" not in m.text:
            return "a change undone and announced again, not told as a new try"
        if not m.external and m.subject and "(trying again after a rollback" not in m.subject:
            return "the team not told the change is tried again after its rollback"
    elif "try it again" in m.text or "trying again after a rollback" in m.text:
        return "told as tried again when it was not undone"
    return None


# The labels that start a line of a message: one glued to the end of the line before (a block
# tag that ate the newline) reads "...1 hourOn call: Leon".
_LABELS = (
    "Key user flows|On call|Rollback plan|Service impact|Window|Jira|Plan|Leads?|Risk|Contact"
    "|Expected downtime|What we|When|Our reference|What you may notice"
)


def _reads_right(k: Kind, m: Message) -> str | None:
    if re.search(rf"[a-z0-9.)]\*?(?:{_LABELS})\b", m.text):
        return "a line run into the next"
    if "after rollback" in m.variant and "checked by" in m.text:
        return "key user flows said to be checked on a change that did not stay"
    if m.external and re.search(r"\b(hie-notify|gitlab|terraform)\b", m.subject + m.text, re.I):
        return "tooling named to a customer"
    return None


CHECKS: list[Check] = [
    _reads_right,
    _never_planned,
    _internal_names_stay_inside,
    _downtime_true,
    _outcome_true,
    _attempt_true,
    _overrun_true,
    _times_true,
]


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_every_variant_is_true_to_what_happened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: Kind
) -> None:
    v = Variants(tmp_path, capsys, kind)
    _render_all(v)
    v.write(tmp_path / "variants.txt")
    out = os.environ.get("HIE_VARIANTS_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        v.write(Path(out) / f"{kind.name}.txt")
    kinds = {m.kind for m in v.messages}
    assert {"internal", "customer"} <= kinds, kinds
    problems = [
        f"{m.variant} -> {m.audience}: {why}"
        for m in v.messages
        for check in CHECKS
        if (why := check(kind, m)) is not None
    ]
    assert not problems, "\n".join(problems)
