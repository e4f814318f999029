"""In GitLab CI the policy comes from a protected source; a merge request cannot weaken it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml

from hie_notify.cli import main
from tests.support.builders import fired, plan, rc, write
from tests.support.gitlab_fake import ENV, JOB_TOKEN, FakeGitLab

DNS = rc("aws_route53_record.api", ["update"], before={"ttl": 1}, after={"ttl": 2})
CI = {
    **ENV,
    "GITLAB_CI": "true",
    "CI_DEFAULT_BRANCH": "main",
    "CI_MERGE_REQUEST_IID": "7",
    "HIE_LEDGER_KEY": "k" * 32,  # a file ledger in CI must be signed
}
PROTECTED = b"""\
change_types:
  planned_infra_update:
    internal_notice: {minimum: 24h, recommended: 48h}
customers:
  EoE: {contacts: [{email: desk@eoe.example.org}]}
support: {email: devops@example.org}
"""


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitLab]:
    import time

    monkeypatch.setattr(time, "sleep", lambda s: None)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeGitLab(rsps).install()


class Repo:
    """The working tree of the branch being deployed."""

    def __init__(self, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.tmp, self.capsys = tmp, capsys
        self.policy = tmp / ".hie-notify" / "policy.yaml"
        self.policy.parent.mkdir()
        self.change = tmp / "change.yaml"
        self.change.write_text(
            yaml.safe_dump(
                {
                    "id": "FFAPP-9",
                    "purpose": "DNS TTL",
                    "downtime": "0",
                    "rollback": "Revert",
                    "risk": "low",
                    "monitoring": "Grafana dashboard and alerts",
                    "approvers": ["Ollie"],
                    "on_call": "Leon",
                    "window": {
                        "start": "2026-12-08T10:00:00+00:00",
                        "end": "2026-12-08T12:00:00+00:00",
                    },
                }
            )
        )
        self.plan = write(tmp / "plan.json", plan(DNS))

    def branch_policy(self, text: str) -> None:
        self.policy.write_text(text)

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, now: str = "2026-12-07T10:00:00+00:00"
    ) -> tuple[int, Any]:
        env = CI if env is None else env
        in_ci = env.get("GITLAB_CI") == "true"
        when = datetime.fromisoformat(now)
        # In CI --now is refused (a branch can set it), and HIE_POLICY is left unset so the
        # branch's file at the default path is read and checked: the clock is injected instead.
        base = [
            "--format",
            "json",
            *([] if in_ci else ["--policy", ".hie-notify/policy.yaml", "--now", now]),
            "--change",
            str(self.change),
            "--ledger",
            f"file:{self.tmp}/ledger.jsonl",
            "--outbox",
            str(self.tmp / "outbox"),
        ]
        extra = {
            "plan": ["--terraform-report", str(self.tmp / "r.json")],
            "gate": ["--dotenv", str(self.tmp / "g.env")],
        }.get(args[0], [])
        code = main([*base, *args, *extra], env=env, clock=lambda: when)
        out = self.capsys.readouterr()
        self.err = out.err
        return code, json.loads(out.out) if out.out.strip() else {}


@pytest.fixture
def repo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Repo:
    monkeypatch.chdir(tmp_path)
    return Repo(tmp_path, capsys)


def test_mr_that_lowers_notice_is_refused_and_the_gate_stays_shut(
    repo: Repo, fake: FakeGitLab
) -> None:
    fake.files[("42", "main", ".hie-notify/policy.yaml")] = PROTECTED
    repo.branch_policy(
        "change_types:\n  planned_infra_update:\n"
        "    internal_notice: {minimum: 1h, recommended: 48h}\n"
    )
    code, _ = repo("gate", "--plan", str(repo.plan))
    assert code == 2
    assert (
        "change_types.planned_infra_update.internal_notice.minimum: would shorten the "
        "notice from 24h to 1h; notice may only get longer; the protected policy "
        "(42@main:.hie-notify/policy.yaml) stands"
    ) in repo.err
    assert (repo.tmp / "g.env").read_text() == "HIE_GATE_ALLOWED=false\n"
    raw = [c for c in fake.rsps.calls if "/repository/files/" in c.request.url]
    assert raw and raw[0].request.url.endswith(
        "/projects/42/repository/files/.hie-notify%2Fpolicy.yaml/raw?ref=main"
    )


def test_protected_notice_gates_the_deploy(repo: Repo, fake: FakeGitLab) -> None:
    # Without the branch's attempt, the protected 24 h applies: 20 h of notice blocks. (A trial:
    # the customer is told through the outbox, which in CI counts only in a trial.)
    fake.files[("42", "main", ".hie-notify/policy.yaml")] = PROTECTED + b"trial: true\n"
    repo.branch_policy(PROTECTED.decode())
    assert repo("plan", "--plan", str(repo.plan), now="2026-12-07T14:00:00+00:00")[0] == 0
    code, out = repo("gate", "--plan", str(repo.plan), now="2026-12-08T10:30:00+00:00")
    assert code == 1
    assert "notice.short" in fired(out)
    assert out["policy_source"] == "protected: 42@main:.hie-notify/policy.yaml"


def test_lengthening_an_overridable_notice_is_allowed(repo: Repo, fake: FakeGitLab) -> None:
    fake.files[("42", "main", ".hie-notify/policy.yaml")] = PROTECTED
    repo.branch_policy(
        "change_types:\n  planned_infra_update:\n"
        "    internal_notice: {minimum: 72h, recommended: 96h}\n"
    )
    code, out = repo("gate", "--plan", str(repo.plan), now="2026-12-08T10:30:00+00:00")
    assert code == 1  # nothing announced yet; the longer notice is the one in force
    assert out["required"][0]["minimum"] == "72h"
    assert (
        "with .hie-notify/policy.yaml changing change_types.planned_infra_update."
        "internal_notice.minimum" in out["policy_source"]
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("classification: {fallback: application_update}\n", "classification.fallback"),
        ("calendar: {holidays: {subdivision: SCT}}\n", "calendar.holidays.subdivision"),
        (
            "change_types: {iam_permission_change: {match: []}}\n",
            "change_types.iam_permission_change.match",
        ),
        ("overridable: [calendar]\n", "overridable"),
        (
            "change_types: {planned_infra_update: {external_notice: {minimum: 2bd}}}\n",
            "change_types.planned_infra_update.external_notice.minimum",
        ),
    ],
)
def test_weakening_keys_are_refused_by_name(
    repo: Repo, fake: FakeGitLab, text: str, key: str
) -> None:
    repo.branch_policy(text)  # no protected file: the built-in default is the protected base
    code, _ = repo("validate")
    assert code == 2
    assert f".hie-notify/policy.yaml: {key}: " in repo.err
    assert "the protected policy (42@main:.hie-notify/policy.yaml) stands" in repo.err


def test_overridable_keys_from_the_branch(repo: Repo, fake: FakeGitLab) -> None:
    repo.branch_policy(
        "customers:\n  CUH:\n    contacts: [{email: ops@cuh.example.org}]\n"
        "support: {email: devops@example.org}\n"
    )
    code, _ = repo("validate")
    assert code == 0, repo.err
    assert "protected: built-in default policy (42@main:.hie-notify/policy.yaml absent)" in repo.err


def test_central_policy_project_and_job_token(repo: Repo, fake: FakeGitLab) -> None:
    fake.projects["platform/hie-policy"] = {
        "id": 314,
        "default_branch": "release",
        "path_with_namespace": "platform/hie-policy",
    }
    fake.files[("314", "release", "policies/hie.yaml")] = PROTECTED.replace(b"24h", b"36h")
    env = {k: v for k, v in CI.items() if k != "HIE_GITLAB_TOKEN"}
    env.update(
        HIE_POLICY_PROJECT="platform/hie-policy",
        HIE_POLICY_PATH="policies/hie.yaml",
        CI_JOB_TOKEN=JOB_TOKEN,
    )
    repo.branch_policy("")
    _, out = repo("gate", "--plan", str(repo.plan), env=env, now="2026-12-08T10:30:00+00:00")
    assert out["policy_source"] == "protected: platform/hie-policy@release:policies/hie.yaml"
    assert out["required"][0]["minimum"] == "36h"
    call = next(c for c in fake.rsps.calls if "/repository/files/" in c.request.url)
    assert call.request.headers["JOB-TOKEN"] == JOB_TOKEN
    assert "PRIVATE-TOKEN" not in call.request.headers


def test_missing_project_fails_closed(repo: Repo, fake: FakeGitLab) -> None:
    env = {**CI, "HIE_POLICY_PROJECT": "nope/nothing", "HIE_POLICY_REF": "main"}
    code, _ = repo("gate", "--plan", str(repo.plan), env=env)
    assert code == 2
    assert "not found while trying to read the protected policy" in repo.err


def test_outside_ci_the_local_file_is_used_and_it_says_so(repo: Repo, fake: FakeGitLab) -> None:
    repo.branch_policy(
        "change_types:\n  planned_infra_update:\n"
        "    internal_notice: {minimum: 1h, recommended: 2h}\n"
    )
    code, out = repo("gate", "--plan", str(repo.plan), env={})
    assert code == 1, repo.err  # nothing announced
    assert (
        out["policy_source"]
        == "local file .hie-notify/policy.yaml (not protected: outside GitLab CI)"
    )
    assert out["required"][0]["minimum"] == "1h"
    assert not fake.rsps.calls  # outside CI, GitLab is not asked
    code, _ = repo("gate", "--plan", str(repo.plan), env={**CI, "HIE_LOCAL_POLICY": "1"})
    assert code == 2
    assert "HIE_LOCAL_POLICY: refused in GitLab CI" in repo.err


def test_a_central_policy_at_a_named_ref(repo: Repo, fake: FakeGitLab) -> None:
    """HIE_POLICY_REF names the ref of the central policy project; its default branch is not
    read then."""
    fake.projects["platform/hie-policy"] = {
        "id": 314,
        "default_branch": "release",
        "path_with_namespace": "platform/hie-policy",
    }
    fake.files[("314", "release", "policies/hie.yaml")] = PROTECTED.replace(b"24h", b"36h")
    fake.files[("platform/hie-policy", "v2", "policies/hie.yaml")] = PROTECTED.replace(
        b"{minimum: 24h, recommended: 48h}", b"{minimum: 60h, recommended: 72h}"
    )
    env = {
        **CI,
        "HIE_POLICY_PROJECT": "platform/hie-policy",
        "HIE_POLICY_PATH": "policies/hie.yaml",
        "HIE_POLICY_REF": "v2",
    }
    repo.branch_policy("")
    _, out = repo("gate", "--plan", str(repo.plan), env=env, now="2026-12-08T10:30:00+00:00")
    assert "policy_source" in out, repo.err
    assert out["policy_source"] == "protected: platform/hie-policy@v2:policies/hie.yaml"
    assert out["required"][0]["minimum"] == "60h"


@pytest.mark.parametrize(
    ("missing", "says"),
    [
        ("CI_PROJECT_ID", "CI_PROJECT_ID is not set: cannot find the protected policy"),
        ("CI_DEFAULT_BRANCH", "CI_DEFAULT_BRANCH is not set: cannot find the protected policy"),
    ],
)
def test_without_where_to_look_the_gate_stays_shut(
    repo: Repo, fake: FakeGitLab, missing: str, says: str
) -> None:
    env = {k: v for k, v in CI.items() if k != missing}
    code, _ = repo("gate", "--plan", str(repo.plan), env=env)
    assert code == 2
    assert f"hie-notify: invalid input:\n  {says}" in repo.err
    assert (repo.tmp / "g.env").read_text().startswith("HIE_GATE_ALLOWED=false")


@pytest.mark.parametrize(
    ("named", "where"),
    [
        ({"HIE_POLICY_PATH": "policies/team.yaml"}, "42@main:policies/team.yaml"),
        (
            {"HIE_POLICY_PROJECT": "42", "HIE_POLICY_REF": "main"},
            "42@main:.hie-notify/policy.yaml",
        ),
    ],
)
def test_a_named_protected_policy_that_is_not_there_fails_closed(
    repo: Repo, fake: FakeGitLab, named: dict[str, str], where: str
) -> None:
    """Naming a policy that the protected ref lacks never falls back to the built-in default,
    which may ask for less notice than the file meant."""
    code, _ = repo("gate", "--plan", str(repo.plan), env={**CI, **named})
    assert code == 2
    assert (
        f"HIE_POLICY / --policy: the protected policy {where} does not exist on the protected "
        "ref: add it there, or unset HIE_POLICY to use .hie-notify/policy.yaml (or the built-in "
        "default)"
    ) in repo.err
    # unnamed, the default path may be absent: the built-in default is the protected base
    code, out = repo("gate", "--plan", str(repo.plan), env=CI, now="2026-12-08T10:30:00+00:00")
    assert out["policy_source"].startswith("protected: built-in default policy (42@main:")


def test_a_protected_file_that_is_not_a_policy_names_the_file(repo: Repo, fake: FakeGitLab) -> None:
    fake.files[("42", "main", ".hie-notify/policy.yaml")] = b"calendar: {time_zone: Mars/Olympus}\n"
    code, _ = repo("gate", "--plan", str(repo.plan))
    assert code == 2
    assert "42@main:.hie-notify/policy.yaml: calendar.time_zone: expected an IANA time zone" in (
        repo.err
    )


def test_hie_local_policy_only_under_a_trial_the_protected_policy_declares(
    repo: Repo, fake: FakeGitLab
) -> None:
    from hie_notify.errors import InputError
    from hie_notify.policy.protected import load_effective

    mine = Path("mine.yaml")
    mine.write_text(
        "change_types: {planned_infra_update: {internal_notice: {minimum: 1h, recommended: 2h}}}\n"
    )
    env = {**CI, "HIE_LOCAL_POLICY": "1"}
    fake.files[("42", "main", "mine.yaml")] = PROTECTED
    with pytest.raises(InputError) as refused:
        load_effective(mine, env)
    assert refused.value.problems == [
        "HIE_LOCAL_POLICY: refused in GitLab CI (a branch can set its own job variables); the "
        "protected policy (42@main:mine.yaml) does not declare trial: true"
    ]
    fake.files[("42", "main", "mine.yaml")] = PROTECTED + b"trial: true\n"
    loaded = load_effective(mine, env)
    assert loaded.source == "local file mine.yaml (not protected: HIE_LOCAL_POLICY under a trial)"
    assert loaded.policy.trial is True  # the trial stays declared
    notice = loaded.policy.change_types["planned_infra_update"].internal_notice
    assert str(notice.minimum) == "1h"  # the local file's, not the protected 24h


# -- load_effective, called directly: the source named, and the file read ---------------------


def test_outside_ci_without_a_file_the_built_in_default_says_so(fake: FakeGitLab) -> None:
    from hie_notify.policy.protected import load_effective

    loaded = load_effective(None, {})
    assert loaded.source == "built-in default policy (not protected: outside GitLab CI)"
    assert not fake.rsps.calls


def test_hie_local_policy_without_a_file_is_the_built_in_default_under_the_trial(
    fake: FakeGitLab,
) -> None:
    from hie_notify.policy.protected import load_effective

    fake.files[("42", "main", ".hie-notify/policy.yaml")] = PROTECTED + b"trial: true\n"
    loaded = load_effective(None, {**CI, "HIE_LOCAL_POLICY": "1"})
    assert loaded.source == (
        "built-in default policy (not protected: HIE_LOCAL_POLICY under a trial)"
    )
    assert loaded.policy.trial is True


def test_a_protected_file_that_is_not_yaml_names_where_it_is(fake: FakeGitLab) -> None:
    from hie_notify.errors import InputError
    from hie_notify.policy.protected import load_effective

    fake.files[("42", "main", ".hie-notify/policy.yaml")] = b"support: [unclosed\n"
    with pytest.raises(InputError) as bad:
        load_effective(None, CI)
    (problem,) = bad.value.problems
    assert problem.startswith("42@main:.hie-notify/policy.yaml: not valid YAML at line "), problem


def test_a_named_policy_path_is_the_branch_file_checked(fake: FakeGitLab) -> None:
    """`--policy policies/team.yaml` in CI: the protected file is read at that path, and the
    branch's file at that path (not at the default path) is the one checked against it."""
    from hie_notify.errors import InputError
    from hie_notify.policy.protected import load_effective

    fake.files[("42", "main", "policies/team.yaml")] = PROTECTED
    team = Path("policies/team.yaml")
    team.parent.mkdir()
    team.write_text("change_types: {planned_infra_update: {internal_notice: {minimum: 1h}}}\n")
    with pytest.raises(InputError) as refused:
        load_effective(team, CI)
    assert refused.value.problems == [
        "policies/team.yaml: change_types.planned_infra_update.internal_notice.minimum: would "
        "shorten the notice from 24h to 1h; notice may only get longer; the protected policy "
        "(42@main:policies/team.yaml) stands"
    ]


def test_a_branch_file_that_is_not_a_policy_names_the_file_and_what_is_expected(
    fake: FakeGitLab,
) -> None:
    from hie_notify.errors import InputError
    from hie_notify.policy.protected import load_effective

    fake.files[("42", "main", ".hie-notify/policy.yaml")] = PROTECTED
    branch = Path(".hie-notify/policy.yaml")
    branch.parent.mkdir()
    # `support` is the branch's to change (built-in overridable keys), but not with a typo.
    branch.write_text("support: {emial: devops@example.org}\n")
    with pytest.raises(InputError) as bad:
        load_effective(None, CI)
    assert bad.value.problems == [
        ".hie-notify/policy.yaml: support.emial: unknown key (expected one of: name, email, url, "
        "phone)"
    ]


def test_every_key_the_branch_changes_is_named_in_the_source(fake: FakeGitLab) -> None:
    from hie_notify.policy.protected import load_effective

    fake.files[("42", "main", ".hie-notify/policy.yaml")] = PROTECTED
    branch = Path(".hie-notify/policy.yaml")
    branch.parent.mkdir()
    branch.write_text(
        "support: {email: devops@example.org, phone: '+44 1223 000000'}\n"
        "change_types: {planned_infra_update: {internal_notice: {minimum: 36h}}}\n"
    )
    loaded = load_effective(None, CI)
    assert loaded.source == (
        "protected: 42@main:.hie-notify/policy.yaml, with .hie-notify/policy.yaml changing "
        "support.phone, change_types.planned_infra_update.internal_notice.minimum"
    )
    assert loaded.policy.support.phone == "+44 1223 000000"
