"""Every environment variable hie-notify reads, in one typed model (pydantic-settings).

What each variable is, its default, whether it is a secret (masked wherever text leaves the
process) and who may set it:

- `anyone`: any job may set it, a branch's too; nothing it changes weakens a check.
- `operator`: set where the tool is configured (CI/CD settings, the service's host): addresses,
  credentials, GitLab's own variables.
- `protected`: a branch could use it to move the clock or switch a check off, so it is refused
  in GitLab CI unless the protected policy declares a trial.

The masking list (`masking.SECRET_VARIABLES`), the CI refusal list (`REFUSED_IN_CI`), the
variables `validate` reports per feature (`tokens.FEATURES`) and docs/variables.md are all
generated from this model. Importing it reads nothing: the faces (`cli.main`, the service)
build one `Settings` from the environment they are given.

`python -m hie_notify.settings --markdown` prints the docs table.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

Who = Literal["anyone", "operator", "protected"]
ROUTING_KEY_SUFFIX = "_ROUTING_KEY"


def _var(
    what: str,
    *,
    who: Who = "operator",
    default: str | None = "",
    shown: str = "",
    features: tuple[str, ...] = (),
    alias: str | None = None,
) -> Any:
    """A variable: `what` it is (one line), who may set it, the default shown in the docs
    (`shown`, else `default`, else none) and the `validate` features it configures."""
    extra: dict[str, Any] = {
        "who": who,
        "shown": shown or default or "",
        "features": list(features),
    }
    if alias is not None:
        return Field(default, description=what, json_schema_extra=extra, alias=alias)
    return Field(default, description=what, json_schema_extra=extra)


class Settings(BaseSettings):
    """The environment hie-notify runs in. Values are kept as given (text): each is parsed,
    with an error naming it, by the code that uses it, exactly as before this model."""

    model_config = SettingsConfigDict(
        alias_generator=str.upper,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        case_sensitive=True,
    )

    # Global options (flags win over these).
    hie_policy: str = _var(
        "the policy file (as --policy)", who="anyone", shown=".hie-notify/policy.yaml"
    )
    hie_change: str = _var("the change record file (as --change)", who="anyone")
    hie_ledger: str = _var("where deliveries are recorded (as --ledger)", who="anyone")
    hie_register: str = _var("the change register (as --register)", who="anyone")
    hie_now: str = _var("the time to act at, ISO 8601 (as --now)", who="protected")
    hie_outbox: str = _var(
        "the outbox directory (as --outbox)", who="anyone", shown="hie-notify-outbox"
    )
    hie_dry_run: str = _var(
        "switch: send, record and write nothing (as --dry-run)", who="protected", shown="false"
    )
    # The protected policy.
    hie_local_policy: str = _var(
        "switch: use the branch's policy file in GitLab CI (only under a trial)",
        who="protected",
        shown="false",
    )
    hie_policy_path: str = _var(
        "the protected policy's path in its project", shown=".hie-notify/policy.yaml"
    )
    hie_policy_project: str = _var(
        "the project holding the protected policy", shown="the pipeline's project"
    )
    hie_policy_ref: str = _var(
        "the ref of HIE_POLICY_PROJECT to read the policy at", shown="its default branch"
    )
    # CI templates' switches.
    hie_gate_required: str = _var(
        "switch (CI templates): a blocked gate fails its job (false: advisory)", shown="true"
    )
    hie_pages: str = _var(
        "switch (CI templates): a scheduled pipeline publishes the report on GitLab Pages",
        shown="false",
    )
    hie_notify_digest: str = _var(
        "switch (CI templates): a scheduled pipeline sends the weekly digest", shown="false"
    )
    # What is deployed where.
    hie_environment: str = _var("the deployment's environment name", who="anyone")
    hie_change_path: str = _var(
        "service: the change record's path in the repository", shown="deploy/change.yaml"
    )
    hie_change_issue_iid: str = _var("the change issue whose notes are the ledger", who="anyone")
    hie_memory_budget_mb: str = _var(
        "MiB a plan may take to read", who="anyone", shown="2048 (2 GiB)"
    )
    # GitLab (CI_* are GitLab's predefined variables).
    hie_gitlab_token: SecretStr | None = _var(
        "GitLab access token (api scope; read_api to read the protected policy)",
        default=None,
        features=("gitlab", "policy"),
        alias="HIE_GITLAB_TOKEN",
    )
    plain_gitlab_token: SecretStr | None = _var(
        "GitLab access token, when HIE_GITLAB_TOKEN is unset",
        default=None,
        features=("gitlab", "policy"),
        alias="GITLAB_TOKEN",
    )
    ci_job_token: SecretStr | None = _var(
        "GitLab: the job's token (reads the protected policy; cannot write notes)",
        default=None,
        features=("policy",),
        alias="CI_JOB_TOKEN",
    )
    ci_api_v4_url: str = _var("GitLab: the API address")
    ci_project_id: str = _var("GitLab: the project's id")
    ci_project_path: str = _var("GitLab: the project's path")
    ci_default_branch: str = _var("GitLab: the project's default branch")
    ci_commit_branch: str = _var("GitLab: the branch of a branch pipeline")
    ci_commit_ref_protected: str = _var("GitLab: true when the pipeline's ref is protected")
    ci_commit_sha: str = _var("GitLab: the commit the pipeline runs for")
    ci_pipeline_source: str = _var("GitLab: what started the pipeline")
    ci_pipeline_url: str = _var("GitLab: the pipeline's address")
    ci_job_url: str = _var("GitLab: the job's address")
    ci_merge_request_iid: str = _var("GitLab: the merge request of the pipeline")
    ci_merge_request_project_url: str = _var("GitLab: the merge request's project address")
    ci_environment_name: str = _var("GitLab: the job's environment")
    ci_deploy_freeze: str = _var("GitLab: set while a deploy freeze period is on")
    gitlab_ci: str = _var("GitLab: true in every CI job")
    ci: str = _var("set by most CI systems: progress is shown as lines, not redrawn", who="anyone")
    gitlab_user_login: str = _var("GitLab: the user who started the job")
    hie_register_project: str = _var(
        "the project holding the GitLab register", shown="the pipeline's project"
    )
    hie_ledger_authors: str = _var(
        "users (comma-separated) whose ledger notes count besides the token's own",
        who="protected",
    )
    hie_ledger_key: SecretStr | None = _var(
        "key that seals ledger entries",
        default=None,
        alias="HIE_LEDGER_KEY",
    )
    # Channels.
    slack_bot_token: SecretStr | None = _var(
        "Slack bot token",
        default=None,
        features=("slack",),
        alias="SLACK_BOT_TOKEN",
    )
    slack_api_url: str = _var("Slack API address", shown="https://slack.com/api/")
    smtp_host: str = _var("SMTP server", features=("email",))
    smtp_port: str = _var("SMTP port", shown="587 (465 for ssl, 25 for none)")
    smtp_security: str = _var("SMTP: starttls, ssl or none", shown="starttls")
    smtp_username: str = _var("SMTP user (only over TLS)")
    smtp_password: SecretStr | None = _var(
        "SMTP password",
        default=None,
        alias="SMTP_PASSWORD",
    )
    smtp_from: str = _var("the sender address of email notices")
    smtp_ca_file: str = _var("CA bundle to verify the SMTP server with")
    teams_webhook_url: SecretStr | None = _var(
        "Teams Workflows webhook address (the address is the credential)",
        default=None,
        features=("teams",),
        alias="TEAMS_WEBHOOK_URL",
    )
    hie_webhook_url: SecretStr | None = _var(
        "generic webhook address (may carry a token)",
        default=None,
        features=("webhook",),
        alias="HIE_WEBHOOK_URL",
    )
    hie_webhook_secret: SecretStr | None = _var(
        "key that signs webhook bodies",
        default=None,
        alias="HIE_WEBHOOK_SECRET",
    )
    jira_url: str = _var("Jira address", features=("jira",))
    jira_user: str = _var("Jira Cloud user (the account's email)")
    jira_api_token: SecretStr | None = _var(
        "Jira Cloud API token",
        default=None,
        alias="JIRA_API_TOKEN",
    )
    jira_pat: SecretStr | None = _var(
        "Jira Data Center personal access token",
        default=None,
        alias="JIRA_PAT",
    )
    statuspage_api_key: SecretStr | None = _var(
        "Statuspage API key",
        default=None,
        features=("statuspage",),
        alias="STATUSPAGE_API_KEY",
    )
    statuspage_api_url: str = _var("Statuspage API address", shown="https://api.statuspage.io/v1")
    pagerduty_routing_key: SecretStr | None = _var(
        "PagerDuty Events v2 integration key (every *_ROUTING_KEY variable is masked too)",
        default=None,
        features=("pagerduty",),
        alias="PAGERDUTY_ROUTING_KEY",
    )
    pagerduty_events_url: str = _var(
        "PagerDuty Events API address", shown="https://events.pagerduty.com/v2"
    )
    # HCP Terraform.
    tf_api_token: SecretStr | None = _var(
        "HCP Terraform token",
        default=None,
        features=("hcp",),
        alias="TF_API_TOKEN",
    )
    tfe_token: SecretStr | None = _var(
        "HCP Terraform token, when TF_API_TOKEN is unset",
        default=None,
        features=("hcp",),
        alias="TFE_TOKEN",
    )
    tfe_address: str = _var("Terraform Enterprise address")
    tf_cloud_hostname: str = _var("HCP Terraform host", shown="app.terraform.io")
    hie_tfc_workspace: str = _var("the HCP Terraform workspace (ORG/NAME or NAME)", who="anyone")
    hie_tfc_run_id: str = _var("the HCP Terraform run to read", who="anyone")
    hie_tfc_run_url: str = _var("the HCP Terraform run's address", who="anyone")
    run_id: str = _var("tfc-workflows-gitlab: the run's id", who="anyone", alias="run_id")
    run_link: str = _var("tfc-workflows-gitlab: the run's address", who="anyone", alias="run_link")
    plan_id: str = _var("tfc-workflows-gitlab: the plan's id", who="anyone", alias="plan_id")
    run_status: str = _var(
        "tfc-workflows-gitlab: the run's status", who="anyone", alias="run_status"
    )
    configuration_version_id: str = _var(
        "tfc-workflows-gitlab: the configuration version",
        who="anyone",
        alias="configuration_version_id",
    )
    # The gate service (hie-notify receive).
    hie_listen: str = _var("service: address to listen on", shown="127.0.0.1:8080")
    hie_service_config: str = _var("service: the organisation file")
    hie_run_task_hmac_key: SecretStr | None = _var(
        "service: the run task's HMAC key",
        default=None,
        alias="HIE_RUN_TASK_HMAC_KEY",
    )
    hie_tfc_notification_token: SecretStr | None = _var(
        "service: the HCP Terraform notification token",
        default=None,
        alias="HIE_TFC_NOTIFICATION_TOKEN",
    )
    # Acknowledgements (issue 29, on main; named here ahead of the merge).
    hie_public_url: str = _var("service: the public address acknowledgement links point at")
    hie_ack_key: SecretStr | None = _var("key that signs acknowledgement links", default=None)
    slack_signing_secret: SecretStr | None = _var(
        "Slack app signing secret (verifies button clicks)", default=None
    )
    hie_service_threads: str = _var("service: request threads", shown="8")
    hie_service_workers: str = _var("service: gate workers", shown="4")
    hie_service_queue: str = _var("service: queued requests", shown="100")
    hie_service_max_body: str = _var("service: largest request body, bytes", shown="1048576")
    hie_service_idle_timeout: str = _var("service: idle connection timeout, s", shown="30")

    # The values of every *_ROUTING_KEY variable (the PagerDuty keys a policy names): secrets
    # whose names only the policy knows.
    _routing_keys: tuple[SecretStr, ...] = PrivateAttr(default=())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what the face passes: the environment it was given (tests pass their own).
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """The settings in `env` (empty values count as unset, as everywhere in the code)."""
        names = {variable for variable, _ in _variables()}
        given: dict[str, Any] = {k: v for k, v in env.items() if k in names and v}
        built = cls(**given)
        built._routing_keys = tuple(
            SecretStr(v) for k, v in env.items() if k.endswith(ROUTING_KEY_SUFFIX) and v
        )
        return built

    def is_set(self, variable: str) -> bool:
        """Is `variable` (its name in the environment) set, and not empty?"""
        field = next(n for n, i in type(self).model_fields.items() if _name(n, i) == variable)
        return bool(getattr(self, field))

    def secrets(self) -> list[str]:
        """Every secret value set: the variables typed SecretStr and the routing keys."""
        values = [getattr(self, name) for name in type(self).model_fields]
        found = [v for v in values if isinstance(v, SecretStr)] + list(self._routing_keys)
        return [v.get_secret_value() for v in found]

    @property
    def gitlab_token(self) -> SecretStr | None:
        """The GitLab token every GitLab request uses: HIE_GITLAB_TOKEN, else GITLAB_TOKEN."""
        return self.hie_gitlab_token or self.plain_gitlab_token


def settings_or_env(settings: Settings | None, env: Mapping[str, str]) -> Settings:
    """The settings the face built; code reached without them (tests calling an adapter with
    an environment of their own) builds them from `env`, through this one model."""
    return settings if settings is not None else Settings.from_env(env)


def _name(field: str, info: FieldInfo) -> str:
    return info.alias or field.upper()


def _variables() -> list[tuple[str, FieldInfo]]:
    return [(_name(field, info), info) for field, info in Settings.model_fields.items()]


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    assert isinstance(extra, dict)
    return extra


def is_secret(info: FieldInfo) -> bool:
    return "SecretStr" in str(info.annotation)


def variables() -> tuple[str, ...]:
    return tuple(name for name, _ in _variables())


def secret_variables() -> tuple[str, ...]:
    return tuple(name for name, info in _variables() if is_secret(info))


def who_may_set(name: str) -> Who:
    return dict(_variables())[name].json_schema_extra["who"]  # type: ignore[index,return-value]


# Refused when a branch sets them in GitLab CI (unless the protected policy declares a trial).
REFUSED_IN_CI = tuple(name for name, info in _variables() if _extra(info)["who"] == "protected")


def refused_in_ci(shown: str) -> str:
    """The message for a protected variable set in GitLab CI; `shown` names it as the user
    set it (e.g. "--now / HIE_NOW"), and must name a variable of REFUSED_IN_CI."""
    if not any(shown == name or shown.endswith(f"/ {name}") for name in REFUSED_IN_CI):
        raise ValueError(f"{shown} is not a protected variable of the settings model")
    return f"{shown}: refused in GitLab CI (a branch can set its own job variables)"


def feature_variables(feature: str) -> tuple[str, ...]:
    """The variables that configure a `validate` feature, in the order they are tried."""
    found = tuple(name for name, info in _variables() if feature in _extra(info)["features"])
    if not found:
        raise KeyError(feature)
    return found


def markdown() -> str:
    """The variables table of docs/variables.md."""
    rows = [
        "| Variable | What it is | Default | Secret | Who may set it |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, info in _variables():
        extra = _extra(info)
        shown = extra["shown"]
        default = f"`{shown}`" if shown and " " not in shown else shown
        secret = "yes (masked)" if is_secret(info) else ""
        rows.append(f"| `{name}` | {info.description} | {default} | {secret} | {extra['who']} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover - `python -m hie_notify.settings --markdown`
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m hie_notify.settings --markdown")
    sys.stdout.write(markdown())
