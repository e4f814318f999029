"""Secrets never leave the process: every text the tool prints or sends goes through a Masker."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

SECRET_VARIABLES = (
    "SLACK_BOT_TOKEN",
    "SMTP_PASSWORD",
    "HIE_GITLAB_TOKEN",
    "GITLAB_TOKEN",
    "CI_JOB_TOKEN",
    "TEAMS_WEBHOOK_URL",
    "HIE_WEBHOOK_URL",
    "HIE_WEBHOOK_SECRET",
    "TF_API_TOKEN",
    "TFE_TOKEN",
    "HIE_TFC_NOTIFICATION_TOKEN",
    "HIE_RUN_TASK_HMAC_KEY",
    "JIRA_API_TOKEN",
    "JIRA_PAT",
    "STATUSPAGE_API_KEY",
    "PAGERDUTY_ROUTING_KEY",
    "HIE_LEDGER_KEY",
    "HIE_ACK_KEY",
    "SLACK_SIGNING_SECRET",
)
ROUTING_KEY_SUFFIX = "_ROUTING_KEY"
MASK = "[MASKED]"
# Shapes of well-known tokens, masked even when they did not come from our own variables.
_PATTERNS = re.compile(
    r"xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab personal/project access tokens
    r"|https://[a-z0-9.-]+\.(?:logic\.azure\.com|webhook\.office\.com)[^\s\"'<>)]*"  # Teams
    r"|https://hooks\.slack\.com/[^\s\"'<>)]+"
)
# Every shape above starts with one of these: a text holding none of them has nothing to mask,
# and `in` finds that out far faster than the pattern (0.4 s on a 15 MB report).
_STARTS = ("xox", "glpat-", "https://")


class Masker:
    """Replaces every known secret value (and anything shaped like a common token)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Masker:
        # PagerDuty incident keys live in variables the policy names; they all end in
        # _ROUTING_KEY (policy.model.Alerts), so every such variable is masked.
        routing = [value for name, value in env.items() if name.endswith(ROUTING_KEY_SUFFIX)]
        return cls([*(env.get(name, "") for name in SECRET_VARIABLES), *routing])

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if not any(start in text for start in _STARTS):
            return text
        return _PATTERNS.sub(MASK, text)


class MaskingFilter(logging.Filter):
    """A logging filter that masks secrets in every record (semantic-release's approach)."""

    def __init__(self, masker: Masker) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.masker(record.getMessage())
        record.args = ()
        return True
