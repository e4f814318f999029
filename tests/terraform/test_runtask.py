"""The run task protocol without a server: parsing what HCP sends, the callback's limits."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hie_notify.errors import InputError
from hie_notify.terraform.runtask import (
    MAX_OUTCOMES,
    Outcome,
    TaskResult,
    callback_document,
    commit_in,
    jira_key,
    parse_request,
    verify,
)
from tests.support.runtask_harness import SHA, payload, sign

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5)


@settings(deadline=None)  # timing is for bench/, not tests: a loaded CI machine is slow
@given(st.dictionaries(st.sampled_from(sorted(payload())), values, max_size=12))
def test_any_mangled_request_is_refused_with_a_named_field_or_parsed(over: dict[str, Any]) -> None:
    try:
        request = parse_request(payload(**over))
    except InputError as exc:
        assert str(exc).startswith("run task request: ")
    else:
        assert request.stage in ("pre_plan", "post_plan", "pre_apply", "post_apply")
        assert isinstance(request.task_result_id, str) and request.task_result_id


def test_unknown_keys_are_ignored_and_fields_read() -> None:
    request = parse_request(payload(some_future_field={"x": 1}, vcs_commit_url=None))
    assert request.stage == "pre_apply" and request.outcomes is True
    assert request.jira_key == "FFAPP-4458"
    assert request.vcs_commit is None  # no VCS and no SHA in the message
    with_sha = parse_request(payload(run_message=f"FFAPP-4458 {SHA}: resize"))
    assert with_sha.vcs_commit == SHA
    assert parse_request(payload()).vcs_commit == SHA  # from vcs_commit_url
    with pytest.raises(InputError, match="payload_version"):
        parse_request(payload(payload_version=2))
    with pytest.raises(InputError, match="task_result_id: missing"):
        parse_request({k: v for k, v in payload().items() if k != "task_result_id"})


def test_keys_and_shas_in_messages() -> None:
    assert jira_key("Merge branch 'ffapp-1' into main: FFAPP-4458 resize") == "FFAPP-4458"
    assert jira_key("resize the nodes") is None and jira_key(None) is None
    assert commit_in(f"deploy {SHA} now") == SHA and commit_in(SHA[:39]) is None


def test_verify_is_exact() -> None:
    body = b'{"payload_version": 1}'
    assert verify("k" * 20, body, sign(body, "k" * 20))
    assert verify("k" * 20, body, sign(body, "k" * 20).upper() + " ")
    assert not verify("k" * 20, body + b" ", sign(body, "k" * 20))
    assert not verify("k" * 20, body, "")


texts = st.text(min_size=0, max_size=12_000)


@settings(max_examples=40, deadline=None)
@given(texts, st.lists(st.tuples(texts, texts, st.text(max_size=80)), max_size=300))
def test_the_callback_stays_inside_hcps_schema(message: str, reasons: list[Any]) -> None:
    outcomes = tuple(
        Outcome(oid, description, body, "error", "Failed", "High")
        for description, body, oid in reasons
    )
    doc = callback_document(
        TaskResult("failed", message, "https://x.example/1", outcomes), with_outcomes=True
    )
    attrs = doc["data"]["attributes"]
    assert 1 <= len(attrs["message"]) <= 1000 and "\n" not in attrs["message"]
    if not outcomes:
        assert "relationships" not in doc["data"]
        return
    sent = doc["data"]["relationships"]["outcomes"]["data"]
    assert 1 <= len(sent) <= MAX_OUTCOMES
    for item in sent:
        a = item["attributes"]
        assert item["type"] == "task-result-outcomes"
        assert 1 <= len(a["outcome-id"]) <= 64
        assert 1 <= len(a["description"]) <= 1000
        assert 1 <= len(a["body"]) <= 10_000
        assert set(a["tags"]) == {"Status", "Severity"}
        assert all(1 <= len(label["label"]) <= 32 for tag in a["tags"].values() for label in tag)
