"""Every secret variable with a value planted in it, to look for in what the tool writes
(moved from tests/test_masking.py)."""

from __future__ import annotations

# Every environment variable the code names, sorted into secrets and the rest. Written out here,
# not read from masking.SECRET_VARIABLES: a secret missing from that list must fail a test.
SECRETS = {
    "SLACK_BOT_TOKEN",
    "HIE_ACK_KEY",
    "SLACK_SIGNING_SECRET",
    "SMTP_PASSWORD",
    "HIE_GITLAB_TOKEN",
    "GITLAB_TOKEN",
    "CI_JOB_TOKEN",
    "TEAMS_WEBHOOK_URL",  # the address is the credential
    "HIE_WEBHOOK_URL",  # may carry a token in its path or query
    "HIE_WEBHOOK_SECRET",
    "TF_API_TOKEN",
    "TFE_TOKEN",
    "HIE_TFC_NOTIFICATION_TOKEN",
    "HIE_RUN_TASK_HMAC_KEY",
    "HIE_LEDGER_KEY",
    "JIRA_API_TOKEN",
    "JIRA_PAT",
    "PAGERDUTY_ROUTING_KEY",
    "STATUSPAGE_API_KEY",
}
