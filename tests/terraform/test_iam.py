"""IAM changes in detail (issue 25, item 7): #cloud-security and the Jira comment get, per IAM
policy document, each statement's actions and resource ARNs (and principals) added and removed,
from the plan's before/after; a value marked sensitive says "(sensitive)" and nothing of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hie_notify import safejson
from hie_notify.policy.loader import default_policy_data
from hie_notify.policy.model import Policy
from hie_notify.terraform import plan_decode
from hie_notify.terraform.iam import diff_statements, document_changes
from hie_notify.terraform.plan import parse_plan
from tests.support.builders import plan, rc, write
from tests.support.cli_flow import Flow
from tests.support.paths import EXAMPLES

SECRET_ARN = "arn:aws:secretsmanager:eu-west-2:111122223333:secret:do-not-show-me"


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


BEFORE = doc(
    {
        "Sid": "QaReports",
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": ["arn:aws:s3:::qa-reports", "arn:aws:s3:::qa-reports/*"],
    },
    {"Sid": "Old", "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"},
)
AFTER = doc(
    {
        "Sid": "QaReports",
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:PutObject"],
        "Resource": ["arn:aws:s3:::qa-reports/*", "arn:aws:s3:::<!channel>*evil*/`x`"],
    },
    {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/deployer"},
)
TRUST_BEFORE = doc(
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
)
TRUST_AFTER = doc(
    {
        "Effect": "Allow",
        "Principal": {"Service": ["ec2.amazonaws.com"], "AWS": "arn:aws:iam::999:root"},
        "Action": "sts:AssumeRole",
    }
)


def _resources() -> list[dict[str, Any]]:
    policy = rc("aws_iam_policy.qa", ["update"], before={"policy": BEFORE}, after={"policy": AFTER})
    role = rc(
        "aws_iam_role.tf_deployment",
        ["update"],
        before={"assume_role_policy": TRUST_BEFORE, "inline_policy": []},
        after={
            "assume_role_policy": TRUST_AFTER,
            "inline_policy": [{"name": "ecr-pull", "policy": doc(
                {"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*"}
            )}],
        },
    )  # fmt: skip
    secret = rc(
        "aws_iam_role_policy.hidden",
        ["update"],
        before={"policy": doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})},
        after={"policy": doc({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": SECRET_ARN})},
    )
    secret["change"]["after_sensitive"] = {"policy": True}
    return [policy, role, secret]


def test_statements_added_and_removed_per_document() -> None:
    # Fails on main: the plan model kept no IAM detail.
    p = parse_plan(plan(*_resources()))
    by = {(d.address, d.attribute): d for d in p.iam}
    qa = by[("aws_iam_policy.qa", "policy")]
    s = {x.label: x for x in qa.statements}
    assert s["QaReports"].change == "changed"
    assert s["QaReports"].actions_added == ("s3:PutObject",)
    assert s["QaReports"].actions_removed == ("s3:ListBucket",)
    assert s["QaReports"].resources_added == ("arn:aws:s3:::<!channel>*evil*/`x`",)
    assert s["QaReports"].resources_removed == ("arn:aws:s3:::qa-reports",)
    assert s["Old"].change == "removed" and s["Old"].actions_removed == ("logs:PutLogEvents",)
    assert s["statement 2"].change == "added"
    assert s["statement 2"].resources_added == ("arn:aws:iam::1:role/deployer",)
    trust = by[("aws_iam_role.tf_deployment", "assume_role_policy")]
    (only,) = trust.statements
    assert only.principals_added == ("AWS: arn:aws:iam::999:root",) and not only.actions_added
    inline = by[("aws_iam_role.tf_deployment", "inline_policy[ecr-pull]")]
    assert inline.statements[0].actions_added == ("ecr:BatchGetImage",)
    hidden = by[("aws_iam_role_policy.hidden", "policy")]
    assert hidden.sensitive and hidden.statements == ()
    assert SECRET_ARN not in repr(p)


def test_a_policy_known_only_after_apply_says_so() -> None:
    r = rc(
        "aws_iam_role_policy.p",
        ["update"],
        before={"policy": BEFORE},
        after={},
        after_unknown={"policy": True},
    )
    (d,) = parse_plan(plan(r)).iam
    assert d.unknown and d.statements == ()


def test_the_lean_reader_finds_the_same() -> None:
    raw = json.dumps(plan(*_resources())).encode()
    general = parse_plan(safejson.loads(raw))
    assert plan_decode.read(raw, "plan", 1 << 40).iam == general.iam


ACTIONS = st.sampled_from(
    ["s3:GetObject", "s3:PutObject", "iam:PassRole", "kms:Decrypt", "ec2:*", "sts:AssumeRole"]
)
ARNS = st.sampled_from(
    ["*", "arn:aws:s3:::a", "arn:aws:s3:::a/*", "arn:aws:iam::1:role/x", "arn:aws:kms:::key/1"]
)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    sids = draw(st.lists(st.sampled_from(["A", "B", "C", "D"]), unique=True, max_size=4))
    return {
        sid: {
            "Sid": sid,
            "Effect": "Allow",
            "Action": draw(st.lists(ACTIONS, unique=True, min_size=1, max_size=4)),
            "Resource": draw(st.lists(ARNS, unique=True, min_size=1, max_size=3)),
        }
        for sid in sids
    }


@settings(max_examples=150, deadline=None)
@given(documents(), documents(), st.booleans(), st.randoms(use_true_random=False))
def test_mutated_policy_documents_diff_to_the_set_differences(
    old: dict[str, dict[str, Any]],
    new: dict[str, dict[str, Any]],
    sensitive: bool,
    random: Any,
) -> None:
    before_list, after_list = list(old.values()), list(new.values())
    random.shuffle(after_list)
    change = {
        "before": {"policy": json.dumps({"Statement": before_list})},
        "after": {"policy": json.dumps({"Statement": after_list})},
        "after_sensitive": {"policy": sensitive},
    }
    docs = document_changes("aws_iam_policy.p", "update", change)
    if sensitive:
        assert all(d.sensitive and not d.statements for d in docs)

        def sets(d: dict[str, dict[str, Any]]) -> dict[str, tuple[set[str], set[str]]]:
            return {k: (set(v["Action"]), set(v["Resource"])) for k, v in d.items()}

        # Reported when its statements change (not when only their order does).
        assert len(docs) == (1 if sets(old) != sets(new) else 0)
        return
    got = {s.label: s for d in docs for s in d.statements}
    for sid in old.keys() | new.keys():
        o, n = old.get(sid), new.get(sid)
        o_act, n_act = set(o["Action"]) if o else set(), set(n["Action"]) if n else set()
        o_res, n_res = set(o["Resource"]) if o else set(), set(n["Resource"]) if n else set()
        if o_act == n_act and o_res == n_res and o is not None and n is not None:
            assert sid not in got  # only reordered: nothing to say
            continue
        s = got[sid]
        assert s.change == ("added" if o is None else "removed" if n is None else "changed")
        assert set(s.actions_added) == n_act - o_act
        assert set(s.actions_removed) == o_act - n_act
        assert set(s.resources_added) == n_res - o_res
        assert set(s.resources_removed) == o_res - n_res
    # The same document, reordered, changes nothing.
    assert diff_statements(after_list, list(reversed(after_list))) == ()
    # Both readers agree.
    raw = json.dumps(plan(rc("aws_iam_policy.p", ["update"], **change))).encode()
    assert plan_decode.read(raw, "plan", 1 << 40).iam == parse_plan(safejson.loads(raw)).iam


def test_iam_detail_must_name_an_internal_channel() -> None:
    data = default_policy_data()
    data["change_types"]["iam_permission_change"]["iam_detail"] = ["#security"]
    with pytest.raises(ValidationError, match="iam_detail: #security is not one of"):
        Policy.model_validate(data)


def _flow(tmp_path: Path, capsys: pytest.CaptureFixture[str], **policy: Any) -> Flow:
    data = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())
    data.update(policy)
    path = write(tmp_path / "policy.json", data)
    return Flow(tmp_path, capsys, *_resources(), policy=path, downtime="0", customers=[])


def test_cloud_security_and_jira_get_the_detail_escaped_devops_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())
    data["change_types"]["iam_permission_change"]["iam_detail"] = ["#cloud-security"]
    flow = _flow(tmp_path, capsys, jira={"enabled": True}, change_types=data["change_types"])
    code, _ = flow("plan", "--plan", str(flow.plan))
    assert code == 0, flow.err
    folder = tmp_path / "outbox" / "FFAPP-4458" / "announce"
    files = {p.name: p.read_text() for p in folder.iterdir()}
    security = files["slack-cloud-security.json"]
    text = "\n".join(_texts(json.loads(security)))
    assert "*IAM policy changes*" in text
    assert (
        "`aws_iam_policy.qa` policy, QaReports (Allow, changed): actions added: s3:PutObject; "
        "actions removed: s3:ListBucket; resources added: arn:aws:s3:::&lt;!channel&gt;*evil*/`x`"
        in text
    )
    assert "principals added: AWS: arn:aws:iam::999:root" in text
    assert "`aws_iam_role_policy.hidden` policy: (sensitive)" in text
    assert "<!channel>" not in security
    assert "IAM policy changes" not in files["slack-devops.json"]
    jira = next(v for k, v in files.items() if k.startswith("jira"))
    assert "IAM policy changes" in jira and "actions added: s3:PutObject" in jira
    for content in files.values():
        assert SECRET_ARN not in content and "kms:Decrypt" not in content


def _texts(value: Any) -> list[str]:
    """Every text of a Slack payload (its fallback and its blocks')."""
    if isinstance(value, dict):
        return [
            t
            for k, v in value.items()
            for t in ([v] if k == "text" and isinstance(v, str) else _texts(v))
        ]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def test_classify_lists_the_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = _flow(tmp_path, capsys)
    code, out = flow("classify", "--plan", str(flow.plan))
    assert code == 0, flow.err
    docs = {(d["address"], d["attribute"]): d for d in out["iam_changes"]}
    assert docs[("aws_iam_role_policy.hidden", "policy")] == {
        "address": "aws_iam_role_policy.hidden",
        "attribute": "policy",
        "action": "update",
        "sensitive": True,
        "known_after_apply": False,
        "statements": [],
    }
    assert SECRET_ARN not in json.dumps(out)
    qa = docs[("aws_iam_policy.qa", "policy")]
    assert qa["statements"][0]["actions_added"] == ["s3:PutObject"]


def test_a_branch_cannot_take_cloud_security_off_the_detail() -> None:
    from hie_notify.policy.protected import weakenings

    protected = default_policy_data()
    branch = {"change_types": {"iam_permission_change": {"iam_detail": []}}}
    for overridable in ([], ["change_types.*"]):
        problems = list(weakenings(branch, protected, overridable))
        assert problems and "iam_detail" in problems[0]
    more = {
        "change_types": {"iam_permission_change": {"iam_detail": ["#cloud-security", "#devops"]}}
    }
    assert list(weakenings(more, protected, ["change_types.*"])) == []
