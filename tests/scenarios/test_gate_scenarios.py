"""`plan` at one time, `gate` at a later one, against the same file ledger and outbox."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml

from hie_notify.cli import main
from tests.support.builders import fired, plan, rc, write
from tests.support.gitlab_fake import ENV, PROJECT, FakeGitLab

DNS = rc("aws_route53_record.api", ["update"], before={"ttl": 60}, after={"ttl": 300})
DB = rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["storage_encrypted"]])


class Scenario:
    def __init__(self, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.tmp = tmp
        self.capsys = capsys
        self.env: dict[str, str] = {}
        self.policy: Path | None = None

    def files(self, change: dict[str, Any], *resources: dict[str, Any]) -> tuple[Path, Path]:
        base = {
            "id": "FFAPP-4458",
            "purpose": "Resize worker nodes",
            "downtime": "0",
            "rollback": "Revert and re-apply",
            "risk": "low",
            "monitoring": "Grafana dashboard and alerts",
            "approvers": ["Ollie"],
            "on_call": "Leon",
        }
        c = self.tmp / "change.yaml"
        c.write_text(yaml.safe_dump({**base, **change}))
        return c, write(self.tmp / f"plan-{len(resources)}.json", plan(*resources))

    def run(
        self, command: str, now: str, change: Path, plan_file: Path, *extra: str
    ) -> tuple[int, dict[str, Any], str]:
        args = [
            "--format",
            "json",
            "--now",
            now,
            "--change",
            str(change),
            "--ledger",
            f"file:{self.tmp}/ledger.jsonl",
            "--outbox",
            str(self.tmp / "outbox"),
        ]
        if self.policy:
            args += ["--policy", str(self.policy)]
        args += [command, "--plan", str(plan_file), *extra]
        if command == "gate":
            args += ["--dotenv", str(self.tmp / "gate.env")]
        if command == "plan":
            args += ["--terraform-report", str(self.tmp / "tf-report.json")]
        code = main(args, env=self.env)
        out = self.capsys.readouterr()
        return code, (json.loads(out.out) if out.out.strip() else {}), out.err

    def dotenv(self) -> dict[str, str]:
        lines = (self.tmp / "gate.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)


@pytest.fixture
def s(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Scenario:
    return Scenario(tmp_path, capsys)


def window(start: str, end: str) -> dict[str, Any]:
    return {"window": {"start": start, "end": end, "zone": "Europe/London"}}


def test_24h_across_spring_clock_change_is_23_real_hours(s: Scenario) -> None:
    change, p = s.files(window("2026-03-29T12:00:00", "2026-03-29T14:00:00"), DNS)
    code, out, _ = s.run("plan", "2026-03-28T12:00:00+00:00", change, p)
    assert code == 0 and [d["audience"] for d in out["delivered"]] == [
        "slack:#devops",
        "slack:#infrastructure",
        "slack:#product",
    ]
    code, out, err = s.run("gate", "2026-03-29T12:30:00+01:00", change, p)
    assert code == 1 and out["allowed"] is False
    assert set(fired(out)) == {"notice.short"}  # each of the three channels
    assert out["earliest_start"] == "2026-03-29T12:00:00+00:00"  # 13:00 BST
    assert "Earliest allowed start: Sun 29 Mar 2026 13:00 BST" in err
    assert s.dotenv()["HIE_GATE_ALLOWED"] == "false"


def test_24h_given_in_time_passes(s: Scenario) -> None:
    change, p = s.files(window("2026-03-29T13:00:00", "2026-03-29T15:00:00"), DNS)
    s.run("plan", "2026-03-28T12:00:00+00:00", change, p)
    code, out, _ = s.run("gate", "2026-03-29T13:30:00+01:00", change, p)
    assert code == 0 and out["allowed"] is True, out["reasons"]
    assert s.dotenv()["HIE_GATE_ALLOWED"] == "true"
    assert s.dotenv()["HIE_CHANGE_TYPE"] == "planned_infra_update"
    # between the 24 h minimum and the 48 h recommended: allowed, with a warning
    assert "notice.below_recommended" in fired(out, "warn")


@pytest.mark.parametrize(("region", "allowed"), [("ENG", False), ("SCT", True)])
def test_customer_notice_over_easter_2027(s: Scenario, region: str, allowed: bool) -> None:
    s.policy = s.tmp / "policy.yaml"
    s.policy.write_text(f"calendar: {{holidays: {{subdivision: {region}}}}}\n")
    change, p = s.files(
        {"customers": ["EoE"], **window("2027-03-31T15:00:00", "2027-03-31T17:00:00")}, DB
    )
    s.run("plan", "2027-03-25T15:00:00+00:00", change, p)
    _, out, _ = s.run("gate", "2027-03-31T15:30:00+01:00", change, p)
    assert out["allowed"] is allowed, out["reasons"]
    customer = next(r for r in out["required"] if r["audience"] == "customer:EoE")
    assert customer["minimum"] == "3bd"
    # England also stops for Easter Monday: three business days end on Thursday 1 April
    expected = "2027-04-01T14:00:00+00:00" if region == "ENG" else "2027-03-31T14:00:00+00:00"
    assert customer["earliest_start"] == expected


@pytest.mark.parametrize(("region", "allowed"), [("ENG", True), ("SCT", False)])
def test_customer_notice_over_christmas_2026(s: Scenario, region: str, allowed: bool) -> None:
    s.policy = s.tmp / "policy.yaml"
    s.policy.write_text(
        f"calendar: {{holidays: {{subdivision: {region}}}}}\n"
        "change_types:\n  planned_infra_update:\n"
        "    external_notice: {minimum: 5bd, recommended: 5bd}\n"
    )
    change, p = s.files(
        {"customers": ["CUH"], **window("2027-01-05T10:00:00", "2027-01-05T12:00:00")}, DB
    )
    s.run("plan", "2026-12-24T10:00:00+00:00", change, p)
    code, out, _ = s.run("gate", "2027-01-05T10:15:00+00:00", change, p)
    assert (code == 0) is allowed and out["allowed"] is allowed
    if not allowed:  # Scotland's 2 January substitute (4 January) pushes it to the 6th
        assert any(
            "earliest allowed start is Wed 6 Jan 2027 10:00 GMT" in r for r in out["reasons"]
        )


def test_notice_given_on_a_saturday_counts_from_monday(s: Scenario) -> None:
    change, p = s.files(
        {"customers": ["EoE"], **window("2026-12-02T20:00:00", "2026-12-02T22:00:00")}, DB
    )
    s.run("plan", "2026-11-28T11:00:00+00:00", change, p)
    code, out, _ = s.run("gate", "2026-12-02T20:05:00+00:00", change, p)
    assert code == 1
    assert any(
        r.startswith("East of England was told Sat 28 Nov 2026 11:00 GMT")
        and "earliest allowed start is Thu 3 Dec 2026 00:00 GMT" in r
        for r in out["reasons"]
    )


def test_window_already_closed(s: Scenario) -> None:
    change, p = s.files(window("2026-12-08T10:00:00", "2026-12-08T12:00:00"), DNS)
    s.run("plan", "2026-12-01T10:00:00+00:00", change, p)
    code, out, _ = s.run("gate", "2026-12-08T12:30:00+00:00", change, p)
    assert code == 1 and fired(out) == ["window.closed"]
    assert out["reasons"][0].startswith("the window closed Tue 8 Dec 2026 12:00 GMT")


def test_window_not_yet_open(s: Scenario) -> None:
    change, p = s.files(window("2026-12-08T10:00:00", "2026-12-08T12:00:00"), DNS)
    s.run("plan", "2026-12-01T10:00:00+00:00", change, p)
    code, out, _ = s.run("gate", "2026-12-08T09:00:00+00:00", change, p)
    assert code == 1
    assert out["reasons"] == [
        "the window has not opened: it starts Tue 8 Dec 2026 10:00 GMT; this job may run from then"
    ]


def test_plan_that_gained_a_replacement_voids_the_notice(s: Scenario) -> None:
    change, announced = s.files(
        {"customers": ["EoE"], **window("2026-12-08T10:00:00", "2026-12-08T12:00:00")}, DNS
    )
    s.run("plan", "2026-12-01T10:00:00+00:00", change, announced)
    _, grown = s.files(
        {"customers": ["EoE"], **window("2026-12-08T10:00:00", "2026-12-08T12:00:00")}, DNS, DB
    )
    code, out, _ = s.run("gate", "2026-12-08T10:30:00+00:00", change, grown)
    assert code == 1
    assert any(
        "#devops was told about a different plan (not announced: aws_db_instance.main" in r
        for r in out["reasons"]
    )
    assert any("East of England has not been told" in r for r in out["reasons"])


def test_plan_that_only_shrank_keeps_its_notice(s: Scenario) -> None:
    change, both = s.files(
        {"customers": ["EoE"], **window("2026-12-08T10:00:00", "2026-12-08T12:00:00")}, DNS, DB
    )
    s.run("plan", "2026-12-01T10:00:00+00:00", change, both)
    _, smaller = s.files(
        {"customers": ["EoE"], **window("2026-12-08T10:00:00", "2026-12-08T12:00:00")}, DNS
    )
    code, out, _ = s.run("gate", "2026-12-08T10:30:00+00:00", change, smaller)
    assert code == 0, out["reasons"]


@pytest.mark.parametrize("announced", [False, True])
def test_emergency_needs_its_immediate_notice(s: Scenario, announced: bool) -> None:
    change, p = s.files(
        {
            "type": "emergency_fix",
            "justification": "CVE-2026-0001 exploited",
            "customers": ["EoE"],
            **window("2026-12-08T10:00:00", "2026-12-08T12:00:00"),
        },
        DB,
    )
    if announced:
        code, out, _ = s.run("plan", "2026-12-08T10:00:00+00:00", change, p)
        assert code == 0
        assert {d["audience"] for d in out["delivered"]} >= {
            "slack:#ops",
            "slack:#devops",
            "customer:EoE",
        }
    _, out, _ = s.run("gate", "2026-12-08T10:05:00+00:00", change, p)
    assert out["emergency"] is True
    assert out["allowed"] is announced
    if not announced:
        assert any(
            "#ops has not been told (immediately, before the fix)" in r for r in out["reasons"]
        )


def test_deploy_freeze(s: Scenario) -> None:
    change, p = s.files(window("2026-12-08T10:00:00", "2026-12-08T12:00:00"), DNS)
    s.run("plan", "2026-12-01T10:00:00+00:00", change, p)
    s.env = {"CI_DEPLOY_FREEZE": "true"}
    code, out, _ = s.run("gate", "2026-12-08T10:30:00+00:00", change, p)
    assert code == 1 and fired(out) == ["freeze.active"]
    # the freeze is described as GitLab says it
    assert out["reasons"][0].startswith(
        "a deploy freeze is active (GitLab deploy freeze (CI_DEPLOY_FREEZE is set))"
    )


@pytest.mark.parametrize("on_call", [None, "Leon"])
def test_out_of_hours_window_needs_on_call(s: Scenario, on_call: str | None) -> None:
    change, p = s.files(
        {"on_call": on_call, **window("2026-12-08T19:00:00", "2026-12-08T21:00:00")}, DNS
    )
    planned, _, err = s.run("plan", "2026-12-01T10:00:00+00:00", change, p)
    code, out, _ = s.run("gate", "2026-12-08T19:30:00+00:00", change, p)
    assert (code == 0) is bool(on_call)
    if not on_call:
        # Phase 1 before Phase 2: `plan` told nobody outside, naming what is missing.
        assert planned == 2 and "no on_call engineer: add on_call" in err
        assert fired(out)[0] == "window.no_on_call"
        assert set(fired(out)[1:]) == {"notice.missing"}


def test_phase1_gaps_block_and_every_reason_is_listed(s: Scenario) -> None:
    change, p = s.files({"rollback": None, "downtime": None}, DNS)
    code, out, _ = s.run("gate", "2026-12-08T19:30:00+00:00", change, p)
    assert code == 1
    assert fired(out).count("change.gap") == 3 and "notice.missing" in fired(out)
    joined = "\n".join(out["reasons"])
    for gap in ("no window", "no downtime", "no rollback"):
        assert gap in joined


def test_corrupt_ledger_blocks(s: Scenario) -> None:
    change, p = s.files(window("2026-12-08T10:00:00", "2026-12-08T12:00:00"), DNS)
    (s.tmp / "ledger.jsonl").write_text("garbage\n")
    code, _, err = s.run("gate", "2026-12-08T10:30:00+00:00", change, p)
    assert code == 2
    assert "ledger.jsonl:1: not a JSON ledger entry" in err
    assert s.dotenv() == {"HIE_GATE_ALLOWED": "false"}


def test_plan_rerun_sends_nothing_twice(s: Scenario) -> None:
    change, p = s.files(
        {"customers": ["EoE"], **window("2026-12-08T10:00:00", "2026-12-08T12:00:00")}, DB
    )
    _, first, _ = s.run("plan", "2026-12-01T10:00:00+00:00", change, p)
    files = sorted((s.tmp / "outbox").rglob("*.*"))
    _, second, _ = s.run("plan", "2026-12-01T11:00:00+00:00", change, p)
    assert second["delivered"] == []
    assert [a["audience"] for a in second["already_delivered"]] == [
        d["audience"] for d in first["delivered"]
    ]
    assert sorted((s.tmp / "outbox").rglob("*.*")) == files
    lines = [json.loads(line) for line in (s.tmp / "ledger.jsonl").read_text().splitlines()]
    # The four notices and the one transition they made: the re-run recorded nothing.
    assert len(first["delivered"]) == 4
    assert [e["stage"] for e in lines].count("announce") == 4
    assert [e["extra"].get("transition") for e in lines if e["stage"] == "lifecycle"] == [
        "announce"
    ]


def test_dry_run_sends_and_records_nothing(s: Scenario) -> None:
    change, p = s.files(window("2026-12-08T10:00:00", "2026-12-08T12:00:00"), DNS)
    s.env = {"HIE_DRY_RUN": "1"}
    code, out, _ = s.run("plan", "2026-12-01T10:00:00+00:00", change, p)
    assert code == 0 and out["delivered"] == [] and len(out["dry_run"]) == 3
    assert not (s.tmp / "outbox").exists() and not (s.tmp / "ledger.jsonl").exists()


def test_earliest(s: Scenario) -> None:
    change, p = s.files({"customers": ["EoE"]}, DB)
    code = main(
        [
            "--format",
            "json",
            "--now",
            "2026-12-24T10:00:00+00:00",
            "--change",
            str(change),
            "earliest",
            "--plan",
            str(p),
        ]
    )
    out = json.loads(s.capsys.readouterr().out)
    assert code == 0
    assert out["earliest_start"] == "2026-12-31T10:00:00+00:00"
    assert out["recommended_start"] == "2027-01-05T10:00:00+00:00"
    assert out["earliest_start_local"] == "2026-12-31T10:00:00+00:00"


def test_gitlab_log_sections(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = Scenario(tmp_path, capsys)
    change, p = s.files(window("2026-12-08T10:00:00", "2026-12-08T12:00:00"), DNS)
    args = [
        "--now",
        "2026-12-08T10:30:00+00:00",
        "--change",
        str(change),
        "--ledger",
        f"file:{tmp_path}/l.jsonl",
        "--outbox",
        str(tmp_path / "outbox"),
        "gate",
        "--plan",
        str(p),
        "--dotenv",
        str(tmp_path / "g.env"),
    ]
    # In CI --now and HIE_LOCAL_POLICY need a protected policy that declares a trial.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeGitLab(rsps).install()
        fake.files[(str(PROJECT), "main", ".hie-notify/policy.yaml")] = b"trial: true\n"
        ci = {
            **ENV,
            "GITLAB_CI": "true",
            "CI_DEFAULT_BRANCH": "main",
            "HIE_LOCAL_POLICY": "1",
            "HIE_LEDGER_KEY": "k" * 32,
        }
        assert main(args, env=ci) == 1
    out = capsys.readouterr().out
    # The markers carry the command's time (--now), not a read of the machine clock.
    stamp = int(datetime(2026, 12, 8, 10, 30, tzinfo=timezone.utc).timestamp())
    start = f"\x1b[0Ksection_start:{stamp}:hie_gate_reasons\r\x1b[0KWhy it is blocked"
    assert start in out
    assert f"\x1b[0Ksection_end:{stamp}:hie_gate_reasons\r\x1b[0K" in out
    assert f"section_start:{stamp}:hie_gate_notices[collapsed=true]" not in out  # blocked: open
    assert f"section_start:{stamp}:hie_gate_notices\r" in out
    assert main(args, env={}) == 1
    assert "section_start" not in capsys.readouterr().out


def test_moved_window_needs_a_new_announcement(s: Scenario) -> None:
    change, p = s.files(window("2026-12-08T10:00:00", "2026-12-08T12:00:00"), DNS)
    s.run("plan", "2026-12-01T10:00:00+00:00", change, p)
    moved, _ = s.files(window("2026-12-09T10:00:00", "2026-12-09T12:00:00"), DNS)
    code, out, _ = s.run("gate", "2026-12-09T10:30:00+00:00", moved, p)
    assert code == 1
    assert any(
        r.startswith("#devops was told of another window (Tue 8 Dec 2026 10:00 to 12:00 GMT)")
        for r in out["reasons"]
    )
    # a narrower window inside the announced one keeps the notice
    narrower, _ = s.files(window("2026-12-08T10:30:00", "2026-12-08T11:30:00"), DNS)
    code, out, _ = s.run("gate", "2026-12-08T10:45:00+00:00", narrower, p)
    assert code == 0, out["reasons"]
    # announcing the moved window sends again (files() rewrote change.yaml: write it back)
    moved, _ = s.files(window("2026-12-09T10:00:00", "2026-12-09T12:00:00"), DNS)
    code, out, _ = s.run("plan", "2026-12-02T10:00:00+00:00", moved, p)
    assert len(out["delivered"]) == 3
    code, out, _ = s.run("gate", "2026-12-09T10:30:00+00:00", moved, p)
    assert code == 0, out["reasons"]


def test_the_gate_names_the_projects_freeze_periods(
    s: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """python-gitlab has no freeze-period manager: the periods come from GitLab's list API
    (GET /projects/:id/freeze_periods, paginated) and are named in the reason."""
    import responses

    from tests.support.gitlab_fake import API, ENV, PROJECT

    with responses.RequestsMock() as rsps:
        rsps.get(
            f"{API}/projects/{PROJECT}/freeze_periods",
            json=[
                {
                    "id": 1,
                    "freeze_start": "0 23 * * 5",
                    "freeze_end": "0 7 * * 1",
                    "cron_timezone": "Europe/London",
                    "created_at": "2026-01-01T00:00:00Z",
                    "updated_at": "2026-01-01T00:00:00Z",
                }
            ],
        )
        from hie_notify.gitlab_api import describe_freeze

        text = describe_freeze({**ENV, "CI_DEPLOY_FREEZE": "1"})
    assert text == (
        "GitLab deploy freeze (CI_DEPLOY_FREEZE is set); freeze periods: "
        "0 23 * * 5 to 0 7 * * 1 (Europe/London)"
    )


def test_the_json_names_each_finding_with_its_rule(s: Scenario) -> None:
    """`gate --format json` keeps `reasons` and `warnings` and adds `findings`: each with its
    level, its rule and whether `plan` could have decided it before the window."""
    change, p = s.files(window("2026-12-08T10:00:00", "2026-12-08T12:00:00"), DNS)
    s.run("plan", "2026-12-07T08:00:00+00:00", change, p)  # 26 hours ahead
    # The rollback plan dropped from the record after it was announced.
    change, p = s.files(
        {"rollback": None, **window("2026-12-08T10:00:00", "2026-12-08T12:00:00")}, DNS
    )
    code, out, _ = s.run("gate", "2026-12-08T10:30:00+00:00", change, p)
    assert code == 1
    assert {tuple(sorted(f)) for f in out["findings"]} == {("at_plan", "level", "rule", "text")}
    assert out["reasons"] == [f["text"] for f in out["findings"] if f["level"] == "block"]
    assert out["warnings"] == [f["text"] for f in out["findings"] if f["level"] == "warn"]
    found = {(f["rule"], f["level"], f["at_plan"]) for f in out["findings"]}
    assert ("change.gap", "block", True) in found
    assert ("notice.below_recommended", "warn", False) in found
