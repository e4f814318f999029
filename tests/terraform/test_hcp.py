"""The HCP Terraform client over a fake of the documented API: requests, retries, secrets."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from hie_notify.errors import HieError, InputError, ServiceError
from hie_notify.terraform import hcp
from hie_notify.terraform.hcp import (
    HcpClient,
    check_run_id,
    is_final,
    parse_workspace,
    run_id_from_env,
    stage_for_status,
    tfc_outputs,
)
from hie_notify.terraform.plan import parse_plan
from tests.support.hcp_fake import (
    ARCHIVIST,
    HTML_502,
    JSON_HEADERS,
    ORG,
    PLAN_ID,
    RUN_ID,
    SIGNED_SECRET,
    SITE,
    TOKEN,
    WORKSPACE,
    FakeClock,
    FakeHcp,
    fixture,
    fixture_bytes,
    run_document,
)

RUN_PATH = f"/api/v2/runs/{RUN_ID}"


@pytest.fixture
def fake() -> Iterator[FakeHcp]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeHcp(rsps).install()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def client(clock: FakeClock, site: str = SITE, token: str = TOKEN, **kwargs: Any) -> HcpClient:
    return HcpClient(
        site, token, sleep=clock.sleep, monotonic=clock.monotonic, rand=lambda: 0.5, **kwargs
    )


def error_text(exc: BaseException) -> str:
    """What a user could see of an exception: its text and that of every exception a printed
    traceback would show with it (its cause, or its context unless suppressed)."""
    parts: list[str] = []
    shown: BaseException | None = exc
    while shown is not None:
        parts += [str(shown), repr(shown), *traceback.format_exception_only(shown)]
        shown = shown.__cause__ or (None if shown.__suppress_context__ else shown.__context__)
    return "\n".join(parts)


# -- reading a run


def test_get_run_is_one_request_with_every_include(fake: FakeHcp, clock: FakeClock) -> None:
    run = client(clock).get_run(RUN_ID)

    assert len(fake.requests) == 1
    request = fake.requests[0]
    url = urlsplit(request.url)
    assert request.method == "GET"
    assert (url.scheme, url.netloc, url.path) == ("https", "app.terraform.io", RUN_PATH)
    include = parse_qs(url.query)["include"]
    assert include == ["plan,apply,workspace,configuration_version,created_by"]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/vnd.api+json"
    assert clock.sleeps == []

    assert run.id == RUN_ID
    assert run.status == "planned"
    assert run.message == "FFAPP-4458: resize the EKS general worker nodes to m6i.xlarge"
    assert (run.is_destroy, run.plan_only, run.has_changes) == (False, False, True)
    assert (run.source, run.trigger_reason) == ("tfe-api", "manual")
    assert run.created_at == "2026-12-08T18:52:11.204Z"
    assert run.status_timestamps["planned-at"] == "2026-12-08T18:53:02+00:00"
    assert run.created_by == "project_42_bot_tfc"
    assert (run.organization_name, run.workspace_name) == (ORG, WORKSPACE)
    assert run.workspace_id == "ws-Hk3vT8pRcY2nWq6D"
    assert (run.plan_id, run.plan_status) == (PLAN_ID, "finished")
    assert (run.apply_id, run.apply_status) == ("apply-Lm4zP9wQxR7sTu2V", "unreachable")
    assert run.configuration_version_id == "cv-Ua8nX3kJbW5eYr1F"
    assert run.run_url == f"{SITE}/app/hie-sde/workspaces/eoe-prod/runs/{RUN_ID}"
    assert run.error_summary is None
    assert (run.stage, run.final, run.status_known) == (None, False, True)


def test_run_without_included_workspace_has_no_link(fake: FakeHcp, clock: FakeClock) -> None:
    doc = run_document()
    doc["included"] = [i for i in doc["included"] if i["type"] != "workspaces"]
    fake.runs[RUN_ID] = doc
    run = client(clock).get_run(RUN_ID)
    assert run.workspace_id == "ws-Hk3vT8pRcY2nWq6D"
    assert (run.workspace_name, run.organization_name, run.run_url) == (None, None, None)


@pytest.mark.parametrize(
    ("changes", "summary"),
    [
        ({"status": "errored", "plan_status": "errored"}, "the plan errored"),
        ({"status": "errored", "apply_status": "errored"}, "the apply errored"),
        ({"status": "errored", "cv_error": "no Terraform files found"}, "no Terraform files"),
        ({"status": "canceled"}, "the run was canceled"),
        ({"status": "force_canceled"}, "force-canceled"),
        ({"status": "discarded"}, "discarded before it was applied"),
        ({"status": "errored"}, "the run errored"),
    ],
)
def test_error_summary(
    fake: FakeHcp, clock: FakeClock, changes: dict[str, Any], summary: str
) -> None:
    fake.runs[RUN_ID] = run_document(**changes)
    run = client(clock).get_run(RUN_ID)
    assert run.error_summary is not None and summary in run.error_summary


# Every status in the reference: the documented table, then those only go-tfe / its spec name.
ALL_STATUSES = [
    "pending",
    "fetching",
    "fetching_completed",
    "pre_plan_running",
    "pre_plan_completed",
    "queuing",
    "plan_queued",
    "planning",
    "planned",
    "cost_estimating",
    "cost_estimated",
    "policy_checking",
    "policy_override",
    "policy_soft_failed",
    "policy_checked",
    "confirmed",
    "post_plan_running",
    "post_plan_completed",
    "planned_and_finished",
    "planned_and_saved",
    "apply_queued",
    "applying",
    "applied",
    "discarded",
    "errored",
    "canceled",
    "force_canceled",
    # found only in go-tfe or its OpenAPI spec
    "pre_plan_awaiting_decision",
    "post_plan_awaiting_decision",
    "pre_apply_running",
    "pre_apply_completed",
    "queuing_apply",
    "post_apply_running",
    "post_apply_completed",
    "tf_policy_checked",
    "tf_policy_override",
    "assessing",
    "assessed",
]
EXPECTED_STAGE = {
    "applying": "apply_started",
    "applied": "apply_succeeded",
    "post_apply_running": "apply_succeeded",
    "post_apply_completed": "apply_succeeded",
    "errored": "apply_failed",
    "canceled": "apply_failed",
    "discarded": "apply_failed",
    "force_canceled": "apply_failed",
}
EXPECTED_FINAL = {
    "applied",
    "planned_and_finished",
    "policy_soft_failed",
    "discarded",
    "errored",
    "canceled",
    "force_canceled",
    "assessed",
}


def test_every_reference_status_is_known_and_no_other() -> None:
    assert len(ALL_STATUSES) == 38
    assert set(ALL_STATUSES) == hcp.KNOWN_STATUSES
    assert set(hcp.APPLY_STAGE_FOR_STATUS) == hcp.KNOWN_STATUSES


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_a_run_in_every_status(fake: FakeHcp, clock: FakeClock, status: str) -> None:
    fake.runs[RUN_ID] = run_document(status)
    run = client(clock).get_run(RUN_ID)
    assert run.status == status
    assert run.status_known
    assert run.stage == EXPECTED_STAGE.get(status)
    assert run.final is (status in EXPECTED_FINAL)
    # A speculative run never applies, whatever its status says.
    fake.runs[RUN_ID] = run_document(status, plan_only=True)
    assert client(clock).get_run(RUN_ID).stage is None


def test_unknown_status_is_reportable_not_a_crash(fake: FakeHcp, clock: FakeClock) -> None:
    fake.runs[RUN_ID] = run_document("teleporting")
    run = client(clock).get_run(RUN_ID)
    assert run.status == "teleporting"
    assert (run.stage, run.final, run.status_known) == (None, False, False)
    assert stage_for_status(None) is None and not is_final(None)
    assert stage_for_status("applied") == "apply_succeeded"
    assert stage_for_status("applied", plan_only=True) is None


# -- the plan JSON


def test_json_output_waits_while_204_then_follows_the_307(fake: FakeHcp, clock: FakeClock) -> None:
    fake.polls_before_ready = 2
    plan = client(clock).plan_json(PLAN_ID)

    assert plan == fake.plan
    assert parse_plan(plan, f"HCP {PLAN_ID}").summary["change"] == 2
    assert clock.sleeps == [5, 5]  # poll_interval, twice, with the injected sleep
    urls = [r.url for r in fake.requests]
    assert urls[:3] == [f"{SITE}/api/v2/plans/{PLAN_ID}/json-output"] * 3
    assert urls[3] == fake.signed_url
    assert len(urls) == 4


def test_json_output_gives_up_after_plan_wait_seconds(fake: FakeHcp, clock: FakeClock) -> None:
    fake.polls_before_ready = 1000
    c = client(clock, plan_wait_seconds=12, poll_interval=5)
    with pytest.raises(ServiceError) as err:
        c.plan_json(PLAN_ID)
    assert err.value.exit_code == 3
    assert "has not finished after 12 s" in str(err.value)
    assert clock.sleeps == [5, 5, 2]  # never past the deadline
    assert len(fake.requests) == 4


def test_redirect_to_another_host_carries_no_token(
    fake: FakeHcp, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client(clock).plan_json(PLAN_ID)
    api, download = fake.requests
    assert api.headers["Authorization"] == f"Bearer {TOKEN}"
    assert urlsplit(download.url).netloc == urlsplit(ARCHIVIST).netloc
    assert "Authorization" not in download.headers
    assert "plan JSON redirect" in caplog.text  # the log says it followed one...
    assert SIGNED_SECRET not in caplog.text  # ...but never where to


@pytest.mark.parametrize(
    "failure",
    [
        (403, {"Content-Type": "application/xml"}, "<Error><Code>AccessDenied</Code></Error>"),
        requests.ConnectionError(
            f"HTTPSConnectionPool(host='archivist.terraform.io', port=443): Max retries "
            f"exceeded with url: /v1/object/{SIGNED_SECRET}?expires=60"
        ),
    ],
)
def test_the_signed_url_is_in_no_error_or_log(
    fake: FakeHcp, clock: FakeClock, caplog: pytest.LogCaptureFixture, failure: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.script("download", *[failure] * 5)
    with pytest.raises(ServiceError) as err:
        client(clock).plan_json(PLAN_ID)
    assert f"JSON of plan {PLAN_ID}" in str(err.value)
    assert SIGNED_SECRET not in error_text(err.value)
    assert SIGNED_SECRET not in caplog.text
    assert TOKEN not in error_text(err.value) + caplog.text


def test_redirect_on_the_same_host_keeps_the_token(clock: FakeClock) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeHcp(rsps, download_host=SITE).install()
        assert client(clock).plan_json(PLAN_ID) == fake.plan
        assert fake.requests[1].url.startswith(f"{SITE}/v1/object/")
        assert fake.requests[1].headers["Authorization"] == f"Bearer {TOKEN}"


def test_run_plan_json_by_run(fake: FakeHcp, clock: FakeClock) -> None:
    assert client(clock).run_plan_json(RUN_ID) == fake.plan
    assert fake.requests[0].url == f"{SITE}/api/v2/runs/{RUN_ID}/plan/json-output"


def test_get_run_and_its_plan_json_takes_three_requests(fake: FakeHcp, clock: FakeClock) -> None:
    c = client(clock)
    run = c.get_run(RUN_ID)
    assert run.plan_id is not None
    c.plan_json(run.plan_id)
    assert len(fake.requests) <= 3
    assert [urlsplit(r.url).netloc for r in fake.requests] == [
        "app.terraform.io",
        "app.terraform.io",
        "archivist.terraform.io",
    ]


def test_plan_from_terraform_older_than_0_12(fake: FakeHcp, clock: FakeClock) -> None:
    fake.script("json_output", (422, JSON_HEADERS, fixture_bytes("error_unprocessable.json")))
    with pytest.raises(InputError, match=r"older than 0\.12"):
        client(clock).plan_json(PLAN_ID)


def test_json_output_refused_names_the_token_kind(fake: FakeHcp, clock: FakeClock) -> None:
    fake.script("json_output", (404, JSON_HEADERS, fixture_bytes("error_not_found.json")))
    with pytest.raises(InputError) as err:
        client(clock).plan_json(PLAN_ID)
    assert f"plan {PLAN_ID} not found (404)" in str(err.value)
    assert "organization tokens are refused" in str(err.value)


# -- retries


def test_429_waits_for_the_rate_limit_reset_plus_jitter(fake: FakeHcp, clock: FakeClock) -> None:
    limited = (
        429,
        {**JSON_HEADERS, "X-RateLimit-Limit": "30", "X-RateLimit-Reset": "0.75"},
        fixture_bytes("error_rate_limited.json"),
    )
    fake.script("run", limited, limited)
    jitter = iter([0.1, 0.9])
    c = HcpClient(
        SITE, TOKEN, sleep=clock.sleep, monotonic=clock.monotonic, rand=lambda: next(jitter)
    )
    assert c.get_run(RUN_ID).id == RUN_ID
    assert clock.sleeps == pytest.approx([0.85, 1.65])
    assert len(fake.requests) == 3


def test_429_waits_are_bounded_and_retry_after_is_read(fake: FakeHcp, clock: FakeClock) -> None:
    fake.script(
        "run",
        (429, {"X-RateLimit-Reset": "86400"}, "{}"),
        (429, {"Retry-After": "7"}, "{}"),
        (429, {}, "{}"),  # no hint: the exponential backoff of the third attempt
    )
    client(clock).get_run(RUN_ID)
    assert clock.sleeps == [60.5, 7.5, 4.5]


def test_500s_past_the_retry_budget(fake: FakeHcp, clock: FakeClock) -> None:
    fake.script("run", *[(500, JSON_HEADERS, '{"errors": [{"status": "500"}]}')] * 10)
    with pytest.raises(ServiceError) as err:
        client(clock, max_retries=4).get_run(RUN_ID)
    assert err.value.exit_code == 3
    assert len(fake.requests) == 5  # the first try and 4 retries, no more
    assert clock.sleeps == [1.5, 2.5, 4.5, 8.5]  # exponential, with jitter
    assert f"read run {RUN_ID}" in str(err.value)
    assert "after 4 retries" in str(err.value) and "HTTP 500" in str(err.value)


def test_backoff_is_capped(fake: FakeHcp, clock: FakeClock) -> None:
    fake.script("run", *[(503, {}, "")] * 8)
    with pytest.raises(ServiceError):
        client(clock, max_retries=7).get_run(RUN_ID)
    assert max(clock.sleeps) == 30.5
    assert len(fake.requests) == 8


def test_connection_error_then_success(fake: FakeHcp, clock: FakeClock) -> None:
    fake.script("run", requests.ConnectionError("connection reset by peer"))
    assert client(clock).get_run(RUN_ID).status == "planned"
    assert len(fake.requests) == 2
    assert clock.sleeps == [1.5]


def test_timeouts_past_the_budget(fake: FakeHcp, clock: FakeClock) -> None:
    fake.script("run", *[requests.ReadTimeout("read timed out")] * 3)
    with pytest.raises(ServiceError, match=r"after 2 retries .*ReadTimeout"):
        client(clock, max_retries=2).get_run(RUN_ID)
    assert len(fake.requests) == 3


def test_html_error_pages_are_retried_then_reported(fake: FakeHcp, clock: FakeClock) -> None:
    fake.script("run", *[(502, {"Content-Type": "text/html"}, HTML_502)] * 5)
    with pytest.raises(ServiceError, match="HTTP 502, an HTML error page") as err:
        client(clock).get_run(RUN_ID)
    assert "<html" not in str(err.value)
    assert len(fake.requests) == 5


def test_an_html_page_with_200_is_not_the_api(fake: FakeHcp, clock: FakeClock) -> None:
    fake.script(
        "run", (200, {"Content-Type": "text/html"}, "<!doctype html><title>Sign in</title>")
    )
    with pytest.raises(ServiceError, match=r"HTML page, not JSON.*TFE_ADDRESS") as err:
        client(clock).get_run(RUN_ID)
    assert err.value.exit_code == 3
    assert len(fake.requests) == 1


def test_an_html_404_is_not_a_missing_run(fake: FakeHcp, clock: FakeClock) -> None:
    fake.script("run", (404, {"Content-Type": "text/html"}, "<html>Not Found</html>"))
    with pytest.raises(ServiceError, match="HTML page"):
        client(clock).get_run(RUN_ID)


def test_malformed_json(fake: FakeHcp, clock: FakeClock) -> None:
    fake.script("run", (200, JSON_HEADERS, '{"data": {"id": "run-Qx7b'))
    with pytest.raises(ServiceError, match="malformed JSON") as err:
        client(clock).get_run(RUN_ID)
    assert err.value.exit_code == 3
    assert len(fake.requests) == 1


def test_a_document_without_a_run(fake: FakeHcp, clock: FakeClock) -> None:
    fake.script("run", (200, JSON_HEADERS, '{"data": null}'))
    with pytest.raises(ServiceError, match="without a run"):
        client(clock).get_run(RUN_ID)


# -- refusals


def test_401_names_the_variable(fake: FakeHcp, clock: FakeClock) -> None:
    with pytest.raises(InputError) as err:
        client(clock, token="tfc-WRONG-TOKEN").get_run(RUN_ID)
    assert err.value.exit_code == 2
    assert "HCP Terraform refused the token (401): check TF_API_TOKEN" in str(err.value)
    assert "tfc-WRONG-TOKEN" not in error_text(err.value)
    assert len(fake.requests) == 1


def test_404_says_the_token_may_not_see_it(fake: FakeHcp, clock: FakeClock) -> None:
    with pytest.raises(InputError) as err:
        client(clock).get_run("run-DoesNotExist1234")
    message = str(err.value)
    assert "run run-DoesNotExist1234 not found (404)" in message
    assert "this token cannot see it" in message


def test_403_and_other_4xx(fake: FakeHcp, clock: FakeClock) -> None:
    fake.script(
        "run",
        (403, JSON_HEADERS, '{"errors": [{"status": "403", "title": "forbidden"}]}'),
        (409, JSON_HEADERS, '{"errors": [{"status": "409", "title": "conflict"}]}'),
    )
    with pytest.raises(InputError, match=r"may not read run .* \(403\): forbidden"):
        client(clock).get_run(RUN_ID)
    with pytest.raises(ServiceError, match=r"HTTP 409 .*: conflict"):
        client(clock).get_run(RUN_ID)


def test_a_bad_run_id_sends_nothing(fake: FakeHcp, clock: FakeClock) -> None:
    for bad in ("", "Qx7bN2eKpL4mRw9T", "run-", "run-abc/../../admin", "run-abc?x=1"):
        with pytest.raises(InputError, match="expected an HCP Terraform run id"):
            client(clock).get_run(bad)
    with pytest.raises(InputError, match="plan id"):
        client(clock).plan_json("run-Qx7bN2eKpL4mRw9T")
    assert fake.requests == []


# -- workspace


def test_current_run_of_a_workspace(fake: FakeHcp, clock: FakeClock) -> None:
    org, name = parse_workspace("hie-sde/eoe-prod")
    run = client(clock).current_run(org, name)
    assert run.id == RUN_ID  # current-run, not latest-run (a later speculative plan)
    assert [urlsplit(r.url).path for r in fake.requests] == [
        "/api/v2/organizations/hie-sde/workspaces/eoe-prod",
        RUN_PATH,
    ]


def test_a_workspace_with_no_current_run(fake: FakeHcp, clock: FakeClock) -> None:
    doc = fixture("workspace.json")
    doc["data"]["relationships"]["current-run"]["data"] = None
    fake.workspaces[(ORG, WORKSPACE)] = doc
    with pytest.raises(InputError, match="hie-sde/eoe-prod has no current run"):
        client(clock).current_run(ORG, WORKSPACE)
    with pytest.raises(InputError, match="workspace hie-sde/nope not found"):
        client(clock).current_run(ORG, "nope")


def test_parse_workspace() -> None:
    assert parse_workspace("acme/eoe-prod") == ("acme", "eoe-prod")
    assert parse_workspace(" acme/eoe_prod_2 ") == ("acme", "eoe_prod_2")


@pytest.mark.parametrize("bad", ["", "acme", "acme/", "/eoe-prod", "a/b/c", "acme/eoe prod"])
def test_parse_workspace_errors(bad: str) -> None:
    with pytest.raises(InputError) as err:
        parse_workspace(bad, "HIE_TFC_WORKSPACE")
    assert str(err.value).startswith("HIE_TFC_WORKSPACE: expected ORGANIZATION/WORKSPACE")
    assert err.value.exit_code == 2


# -- environment


@pytest.mark.parametrize(
    ("env", "base"),
    [
        ({"TF_API_TOKEN": TOKEN}, "https://app.terraform.io"),
        ({"TFE_TOKEN": TOKEN}, "https://app.terraform.io"),
        ({"TF_API_TOKEN": TOKEN, "TF_CLOUD_HOSTNAME": ""}, "https://app.terraform.io"),
        (
            {"TF_API_TOKEN": TOKEN, "TF_CLOUD_HOSTNAME": "tfe.example.org"},
            "https://tfe.example.org",
        ),
        (
            {"TFE_TOKEN": TOKEN, "TFE_ADDRESS": "https://tfe.example.org/"},
            "https://tfe.example.org",
        ),
        ({"TFE_TOKEN": TOKEN, "TFE_ADDRESS": "http://127.0.0.1:8080"}, "http://127.0.0.1:8080"),
        (
            {
                "TF_API_TOKEN": TOKEN,
                "TFE_ADDRESS": "http://127.0.0.1:8080",
                "TF_CLOUD_HOSTNAME": "x.org",
            },
            "http://127.0.0.1:8080",
        ),
    ],
)
def test_from_env(env: dict[str, str], base: str) -> None:
    c = HcpClient.from_env(env)
    assert c.base_url == base
    assert c.api_url == base + "/api/v2"


def test_from_env_talks_to_a_local_tfe(clock: FakeClock) -> None:
    site = "http://127.0.0.1:8080"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeHcp(rsps, site=site).install()
        env = {"TFE_ADDRESS": site, "TFE_TOKEN": TOKEN}
        run = HcpClient.from_env(env, sleep=clock.sleep, monotonic=clock.monotonic).get_run(RUN_ID)
        assert fake.requests[0].url.startswith(f"{site}/api/v2/runs/{RUN_ID}?include=")
        assert run.run_url == f"{site}/app/hie-sde/workspaces/eoe-prod/runs/{RUN_ID}"


def test_tf_api_token_wins_over_tfe_token(fake: FakeHcp, clock: FakeClock) -> None:
    c = HcpClient.from_env({"TF_API_TOKEN": TOKEN, "TFE_TOKEN": "tfc-other"}, sleep=clock.sleep)
    c.get_run(RUN_ID)
    assert fake.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_from_env_without_a_token() -> None:
    with pytest.raises(InputError) as err:
        HcpClient.from_env({"TF_CLOUD_HOSTNAME": "tfe.example.org", "TF_API_TOKEN": " "})
    assert "TF_API_TOKEN" in str(err.value) and "TFE_TOKEN" in str(err.value)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TFE_ADDRESS": "tfe.example.org"}, "TFE_ADDRESS"),
        ({"TFE_ADDRESS": "ftp://tfe.example.org"}, "TFE_ADDRESS"),
        ({"TF_CLOUD_HOSTNAME": "https://"}, "TF_CLOUD_HOSTNAME"),
    ],
)
def test_from_env_bad_address(env: dict[str, str], named: str) -> None:
    with pytest.raises(InputError, match=f"^{named}: expected an address"):
        HcpClient.from_env({"TF_API_TOKEN": TOKEN, **env})


def test_run_id_from_env() -> None:
    link = f"{SITE}/app/hie-sde/workspaces/eoe-prod/runs/{RUN_ID}"
    assert run_id_from_env({"HIE_TFC_RUN_ID": RUN_ID, "run_id": "run-Other1"}) == RUN_ID
    assert run_id_from_env({"run_id": RUN_ID, "run_status": "planned"}) == RUN_ID
    assert run_id_from_env({"run_link": link}) == RUN_ID
    assert run_id_from_env({"HIE_TFC_RUN_URL": link + "/"}) == RUN_ID
    assert run_id_from_env({"run_id": " ", "plan_id": PLAN_ID}) is None
    assert run_id_from_env({"run_link": f"{SITE}/app/hie-sde/workspaces/eoe-prod"}) is None
    assert run_id_from_env({}) is None


def test_run_id_from_env_refuses_a_bad_id() -> None:
    with pytest.raises(InputError, match=r"^HIE_TFC_RUN_ID: expected an HCP Terraform run id"):
        run_id_from_env({"HIE_TFC_RUN_ID": "12345"})
    with pytest.raises(InputError, match=r"^run_id: "):
        run_id_from_env({"run_id": "$run_id"})
    assert check_run_id(RUN_ID) == RUN_ID


def test_tfc_outputs_reads_the_tfc_workflows_gitlab_dotenv() -> None:
    # What `.tfc:create_run` writes to its dotenv report (tfc-workflows-tooling run_create.go).
    dotenv = {
        "status": "Success",
        "run_id": RUN_ID,
        "run_status": "planned",
        "run_message": "LGTM",
        "run_link": f"{SITE}/app/hie-sde/workspaces/eoe-prod/runs/{RUN_ID}",
        "plan_id": PLAN_ID,
        "plan_status": "finished",
        "configuration_version_id": "cv-Ua8nX3kJbW5eYr1F",
    }
    out = tfc_outputs(dotenv)
    assert (out.run_id, out.plan_id, out.run_status) == (RUN_ID, PLAN_ID, "planned")
    assert out.run_link == dotenv["run_link"]
    assert out.configuration_version_id == "cv-Ua8nX3kJbW5eYr1F"
    assert tfc_outputs({}) == (None, None, None, None, None)


# -- the token


def test_the_token_is_in_no_repr_error_or_log(
    fake: FakeHcp, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    c = client(clock)
    assert TOKEN not in repr(c) and SITE in repr(c)
    assert TOKEN not in repr(HcpClient.from_env({"TFE_TOKEN": TOKEN}))
    fake.script(
        "run",
        *[(500, {}, "")] * 5,
        (502, {"Content-Type": "text/html"}, HTML_502),
        (200, {}, "{not json"),
        (200, {"Content-Type": "text/html"}, "<html></html>"),
        *[requests.ConnectionError(f"Authorization: Bearer {TOKEN} refused")] * 5,
    )
    errors: list[HieError] = []
    for call in (
        lambda: c.get_run(RUN_ID),  # 500s past the budget
        lambda: client(clock, max_retries=0).get_run(RUN_ID),  # HTML 502
        lambda: c.get_run(RUN_ID),  # malformed JSON
        lambda: c.get_run(RUN_ID),  # HTML 200
        lambda: c.get_run(RUN_ID),  # connection errors quoting the header
        lambda: c.get_run("run-Missing1"),  # 404
        lambda: client(clock, token=TOKEN + "x").get_run(RUN_ID),  # 401
        lambda: HcpClient.from_env({"TF_API_TOKEN": TOKEN, "TFE_ADDRESS": "tfe.example.org"}),
    ):
        with pytest.raises(HieError) as err:
            call()
        errors.append(err.value)
    assert len(errors) == 8
    for error in errors:
        assert TOKEN not in error_text(error)
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("token", [f"{TOKEN}\n", f"{TOKEN} extra", f"{TOKEN}\r\nX-Evil: 1"])
def test_a_token_with_spaces_or_newlines_is_refused_without_echo(token: str) -> None:
    env = {"TF_API_TOKEN": token}
    if token.strip() == TOKEN:  # a trailing newline from a copy-paste is forgiven
        assert HcpClient.from_env(env).base_url == SITE
        return
    with pytest.raises(InputError) as err:
        HcpClient.from_env(env)
    assert "TF_API_TOKEN" in str(err.value)
    assert TOKEN not in error_text(err.value)
