"""The lean way of reading a plan (issue 28 item 6): typed msgspec structs, values left as text.

It must build exactly the plan the general way builds (`parse_plan` of the decoded document) or
step aside (`NotTyped`) so that the general way reads it and gives its error; a Hypothesis
property checks that over generated and mutated plans, and tests/scenarios/test_real_plans.py
over real
ones. bench/classify_bench.py measures what it is for.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hie_notify import limits, safejson
from hie_notify.errors import InputError
from hie_notify.terraform import plan_decode
from hie_notify.terraform.plan import LEAN_FROM_BYTES, Plan, load_plan, parse_plan
from tests.support.big_plans import eks_update, repeated
from tests.support.builders import plan, rc

ROOT = Path(__file__).resolve().parents[2]


def _general(raw: bytes) -> Plan | InputError:
    try:
        return parse_plan(safejson.loads(raw), "p")
    except InputError as exc:
        return exc
    except safejson.JsonError as exc:
        return InputError(str(exc))


def _lean(raw: bytes) -> Plan | None:
    try:
        return plan_decode.read(raw, "p", 1 << 40)
    except plan_decode.NotTyped:
        return None


# -- what Hypothesis generates: plans as Terraform writes them, then mutated

SAFE_INT = st.integers(-(2**53), 2**53)  # the same number to every decoder
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    SAFE_INT,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["", "true", "null", "a.b", "\u00e9\u00df", "\U0001f600", '"{[', "\\u0041"]),
)
KEYS = st.sampled_from(["a", "b", "tags", "name", "true", "", "x.y", "ключ", "scaling_config"])
VALUES = st.recursive(
    LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)
OBJECTS = st.dictionaries(KEYS, VALUES, max_size=5)
ACTIONS = st.sampled_from(
    [
        ["no-op"],
        ["create"],
        ["read"],
        ["update"],
        ["delete", "create"],
        ["create", "delete"],
        ["delete"],
        ["forget"],
        ["create", "forget"],
    ]
)


@st.composite
def _resource(draw: st.DrawFn) -> dict[str, Any]:
    rtype = draw(st.sampled_from(["aws_s3_bucket", "aws_iam_role", "helm_release"]))
    name = draw(st.sampled_from(["a", "b", "main"]))
    module = draw(st.sampled_from(["", "module.m.", 'module.n["k"].']))
    before = draw(st.none() | OBJECTS)
    after = draw(st.one_of(st.none(), OBJECTS, st.just(before)))
    extra: dict[str, Any] = {}
    for key, strategy in (
        ("importing", st.fixed_dictionaries({"id": st.text(max_size=5)})),
        ("previous_address", st.just(f"{rtype}.old")),
        ("replace_paths", st.lists(st.lists(st.one_of(KEYS, SAFE_INT), max_size=2), max_size=2)),
        ("action_reason", st.just("replace_because_cannot_update")),
        ("deposed", st.just("00000001")),
    ):
        if draw(st.booleans()) and draw(st.booleans()):
            extra[key] = draw(strategy)
    return rc(
        f"{module}{rtype}.{name}",
        draw(ACTIONS),
        before=before,
        after=after,
        after_unknown=draw(st.dictionaries(KEYS, VALUES, max_size=3)),
        mode=draw(st.sampled_from(["managed", "data"])),
        **extra,
    )


@st.composite
def _plan_doc(draw: st.DrawFn) -> dict[str, Any]:
    outputs = draw(
        st.dictionaries(
            KEYS,
            st.fixed_dictionaries(
                {"actions": ACTIONS, "before_sensitive": VALUES, "after_sensitive": VALUES}
            ),
            max_size=2,
        )
    )
    drift = draw(st.lists(_resource(), max_size=2))
    doc = plan(*draw(st.lists(_resource(), max_size=6)), output_changes=outputs)
    if drift:
        doc["resource_drift"] = drift
    if draw(st.booleans()):
        doc["errored"] = draw(st.sampled_from([True, False, None, 1]))
    return doc


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, sub in value.items():
            found += _paths(sub, (*prefix, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            found += _paths(sub, (*prefix, i))
    return found


@st.composite
def _mutated(draw: st.DrawFn, doc: dict[str, Any]) -> Any:
    """One to three values anywhere replaced by any JSON value, or deleted."""
    out: Any = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(out)))
        if not path:
            out = draw(VALUES)
            continue
        parent = out
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()):
            parent[path[-1]] = draw(VALUES)
        else:
            del parent[path[-1]]
    return out


@st.composite
def _written(draw: st.DrawFn, doc: Any) -> bytes:
    """As Terraform writes it, or spaced, indented, ASCII-escaped, with an escaped key."""
    style = draw(st.sampled_from(["compact", "spaced", "indented", "ascii"]))
    if style == "compact":
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    elif style == "indented":
        text = json.dumps(doc, indent=1, ensure_ascii=False)
    else:
        text = json.dumps(doc, ensure_ascii=style == "ascii")
    if draw(st.booleans()):
        key = draw(st.sampled_from(['"address"', '"actions"', '"change"', '"before"', '"mode"']))
        text = text.replace(key, key.replace(key[1], f"\\u{ord(key[1]):04x}", 1))
    return text.encode()


FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(st.data())
def test_the_lean_way_builds_the_general_ways_plan_or_steps_aside(data: st.DataObject) -> None:
    doc = data.draw(_plan_doc())
    if data.draw(st.booleans()):
        doc = data.draw(_mutated(doc))
    raw = data.draw(_written(doc))
    lean, general = _lean(raw), _general(raw)
    if lean is not None:
        # Never a plan where the general way gives an error: the error is what the user sees.
        assert isinstance(general, Plan), general
        assert lean == general


@FUZZ
@given(_plan_doc())
def test_a_plan_as_terraform_writes_it_is_read_the_lean_way(doc: dict[str, Any]) -> None:
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    lean = _lean(raw)
    assert lean is not None
    assert lean == _general(raw)


# -- what load_plan does with it


def _write(tmp_path: Path, raw: bytes, name: str = "plan.json") -> Path:
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def test_a_large_file_is_read_the_lean_way_and_a_small_one_the_general_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = plan_decode.read

    def spy(raw: bytes, source: str, budget: int) -> Plan:
        calls.append(len(raw))
        return real(raw, source, budget)

    monkeypatch.setattr(plan_decode, "read", spy)
    small = _write(tmp_path, repeated(eks_update(), 10), "small.json")
    large = _write(tmp_path, repeated(eks_update(), 1_000), "large.json")
    assert small.stat().st_size < LEAN_FROM_BYTES <= large.stat().st_size
    load_plan(small)
    assert calls == []
    result = load_plan(large)
    assert calls == [large.stat().st_size]
    assert result == parse_plan(json.loads(large.read_bytes()), str(large))


def test_start_up_of_a_small_plan_does_not_load_msgspec(tmp_path: Path) -> None:
    probe = (
        "import sys; from hie_notify.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print(code, 'msgspec' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, "classify", "--plan", str(ROOT / "examples" / "plan.json")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert out.stdout.splitlines()[-1] == "0 False"


@pytest.mark.parametrize(
    ("odd", "expected"),
    [
        (eks_update(change={"actions": ["explode"]}), "resource_changes[999].change.actions"),
        (eks_update(address=""), "resource_changes[999].address: expected a resource address"),
        ("oops", "resource_changes[999]: expected an object, got a string"),
        (eks_update(mode=7), None),
        (eks_update(name=None), None),
    ],
)
def test_a_large_plan_with_a_problem_gets_the_general_ways_answer(
    tmp_path: Path, odd: Any, expected: str | None
) -> None:
    path = _write(tmp_path, repeated(eks_update(), 1_000, odd=odd))
    general = _general(path.read_bytes())
    if expected is None:
        assert isinstance(general, Plan)
        assert load_plan(path) == parse_plan(json.loads(path.read_bytes()), str(path))
        return
    with pytest.raises(InputError) as info:
        load_plan(path)
    assert expected in str(info.value)
    assert str(info.value) == f"{path}: {str(general).split('p: ', 1)[1]}"


def test_a_large_plan_that_is_not_utf8_is_refused_as_before(tmp_path: Path) -> None:
    # In a value the lean way never decodes: msgspec checks UTF-8 only where it decodes.
    raw = repeated(eks_update(), 1_000).replace(b'"prod:workers"', b'"prod:w\xc3\x28rkers"', 1)
    with pytest.raises(InputError, match="not valid JSON: not UTF-8 text"):
        load_plan(_write(tmp_path, raw))


def test_large_numbers_are_compared_exactly(tmp_path: Path) -> None:
    """Terraform's numbers have arbitrary precision. orjson reads a 40-digit integer as a float,
    so the general way saw no change between these two; the lean way compares them exactly
    (as the standard library's json does) and sees the change."""
    big = 10**40
    entry = rc("aws_x.y", ["update"], before={"n": big, "m": 1}, after={"n": big + 1, "m": 1})
    raw = repeated(entry, 1_000)
    lean = load_plan(_write(tmp_path, raw))
    assert lean.resource_changes[0].changed_attributes == {"n"}
    assert lean == parse_plan(json.loads(raw), str(tmp_path / "plan.json"))


def test_a_number_past_a_double_in_a_value_not_compared_is_not_read(tmp_path: Path) -> None:
    """orjson refused the whole plan for a 1e400 anywhere (`number is infinity`); the lean way
    does not decode values it does not compare, and a plan's values are Terraform's to hold."""
    entry = rc("aws_x.y", ["no-op"], before={"n": 1}, after={"n": 1})
    raw = repeated(entry, 3_000).replace(b'"n":1', b'"n":1e400', 1)
    assert isinstance(_general(raw), InputError)
    result = load_plan(_write(tmp_path, raw))
    assert result.summary["no_op"] == 3_000


def test_sensitive_values_are_never_kept(tmp_path: Path) -> None:
    secret = "PLANTED-SECRET-5678"
    update = rc(
        "aws_db_instance.main",
        ["update"],
        before={"password": "old", "tags": {"a": secret}},
        after={"password": secret, "tags": {"a": "b"}},
        before_sensitive={"password": True},
    )
    create = rc("aws_secret.s", ["create"], after={"value": secret}, after_unknown={"id": True})
    path = _write(tmp_path, repeated(update, 500, odd=create))
    result = load_plan(path)
    assert secret not in repr(result)
    assert result.resource_changes[0].changed_attributes == {"password", "tags", "tags.a"}
    assert result.resource_changes[-1].changed_attributes == {"value", "id"}


def test_imports_moves_and_outputs(tmp_path: Path) -> None:
    doc = plan(
        *[rc(f"aws_vpc.v{i}", ["no-op"]) for i in range(2_000)],
        rc("aws_route53_record.api", ["no-op"], importing={"id": "Z1_api_A"}),
        rc('module.n.aws_subnet.p["a"]', ["no-op"], previous_address='aws_subnet.p["a"]'),
        output_changes={
            "endpoint": {"actions": ["update"], "before": "a", "after": "b"},
            "password": {"actions": ["create"], "after": "x", "after_sensitive": True},
        },
        resource_drift=[rc("aws_vpc.main", ["update"], before={"t": {}}, after={"t": {"a": 1}})],
    )
    raw = json.dumps(doc, separators=(",", ":")).encode()
    assert len(raw) >= LEAN_FROM_BYTES
    result = load_plan(_write(tmp_path, raw))
    assert result == parse_plan(doc, str(tmp_path / "plan.json"))
    assert (result.summary["import"], result.summary["move"]) == (1, 1)
    assert [(o.name, o.sensitive) for o in result.outputs] == [
        ("endpoint", False),
        ("password", True),
    ]
    assert result.drift[0].changed_attributes == {"t", "t.a"}


def test_terraform_1_0_drift_without_addresses_is_read_the_general_way() -> None:
    entry = rc('module.m.aws_x.y["k"]', ["update"], index="k")
    del entry["address"]
    raw = json.dumps(plan(resource_drift=[entry])).encode()
    assert _lean(raw) is None
    general = _general(raw)
    assert isinstance(general, Plan) and general.drift[0].address == 'module.m.aws_x.y["k"]'


# -- memory


def test_the_lean_way_counts_far_less_than_a_whole_decode_and_refuses_past_the_budget(
    tmp_path: Path,
) -> None:
    raw = repeated(eks_update(), 5_000)
    counted = plan_decode.counted(raw)
    assert 2 * len(raw) < counted < limits.json_memory_estimate(raw) // 2
    assert plan_decode.read(raw, "p", counted) is not None
    with pytest.raises(plan_decode.OverBudget) as info:
        plan_decode.read(raw, "p", counted - 1)
    assert info.value.need > counted - 1
    assert 2 * len(raw) < 8 << 20 < counted
    with pytest.raises(InputError, match=r"over the budget of 8 MiB \(HIE_MEMORY_BUDGET_MB\)"):
        load_plan(_write(tmp_path, raw), limits.MemoryBudget(8 << 20))


def test_one_huge_value_is_counted_before_it_is_decoded() -> None:
    """A single update whose before and after differ in one 3 MB value: decoding it needs room
    the budget may not have, though the records kept are small."""
    big = rc("aws_x.y", ["update"], before={"v": ["a"] * 300_000}, after={"v": ["b"] * 300_000})
    raw = repeated(eks_update(), 10, odd=big)
    with pytest.raises(plan_decode.OverBudget):
        plan_decode.read(raw, "p", 4 * len(raw))
    assert plan_decode.read(raw, "p", 1 << 30).resource_changes[-1].changed_attributes == {"v"}


def test_the_collector_is_left_as_it_was(tmp_path: Path) -> None:
    path = _write(tmp_path, repeated(eks_update(), 1_000))
    gc.disable()
    try:
        load_plan(path)
        assert not gc.isenabled()
        assert gc.get_freeze_count() == 0  # a caller that turned it off keeps control
    finally:
        gc.enable()
    with pytest.raises(plan_decode.NotTyped):
        plan_decode.read(b'{"format_version": 5}', "p", 1 << 30)
    assert gc.isenabled()
    load_plan(path)
    assert gc.isenabled() and gc.get_freeze_count() > 0
