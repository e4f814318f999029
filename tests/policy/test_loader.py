"""The built-in policy encodes the seed's communication matrix; user files are validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from hie_notify.cli import main
from hie_notify.errors import InputError
from hie_notify.policy import CHANGE_TYPES, Policy, deep_merge, load_policy

# The seed's communication matrix, row by row: lead, internal Slack channels, external audience.
MATRIX = {
    "emergency_fix": ("DevOps Engineer", ["#ops", "#devops"], "critical_stakeholders"),
    "planned_infra_update": (
        "DevOps Engineer/Lead",
        ["#devops", "#infrastructure", "#product"],
        "affected_customers",
    ),
    "application_update": (
        "DevOps Engineer/Lead",
        ["#devops", "#product"],
        "business_stakeholders",
    ),
    "scheduled_maintenance": (
        "DevOps Engineer/Lead",
        ["#devops", "#infrastructure"],
        "all_customers",
    ),
    "iam_permission_change": (
        "DevOps Engineer/Lead",
        ["#devops", "#cloud-security"],
        "affected_customers",
    ),
    "cost_optimization": ("DevOps Engineer/FinOps", ["#devops", "#product"], "affected_customers"),
}


@pytest.mark.parametrize("name", CHANGE_TYPES)
def test_matrix_rows(policy: Policy, name: str) -> None:
    ct = policy.change_types[name]  # type: ignore[index]
    lead, channels, audience = MATRIX[name]
    assert (ct.lead, ct.internal_channels, ct.external_audience) == (lead, channels, audience)


def test_notice_periods_from_the_seed(policy: Policy) -> None:
    infra = policy.change_types["planned_infra_update"]
    assert (str(infra.internal_notice.minimum), str(infra.internal_notice.recommended)) == (
        "24h",
        "48h",
    )
    assert (str(infra.external_notice.minimum), str(infra.external_notice.recommended)) == (
        "3bd",
        "5bd",
    )
    assert infra.external_when == "service_impacting"
    app = policy.change_types["application_update"]
    assert (str(app.internal_notice.minimum), str(app.internal_notice.recommended)) == (
        "24h",
        "48h",
    )
    maint = policy.change_types["scheduled_maintenance"]
    # "significant advance": longer than a planned infrastructure update, to all customers
    assert maint.external_notice.minimum.business_days > infra.external_notice.minimum.business_days
    assert maint.external_when == "always"
    emergency = policy.change_types["emergency_fix"]
    assert emergency.declared_only and emergency.requires_justification
    assert emergency.internal_notice.minimum.is_zero()
    assert emergency.post_mortem == "always"


def test_stages_from_the_seed(policy: Policy) -> None:
    ct = policy.change_types
    all_stages = ["pre_deployment", "during", "post_deployment"]
    assert ct["emergency_fix"].internal_stages == all_stages
    assert ct["emergency_fix"].external_stages == all_stages
    assert ct["planned_infra_update"].external_stages == all_stages
    assert ct["application_update"].internal_stages == ["pre_deployment", "post_deployment"]
    assert ct["iam_permission_change"].internal_stages == ["pre_deployment", "post_deployment"]
    assert ct["cost_optimization"].meetings == ["Wednesday meeting"]


def test_customers_calendar_and_sla(policy: Policy) -> None:
    assert list(policy.customers) == ["EoE", "CUH", "MKUH", "NNUH"]
    assert all(not c.contacts for c in policy.customers.values())
    assert policy.calendar.time_zone == "Europe/London"
    assert (policy.calendar.holidays.country, policy.calendar.holidays.subdivision) == ("GB", "ENG")
    assert str(policy.calendar.working_hours.start) == "09:00:00"
    assert policy.calendar.working_hours.days == ["mon", "tue", "wed", "thu", "fri"]
    assert policy.sla.uptime_percent == 99.0


def test_deep_merge_merges_mappings_and_replaces_lists() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}}) == {"a": {"b": 1, "c": [3]}, "d": 1}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}


def test_user_file_overrides_part_of_the_default(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        "change_types:\n"
        "  planned_infra_update:\n"
        "    internal_channels: ['#platform']\n"
        "    internal_notice: {minimum: 48h, recommended: 72h}\n"
        "calendar:\n  holidays: {subdivision: SCT}\n"
        "customers:\n  EoE:\n    contacts: [{email: desk@eoe.example.org}]\n"
        "support: {email: devops@example.org}\n"
    )
    p = load_policy(f)
    infra = p.change_types["planned_infra_update"]
    assert infra.internal_channels == ["#platform"]
    assert str(infra.internal_notice.minimum) == "48h"
    assert str(infra.external_notice.minimum) == "3bd"  # untouched key kept from the default
    assert p.calendar.holidays.subdivision == "SCT"
    assert p.calendar.holidays.country == "GB"
    assert p.customers["EoE"].name == "East of England"
    assert p.customers["EoE"].contacts[0].email == "desk@eoe.example.org"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "change_types:\n  planned_infra_update:\n    internal_notice: {minimum: 24 hours}\n",
            "change_types.planned_infra_update.internal_notice.minimum: expected a notice "
            "period like 24h, 7d or 3bd, got '24 hours'",
        ),
        (
            "change_types:\n  planned_infra_update:\n    internal_notice: {minimum: 72h}\n",
            "change_types.planned_infra_update.internal_notice: recommended (48h) must not be "
            "shorter than minimum (72h)",
        ),
        ("colour: blue\n", "colour: unknown key (expected one of: version,"),
        (
            "change_types:\n  planned_infra_update:\n    lead_role: x\n",
            "change_types.planned_infra_update.lead_role: unknown key",
        ),
        ("change_types:\n  hotfix: {}\n", "change_types.hotfix: unknown name 'hotfix'"),
        ("sla: {uptime_percent: 101}\n", "sla.uptime_percent: expected less than or equal to 100"),
        ("sla: {uptime_percent: lots}\n", "sla.uptime_percent: expected a valid number"),
        ("calendar: {time_zone: Europe/Londn}\n", "calendar.time_zone: expected an IANA time zone"),
        (
            "calendar: {holidays: {subdivision: XYZ}}\n",
            "calendar.holidays: unknown subdivision 'XYZ' for GB",
        ),
        (
            "calendar: {working_hours: {start: '18:00', end: '09:00'}}\n",
            "calendar.working_hours: working_hours.end must be after",
        ),
        (
            "calendar: {working_hours: {days: [monday]}}\n",
            "calendar.working_hours.days.0: expected 'mon', 'tue'",
        ),
        (
            "change_types:\n  iam_permission_change:\n    internal_channels: [devops]\n",
            "change_types.iam_permission_change.internal_channels: expected Slack channel names",
        ),
        (
            "change_types:\n  planned_infra_update:\n"
            "    external_notice: {minimum: 72h, recommended: 96h}\n",
            "change_types.planned_infra_update: external_notice is counted in business days",
        ),
        (
            "change_types:\n  emergency_fix:\n    match: [{types: ['aws_*']}]\n",
            "change_types.emergency_fix: a declared_only change type cannot have match rules",
        ),
        (
            "classification: {fallback: emergency_fix}\n",
            "classification.fallback 'emergency_fix' is declared_only",
        ),
        (
            "customers:\n  EoE:\n    contacts: [{email: not-an-email}]\n",
            "customers.EoE.contacts.0.email",
        ),
        ("customers:\n  NEW: {}\n", "customers.NEW.name: required key is missing"),
        ("version: 2\n", "version: expected 1"),
    ],
)
def test_bad_policy_names_file_path_and_expectation(
    tmp_path: Path, yaml_text: str, expected: str
) -> None:
    f = tmp_path / "team-policy.yaml"
    f.write_text(yaml_text)
    with pytest.raises(InputError) as info:
        load_policy(f)
    assert any(line.startswith(f"{f}: ") and expected in line for line in info.value.problems), (
        info.value.problems
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("a: [1, 2\n", "not valid YAML at line 2"),
        ("- just\n- a list\n", "expected a mapping of keys at the top, got list"),
        (b"\xff\xfe\x00", "not UTF-8"),
    ],
)
def test_unreadable_policy_file(tmp_path: Path, content: str | bytes, expected: str) -> None:
    f = tmp_path / "p.yaml"
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content)
    with pytest.raises(InputError, match=expected):
        load_policy(f)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_policy(tmp_path / "nope.yaml")


def test_every_problem_is_listed_and_exit_is_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("colour: blue\nsla: {uptime_percent: 0}\n")
    assert main(["--policy", str(f), "validate"]) == 2
    err = capsys.readouterr().err
    assert f"{f}: colour: unknown key" in err
    assert f"{f}: sla.uptime_percent: expected greater than 0" in err


def test_validate_accepts_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.paths import EXAMPLES

    code = main(
        [
            "--policy",
            str(EXAMPLES / "policy.yaml"),
            "--change",
            str(EXAMPLES / "change.yaml"),
            "validate",
        ]
    )
    assert code == 0
    assert "ok:" in capsys.readouterr().out


def test_example_policy_makes_customer_notice_longer() -> None:
    from tests.support.paths import EXAMPLES

    p = load_policy(EXAMPLES / "policy.yaml")
    assert str(p.change_types["planned_infra_update"].external_notice.minimum) == "5bd"
    assert p.customers["EoE"].environments == ["eoe-prod"]


def test_a_policy_that_tells_customers_must_say_whom_they_contact(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("customers:\n  EoE:\n    contacts: [{email: desk@eoe.example.org}]\n")
    with pytest.raises(InputError) as err:
        load_policy(f)
    assert "support: customers and stakeholders are told whom to contact" in str(err.value)
    f.write_text(f.read_text() + "support: {phone: '+44 1223 000000'}\n")
    assert load_policy(f).support.phone == "+44 1223 000000"
