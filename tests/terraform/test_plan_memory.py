"""Reading a plan within the memory the process really has (issue 23 item 11): never a signal.

Under `ulimit -v 2048000` classifying a 133 MB, 200,000-resource plan died with SIGSEGV inside
orjson, which sets aside 13 bytes of address space per byte of JSON before it decodes and does
not survive an allocation failing later. The budget now comes from the process's real limits
(address space, data size, the cgroup's memory limit, the memory free) as well as
HIE_MEMORY_BUDGET_MB, with a margin, and a plan that would not fit is refused with exit 2.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from hie_notify import limits, safejson
from hie_notify.errors import InputError
from hie_notify.limits import MemoryBudget, MemoryRoom
from hie_notify.terraform.plan import load_plan
from tests.support.big_plans import MIB, eks_update, repeated, run_limited


def _room(free_mib: int, *, address_space: bool = True, name: str = "a limit") -> MemoryRoom:
    return MemoryRoom(free_mib * MIB, 4096 * MIB, name, "raise it", address_space)


# -- the budget


def test_the_budget_is_the_variable_or_2_gib_when_no_limit_is_tighter() -> None:
    assert limits.memory_budget({}, rooms=[]).bytes == 2 << 30
    budget = limits.memory_budget({"HIE_MEMORY_BUDGET_MB": "300"}, rooms=[_room(4000)])
    assert budget.bytes == 300 * MIB
    assert budget.source == "HIE_MEMORY_BUDGET_MB"
    assert budget.address_space is not None  # an address-space limit exists, though not binding


def test_a_real_limit_tighter_than_the_variable_sets_the_budget_less_a_margin() -> None:
    rooms = [
        _room(3000),
        _room(1000, address_space=False, name="the container's memory limit (cgroup memory.max)"),
    ]
    budget = limits.memory_budget({"HIE_MEMORY_BUDGET_MB": "4096"}, rooms=rooms)
    margin = limits.memory_margin(1000 * MIB)
    assert budget.bytes == 1000 * MIB - margin
    assert margin >= 64 * MIB
    assert "the container's memory limit (cgroup memory.max) of 4096 MiB" in budget.source
    assert f"less a margin of {margin >> 20} MiB" in budget.source
    assert budget.remedy == "raise it"
    # The address-space room is tracked apart: it decides whether orjson may decode.
    assert budget.address_space == 3000 * MIB - limits.memory_margin(3000 * MIB)


def test_no_room_left_is_a_budget_of_nothing_not_a_negative_one() -> None:
    assert limits.memory_budget({}, rooms=[_room(10)]).bytes == 0


@pytest.mark.parametrize("value", ["0", "15", "1048577", "lots", "-5", "2e3"])
def test_the_variable_is_still_checked(value: str) -> None:
    with pytest.raises(InputError, match="HIE_MEMORY_BUDGET_MB: expected a whole number"):
        limits.memory_budget({"HIE_MEMORY_BUDGET_MB": value}, rooms=[])


def _cgroup_dir(root: Path, rel: str, files: dict[str, str]) -> None:
    folder = root / rel
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)


def test_cgroup_v2_takes_the_tightest_limit_up_to_the_root_less_inactive_page_cache(
    tmp_path: Path,
) -> None:
    _cgroup_dir(tmp_path, "", {"memory.max": "max\n", "memory.current": "999999999999\n"})
    _cgroup_dir(
        tmp_path,
        "runner",
        {
            "memory.max": str(1 << 30),
            "memory.current": str(900 * MIB),
            "memory.stat": f"anon 123\ninactive_file {500 * MIB}\nactive_file 7\n",
        },
    )
    _cgroup_dir(
        tmp_path,
        "runner/job",
        {"memory.max": str(4 << 30), "memory.current": str(100 * MIB)},
    )
    room = limits.cgroup_room("0::/runner/job\n", tmp_path)
    assert room is not None
    # The parent's 1 GiB binds: 900 MiB used, of which 500 MiB is page cache given back.
    assert (room.limit, room.free) == (1 << 30, (1024 - 400) * MIB)
    assert room.name == "the container's memory limit (cgroup memory.max)"
    assert not room.address_space


def test_cgroup_v1_memory_controller_and_a_path_not_mounted_in_the_container(
    tmp_path: Path,
) -> None:
    # Inside a container /proc names the host's path; the container's own cgroup is the root.
    _cgroup_dir(
        tmp_path,
        "memory",
        {
            "memory.limit_in_bytes": str(512 * MIB),
            "memory.usage_in_bytes": str(200 * MIB),
            "memory.stat": "cache 1\ntotal_inactive_file 0\n",
        },
    )
    text = "12:pids:/docker/abc\n4:cpu,memory:/docker/abc\n0::/\n"
    room = limits.cgroup_room(text, tmp_path)
    assert room is not None and (room.limit, room.free) == (512 * MIB, 312 * MIB)
    assert "memory.limit_in_bytes" in room.name


def test_no_cgroup_limit_is_no_room(tmp_path: Path) -> None:
    _cgroup_dir(tmp_path, "memory", {"memory.limit_in_bytes": "9223372036854771712\n"})
    _cgroup_dir(tmp_path, "memory", {"memory.usage_in_bytes": "12345\n"})
    assert limits.cgroup_room("4:memory:/\n", tmp_path) is None
    assert limits.cgroup_room("", tmp_path) is None
    assert limits.cgroup_room("0::/\n", tmp_path / "missing") is None


def test_proc_status_and_meminfo_are_read_for_the_rooms(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "status").write_text("VmSize:\t  204800 kB\nVmData:\t 1024 kB\n")
    (tmp_path / "self" / "cgroup").write_text("")
    (tmp_path / "meminfo").write_text("MemTotal: 4096000 kB\nMemAvailable:  1024000 kB\n")
    rooms = limits.memory_rooms(tmp_path, tmp_path / "none")
    free = [r for r in rooms if "MemAvailable" in r.name]
    assert [r.free for r in free] == [1024000 << 10]


def _rooms_in_a_child(address_space: int) -> list[str]:
    code = (
        "from hie_notify import limits\n"
        "for r in limits.memory_rooms():\n"
        "    print(r.name, r.limit, r.free, r.address_space)\n"
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=limit, check=True
    )
    return out.stdout.splitlines()


def test_the_address_space_limit_of_the_process_is_a_room() -> None:
    lines = [line for line in _rooms_in_a_child(900 * MIB) if "ulimit -v" in line]
    assert len(lines) == 1
    _, limit, free, flag = lines[0].rsplit(" ", 3)
    assert int(limit) == 900 * MIB
    assert 0 < int(free) < 900 * MIB  # less what the interpreter already has mapped
    assert flag == "True"


# -- the general way under an address-space limit


def test_orjson_out_of_memory_falls_back_to_the_standard_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """orjson's 'Not enough memory to allocate buffer' used to be shown as 'not valid JSON'."""
    if safejson.backend() != "orjson":
        pytest.skip("orjson is not installed")
    import orjson

    def refuse(raw: bytes) -> object:
        raise orjson.JSONDecodeError(
            "Not enough memory to allocate buffer for parsing", raw.decode(), 0
        )

    monkeypatch.setattr(safejson._orjson, "loads", refuse)
    assert safejson.loads(b'{"a": [1, 2]}') == {"a": [1, 2]}


def test_lean_never_asks_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    if safejson.backend() != "orjson":
        pytest.skip("orjson is not installed")

    def boom(raw: bytes) -> object:
        raise AssertionError("orjson was asked")

    monkeypatch.setattr(safejson._orjson, "loads", boom)
    assert safejson.loads(b"[1]", lean=True) == [1]


def test_under_an_address_space_limit_the_general_way_uses_the_standard_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan the lean way does not read (a `mode` of null) is decoded by the standard library
    when orjson's reservation would not fit under the address-space limit, by orjson when it
    does; the plan is the same either way."""
    odd = eks_update(mode=None, address="aws_eks_node_group.odd")
    path = tmp_path / "plan.json"
    path.write_bytes(repeated(eks_update(), 3000, odd=odd))
    asked: list[bool] = []
    real = safejson.loads

    def spy(raw: bytes | str, **kwargs: bool) -> object:
        asked.append(kwargs.get("lean", False))
        return real(raw, **kwargs)

    monkeypatch.setattr(safejson, "loads", spy)
    need = limits.json_memory_estimate(path.read_bytes())
    tight = load_plan(path, MemoryBudget(1 << 30, address_space=need + 10 * MIB))
    roomy = load_plan(path, MemoryBudget(1 << 30, address_space=1 << 40))
    free = load_plan(path, MemoryBudget(1 << 30))
    assert asked == [True, False, False]
    assert tight == roomy == free
    assert tight.resource_changes[-1].mode == "managed"


def test_a_plan_over_the_budget_names_the_file_size_budget_and_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(repeated(eks_update(), 20_000))
    budget = MemoryBudget(
        40 * MIB,
        "what is left of the address-space limit (`ulimit -v`) of 600 MiB, less a margin",
        "raise the limit (`ulimit -v`) if the machine has the memory",
    )
    with pytest.raises(InputError) as info:
        load_plan(path, budget)
    message = str(info.value)
    assert message.startswith(f"{path}: reading this plan ({path.stat().st_size:,} bytes)")
    assert "over the budget of 40 MiB (what is left of the address-space limit" in message
    assert "If it is, raise the limit (`ulimit -v`)" in message


# -- in a child process under `ulimit -v`: never a signal


@pytest.fixture(scope="module")
def issue_plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's plan: 200,000 EKS node-group updates, about 133 MB."""
    path = tmp_path_factory.mktemp("issue-23") / "big.json"
    path.write_bytes(repeated(eks_update(), 200_000))
    return path


def _classify(tmp: Path, raw: bytes | Path, address_space: int) -> subprocess.CompletedProcess[str]:
    if isinstance(raw, Path):
        path = raw
    else:
        path = tmp / "big.json"
        path.write_bytes(raw)
    return run_limited(tmp, ["classify", "--plan", str(path)], address_space)


def test_issue_23_the_133_mb_plan_under_a_2_gib_address_space_is_classified(
    tmp_path: Path, issue_plan: Path
) -> None:
    """`(ulimit -v 2048000; hie-notify classify --plan big.json)` exited 139 (SIGSEGV)."""
    assert 125e6 < issue_plan.stat().st_size < 140e6
    proc = _classify(tmp_path, issue_plan, 2048000 << 10)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    assert "Plan: 0 to add, 200000 to change, 0 to destroy" in proc.stdout


def test_a_plan_the_lean_way_cannot_read_is_decoded_within_a_tight_limit(tmp_path: Path) -> None:
    """60,000 updates (40 MB) with one `mode` of null, read the general way under 650 MiB of
    address space: orjson's reservation does not fit (it died with SIGSEGV there), so the
    standard library decodes it."""
    odd = eks_update(mode=None, address="aws_eks_node_group.odd")
    proc = _classify(tmp_path, repeated(eks_update(), 60_000, odd=odd), 650 * MIB)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "Plan: 0 to add, 60000 to change" in proc.stdout


def test_a_plan_too_large_for_a_tight_limit_is_refused_naming_ulimit(tmp_path: Path) -> None:
    odd = eks_update(mode=None, address="aws_eks_node_group.odd")
    proc = _classify(tmp_path, repeated(eks_update(), 100_000, odd=odd), 650 * MIB)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    err = proc.stderr
    assert "Traceback" not in err
    assert f"{tmp_path / 'big.json'}: reading this plan (" in err
    assert "what is left of the address-space limit (`ulimit -v`) of 650 MiB" in err
    assert "raise the limit (`ulimit -v`)" in err


def test_a_file_over_half_the_budget_is_refused_before_it_is_read(
    tmp_path: Path, issue_plan: Path
) -> None:
    proc = _classify(tmp_path, issue_plan, 330 * MIB)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert f"{issue_plan}: {issue_plan.stat().st_size:,} bytes is too large" in proc.stderr
    assert "half the memory budget of" in proc.stderr
    assert "`ulimit -v`" in proc.stderr


def test_a_small_plan_under_the_same_tight_limit_is_classified(tmp_path: Path) -> None:
    proc = _classify(tmp_path, repeated(eks_update(), 10), 330 * MIB)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Plan: 0 to add, 10 to change" in proc.stdout


def test_sixty_megabytes_of_objects_in_a_key_not_read_are_never_decoded(tmp_path: Path) -> None:
    """Decoded whole they would take 1.6 GB; the lean way skips them within 1.5 GiB."""
    count = 20_000_000
    raw = b'{"format_version":"1.2","resource_changes":[],"x":[' + b",".join([b"{}"] * count)
    proc = _classify(tmp_path, raw + b"]}", 1536 * MIB)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "no changes" in proc.stdout.lower()


def test_any_large_json_under_a_tight_limit_is_decoded_without_a_signal(tmp_path: Path) -> None:
    """safejson decodes HCP Terraform's plan JSON and ledgers too: a 40 MB document under
    650 MiB of address space killed the process inside orjson (SIGSEGV); the standard library
    decodes it instead."""
    path = tmp_path / "doc.json"
    path.write_bytes(repeated(eks_update(), 60_000))
    code = (
        "import sys\n"
        "from hie_notify import safejson\n"
        "doc = safejson.loads(open(sys.argv[1], 'rb').read())\n"
        "print(len(doc['resource_changes']))\n"
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (650 * MIB, 650 * MIB))

    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.strip() == "60000"
