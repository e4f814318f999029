"""Classify a generated 20,000-resource plan and compare with a plain `json.load` of it.

Targets: classification <= 1.5x the time (issue 2) and <= 1.5x the peak memory (issue 13) of
json.load with the standard library.
Run: .venv/bin/python bench/classify_bench.py [--resources N] [--repeat R] [--shapes]
Time is the best of R runs. Memory is the peak resident set (VmHWM) a fresh child process
adds while doing the work: tracemalloc cannot be used since orjson's buffers are traced as if
they were all held at once (it reports several times what the process really takes).
--shapes also checks the memory estimate that refuses a plan over the budget
(`limits.json_memory_estimate`) against what decoding the worst shapes really takes: each
estimate must be at least the measured peak. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hie_notify import limits, safejson
from hie_notify.classify import classify
from hie_notify.policy import load_policy
from hie_notify.terraform.plan import load_plan

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


def _best_time(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _high_water() -> int:
    """Peak resident memory of this process in bytes. VmHWM, not ru_maxrss: ru_maxrss survives
    exec, so a child started by a large parent would report the parent's peak."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(what: str, path: str) -> None:
    """In a fresh process: do `what` to the file and print the peak memory it added (bytes)."""
    policy = load_policy() if what == "classify" else None
    raw = Path(path).read_bytes() if what == "orjson" else b""
    before = _high_water()
    if what == "json.load":
        with open(path, "rb") as fh:
            result: object = json.load(fh)
    elif what == "orjson":
        result = safejson.loads(raw)
    else:
        assert policy is not None
        result = classify(load_plan(Path(path), 1 << 40), policy)
    after = _high_water()
    del result
    print(after - before)


def _peak(what: str, path: Path) -> int:
    out = subprocess.run(
        [sys.executable, __file__, "--child", what, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


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
        peak = max(_peak("orjson", path), _peak("json.load", path))
        good = estimate >= peak
        ok = ok and good
        largest = limits.DEFAULT_MEMORY_BUDGET * len(raw) // estimate
        print(
            f"  {name:22} {len(raw) / 1e6:7.1f} MB  peak {peak / 1e6:7.1f} MB  estimate "
            f"{estimate / 1e6:7.1f} MB  {'ok' if good else 'UNDER'}  "
            f"(largest accepted at 2 GiB: {largest / 1e6:,.0f} MB)"
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resources", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--shapes", action="store_true", help="check the memory estimate too")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    policy = load_policy()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plan.json"
        path.write_text(json.dumps(generate(args.resources)))
        size = path.stat().st_size

        def baseline() -> object:
            with path.open("rb") as fh:
                return json.load(fh)

        def ours() -> object:
            return classify(load_plan(path), policy)

        result = classify(load_plan(path), policy)
        t_json, t_ours = _best_time(baseline, args.repeat), _best_time(ours, args.repeat)
        m_json, m_ours = _peak("json.load", path), _peak("classify", path)
        shapes_ok = _shapes(Path(tmp), 1_000_000) if args.shapes else True
    time_ratio, mem_ratio = t_ours / t_json, m_ours / m_json
    print(
        f"plan: {args.resources} resource changes, {size / 1e6:.1f} MB, "
        f"{len(result.resources)} changing, type {result.change_type}, "
        f"decoded with {safejson.backend()}"
    )
    print(
        f"time   json.load {t_json * 1000:8.1f} ms   classify {t_ours * 1000:8.1f} ms   "
        f"ratio {time_ratio:.2f} (target <= 1.5)"
    )
    print(
        f"memory json.load {m_json / 1e6:8.1f} MB   classify {m_ours / 1e6:8.1f} MB   "
        f"ratio {mem_ratio:.2f} (target <= 1.5, peak resident memory)"
    )
    ok = time_ratio <= 1.5 and mem_ratio <= 1.5 and shapes_ok
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
