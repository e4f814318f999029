"""Secrets are masked wherever the tool prints or sends text."""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import pytest

import hie_notify
from hie_notify.cli import main
from hie_notify.masking import MASK, Masker, MaskingFilter
from tests.support.secrets import SECRETS


def test_known_values_and_token_shapes() -> None:
    mask = Masker(["s3cr3t-value-1", "short"])
    assert mask("a s3cr3t-value-1 b") == f"a {MASK} b"
    assert mask("short") == "short"  # too short to mask safely
    assert mask("xoxb-1234567890-abcdefghij") == MASK
    assert mask("token glpat-ABCDEFGHIJKLMNOPQRSTUV end") == f"token {MASK} end"
    assert mask("see https://hooks.slack.com/services/T0/B0/XYZ now") == f"see {MASK} now"


@pytest.mark.parametrize(
    "token",
    [
        "xoxp-1234567890-abcdefghij",
        "glpat-ABCDEFGHIJKLMNOPQRSTUV",
        "https://hooks.slack.com/services/T0/B0/XYZ",
        "https://prod-01.westeurope.logic.azure.com/workflows/abc?sig=XYZ",
    ],
)
@pytest.mark.parametrize("neighbours", ["", " xox glpat- https://example.org"])
def test_a_token_is_masked_whatever_else_the_text_holds(token: str, neighbours: str) -> None:
    """The pattern is skipped only for a text that holds none of the tokens' first letters: a
    text holding one of them, or all of them at once, is still searched whole."""
    text = f"before {token} after{neighbours}"
    assert Masker([])(text) == f"before {MASK} after{neighbours}"


def test_a_text_with_no_token_comes_back_as_it_was() -> None:
    text = "xo x glpat https:/ hooks.slack.com " * 3
    assert Masker([])(text) == text


def test_longest_secret_first() -> None:
    mask = Masker(["abcdef", "abcdefghijkl"])
    assert mask("abcdefghijkl") == MASK


def test_cli_errors_are_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "PLANTED-TF-TOKEN-998877"
    bad = tmp_path / f"{secret}.json"
    code = main(["classify", "--plan", str(bad)], env={"TF_API_TOKEN": secret})
    err = capsys.readouterr().err
    assert code == 2 and secret not in err and MASK in err


NOT_SECRETS = {
    # where things are, and what to do
    "CI_API_V4_URL",
    "HIE_LEDGER_AUTHORS",
    "HIE_SERVICE_CONFIG",
    "CI_COMMIT_BRANCH",
    "CI_COMMIT_REF_PROTECTED",
    "HIE_PUBLIC_URL",
    # WSGI request headers the service reads (not variables; the signature is no secret)
    "CONTENT_TYPE",
    "HTTP_X_SLACK_REQUEST_TIMESTAMP",
    "HTTP_X_SLACK_SIGNATURE",
    "CI_COMMIT_SHA",
    "CI_DEFAULT_BRANCH",
    "CI_DEPLOY_FREEZE",
    "CI_ENVIRONMENT_NAME",
    "CI_JOB_URL",
    "CI_MERGE_REQUEST_IID",
    "CI_PIPELINE_SOURCE",
    "CI_PROJECT_PATH",
    "CI_MERGE_REQUEST_PROJECT_URL",
    "CI_PIPELINE_URL",
    "CI_PROJECT_ID",
    "GITLAB_CI",
    "HIE_CHANGE",
    "HIE_CHANGE_ISSUE_IID",
    "HIE_DRY_RUN",
    "HIE_GATE_REQUIRED",
    "HIE_NOTIFY_DIGEST",
    "HIE_PAGES",
    "HIE_ENVIRONMENT",
    "HIE_LEDGER",
    "HIE_LOCAL_POLICY",
    "HIE_NOW",
    "HIE_OUTBOX",
    "HIE_POLICY",
    "HIE_POLICY_PATH",
    "HIE_POLICY_PROJECT",
    "HIE_POLICY_REF",
    "HIE_TFC_RUN_ID",
    "HIE_TFC_RUN_URL",
    "HIE_TFC_WORKSPACE",
    "SLACK_API_URL",
    "SMTP_CA_FILE",
    "SMTP_FROM",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_SECURITY",
    "SMTP_USERNAME",
    "TFE_ADDRESS",
    "TF_CLOUD_HOSTNAME",
    "GITLAB_USER_LOGIN",
    "HIE_TRIAL",
    "HIE_MEMORY_BUDGET_MB",
    "HIE_REGISTER",
    "HIE_REGISTER_PROJECT",
    "JIRA_URL",
    "JIRA_USER",
    "PAGERDUTY_EVENTS_URL",
    "STATUSPAGE_API_URL",
    "HIE_CHANGE_PATH",
    "HIE_LISTEN",
    "HIE_SERVICE_IDLE_TIMEOUT",
    "HIE_SERVICE_MAX_BODY",
    "HIE_SERVICE_QUEUE",
    "HIE_SERVICE_THREADS",
    "HIE_SERVICE_WORKERS",
    # not read from the environment: the gate's dotenv output, a WSGI request's keys
    "HIE_CHANGE_ID",
    "HIE_CHANGE_TYPE",
    "HIE_EARLIEST_START",
    "HIE_EMERGENCY",
    "HIE_GATE_ALLOWED",
    "HIE_PLAN_FINGERPRINT",
    "HIE_SERVICE_IMPACTING",
    "HIE_WINDOW_END",
    "HIE_WINDOW_START",
    "CONTENT_LENGTH",
    "REQUEST_METHOD",
    "HTTP_X_TFE_NOTIFICATION_SIGNATURE",
    "HTTP_X_TFC_TASK_SIGNATURE",
    "PATH_INFO",
    "CHANGE_TYPES",
    "ENTRY_VERSION",
    "OUTPUT_FORMATS",
}
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")


def _names_in_the_code() -> set[str]:
    """Every string constant in hie_notify/ (but masking.py) shaped like a variable name."""
    package = Path(hie_notify.__file__).parent
    found = set()
    for path in package.rglob("*.py"):
        if path.name == "masking.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and _ENV_NAME.match(value):
                found.add(value)
    return found


def test_every_variable_the_code_names_is_sorted_into_secret_or_not() -> None:
    unsorted = _names_in_the_code() - SECRETS - NOT_SECRETS
    assert not unsorted, f"add each to SECRETS or NOT_SECRETS in this test: {sorted(unsorted)}"
    assert _names_in_the_code() >= SECRETS  # the list above is not stale


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_each_secret_variable_is_masked(name: str) -> None:
    value = f"planted-{name.lower()}-value"
    mask = Masker.from_env({name: value, "SMTP_HOST": "smtp.example.org"})
    assert mask(f"before {value} after") == f"before {MASK} after"


@pytest.mark.parametrize("name", sorted(NOT_SECRETS))
def test_settings_are_not_masked(name: str) -> None:
    value = f"setting-{name.lower()}-value"
    assert Masker.from_env({name: value})(value) == value


def test_a_secret_that_contains_another_is_masked_whole() -> None:
    # Longest first, not alphabetical: "my-..." sorts before "secret-..." but contains it.
    mask = Masker(["secret-value", "my-secret-value"])
    assert mask("x my-secret-value y") == f"x {MASK} y"
    assert mask("x secret-value y") == f"x {MASK} y"


def test_six_characters_are_masked_five_are_not() -> None:
    mask = Masker(["abc123", "abc12"])
    assert mask("abc123") == MASK
    assert mask("xabc12y") == "xabc12y"


def test_logging_filter_masks_the_formatted_message(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("hie_notify.test_masking")
    masker = Masker(["s3cr3t-value-1"])
    flt = MaskingFilter(masker)
    assert flt.masker is masker
    logger.addFilter(flt)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("token %s in %s", "s3cr3t-value-1", "xoxb-1234567890-abcdefghij")
    finally:
        logger.removeFilter(flt)
    (record,) = caplog.records
    assert record.getMessage() == f"token {MASK} in {MASK}"
    assert record.args == ()
