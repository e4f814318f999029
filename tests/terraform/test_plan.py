"""Reading `terraform show -json` into the plan model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hie_notify.errors import InputError
from hie_notify.terraform.plan import load_plan, parse_plan
from tests.support.builders import plan, rc, write


@pytest.mark.parametrize(
    ("actions", "action", "bucket"),
    [
        (["no-op"], "no-op", "no_op"),
        (["create"], "create", "add"),
        (["read"], "read", "read"),
        (["update"], "update", "change"),
        (["delete", "create"], "replace", "replace"),
        (["create", "delete"], "replace", "replace"),
        (["delete"], "delete", "destroy"),
        (["forget"], "forget", "forget"),
    ],
)
def test_actions_and_summary(actions: list[str], action: str, bucket: str) -> None:
    p = parse_plan(plan(rc("aws_s3_bucket.logs", actions, before={}, after={})))
    assert p.resource_changes[0].action == action
    assert p.summary[bucket] == 1
    assert sum(p.summary.values()) == 1


def test_resource_fields() -> None:
    p = parse_plan(
        plan(
            rc(
                'module.eks.aws_eks_node_group.workers["general"]',
                ["create", "delete"],
                before={"instance_types": ["m5.large"]},
                after={"instance_types": ["m6i.xlarge"]},
                action_reason="replace_because_cannot_update",
                replace_paths=[["instance_types"]],
                index="general",
            )
        )
    )
    r = p.resource_changes[0]
    assert r.module == "module.eks"
    assert (r.type, r.name, r.mode) == ("aws_eks_node_group", "workers", "managed")
    assert r.provider == "registry.terraform.io/hashicorp/aws"
    assert r.action_reason == "replace_because_cannot_update"
    assert r.replace_paths == ("instance_types",)


def test_import_move_and_drift_and_outputs() -> None:
    doc = plan(
        rc("aws_route53_record.api", ["no-op"], importing={"id": "Z1_api_A"}),
        rc(
            'module.network.aws_subnet.private["a"]',
            ["no-op"],
            previous_address='aws_subnet.private["a"]',
        ),
        rc("aws_vpc.main", ["no-op"]),
        resource_drift=[
            rc("aws_vpc.main", ["update"], before={"tags": {}}, after={"tags": {"a": "b"}})
        ],
        output_changes={
            "endpoint": {"actions": ["update"], "before": "a", "after": "b"},
            "password": {"actions": ["create"], "after": "x", "after_sensitive": True},
        },
    )
    p = parse_plan(doc)
    assert p.summary["import"] == 1 and p.summary["move"] == 1 and p.summary["no_op"] == 3
    imp, mov, noop = p.resource_changes
    assert (imp.importing, imp.import_id, imp.effective_action, imp.is_change) == (
        True,
        "Z1_api_A",
        "import",
        True,
    )
    assert (mov.moved, mov.effective_action, mov.is_change) == (True, "move", True)
    assert not noop.is_change
    assert [c.address for c in p.changes] == [imp.address, mov.address]
    assert p.drift[0].address == "aws_vpc.main" and p.drift[0].changed_attributes == {
        "tags",
        "tags.a",
    }
    assert [(o.name, o.action, o.sensitive) for o in p.outputs] == [
        ("endpoint", "update", False),
        ("password", "create", True),
    ]


def test_changed_attribute_names_one_and_two_levels() -> None:
    p = parse_plan(
        plan(
            rc(
                "aws_eks_node_group.workers",
                ["update"],
                before={"scaling_config": [{"desired_size": 3, "max_size": 6}], "tags": {"a": "1"}},
                after={"scaling_config": [{"desired_size": 4, "max_size": 6}], "tags": {"a": "1"}},
                after_unknown={"status": True, "labels": {}},
            )
        )
    )
    assert p.resource_changes[0].changed_attributes == {
        "scaling_config",
        "scaling_config.desired_size",
        "status",
    }


def test_fingerprint_depends_on_changing_resources_only() -> None:
    a = parse_plan(plan(rc("aws_s3_bucket.a", ["create"]), rc("aws_vpc.b", ["no-op"])))
    b = parse_plan(plan(rc("aws_vpc.b", ["no-op"]), rc("aws_s3_bucket.a", ["create"])))
    c = parse_plan(plan(rc("aws_s3_bucket.a", ["delete", "create"])))
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert a.fingerprint().startswith("sha256:")


def test_no_resource_changes_key_is_an_empty_plan() -> None:
    p = parse_plan({"format_version": "1.2", "planned_values": {"root_module": {}}})
    assert p.resource_changes == () and not p.has_changes


def test_drift_without_address_from_terraform_1_0_0() -> None:
    entry = rc('module.m.aws_x.y["k"]', ["update"], index="k")
    del entry["address"]
    p = parse_plan(plan(resource_drift=[entry]))
    assert p.drift[0].address == 'module.m.aws_x.y["k"]'


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ([1, 2], "expected a JSON object (a Terraform plan), got a list"),
        ({"resource_changes": []}, "format_version: required key is missing"),
        ({"format_version": "2.0", "resource_changes": []}, "unsupported plan format '2.0'"),
        ({"format_version": "1.0", "values": {}}, "this is a state file"),
        ({"format_version": "1.0", "hello": 1}, "this is not a plan"),
        ({"format_version": "1.2", "resource_changes": {}}, "resource_changes: expected a list"),
        (plan(rc("aws_x.y", ["explode"])), "resource_changes[0].change.actions: unknown action"),
        (plan({"type": "aws_x"}), "resource_changes[0].address: expected a resource address"),
        (plan({"address": "aws_x.y", "type": "aws_x"}), "resource_changes[0].change: expected"),
        (plan("oops"), "resource_changes[0]: expected an object, got a string"),
        (plan(output_changes=[]), "output_changes: expected an object"),
    ],
)
def test_not_a_plan(tmp_path: Path, doc: object, expected: str) -> None:
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(InputError) as info:
        load_plan(f)
    assert str(info.value).startswith(f"{f}: ")
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"not json at all", r"not JSON \(a text file; is this the `terraform show -json`"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"not JSON \(a binary file; is this the"),
        (b"PK\x03\x04\x14\x00\x00\x00", "this is a saved plan file.*terraform show -json"),
        (b'{"format_version": "1.2", "resource_changes": [', "the file looks truncated"),
        (b'{"format_version": "1.2",, "resource_changes": []}', "not valid JSON at line 1"),
        (b'{"a": "\xc3\x28"}', "not UTF-8"),
    ],
)
def test_unreadable_json(tmp_path: Path, content: bytes, expected: str) -> None:
    f = tmp_path / "plan.json"
    f.write_bytes(content)
    with pytest.raises(InputError, match=expected):
        load_plan(f)


@settings(max_examples=300, deadline=None)
@given(content=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_a_file_that_is_not_a_plan_says_what_it_is(content: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        f = Path(folder) / "plan.json"
        f.write_bytes(content)
        try:
            load_plan(f)
        except InputError as exc:
            text = str(exc)
        else:
            return
    assert text.startswith(f"{f}: ")
    starts = content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if ("not JSON" in text or "not valid JSON" in text) and starts not in (b"{", b"["):
        # Never "truncated" for a file that was never JSON: what it is, and what to give.
        assert "truncated" not in text
        assert "is this the `terraform show -json` output?" in text or "saved plan" in text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_plan(tmp_path / "nope.json")


def test_values_are_never_kept(tmp_path: Path) -> None:
    secret = "PLANTED-SECRET-1234"
    doc = plan(
        rc(
            "aws_db_instance.main",
            ["update"],
            before={"password": "old"},
            after={"password": secret},
            before_sensitive={"password": True},
        )
    )
    p = load_plan(write(tmp_path / "p.json", doc))
    assert secret not in repr(p)
    assert p.resource_changes[0].changed_attributes == {"password"}
