"""Messages chosen by the change's kind (planned or urgent), the transition and what happened
before it, and the reader: what each reader is told is true to the change's lifecycle."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import plan, policy_without, rc, write
from tests.support.cli_flow import Flow
from tests.support.paths import EXAMPLES

DB = rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["storage_encrypted"]])
TAGS = rc("aws_s3_bucket.logs", ["update"], before={"tags": {}}, after={"tags": {"a": "b"}})
EMERGENCY = {
    "type": "emergency_fix",
    "justification": "CVE-2026-0001 is being exploited",
    "window": None,
}


def _flow(tmp: Path, capsys: pytest.CaptureFixture[str], *resources: Any, **change: Any) -> Flow:
    return Flow(tmp, capsys, *(resources or (DB,)), policy=EXAMPLES / "policy.yaml", **change)


def _mail(path: Path) -> email.message.EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def _customer(tmp: Path, stage: str, who: str = "customer-EoE") -> tuple[str, str]:
    """(subject, plain text) of the last email `who` was sent at `stage`."""
    files = _sent(tmp / "outbox/FFAPP-4458" / stage, f"{who}*.eml")
    assert files, f"no {who} email at {stage}"
    msg = _mail(files[-1])
    return str(msg["Subject"]), str(msg.get_body(("plain",)).get_content())


def _sent(folder: Path, pattern: str) -> list[Path]:
    """The outbox's files in the order written (`x.eml`, `x.2.eml`, `x.3.eml`, ...)."""
    return sorted(folder.glob(pattern), key=lambda p: (len(p.suffixes), p.name))


def _preview(flow: Flow, *args: str) -> dict[str, dict[str, Any]]:
    code, out = flow("preview", *args)
    assert code == 0, flow.err
    return {m["audience"]: m for m in out["messages"]}


def test_an_emergency_is_never_called_planned_work_and_its_rollback_says_what_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The issue's reproduction: an emergency announced with no window yet, started, failed,
    # rolled back, completed.
    flow = _flow(tmp_path, capsys, **EMERGENCY)
    steps = [
        ("announce",),
        ("apply", "--status", "started"),
        ("apply", "--status", "failed"),
        ("rollback", "--status", "succeeded"),
        ("complete",),
    ]
    for minute, args in enumerate(steps):
        code, _ = flow(*args, now=f"2026-12-08T10:{minute}5:00+00:00")
        assert code == 0, flow.err
    stages = ("apply_started", "apply_failed", "rollback_succeeded", "complete")
    told = {stage: _customer(tmp_path, stage) for stage in ("announce", *stages)}
    for stage, (subject, text) in told.items():
        assert "planned" not in subject.lower() and "planned" not in text.lower(), stage
        assert "not scheduled yet" not in text, stage  # an emergency is as soon as possible
    for stage in ("rollback_succeeded", "complete"):
        subject, text = told[stage]
        assert "may still affect the service" in text, stage
        assert "What happens next: we are working on another fix" in text, stage
        assert "running as it was before" not in text and "nothing you need to do" not in text
        assert "Withdrawn" not in subject
    assert told["complete"][0].startswith("Update: the urgent change to ")
    assert (
        "The urgent work on the HIE Secure Data Environment has started."
        in (told["apply_started"][1])
    )
    # the team is told the problem may be back
    devops = (tmp_path / "outbox/FFAPP-4458/complete/slack-devops.json").read_text()
    assert "the problem it was to fix may still be there" in devops


def test_a_planned_change_rolled_back_is_withdrawn_as_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _flow(tmp_path, capsys)
    flow("plan", "--plan", str(flow.plan))
    flow("apply", "--status", "failed", now="2026-12-08T19:20:00+00:00")
    flow("rollback", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")
    flow("complete", now="2026-12-08T20:30:00+00:00")
    subject, text = _customer(tmp_path, "complete")
    assert subject.startswith("Withdrawn: the planned change")
    assert "running as it was before" in text and "may still affect" not in text


@pytest.mark.parametrize("command", ["plan", "announce"])
def test_without_a_downtime_estimate_the_impact_is_not_known_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # a change (plan) or an incident (announce, without a plan) with no `downtime` at all
    # a scheduled maintenance is told to every customer, service-impacting or not
    fields = {"downtime": None, "type": "scheduled_maintenance"}
    fields.update(EMERGENCY if command == "announce" else {})
    flow = _flow(tmp_path, capsys, TAGS, **fields)
    if command == "plan":  # a planned change without an estimate: the policy must allow it
        flow.policy = policy_without(
            tmp_path, EXAMPLES / "policy.yaml", "scheduled_maintenance", "downtime"
        )
    args = ("plan", "--plan", str(flow.plan)) if command == "plan" else ("announce",)
    by = _preview(flow, *args) if command == "plan" else None
    code, _ = flow(*args)
    assert code == 0, flow.err
    _, text = _customer(tmp_path, "announce")
    assert "We do not expect any interruption" not in text
    assert "What you may notice: The impact on the service is not known yet" in text
    internal = (tmp_path / "outbox/FFAPP-4458/announce").glob("slack-*.json")
    for path in internal:
        body = path.read_text()
        assert "none expected" not in body and "*Expected downtime*: not known yet" in body
    if by is not None:
        assert "not known yet" in by["customer:EoE"]["text"]


def test_downtime_zero_declared_is_none_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _flow(tmp_path, capsys, TAGS, downtime="0", type="scheduled_maintenance")
    by = _preview(flow, "plan", "--plan", str(flow.plan))
    assert "What you may notice: We do not expect any interruption." in by["customer:EoE"]["text"]
    assert "*Expected downtime*: none expected" in by["slack:#devops"]["slack"]


def test_a_moved_window_is_announced_as_rescheduled_and_updates_the_invite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _flow(tmp_path, capsys)
    assert flow("plan", "--plan", str(flow.plan), now="2026-11-30T10:00:00+00:00")[0] == 0
    flow.window("2026-12-10T19:00:00+00:00", "2026-12-10T21:00:00+00:00")
    flow.write_change(customers=["EoE", "CUH"])  # CUH hears of it for the first time
    code, _ = flow("plan", "--plan", str(flow.plan), now="2026-12-01T10:00:00+00:00")
    assert code == 0, flow.err
    subject, text = _customer(tmp_path, "announce")
    assert subject.startswith("Rescheduled: planned change to the HIE Secure Data Environment")
    assert "Thu 10 Dec 2026 19:00 to 21:00 GMT" in subject
    assert "has moved from Tue 8 Dec 2026 19:00 GMT to Thu 10 Dec 2026 19:00 GMT." in text, text
    # a customer told for the first time reads a plain announcement: nothing moved for it
    cuh_subject, cuh_text = _customer(tmp_path, "announce", "customer-CUH")
    assert cuh_subject.startswith("Planned change to") and "moved" not in cuh_text
    # the team sees where it was
    devops = _sent(tmp_path / "outbox/FFAPP-4458/announce", "slack-devops*.json")[-1]
    assert "(rescheduled)" in devops.read_text()
    assert "*Moved from*: Tue 8 Dec 2026 19:00 to 21:00 GMT" in devops.read_text()
    # the calendar invite is the same event, updated: same UID, a higher SEQUENCE
    invites = []
    for path in _sent(tmp_path / "outbox/FFAPP-4458/announce", "customer-EoE*.eml"):
        part = next(p for p in _mail(path).iter_attachments())
        lines = part.get_content().splitlines()
        invites.append(
            {k: v for k, _, v in (x.partition(":") for x in lines) if k in ("UID", "SEQUENCE")}
        )
    assert [i["SEQUENCE"] for i in invites] == ["0", "1"]
    assert invites[0]["UID"] == invites[1]["UID"]


def test_customers_read_the_customer_summary_and_never_an_internal_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _flow(
        tmp_path,
        capsys,
        purpose="Replace RDS main with storage_encrypted (tf-deployment role)",
        customer_summary="Encrypting the database that stores your projects",
    )
    flow.env["GITLAB_USER_LOGIN"] = "ollie"
    flow("plan", "--plan", str(flow.plan))
    flow("apply", "--status", "started", now="2026-12-08T19:05:00+00:00")
    flow("apply", "--status", "succeeded", now="2026-12-08T19:30:00+00:00")
    flow("complete", now="2026-12-08T20:30:00+00:00")
    for stage in ("announce", "apply_started", "apply_succeeded", "complete"):
        subject, text = _customer(tmp_path, stage)
        assert "Encrypting the database that stores your projects" in text, stage
        assert "tf-deployment" not in text + subject, stage
        assert "ollie" not in text and "Checked by" not in text, stage
    devops = (tmp_path / "outbox/FFAPP-4458/complete/slack-devops.json").read_text()
    assert "tf-deployment role" in devops and "ollie" in devops


def test_documents_read_the_replayed_lifecycle_not_a_fresh_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The post-mortem issue (and the merge request note) is rendered from the change's replayed
    # lifecycle: an emergency that failed had no window, it is not "as soon as possible".
    flow = _flow(tmp_path, capsys, **EMERGENCY)
    steps = [("announce",), ("apply", "--status", "started"), ("apply", "--status", "failed")]
    for minute, args in enumerate(steps):
        code, _ = flow(*args, now=f"2026-12-08T10:{minute}5:00+00:00")
        assert code == 0, flow.err
    issue = (tmp_path / "outbox/FFAPP-4458/postmortem-issue.md").read_text()
    assert "· no window (an emergency)" in issue, issue
    assert "as soon as possible" not in issue


def test_a_re_plan_after_the_announcement_is_told_as_an_update_only_when_it_tells_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A scheduled maintenance with no downtime estimate, announced with a plan that touches no
    # service, then planned again (same window) with one that does: customers told before read
    # that the details were updated, not a second first announcement.
    flow = _flow(tmp_path, capsys, TAGS, type="scheduled_maintenance", downtime=None)
    flow.policy = policy_without(
        tmp_path, EXAMPLES / "policy.yaml", "scheduled_maintenance", "downtime"
    )
    assert flow("plan", "--plan", str(flow.plan), now="2026-11-30T10:00:00+00:00")[0] == 0
    first_subject, first = _customer(tmp_path, "announce")
    assert first_subject.startswith("Planned change to") and "updated" not in first
    # the same plan again: nothing new for anyone
    assert flow("plan", "--plan", str(flow.plan), now="2026-11-30T11:00:00+00:00")[0] == 0
    assert len(_sent(tmp_path / "outbox/FFAPP-4458/announce", "customer-EoE*.eml")) == 1
    bigger = write(tmp_path / "bigger.json", plan(TAGS, DB))
    code, _ = flow("plan", "--plan", str(bigger), now="2026-11-30T12:00:00+00:00")
    assert code == 0, flow.err
    assert len(_sent(tmp_path / "outbox/FFAPP-4458/announce", "customer-EoE*.eml")) == 2
    subject, text = _customer(tmp_path, "announce")
    assert subject.startswith("Updated: planned change to the HIE Secure Data Environment")
    assert "We have updated the details of the planned change" in text
    assert "may be slower or interrupted; how much is not known yet" in text
    devops = _sent(tmp_path / "outbox/FFAPP-4458/announce", "slack-devops*.json")[-1]
    assert "(plan updated)" in devops.read_text()


def test_a_change_announced_again_after_its_rollback_is_told_as_a_new_try(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _flow(tmp_path, capsys)
    assert flow("plan", "--plan", str(flow.plan))[0] == 0
    flow("apply", "--status", "failed", now="2026-12-08T19:20:00+00:00")
    flow("rollback", "--status", "succeeded", now="2026-12-08T19:40:00+00:00")
    # the fixed plan, in a new window (a planned change is not announced inside its window)
    fixed = write(tmp_path / "fixed.json", plan(DB, TAGS))
    flow.window("2026-12-10T19:00:00+00:00", "2026-12-10T21:00:00+00:00")
    code, _ = flow("plan", "--plan", str(fixed), now="2026-12-08T19:45:00+00:00")
    assert code == 0, flow.err
    subject, text = _customer(tmp_path, "announce")
    assert subject.startswith("Trying again: planned change to"), subject
    assert (
        "We undid the planned change to the HIE Secure Data Environment that we told you about, "
        "and we are going to try it again at a new time: it has moved from Tue 8 Dec 2026 19:00 "
        "GMT to Thu 10 Dec 2026 19:00 GMT." in text
    ), text
    devops = _sent(tmp_path / "outbox/FFAPP-4458/announce", "slack-devops*.json")[-1]
    assert "(trying again after a rollback, rescheduled)" in devops.read_text()
    code, _ = flow("apply", "--status", "started", now="2026-12-10T19:05:00+00:00")
    assert code == 0, flow.err
    _, started = _customer(tmp_path, "apply_started")
    assert "This is our second attempt." in started
