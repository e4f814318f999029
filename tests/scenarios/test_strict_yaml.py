"""Strict files (issue 23, item 3): a key written twice in any YAML the tool reads is refused,
naming the file and both lines. YAML itself keeps the last silently: a second `customers:` in a
change record dropped EoE from every notice and from the gate."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hie_notify.cli import main
from hie_notify.errors import InputError
from hie_notify.yamlfile import parse_yaml_mapping, read_yaml_mapping
from tests.support.builders import rc
from tests.support.cli_flow import Flow
from tests.support.paths import EXAMPLES
from tests.support.trust_ci import ANNOUNCED, AT_WINDOW, Pipeline, pipeline

HINT = "remove one (YAML would silently keep only the last)"


def _problems(raw: bytes, source: str = "f.yaml") -> list[str]:
    with pytest.raises(InputError) as caught:
        parse_yaml_mapping(raw, source)
    return caught.value.problems


def test_a_repeated_key_names_the_file_both_lines_and_the_key() -> None:
    raw = b"id: FFAPP-1\ncustomers: [EoE, CUH]\npurpose: x\ncustomers: [CUH]\n"
    assert _problems(raw, "change.yaml") == [
        f"change.yaml: line 4, column 1: duplicate key 'customers' (first at line 2): {HINT}"
    ]


def test_repeated_keys_at_any_depth_are_all_named() -> None:
    raw = (
        b"customers:\n"
        b"  EoE:\n"
        b"    name: East of England\n"
        b"    contacts: [{email: a@x.org, email: b@x.org}]\n"
        b"    name: EoE\n"
        b"change_types:\n"
        b"  - {lead: a, lead: b}\n"
    )
    assert _problems(raw) == [
        f"f.yaml: line 4, column 33: duplicate key 'customers.EoE.contacts[0].email' (first at "
        f"line 4, column 17): {HINT}",
        f"f.yaml: line 5, column 5: duplicate key 'customers.EoE.name' (first at line 3): {HINT}",
        f"f.yaml: line 7, column 15: duplicate key 'change_types[0].lead' (first at line 7, "
        f"column 6): {HINT}",
    ]


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b"a: 1\n'a': 2\n", "'a'"),  # quoting does not make another key
        (b"1: x\n0x1: y\n", "'0x1'"),  # the same integer
        (b"on: 1\ntrue: 2\n", "'true'"),  # YAML 1.1 reads both as true
        (b"x: {a: 1}\nx:\n  b: 2\n", "'x'"),  # mappings are not merged
    ],
)
def test_keys_are_the_same_when_yaml_reads_them_the_same(raw: bytes, key: str) -> None:
    (line,) = _problems(raw)
    assert f"duplicate key {key}" in line


def test_merge_keys_may_be_overridden_and_aliases_are_not_repeats() -> None:
    raw = b"base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\nagain: *b\n"
    assert parse_yaml_mapping(raw, "f.yaml") == {
        "base": {"x": 1, "y": 2},
        "other": {"x": 3, "y": 2},
        "again": {"x": 1, "y": 2},
    }


def test_the_built_in_policy_and_the_examples_have_no_repeated_key() -> None:
    from importlib import resources

    default = resources.files("hie_notify.policy").joinpath("default.yaml").read_bytes()
    assert parse_yaml_mapping(default, "default.yaml")
    for name in ("policy.yaml", "change.yaml"):
        assert read_yaml_mapping(EXAMPLES / name)


# -- a property: mutate real inputs by repeating a key at any depth --------------------------


def _block_keys(text: str) -> list[tuple[yaml.Node, str]]:
    """Every key of a block mapping that starts its line (after indentation), with its path."""
    lines = text.splitlines()
    found: list[tuple[yaml.Node, str]] = []
    stack: list[tuple[yaml.Node, str]] = [(yaml.compose(text), "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.SequenceNode):
            stack.extend((n, f"{path}[{i}]") for i, n in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = f"{path}.{key.value}" if path else str(key.value)
                stack.append((value, child))
                line = lines[key.start_mark.line]
                if not line[: key.start_mark.column].strip() and node.flow_style is False:
                    found.append((key, child))
    return found


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(["policy.yaml", "change.yaml"]),
    pick=st.randoms(use_true_random=False),
    value=st.sampled_from(["null", "[]", "{}", "''", "0", "x"]),
    after=st.booleans(),
)
def test_repeating_any_key_of_a_real_file_is_refused_naming_both_lines(
    name: str, pick: random.Random, value: str, after: bool
) -> None:
    """A line `KEY: VALUE` inserted at the key's own indentation, just before that key or just
    after its whole value: the file is refused, naming the key's path and both lines."""
    text = (EXAMPLES / name).read_text()
    keys = _block_keys(text)
    key, path = pick.choice(keys)
    lines = text.splitlines(keepends=True)
    indent = " " * key.start_mark.column
    if after:
        # After the whole value: the next line at this indentation or less that is not a
        # comment, a blank line or an item of a sequence written at the key's own indentation.
        col = key.start_mark.column
        at = key.start_mark.line + 1
        while at < len(lines):
            line = lines[at]
            depth = len(line) - len(line.lstrip())
            skip = not line.strip() or line.lstrip().startswith("#")
            if not skip and (depth < col or (depth == col and not line.lstrip().startswith("-"))):
                break
            at += 1
    else:
        at = key.start_mark.line
    mutated = [*lines[:at], f"{indent}{key.value}: {value}\n", *lines[at:]]
    first, second = (key.start_mark.line + 1, at + 1) if after else (at + 1, at + 2)
    problems = _problems("".join(mutated).encode(), name)
    assert problems == [
        f"{name}: line {second}, column {key.start_mark.column + 1}: duplicate key {path!r} "
        f"(first at line {first}): {HINT}"
    ]


# -- a property: generated documents, repeated keys anywhere ---------------------------------

Tree = list[tuple[str, Any]]  # a mapping, written in order, keys possibly repeated

_scalars = st.sampled_from(["1", "x", "true", "''", "[a, b]", "{}", "null"])
_trees: st.SearchStrategy[Tree] = st.recursive(
    st.lists(st.tuples(st.sampled_from("abcd"), _scalars), min_size=1, max_size=4),
    lambda inner: st.lists(
        st.tuples(st.sampled_from("abcd"), st.one_of(_scalars, inner)), min_size=1, max_size=4
    ),
    max_leaves=20,
)


def _render(tree: Tree, indent: int, path: str, out: list[str], expected: list[str]) -> None:
    """Block YAML for `tree`, and the problem every repeated key must give."""
    first: dict[str, int] = {}
    for key, value in tree:
        child = f"{path}.{key}" if path else key
        line = len(out) + 1
        if key in first:
            expected.append(
                f"f.yaml: line {line}, column {indent + 1}: duplicate key {child!r} (first at "
                f"line {first[key]}): {HINT}"
            )
        else:
            first[key] = line
        if isinstance(value, list):
            out.append(f"{' ' * indent}{key}:")
            _render(value, indent + 2, child, out, expected)
        else:
            out.append(f"{' ' * indent}{key}: {value}")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_trees)
def test_a_document_is_refused_exactly_when_a_mapping_repeats_a_key(tree: Tree) -> None:
    out: list[str] = []
    expected: list[str] = []
    _render(tree, 0, "", out, expected)
    raw = ("\n".join(out) + "\n").encode()
    if not expected:
        assert isinstance(parse_yaml_mapping(raw, "f.yaml"), dict)
    else:
        assert _problems(raw) == expected


# -- the commands, and a branch that hides an audience behind a repeated key ------------------

NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])  # impacting
_DROPPED = "customers: [EoE]\nrisk: low\ncustomers: []\n"


def test_a_change_record_that_repeats_customers_is_refused_and_nothing_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reviewer reads `customers: [EoE]`; YAML would read `[]` and EoE would hear nothing."""
    flow = Flow(tmp_path, capsys, NODES)
    text = flow.change.read_text().replace("customers:\n- EoE\n", "")
    flow.change.write_text(text + _DROPPED)
    lines = text.count("\n")
    code, _ = flow("plan", "--plan", str(flow.plan))
    assert code == 2
    assert (
        f"  {flow.change}: line {lines + 3}, column 1: duplicate key 'customers' (first at line "
        f"{lines + 1}): {HINT}"
    ) in flow.err
    assert flow.outbox("announce") == [] and not (tmp_path / "ledger.jsonl").exists()
    assert main(["--change", str(flow.change), "validate"], env={}) == 2


def test_validate_names_every_repeated_key_of_the_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        (EXAMPLES / "policy.yaml").read_text()
        + "customers: {}\njira:\n  browse_url: https://x.example/\n"
    )
    assert main(["--policy", str(policy), "validate"], env={}) == 2
    err = capsys.readouterr().err
    assert "duplicate key 'customers' (first at line" in err
    assert "duplicate key 'jira' (first at line" in err


@pytest.fixture
def pipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pipeline]:
    with pipeline(tmp_path, capsys, monkeypatch) as p:
        yield p


def test_attack_a_branch_change_record_drops_a_customer_behind_a_repeated_key(
    pipe: Pipeline,
) -> None:
    """In CI the change record is the branch's: a repeated `customers:` would have announced
    without EoE and let the gate pass without its five business days. Now plan and gate
    refuse it, and the gate's dotenv says blocked."""
    text = pipe.change.read_text().replace("customers:\n- EoE\n", "")
    pipe.change.write_text(text + _DROPPED)
    code, _ = pipe("plan", at=ANNOUNCED)
    assert code == 2 and "duplicate key 'customers'" in pipe.err
    assert pipe.slack.state.calls("chat.postMessage") == []
    code, _ = pipe("gate", at=AT_WINDOW)
    assert code == 2 and "duplicate key 'customers'" in pipe.err
    assert pipe.dotenv == "HIE_GATE_ALLOWED=false\n"


def test_attack_a_branch_policy_file_hides_an_audience_behind_a_repeated_key(
    pipe: Pipeline,
) -> None:
    """The branch's policy maps the production environment to EoE (a reviewer approves more
    notice); a second `customers:` further down would silently undo it."""
    pipe.write_change(customers=[])
    pipe.branch_policy(
        "customers:\n  EoE:\n    environments: [production]\n"
        "support: {email: devops@hie.example.org}\ncustomers: {}\n"
    )
    env = {**pipe.env, "HIE_ENVIRONMENT": "production"}
    code, _ = pipe("plan", at=ANNOUNCED, env=env)
    assert code == 2
    assert (
        f"{pipe.branch_file.relative_to(pipe.tmp)}: line 5, column 1: duplicate key 'customers' "
        f"(first at line 1): {HINT}"
    ) in pipe.err
    assert pipe.slack.state.calls("chat.postMessage") == []
    code, _ = pipe("gate", at=AT_WINDOW, env=env)
    assert code == 2 and pipe.dotenv == "HIE_GATE_ALLOWED=false\n"


def test_a_protected_policy_with_a_repeated_key_is_refused_naming_where(pipe: Pipeline) -> None:
    pipe.protected(
        b"customers: {EoE: {contacts: [{email: desk@eoe.example.org}]}}\ncustomers: {}\n"
    )
    code, _ = pipe("gate", at=AT_WINDOW)
    assert code == 2
    assert (
        ".hie-notify/policy.yaml: line 3, column 1: duplicate key 'customers' (first at line 2)"
        in (pipe.err)
    )
    assert pipe.dotenv == "HIE_GATE_ALLOWED=false\n"
