"""Classify a generated 20,000-resource plan and compare with a plain `json.load` of it.

Targets (issue 28): `hie-notify classify --plan` at most 1.0x the time and 1.5x the peak memory
of `python -c "import json; json.load(...)"`, whole process each (start-up included), in one run.
Run: .venv/bin/python bench/classify_bench.py [--resources N] [--rounds R] [--shapes]
Every run is a fresh process of this interpreter, the two cases interleaved round by round so
that a busy machine slows them alike; time is the best wall time of R rounds (the CPU time,
user + system, is printed beside it), memory the peak resident set from the child's rusage.
The plan is written by a child, so that no child starts as a copy of a parent holding it.
--shapes also checks the memory estimates that refuse a plan over the budget against what
reading the worst shapes really takes, in a fresh process each: the general decoders'
(`limits.json_memory_estimate`, against orjson and json.load) and the lean reader's
(`plan_decode.counted`, which includes the file), each at least the measured peak; orjson's
address space too (`ORJSON_RESERVE_PER_BYTE`). Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hie_notify import limits, safejson
from hie_notify.terraform import plan_decode

TYPES = [
    "aws_iam_role",
    "aws_iam_policy",
    "aws_s3_bucket",
    "aws_security_group_rule",
    "aws_eks_node_group",
    "aws_db_instance",
    "helm_release",
    "kubernetes_deployment",
    "aws_lambda_function",
    "aws_route53_record",
    "aws_cloudwatch_metric_alarm",
    "aws_kms_key",
    "aws_subnet",
    "aws_route_table",
    "aws_instance",
    "aws_ssm_parameter",
]
ACTIONS = (
    [["create"]] * 4
    + [["update"]] * 4
    + [["no-op"]] * 6
    + [["delete"], ["delete", "create"], ["read"]]
)


def _attrs(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "id": f"res-{i:06d}",
        "arn": f"arn:aws:service:eu-west-2:123456789012:thing/res-{i:06d}",
        "name": f"name-{i}",
        "tags": {"Environment": "prod", "Owner": "devops", "Jira": f"FFAPP-{i % 5000}"},
        "tags_all": {"Environment": "prod", "Owner": "devops", "Jira": f"FFAPP-{i % 5000}"},
        "description": "generated resource " * 3,
        "policy": json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["s3:GetObject"],
                        "Resource": f"arn:aws:s3:::b{i}/*",
                    }
                ],
            }
        ),
        "scaling_config": [{"desired_size": rng.randint(1, 9), "max_size": 10, "min_size": 1}],
        "timeouts": None,
        "count": rng.randint(0, 100),
    }


def generate(n: int, seed: int = 4458) -> dict[str, Any]:
    rng = random.Random(seed)
    changes = []
    for i in range(n):
        rtype = TYPES[i % len(TYPES)]
        actions = ACTIONS[rng.randrange(len(ACTIONS))]
        before = None if actions == ["create"] else _attrs(rng, i)
        after = None if actions == ["delete"] else _attrs(rng, i)
        if before and after and actions == ["update"]:
            after["count"] = before["count"] + 1
        module = f"module.m{i % 50}"
        changes.append(
            {
                "address": f"{module}.{rtype}.r[{i}]",
                "module_address": module,
                "mode": "data" if actions == ["read"] else "managed",
                "type": rtype,
                "name": "r",
                "index": i,
                "provider_name": "registry.terraform.io/hashicorp/aws",
                "change": {
                    "actions": actions,
                    "before": before,
                    "after": after,
                    "after_unknown": {"arn": actions == ["create"]},
                    "before_sensitive": {},
                    "after_sensitive": {},
                },
            }
        )
    return {
        "format_version": "1.2",
        "terraform_version": "1.9.8",
        "planned_values": {"root_module": {}},
        "resource_changes": changes,
    }


def _status() -> dict[str, int]:
    """VmHWM (peak resident) and VmPeak (peak address space) of this process, in bytes.
    VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child started by a large parent
    would report the parent's peak."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmPeak", "VmRSS", "VmSize"):
                out[name] = int(value.split()[0]) * 1024
    return out


def _child(what: str, path: str) -> None:
    """In a fresh process: decode the file `what` way and print the peak resident memory and
    the peak address space it added (bytes)."""
    raw = Path(path).read_bytes()
    before = _status()
    result: object
    if what == "json.load":
        result = json.loads(raw)
    elif what == "orjson":
        result = safejson.loads(raw)
    else:
        result = plan_decode.read(raw, path, 1 << 62)
    after = _status()
    del result
    print(after["VmHWM"] - before["VmRSS"], after["VmPeak"] - before["VmSize"])


def _peak(what: str, path: Path) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", what, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    resident, address = out.stdout.strip().splitlines()[-1].split()
    return int(resident), int(address)


def _rc(i: int, actions: list[str], **change: Any) -> str:
    return json.dumps(
        {"address": f"a.r{i}", "type": "a", "change": {"actions": actions, **change}},
        separators=(",", ":"),
    )


SHAPES = {
    "{}": b"{}",
    "[]": b"[]",
    '{"a":{}}': b'{"a":{}}',
    "[[[]]]": b"[[[]]]",
    "0": b"0",
    "1.5": b"1.5",
    '"ab"': b'"ab"',
    "null": b"null",
    '{"a":1,"b":2,"c":3}': b'{"a":1,"b":2,"c":3}',
}
# Plans the lean reader reads, each the worst of its kind for what it keeps: the most resources
# per byte, the most changed attribute names per byte, nested names, long names.
TYPED_SHAPES = {
    "bare resources": lambda i: _rc(i, ["no-op"]),
    "created, 40 names": lambda i: _rc(i, ["create"], after={f"k{j}": 1 for j in range(40)}),
    "updated subkeys": lambda i: _rc(
        i, ["update"], before={"m": {f"k{j}": 0 for j in range(20)}}, after={"m": {}}
    ),
    "long names": lambda i: _rc(i, ["create"], after={f"{'n' * 60}{j}": 1 for j in range(8)}),
    "node-group updates": lambda i: _rc(
        i,
        ["update"],
        before={"scaling_config": [{"desired_size": 3, "max_size": 6}], "version": "1.29"},
        after={"scaling_config": [{"desired_size": 4, "max_size": 6}], "version": "1.29"},
    ),
}


def _typed_plan(item: Any, size: int) -> bytes:
    items, total, i = [], 0, 0
    while total < size:
        text = item(i)
        items.append(text)
        total += len(text) + 1
        i += 1
    return ('{"format_version":"1.2","resource_changes":[' + ",".join(items) + "]}").encode()


def _shapes(tmp: Path, count: int) -> bool:
    ok = True
    print(f"memory estimate against the measured peak of decoding {count:,} copies of a shape:")
    for name, item in [*SHAPES.items(), ("unique keys", None), ("plan", None)]:
        path = tmp / "shape.json"
        if item is not None:
            raw = b"[" + b",".join([item] * count) + b"]"
        elif name == "unique keys":
            raw = b"{" + b",".join(b'"%d":0' % i for i in range(count)) + b"}"
        else:
            raw = json.dumps(generate(20_000)).encode()
        path.write_bytes(raw)
        estimate = limits.json_memory_estimate(raw)
        (o_res, o_addr), (j_res, _) = _peak("orjson", path), _peak("json.load", path)
        peak = max(o_res, j_res)
        reserve = estimate + limits.ORJSON_RESERVE_PER_BYTE * len(raw)
        good = estimate >= peak and reserve >= o_addr
        ok = ok and good
        largest = limits.DEFAULT_MEMORY_BUDGET * len(raw) // estimate
        print(
            f"  {name:22} {len(raw) / 1e6:7.1f} MB  peak {peak / 1e6:7.1f} MB  estimate "
            f"{estimate / 1e6:7.1f} MB  orjson address space {o_addr / 1e6:7.1f} MB (counted "
            f"{reserve / 1e6:7.1f})  {'ok' if good else 'UNDER'}  "
            f"(largest accepted at 2 GiB: {largest / 1e6:,.0f} MB)"
        )
    print("the lean reader's count against its measured peak (resident and address space):")
    for name, make in [*TYPED_SHAPES.items(), ("plan", None)]:
        path = tmp / "typed.json"
        raw = json.dumps(generate(20_000)).encode() if make is None else _typed_plan(make, 30 << 20)
        path.write_bytes(raw)
        estimate = plan_decode.counted(raw)
        resident, address = _peak("typed", path)
        # The child measures from after it read the file; the count includes the file.
        good = estimate >= len(raw) + max(resident, address)
        ok = ok and good
        print(
            f"  {name:22} {len(raw) / 1e6:7.1f} MB  peak {resident / 1e6:7.1f} MB  address "
            f"space {address / 1e6:7.1f} MB  counted {estimate / 1e6:7.1f} MB  "
            f"{'ok' if good else 'UNDER'}"
        )
    return ok


class Case:
    def __init__(self, name: str, argv: list[str]) -> None:
        self.name, self.argv = name, argv
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.rss: list[int] = []

    def run(self, cwd: Path) -> None:
        start = time.perf_counter()
        proc = subprocess.Popen(self.argv, cwd=cwd, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        self.wall.append(time.perf_counter() - start)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{self.name}: exit {os.waitstatus_to_exitcode(status)}")
        self.cpu.append(usage.ru_utime + usage.ru_stime)
        self.rss.append(usage.ru_maxrss * 1024)

    def line(self) -> str:
        return (
            f"{self.name:26} wall best {min(self.wall) * 1000:7.1f} ms  "
            f"cpu best {min(self.cpu) * 1000:7.1f} ms  peak {max(self.rss) / 1e6:6.1f} MB"
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resources", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--shapes", action="store_true", help="check the memory estimates too")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    script = Path(sys.executable).parent / "hie-notify"
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "hie_notify"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        path = work / "plan.json"
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import json, sys; from classify_bench import generate; "
                "open(sys.argv[1], 'w').write(json.dumps(generate(int(sys.argv[2]))))",
                str(path),
                str(args.resources),
            ],
            cwd=Path(__file__).resolve().parent,
            check=True,
        )
        size = path.stat().st_size
        load = Case(
            "json.load",
            [sys.executable, "-c", f"import json; json.load(open({str(path)!r}, 'rb'))"],
        )
        ours = Case("hie-notify classify --plan", [*cli, "classify", "--plan", str(path)])
        for case in (load, ours):  # warm-up: bytecode written, the file in the page cache
            case.run(work)
            case.wall.clear(), case.cpu.clear(), case.rss.clear()
        for _ in range(args.rounds):
            for case in (load, ours):
                case.run(work)
        shapes_ok = _shapes(work, 1_000_000) if args.shapes else True
    time_ratio = min(ours.wall) / min(load.wall)
    mem_ratio = max(ours.rss) / max(load.rss)
    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"plan: {args.resources} resource changes, {size / 1e6:.1f} MB; python "
        f"{sys.version.split()[0]} on {os.cpu_count()} cores, load average {load_avg}, "
        f"{args.rounds} rounds"
    )
    print(load.line())
    print(ours.line())
    print(
        f"time ratio {time_ratio:.2f} (target <= 1.0; cpu "
        f"{min(ours.cpu) / min(load.cpu):.2f})   peak memory ratio {mem_ratio:.2f} "
        "(target <= 1.5)"
    )
    ok = time_ratio <= 1.0 and mem_ratio <= 1.5 and shapes_ok
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
