"""Direct coordination (issue 25, item 4): "For changes affecting specific integrations or data
providers (e.g., S3 access for QA reports), coordinate directly with individuals."

The protected policy's `direct_contacts` maps resource addresses, types and tags (globs) to
named people with their own notice. They hear only of the resources that concern them, at the
announcement and at completion (and of a cancellation), directly (email, a Slack direct
message); the gate waits for their notice; a branch can neither drop them from the policy nor
from the change record."""

from __future__ import annotations

import email
import email.policy
import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hie_notify.audiences import resolve
from hie_notify.change import ChangeRecord
from hie_notify.classify import classify
from hie_notify.cli import main
from hie_notify.errors import InputError
from hie_notify.policy.loader import deep_merge, default_policy_data
from hie_notify.policy.model import Policy
from hie_notify.policy.protected import weakenings
from hie_notify.terraform.plan import parse_plan
from tests.support.builders import plan, rc
from tests.support.cli_flow import Flow
from tests.support.slack_fake import TOKEN, FakeSlack

QA = "aws_s3_bucket.qa_reports"
QA_POLICY = "aws_s3_bucket_policy.qa"  # tagged integration=qa-reports
OTHER_POLICY = "aws_s3_bucket_policy.other"  # untagged
LOGS = "aws_cloudwatch_log_group.app"
PRIYA: dict[str, Any] = {
    "name": "Priya Shah",
    "email": "priya.shah@qa.example.org",
    "slack_user": "U0123ABCD",
    "about": "the QA reports S3 bucket",
    "notice": "2bd",
    "match": [
        {"addresses": ["aws_s3_bucket.qa_reports*"]},
        {"types": ["aws_s3_bucket_policy"], "tags": {"integration": "qa-reports"}},
    ],
}
SUPPORT = {"name": "the DevOps team", "email": "devops@example.org"}
# Not service-impacting, no customers: only the internal channels and the contact are owed.
QUIET = {"downtime": "0", "customers": []}


def resources() -> list[dict[str, Any]]:
    return [
        rc(QA, ["update"], before={"versioning": 1}, after={"versioning": 2}),
        rc(
            QA_POLICY,
            ["update"],
            before={"policy": "a", "tags_all": {"integration": "qa-reports"}},
            after={"policy": "b", "tags_all": {"integration": "qa-reports"}},
        ),
        rc(OTHER_POLICY, ["update"], before={"policy": "a"}, after={"policy": "b"}),
        rc(LOGS, ["update"], before={"retention": 1}, after={"retention": 2}),
    ]


def policy_file(tmp: Path, *contacts: dict[str, Any]) -> Path:
    path = tmp / "policy.yaml"
    path.write_text(
        yaml.safe_dump({"support": SUPPORT, "direct_contacts": list(contacts or [PRIYA])})
    )
    return path


def policy_of(*contacts: dict[str, Any]) -> Policy:
    data = deep_merge(default_policy_data(), {"support": SUPPORT})
    data["direct_contacts"] = list(contacts)
    return Policy.model_validate(data)


def flow(tmp: Path, capsys: pytest.CaptureFixture[str], **env: str) -> Flow:
    return Flow(tmp, capsys, *resources(), policy=policy_file(tmp), env=env, **QUIET)


# --- classify ----------------------------------------------------------------------------------


def test_classify_names_each_contact_with_only_its_resources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = flow(tmp_path, capsys)
    code, out = f("classify", "--plan", str(f.plan))
    assert code == 0, f.err
    assert out["contacts"] == [
        {
            "name": "Priya Shah",
            "resources": [QA, QA_POLICY],  # not the untagged policy, not the log group
            "notice": {"minimum": "2bd", "recommended": "2bd"},
        }
    ]
    assert any(
        r.startswith("direct contact: Priya Shah is told directly of") for r in out["reasons"]
    )
    code = main(
        ["--policy", str(f.policy), "--change", str(f.change), "classify", "--plan", str(f.plan)]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert (
        "Notice to Priya Shah (direct contact): at least 2 business days, 2 business days "
        f"recommended, of {QA}, {QA_POLICY}"
    ) in text


def test_tags_are_read_before_and_after_from_tags_and_tags_all() -> None:
    """A tag being removed still concerns the contact; `tags` and `tags_all` both count; every
    key of a rule must hold (the type and the tag)."""
    pol = policy_of(PRIYA)
    doc = plan(
        rc(
            "aws_s3_bucket_policy.removing",
            ["update"],
            before={"tags": {"integration": "qa-reports"}},
            after={"tags": {}},
        ),
        rc(
            "aws_s3_bucket_policy.adding",
            ["update"],
            before={"tags": {}},
            after={"tags": {"integration": "qa-reports"}},
        ),
        rc(
            "aws_s3_bucket_policy.other_tag",
            ["update"],
            before={"tags": {"integration": "billing"}},
            after={"tags": {"integration": "billing", "x": "y"}},
        ),
        rc(
            "aws_sqs_queue.tagged",
            ["update"],
            before={"tags": {"integration": "qa-reports"}},
            after={"tags": {"integration": "qa-reports", "x": "y"}},
        ),
    )
    result = classify(parse_plan(doc), pol)
    (hit,) = result.contacts
    assert hit.resources == ("aws_s3_bucket_policy.removing", "aws_s3_bucket_policy.adding")


def test_tag_values_are_never_shown() -> None:
    """Tags are attribute values: matched, never kept where a repr or a message shows them."""
    doc = plan(
        rc(QA, ["update"], before={"tags": {"secret": "PLANTED-TAG-9911"}}, after={"tags": {}})
    )
    parsed = parse_plan(doc)
    assert "PLANTED-TAG-9911" not in repr(parsed)
    assert "PLANTED-TAG-9911" not in json.dumps(classify(parsed, policy_of(PRIYA)).to_json())


def test_no_contact_concerned_means_no_contact_audience() -> None:
    pol = policy_of(PRIYA)
    result = classify(parse_plan(plan(rc(LOGS, ["update"], before={"a": 1}, after={"a": 2}))), pol)
    assert result.contacts == ()
    assert not [a for a in resolve(pol, result, None).audiences if a.kind == "contact"]


# --- Hypothesis: a contact hears exactly the resources its rules match -------------------------

TYPES = ["aws_s3_bucket", "aws_s3_bucket_policy", "aws_sqs_queue", "aws_iam_role"]
NAMES = ["qa_reports", "qa_raw", "billing", "logs"]
MODULES = ["", "module.qa.", "module.data."]
TAG_NAMES = ["integration", "owner"]
TAG_VALUES = ["qa-reports", "qa-raw", "billing"]
ADDRESS_GLOBS = [
    "aws_s3_bucket.qa_*",
    "*qa_reports*",
    "module.qa.*",
    "aws_sqs_queue.?illing",
    "*[!s]",
]
TYPE_GLOBS = ["aws_s3_*", "aws_iam_role", "aws_s?s_queue", "*policy"]
VALUE_GLOBS = ["qa-*", "billing", "*raw"]

tags_st = st.dictionaries(st.sampled_from(TAG_NAMES), st.sampled_from(TAG_VALUES), max_size=2)
resource_st = st.tuples(
    st.sampled_from(MODULES),
    st.sampled_from(TYPES),
    st.sampled_from(NAMES),
    tags_st,
    tags_st,
    st.sampled_from(["tags", "tags_all"]),
)
rule_st = st.fixed_dictionaries(
    {},
    optional={
        "addresses": st.lists(st.sampled_from(ADDRESS_GLOBS), min_size=1, max_size=2),
        "types": st.lists(st.sampled_from(TYPE_GLOBS), min_size=1, max_size=2),
        "tags": st.dictionaries(
            st.sampled_from(TAG_NAMES), st.sampled_from(VALUE_GLOBS), min_size=1, max_size=2
        ),
    },
).filter(bool)


def _expected(
    rules: list[dict[str, Any]], address: str, rtype: str, tags: list[tuple[str, str]]
) -> bool:
    def holds(rule: dict[str, Any]) -> bool:
        if "addresses" in rule and not any(
            fnmatch.fnmatchcase(address, g) for g in rule["addresses"]
        ):
            return False
        if "types" in rule and not any(fnmatch.fnmatchcase(rtype, g) for g in rule["types"]):
            return False
        return all(
            any(n == name and fnmatch.fnmatchcase(v, glob) for n, v in tags)
            for name, glob in rule.get("tags", {}).items()
        )

    return any(holds(rule) for rule in rules)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    drawn=st.lists(resource_st, max_size=12, unique_by=lambda r: (r[0], r[1], r[2])),
    rules_a=st.lists(rule_st, min_size=1, max_size=3),
    rules_b=st.lists(rule_st, min_size=1, max_size=3),
)
def test_a_contact_hears_exactly_the_resources_its_rules_match(
    drawn: list[tuple[str, str, str, dict[str, str], dict[str, str], str]],
    rules_a: list[dict[str, Any]],
    rules_b: list[dict[str, Any]],
) -> None:
    contacts = [
        {"name": "Ann", "email": "ann@example.org", "notice": "1bd", "match": rules_a},
        {"name": "Bo", "slack_user": "U0BO", "notice": "48h", "match": rules_b},
    ]
    pol = policy_of(*contacts)
    docs, facts = [], []
    for module, rtype, name, before, after, key in drawn:
        address = f"{module}{rtype}.{name}"
        docs.append(
            rc(address, ["update"], before={key: before, "n": 1}, after={key: after, "n": 2})
        )
        facts.append((address, rtype, [*before.items(), *after.items()]))
    result = classify(parse_plan(plan(*docs)), pol)
    audiences = {a.id: a for a in resolve(pol, result, None).audiences}
    for contact, rules in (("Ann", rules_a), ("Bo", rules_b)):
        expected = tuple(a for a, t, tags in facts if _expected(rules, a, t, tags))
        audience = audiences.get(f"contact:{contact}")
        if not expected:
            assert audience is None
            continue
        assert audience is not None and audience.kind == "contact"
        assert audience.resources == expected
        hit = next(h for h in result.contacts if h.name == contact)
        assert hit.resources == expected


# --- told directly: announce, gate, complete, cancel -------------------------------------------


def _eml(path: Path) -> tuple[email.message.EmailMessage, str, str]:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return message, text.get_content(), html.get_content()


def test_the_contact_is_told_only_its_resources_and_the_gate_waits_for_its_notice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = flow(tmp_path, capsys)
    # Tue 10:00 announced, Wed 19:00 window: 33 hours is enough for the internal channels
    # (24h), not for Priya's two business days.
    f.window("2026-12-02T19:00:00+00:00", "2026-12-02T21:00:00+00:00")
    code, out = f("plan", "--plan", str(f.plan))
    assert code == 0, f.err
    assert "contact-Priya-Shah.eml" in f.outbox("announce")
    message, text, html = _eml(tmp_path / "outbox/FFAPP-4458/announce/contact-Priya-Shah.eml")
    assert message["To"] == "priya.shah@qa.example.org"
    assert " ".join(str(message["Subject"]).split()) == (
        "Planned change to the QA reports S3 bucket: Wed 2 Dec 2026 19:00 to 21:00 GMT "
        "(ref FFAPP-4458)"
    )
    assert QA in text and QA_POLICY in text
    assert OTHER_POLICY not in text and LOGS not in text and OTHER_POLICY not in html
    assert "Dear Priya Shah," in text and "devops@example.org" in text

    code, out = f("gate", "--plan", str(f.plan), now="2026-12-02T19:30:00+00:00")
    assert code == 1 and out["allowed"] is False
    blocking = [r for r in out["reasons"] if "Priya Shah" in r]
    assert blocking and "2 business days" in " ".join(blocking), out["reasons"]
    # Every other audience had its notice: Priya is the one the gate waits for.
    assert all("Priya Shah" in r for r in out["reasons"]), out["reasons"]


def test_with_its_notice_given_the_gate_counts_the_contact_and_completion_tells_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = flow(tmp_path, capsys)
    f.window("2026-12-08T19:00:00+00:00", "2026-12-08T21:00:00+00:00")
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    code, out = f("gate", "--plan", str(f.plan), now="2026-12-08T19:30:00+00:00")
    assert code == 0 and out["allowed"] is True, out["reasons"]
    assert "contact:Priya Shah" in json.dumps(out)
    assert f("apply", "--status", "started", now="2026-12-08T19:31:00+00:00")[0] == 0, f.err
    assert f("apply", "--status", "succeeded", now="2026-12-08T19:50:00+00:00")[0] == 0, f.err
    # No plan at completion: the contact hears of the resources the announcement named.
    assert f("complete", now="2026-12-08T20:00:00+00:00")[0] == 0, f.err
    assert "contact-Priya-Shah.eml" in f.outbox("complete")
    assert "contact-Priya-Shah.eml" not in f.outbox("apply_started")
    message, text, _ = _eml(tmp_path / "outbox/FFAPP-4458/complete/contact-Priya-Shah.eml")
    assert " ".join(str(message["Subject"]).split()) == (
        "Completed: the planned change to the QA reports S3 bucket (ref FFAPP-4458)"
    )
    assert QA in text and QA_POLICY in text and OTHER_POLICY not in text


def test_a_cancellation_tells_the_contact_that_was_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = flow(tmp_path, capsys)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    assert f("cancel", now="2026-12-02T10:00:00+00:00")[0] == 0, f.err
    assert "contact-Priya-Shah.eml" in f.outbox("cancelled")


def test_slack_tells_the_contact_by_direct_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeSlack() as slack:
        f = flow(tmp_path, capsys, SLACK_BOT_TOKEN=TOKEN, SLACK_API_URL=slack.url)
        assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
        posts = [c.body for c in slack.state.calls("chat.postMessage")]
        (dm,) = [p for p in posts if p["channel"] == "U0123ABCD"]
        assert QA in json.dumps(dm) and OTHER_POLICY not in json.dumps(dm)
        assert [m for m in slack.state.messages if m["channel"] == "D0PRIYA"]
        # Completion replies in the direct message's thread, in the channel Slack named.
        for stage, now in (("started", "19:05"), ("succeeded", "19:40")):
            code, _ = f("apply", "--status", stage, now=f"2026-12-08T{now}:00+00:00")
            assert code == 0, f.err
        assert f("complete", now="2026-12-08T21:30:00+00:00")[0] == 0, f.err
        replies = [
            c.body
            for c in slack.state.calls("chat.postMessage")
            if c.body.get("channel") == "D0PRIYA" and c.body.get("thread_ts")
        ]
        assert len(replies) == 1 and "Completed" in replies[0]["text"]


def test_resource_addresses_are_escaped_per_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = 'aws_s3_bucket.qa_reports["<b>x</b>&<!here>"]'
    doc = rc(odd, ["update"], before={"a": 1}, after={"a": 2})
    f = Flow(tmp_path, capsys, doc, policy=policy_file(tmp_path), **QUIET)
    assert f("plan", "--plan", str(f.plan))[0] == 0, f.err
    _, text, html = _eml(tmp_path / "outbox/FFAPP-4458/announce/contact-Priya-Shah.eml")
    assert odd in text
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    written = (tmp_path / "outbox/FFAPP-4458/announce").glob("contact-Priya-Shah*.json")
    for path in written:  # the Slack direct message, when the outbox holds one
        assert "<!here>" not in path.read_text() and "<b>" not in path.read_text()


def test_an_emergency_overrides_the_contacts_notice_but_still_tells_them() -> None:
    pol = policy_of(PRIYA)
    change = ChangeRecord.model_validate(
        {"id": "FFAPP-1", "type": "emergency_fix", "purpose": "Fix", "justification": "Incident"}
    )
    result = classify(parse_plan(plan(*resources())), pol, change)
    (contact,) = [a for a in resolve(pol, result, change).audiences if a.kind == "contact"]
    assert contact.minimum.is_zero() and contact.resources == (QA, QA_POLICY)


# --- what a branch controls ---------------------------------------------------------------------

PROTECTED: dict[str, Any] = {"direct_contacts": [PRIYA], "overridable": []}


def found(branch: dict[str, Any]) -> list[str]:
    return list(weakenings(branch, PROTECTED, []))


@pytest.mark.parametrize(
    ("branch", "why"),
    [
        ({"direct_contacts": []}, "would remove or change 'priya.shah@qa.example.org'"),
        ({"direct_contacts": None}, "expected the list of direct contacts"),
        ({"direct_contacts": [{**PRIYA, "notice": "1bd"}]}, "would remove or change"),
        ({"direct_contacts": [{**PRIYA, "notice": "0bd"}]}, "would remove or change"),
        ({"direct_contacts": [{**PRIYA, "match": PRIYA["match"][:1]}]}, "would remove or change"),
        ({"direct_contacts": [{**PRIYA, "match": [{"addresses": ["nothing.*"]}]}]}, "would remove"),
        ({"direct_contacts": [{**PRIYA, "email": "someone@else.example.org"}]}, "would remove"),
        ({"direct_contacts": [{**PRIYA, "slack_user": None}]}, "would remove or change"),
        (
            {"direct_contacts": {"0": {"name": "Priya Shah"}}},
            "expected the list of direct contacts",
        ),
    ],
)
def test_a_branch_cannot_drop_or_weaken_a_direct_contact(branch: dict[str, Any], why: str) -> None:
    problems = found(branch)
    assert problems and why in problems[0], problems


def test_a_branch_may_add_a_contact_and_write_one_the_same_way_differently() -> None:
    bo = {
        "name": "Bo",
        "email": "bo@example.org",
        "notice": "1bd",
        "match": [{"types": ["aws_sqs_*"]}],
    }
    assert found({"direct_contacts": [PRIYA, bo]}) == []
    same = {**PRIYA, "notice": {"minimum": "2bd", "recommended": "2bd"}}
    assert found({"direct_contacts": [bo, same]}) == []


def test_in_ci_a_branch_policy_that_drops_the_contact_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end through the protected policy: the default branch's file (this pipeline's
    checkout of the protected default branch) names Priya; the branch's file may not drop her."""
    from hie_notify.policy.protected import load_effective

    monkeypatch.chdir(tmp_path)
    protected = tmp_path / "protected.yaml"
    protected.write_text(yaml.safe_dump({"support": SUPPORT, "direct_contacts": [PRIYA]}))
    env = {
        "GITLAB_CI": "true",
        "CI_PROJECT_ID": "7",
        "CI_DEFAULT_BRANCH": "main",
        "CI_COMMIT_BRANCH": "main",
        "CI_COMMIT_REF_PROTECTED": "true",
        "CI_PIPELINE_SOURCE": "push",
    }
    loaded = load_effective(protected, env)
    assert [c.name for c in loaded.policy.direct_contacts] == ["Priya Shah"]
    # The branch's own file, at the default path, tries to drop her.
    branch = tmp_path / ".hie-notify" / "policy.yaml"
    branch.parent.mkdir()
    branch.write_text(yaml.safe_dump({"direct_contacts": []}))
    (tmp_path / ".hie-notify" / "protected.yaml").write_text(protected.read_text())
    with pytest.raises(InputError, match="direct_contacts: would remove or change"):
        load_effective(None, {**env, "HIE_POLICY_PATH": ".hie-notify/protected.yaml"})


def test_a_change_record_cannot_remove_the_contacts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = flow(tmp_path, capsys)
    f.write_change(direct_contacts=[])
    code, _ = f("classify", "--plan", str(f.plan))
    assert code == 2 and "direct_contacts" in f.err
    # Whatever type it declares, the plan's resources still concern Priya.
    f.fields.pop("direct_contacts")
    f.write_change(type="application_update")
    code, out = f("classify", "--plan", str(f.plan))
    assert code == 0 and [c["name"] for c in out["contacts"]] == ["Priya Shah"]


# --- the policy file ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contact", "why"),
    [
        ({**PRIYA, "match": []}, "match"),
        ({**PRIYA, "match": [{}]}, "a rule needs at least one of addresses, types or tags"),
        ({**PRIYA, "slack_user": "#qa"}, "expected a Slack member id like U0123ABCD"),
        (
            {k: v for k, v in PRIYA.items() if k not in ("email", "slack_user")},
            "give email, slack_user or teams",
        ),
        ({**PRIYA, "notice": "2 days"}, "notice"),
        ({**PRIYA, "name": "a:b"}, "expected a plain name"),
    ],
)
def test_a_bad_contact_is_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], contact: dict[str, Any], why: str
) -> None:
    path = policy_file(tmp_path, contact)
    code = main(["--policy", str(path), "validate"])
    err = capsys.readouterr().err
    assert code == 2 and "direct_contacts" in err and why in err, err
    assert "Traceback" not in err


def test_validate_lists_each_contact_and_its_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--policy", str(policy_file(tmp_path)), "validate"])
    out = capsys.readouterr().out
    assert code == 0
    assert (
        "direct contact Priya Shah (email, slack; 2bd notice, 2bd recommended): told of changes "
        "to addresses aws_s3_bucket.qa_reports*; or types aws_s3_bucket_policy and tags "
        "integration=qa-reports (direct_contacts)"
    ) in out


def test_the_default_policy_has_none_and_the_example_names_the_qa_reports_owner() -> None:
    from hie_notify.policy.loader import load_policy

    assert load_policy().direct_contacts == []
    example = load_policy(Path(__file__).parents[2] / "examples" / "policy.yaml")
    (qa,) = example.direct_contacts
    assert qa.about == "the QA reports S3 bucket" and qa.slack_user


def test_a_large_plan_read_the_lean_way_has_the_same_tags(tmp_path: Path) -> None:
    """Plans over 256 KiB are read by the typed decoder (plan_decode): it reads the same tags
    as the general reader, so a tag rule holds however large the plan."""
    from hie_notify.terraform.plan import LEAN_FROM_BYTES, load_plan
    from tests.support.big_plans import repeated

    tagged = rc(
        "aws_s3_bucket_policy.qa",
        ["update"],
        before={"policy": "a", "tags": {"integration": "qa-reports"}, "tags_all": None},
        after={"policy": "b", "tags": {}, "tags_all": {"integration": "qa-reports", "n": 1}},
    )
    raw = repeated(tagged, 2_000)
    assert len(raw) >= LEAN_FROM_BYTES
    path = tmp_path / "plan.json"
    path.write_bytes(raw)
    lean = load_plan(path)
    assert lean == parse_plan(json.loads(raw), str(path))
    assert lean.resource_changes[0].tags == (("integration", "qa-reports"),)
    assert classify(lean, policy_of(PRIYA)).contacts[0].resources[0].startswith(QA_POLICY)


def test_the_compliance_report_has_a_notice_row_for_the_contact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = flow(tmp_path, capsys)
    f.window("2026-12-08T19:00:00+00:00", "2026-12-08T21:00:00+00:00")
    register = ["--register", f"sqlite:{tmp_path}/register.sqlite3"]
    assert f(*register, "plan", "--plan", str(f.plan))[0] == 0, f.err
    for stage, now in (("started", "19:05"), ("succeeded", "19:40")):
        code, _ = f(*register, "apply", "--status", stage, now=f"2026-12-08T{now}:00+00:00")
        assert code == 0, f.err
    assert f(*register, "complete", now="2026-12-08T21:30:00+00:00")[0] == 0, f.err
    out = tmp_path / "report.json"
    code = main(
        [
            *register,
            "--policy",
            str(f.policy),
            "--now",
            "2026-12-09T10:00:00+00:00",
            "report",
            "--from",
            "2026-12-01",
            "--to",
            "2026-12-31",
            "--format",
            "json",
            "--output",
            str(out),
        ],
        env={},
    )
    assert code == 0, capsys.readouterr().err
    rows = json.loads(out.read_text())["tables"]["notices"]
    (row,) = [r for r in rows if r["audience"] == "contact:Priya Shah"]
    assert row["kind"] == "contact" and row["unit"] == "business days"
    assert row["required"] == 2 and row["given"] == 5 and row["level"] == "recommended"


def test_a_branch_cannot_shadow_a_contact_with_a_second_entry_of_the_same_name() -> None:
    """Keeping Priya's entry and adding another "Priya Shah" with no notice would make two
    audiences of one name: the policy refuses it (exit 2 naming the name)."""
    shadow = {**PRIYA, "notice": "0bd", "match": [{"addresses": ["nothing"]}]}
    assert found({"direct_contacts": [PRIYA, shadow]}) == []  # the protected entry is kept...
    with pytest.raises(ValueError, match="direct_contacts: Priya Shah is listed more than once"):
        policy_of(PRIYA, shadow)  # ...and the merged policy is refused
