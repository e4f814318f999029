"""The sprint update (issue 25, item 3): the matrix lets an application update's internal notice
be "part of sprint update". A change type's `internal_digest` names internal channels (e.g.
#product) that hear of it in the weekly digest instead of at each change; #devops still hears
each one. Classification, audiences, the gate's notice and `hie-notify digest` all follow it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from hie_notify.audiences import resolve, told_by_digest
from hie_notify.change import ChangeRecord
from hie_notify.classify import classify
from hie_notify.policy import Policy, load_policy
from hie_notify.policy.loader import default_policy_data
from hie_notify.policy.protected import weakenings
from hie_notify.terraform.plan import parse_plan
from tests.support.builders import plan, rc
from tests.support.cli_flow import Flow
from tests.support.paths import EXAMPLES

ROLLOUT = rc("helm_release.portal", ["update"], before={"v": "1"}, after={"v": "2"})
DNS = rc("aws_route53_record.api", ["update"], before={"ttl": 1}, after={"ttl": 2})
SPRINT = {"change_types": {"application_update": {"internal_digest": ["#product"]}}}


def _policy(**app: Any) -> Policy:
    data = default_policy_data()
    data["change_types"]["application_update"].update(app)
    return Policy.model_validate(data)


def _ids(policy: Policy, *changes: dict[str, Any]) -> tuple[Any, list[str]]:
    change = ChangeRecord.model_validate({"id": "FFAPP-3", "purpose": "x", "downtime": "0"})
    result = classify(parse_plan(plan(*changes)), policy, change)
    return result, [a.id for a in resolve(policy, result, change).audiences]


def test_product_hears_application_updates_in_the_digest_devops_each_one() -> None:
    # Fails on main: `internal_digest` is an unknown key there.
    policy = _policy(internal_digest=["#product"])
    result, ids = _ids(policy, ROLLOUT)
    assert ids == ["slack:#devops", "stakeholders:business"]
    assert told_by_digest(policy, result.categories) == ["slack:#product"]
    assert (
        "application_update: #product hears of it in the weekly digest (internal_digest: the "
        "sprint update), not at each stage; #devops hears of each change"
    ) in result.reasons
    # #devops still needs its 24h.
    assert {n.audience: str(n.minimum) for n in result.notice}["internal"] == "24h"


def test_a_category_that_tells_product_each_change_still_does() -> None:
    # An infrastructure change riding along lists #product per change: #product hears of it.
    policy = _policy(internal_digest=["#product"])
    result, ids = _ids(policy, ROLLOUT, DNS)
    assert "slack:#product" in ids
    assert told_by_digest(policy, result.categories) == []
    assert not any("internal_digest" in r for r in result.reasons)


def test_the_default_policy_tells_product_each_change(policy: Policy) -> None:
    result, ids = _ids(policy, ROLLOUT)
    assert ids == ["slack:#devops", "slack:#product", "stakeholders:business"]
    assert told_by_digest(policy, result.categories) == []


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ({"internal_digest": ["#sales"]}, "#sales is not one of internal_channels"),
        ({"internal_digest": ["#devops", "#product"]}, "at least one internal channel"),
        ({"internal_digest": ["product"]}, "expected Slack channel names"),
    ],
)
def test_a_bad_internal_digest_is_refused(app: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _policy(**app)


def test_an_emergency_cannot_wait_for_the_digest() -> None:
    data = default_policy_data()
    data["change_types"]["emergency_fix"]["internal_digest"] = ["#devops"]
    with pytest.raises(ValidationError, match="overrides the others"):
        Policy.model_validate(data)


@pytest.mark.parametrize("overridable", [[], ["change_types.*"], ["change_types.*.*"]])
def test_a_branch_cannot_move_devops_to_the_digest(overridable: list[str]) -> None:
    protected = default_policy_data()
    branch = {"change_types": {"application_update": {"internal_digest": ["#devops"]}}}
    problems = list(weakenings(branch, protected, overridable))
    assert problems and "internal_digest" in problems[0]
    # Taking a channel out of the digest (telling it each change) is allowed when overridable.
    protected["change_types"]["application_update"]["internal_digest"] = ["#product"]
    back = {"change_types": {"application_update": {"internal_digest": []}}}
    assert list(weakenings(back, protected, ["change_types.*"])) == []


def test_the_examples_policy_uses_the_sprint_update() -> None:
    policy = load_policy(EXAMPLES / "policy.yaml")
    assert policy.change_type("application_update").internal_digest == ["#product"]


def _flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Flow:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(SPRINT))
    return Flow(tmp_path, capsys, ROLLOUT, policy=policy, downtime="0", customers=[])


def test_classify_and_preview_show_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = _flow(tmp_path, capsys)
    code, out = flow("classify", "--plan", str(flow.plan))
    assert code == 0, flow.err
    assert out["told_by_digest"] == ["slack:#product"]
    assert any("internal_digest: the sprint update" in r for r in out["reasons"])
    code, out = flow("preview", "plan", "--plan", str(flow.plan))
    assert code == 0, flow.err
    shown = json.dumps(out)
    assert "slack:#devops" in shown and "slack:#product" not in shown


def test_the_digest_sends_product_its_sprint_update_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _flow(tmp_path, capsys)
    reg = ["--register", f"sqlite:{tmp_path}/register.sqlite3"]
    code, _ = flow(*reg, "plan", "--plan", str(flow.plan), now="2026-12-01T10:00:00+00:00")
    assert code == 0, flow.err
    announced = sorted(p.name for p in (tmp_path / "outbox" / "FFAPP-4458" / "announce").iterdir())
    assert "slack-devops.json" in announced and "slack-product.json" not in announced

    code, out = flow(*reg, "digest", now="2026-12-07T08:00:00+00:00")
    assert code == 0, flow.err
    sent = [(r["digest"], r["audience"]) for r in out["sent"]]
    assert ("summary", "slack:#devops") in sent and ("sprint", "slack:#product") in sent
    sprint = next(d for d in out["digests"] if d["kind"] == "sprint")
    assert sprint["changes"] == {"last_week": [], "this_week": ["FFAPP-4458"]}
    texts = [
        p.read_text()
        for p in (tmp_path / "outbox").rglob("*product*")
        if p.is_file() and "FFAPP-4458" not in p.parts
    ]
    assert texts and "Sprint update: #product hears of each Application Update" in texts[0]
    assert "FFAPP-4458" in texts[0]
    # The gate waits for #devops's 24 hours, not for #product (told in the digest), and a
    # rollout owes no customer notice: it opens with no customer named.
    code, gate = flow("gate", "--plan", str(flow.plan), now="2026-12-08T19:05:00+00:00")
    assert code == 0 and gate["allowed"], flow.err
    assert [r["audience"] for r in gate["required"]] == ["slack:#devops", "stakeholders:business"]
    # A second run that week sends nothing again; the next week's run sends last week's.
    code, out = flow(*reg, "digest", now="2026-12-09T08:00:00+00:00")
    assert code == 0 and ("sprint", "slack:#product") not in [
        (r["digest"], r["audience"]) for r in out["sent"]
    ]
    assert ("sprint", "slack:#product") in [
        (r["digest"], r["audience"]) for r in out["already_sent"]
    ]
    code, out = flow(*reg, "digest", now="2026-12-14T08:00:00+00:00")
    assert code == 0
    sprint = next(d for d in out["digests"] if d["kind"] == "sprint")
    assert sprint["changes"] == {"last_week": ["FFAPP-4458"], "this_week": []}


def test_validate_shows_the_new_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = Flow(tmp_path, capsys, ROLLOUT, policy=EXAMPLES / "policy.yaml")
    code, out = flow("validate")
    assert code == 0, flow.err
    phase1 = [r for r in out["rules"] if r.endswith("(requires, Phase 1)")]
    assert [r.split(":")[0] for r in phase1] == [
        "scheduled_maintenance",
        "planned_infra_update",
        "application_update",
        "iam_permission_change",
        "cost_optimization",
    ]
    assert [r for r in out["rules"] if r not in phase1] == [
        "emergency_fix: alerts on announce, apply_failed, rollback_failed, overrun: Slack @here, "
        "#devops @channel; a PagerDuty incident to the key in PAGERDUTY_EMERGENCY_ROUTING_KEY "
        "(alerts)",
        "scheduled_maintenance: internal channels reminded weekly until the window "
        "(reminders.internal_cadence)",
        "application_update: #product hears of it in the weekly digest (internal_digest, the "
        "sprint update); #devops of each change",
        "iam_permission_change: #cloud-security, #devops and the Jira comment get each IAM "
        "policy statement's actions and resource ARNs added and removed (iam_detail)",
        "direct contact Priya Shah (email, slack; 2bd notice, 3bd recommended): told of changes "
        "to addresses aws_s3_bucket.qa_reports*, aws_s3_bucket_*.qa_reports*; or types aws_s3_* "
        "and tags integration=qa-reports (direct_contacts)",
    ]
