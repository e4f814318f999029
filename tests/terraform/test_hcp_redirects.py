"""The HCP client's plan-JSON download and its one GET, over a recording session (no HTTP).

What is pinned here: the redirect hop limit, relative Location headers, which requests carry the
token, the timeout and `allow_redirects=False` on every GET, and the words of each refusal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hie_notify.errors import InputError, ServiceError
from hie_notify.terraform.hcp import HcpClient

API = "https://app.terraform.io/api/v2"
JSON_OUTPUT = f"{API}/plans/plan-abc/json-output"
TOKEN = "tfc-RECORDING-SESSION-TOKEN.atlasv1.zz"


def response(status: int, body: Any = None, **headers: str) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.headers.update(headers)
    r._content = b"" if body is None else json.dumps(body).encode()
    return r


class Session:
    """Answers GETs from a queue and records each call's arguments."""

    def __init__(self, *answers: requests.Response | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        self.calls.append({"url": url, **kwargs})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        answer.url = url
        return answer


def client(session: Session, **kw: Any) -> HcpClient:
    return HcpClient(
        "https://app.terraform.io",
        TOKEN,
        session=session,  # type: ignore[arg-type]
        sleep=lambda s: None,
        monotonic=lambda: 0.0,
        rand=lambda: 0.0,
        **kw,
    )


def redirect(location: str) -> requests.Response:
    return response(307, Location=location)


def test_every_get_has_a_timeout_never_follows_redirects_and_asks_for_json_api() -> None:
    session = Session(redirect("https://archivist.example/plan.json"), response(200, {"a": 1}))
    assert client(session, timeout=12).plan_json("plan-abc") == {"a": 1}
    api, download = session.calls
    assert api["url"] == JSON_OUTPUT
    assert api["headers"] == {
        "Accept": "application/vnd.api+json",
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/vnd.api+json",
    }
    # Another host: the signed address gets no token.
    assert download["headers"] == {"Accept": "application/vnd.api+json"}
    for call in session.calls:
        assert call["timeout"] == 12 and call["allow_redirects"] is False


def test_a_relative_location_is_on_the_api_host_and_keeps_the_token() -> None:
    session = Session(redirect("/download/plan.json"), response(200, {"a": 1}))
    assert client(session).plan_json("plan-abc") == {"a": 1}
    assert session.calls[1]["url"] == "https://app.terraform.io/download/plan.json"
    assert session.calls[1]["headers"]["Authorization"] == f"Bearer {TOKEN}"


def hops(n: int) -> list[requests.Response]:
    return [redirect(f"https://archivist.example/{i}") for i in range(n)]


def test_three_redirects_are_followed() -> None:
    session = Session(*hops(3), response(200, {"ok": True}))
    assert client(session).plan_json("plan-abc") == {"ok": True}
    assert len(session.calls) == 4


def test_a_fourth_redirect_is_refused() -> None:
    session = Session(*hops(4), response(200, {"ok": True}))
    with pytest.raises(ServiceError) as info:
        client(session).plan_json("plan-abc")
    assert str(info.value) == (
        "HCP Terraform: bad redirect while trying to download the JSON of plan plan-abc"
    )
    assert len(session.calls) == 4


def test_a_redirect_without_location_is_refused() -> None:
    with pytest.raises(ServiceError) as info:
        client(Session(response(307))).plan_json("plan-abc")
    assert (
        str(info.value)
        == "HCP Terraform: bad redirect while trying to read the JSON of plan plan-abc"
    )


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (
            403,
            InputError,
            "HCP Terraform: the token may not read the JSON of plan plan-abc (403). The plan "
            "JSON needs a user or team token with admin access to the workspace; organization "
            "tokens are refused",
        ),
        (
            401,
            InputError,
            "HCP Terraform refused the token (401): check TF_API_TOKEN (or TFE_TOKEN) (while "
            "trying to read the JSON of plan plan-abc)",
        ),
        (
            409,
            ServiceError,
            "HCP Terraform answered HTTP 409 while trying to read the JSON of plan plan-abc",
        ),
        (
            422,
            InputError,
            "HCP Terraform: plan plan-abc has no JSON plan (422): it was made with Terraform older "
            "than 0.12; give the plan file with --plan instead",
        ),
    ],
)
def test_refusals_say_what_was_being_done(status: int, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        client(Session(response(status))).plan_json("plan-abc")
    assert str(info.value) == message


def test_a_json_that_is_not_an_object() -> None:
    with pytest.raises(ServiceError) as info:
        client(Session(response(200, [1, 2]))).plan_json("plan-abc")
    assert str(info.value) == "HCP Terraform: the JSON of plan plan-abc is not a JSON object"


def test_malformed_json_names_what_was_being_done() -> None:
    bad = response(200)
    bad._content = b"{not json"
    with pytest.raises(ServiceError) as info:
        client(Session(bad)).plan_json("plan-abc")
    assert str(info.value) == (
        "HCP Terraform answered HTTP 200 with malformed JSON while trying to read the JSON of "
        "plan plan-abc"
    )


def test_a_request_that_cannot_be_made_is_a_service_error() -> None:
    with pytest.raises(ServiceError) as info:
        client(Session(requests.exceptions.InvalidURL("bad"))).plan_json("plan-abc")
    assert str(info.value) == (
        "HCP Terraform: request failed while trying to read the JSON of plan plan-abc (InvalidURL)"
    )


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG, logger="hie_notify"):
        yield caplog


def test_retries_and_redirects_are_logged(debug_log: pytest.LogCaptureFixture) -> None:
    html = response(502, **{"Content-Type": "text/html"})
    html._content = b"<html>bad gateway</html>"
    session = Session(
        response(429, **{"Retry-After": "7"}),
        html,
        response(503),
        redirect("https://archivist.example/plan.json"),
        response(200, {"a": 1}),
    )
    assert client(session).plan_json("plan-abc") == {"a": 1}
    assert [r.getMessage() for r in debug_log.records] == [
        "HCP Terraform: HTTP 429, rate limited while trying to read the JSON of plan plan-abc; "
        "retrying in 7.0 s",
        "HCP Terraform: HTTP 502, an HTML error page while trying to read the JSON of plan "
        "plan-abc; retrying in 2.0 s",
        "HCP Terraform: HTTP 503 while trying to read the JSON of plan plan-abc; retrying in 4.0 s",
        "HCP Terraform: following the plan JSON redirect (same host: False)",
    ]
