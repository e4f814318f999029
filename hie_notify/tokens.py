"""Which credential each feature needs, and whether the ones set are strong enough."""

from __future__ import annotations

from collections.abc import Mapping

from hie_notify.errors import HieError
from hie_notify.settings import Settings, feature_variables, settings_or_env

# (feature, variables, what the credential must allow); the variables come from the settings
# model, in the order they are tried.
FEATURES = (
    (
        "GitLab ledger, merge request note, post-mortem issues",
        feature_variables("gitlab"),
        "a project or group access token with the api scope and at least the Reporter role "
        "(Developer to write notes and issues); CI_JOB_TOKEN cannot create notes",
    ),
    (
        "protected policy (read from the default branch or a policy project)",
        feature_variables("policy"),
        "read access to the repository (read_api scope, or the job token for this project)",
    ),
    (
        "Slack",
        feature_variables("slack"),
        "a bot token with chat:write, channels:history, groups:history and channels:read "
        "(to find a message again before re-posting); the app must be in each channel",
    ),
    (
        "email",
        feature_variables("email"),
        "an SMTP server; SMTP_USERNAME/SMTP_PASSWORD only over TLS",
    ),
    ("Teams", feature_variables("teams"), "a Workflows (Power Automate) webhook address"),
    ("webhook", feature_variables("webhook"), "an address; HIE_WEBHOOK_SECRET to sign the body"),
    (
        "Jira (ticket check at the gate, a comment per stage, remote links, done transition)",
        feature_variables("jira"),
        "JIRA_URL with JIRA_USER (the account's email) + JIRA_API_TOKEN (Cloud, REST v3) or "
        "JIRA_PAT (Data Center, REST v2); the user needs Browse projects, Add comments, Link "
        "issues and Transition issues on the ticket's project",
    ),
    (
        "Statuspage (scheduled maintenance)",
        feature_variables("statuspage"),
        "the API key of a user with a role on the page that may create, update and delete "
        "scheduled maintenance (incidents)",
    ),
    (
        "PagerDuty (change events)",
        feature_variables("pagerduty"),
        "the integration key of an Events API v2 integration on the PagerDuty service (not a "
        "ruleset key starting with R)",
    ),
    (
        "HCP Terraform",
        feature_variables("hcp"),
        "a user or team token with admin access to the workspace (organization tokens cannot "
        "read plan JSON or apply)",
    ),
)


def report(
    env: Mapping[str, str], ledger: str | None, settings: Settings | None = None
) -> tuple[list[str], list[str]]:
    """(one line per feature, problems). Checks the GitLab token's scopes when it can."""
    given = settings_or_env(settings, env)
    lines, problems = [], []
    for feature, variables, needs in FEATURES:
        have = next((v for v in variables if given.is_set(v)), None)
        state = f"uses {have}" if have else f"not configured: set {' or '.join(variables)}"
        lines.append(f"{feature}: {state} — needs {needs}")
    if env.get("JIRA_URL"):
        from hie_notify.channels.jira import configured

        why = configured(env)
        if why:
            problems.append(f"Jira: {why}")
    gitlab_token = given.gitlab_token
    if (ledger or "").startswith("gitlab") and not gitlab_token:
        problems.append(
            "--ledger gitlab needs HIE_GITLAB_TOKEN: "
            + (
                "CI_JOB_TOKEN cannot create merge-request notes"
                if given.ci_job_token
                else "no GitLab token is set"
            )
        )
    if gitlab_token and env.get("CI_API_V4_URL"):
        try:
            scopes = gitlab_scopes(env, given)
        except HieError as exc:
            problems.append(str(exc))
        else:
            if scopes is not None and "api" not in scopes:
                problems.append(
                    f"HIE_GITLAB_TOKEN has scopes {', '.join(scopes) or 'none'}: writing notes "
                    "and issues needs the api scope"
                )
    return lines, problems


def gitlab_scopes(env: Mapping[str, str], settings: Settings | None = None) -> list[str] | None:
    """The scopes of the GitLab token (None when GitLab cannot say, e.g. an OAuth token)."""
    from hie_notify.gitlab_api import call, connect, gitlab_target

    target = gitlab_target(env, "checking the GitLab token", settings)
    gl = connect(target)
    import gitlab.exceptions as gle

    try:
        data = call(
            "read the token's own details", lambda: gl.http_get("/personal_access_tokens/self")
        )
    except HieError:
        raise
    except gle.GitlabError:
        return None
    if not isinstance(data, dict):
        return None
    if data.get("active") is False or data.get("revoked") is True:
        return []
    return [str(s) for s in data.get("scopes") or []]
