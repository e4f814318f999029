"""tests/support/gitlab_fake.FakeGitLab (which answers at the `responses` layer, in this
process) served over HTTP on 127.0.0.1, so the jobs gitlab-ci-local runs in other processes
reach it as they
would reach GitLab: CI_API_V4_URL points here, each request is passed on to the fake as it
came, and the fake's own address is rewritten to this one in what it answers (Link headers)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests
import responses

from tests.support.gitlab_fake import API, FakeGitLab

FAKE_ROOT = API.removesuffix("/api/v4")


class _Quiet(WSGIRequestHandler):
    """wsgiref decodes PATH_INFO (%2F becomes /): keep the path as the client sent it."""

    def get_environ(self) -> dict[str, Any]:
        env = super().get_environ()
        env["RAW_PATH"] = self.path.split("?", 1)[0]
        return env

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


class GitLabOverHttp:
    def __init__(self) -> None:
        self._mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        self.gitlab = FakeGitLab(self._mock)
        self._server: WSGIServer | None = None
        self._lock = threading.Lock()

    @property
    def root(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def api(self) -> str:
        return self.root + "/api/v4"

    def __call__(self, env: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        query = env.get("QUERY_STRING", "")
        path = env.get("RAW_PATH") or env.get("PATH_INFO", "")
        url = FAKE_ROOT + path + (f"?{query}" if query else "")
        length = int(env.get("CONTENT_LENGTH") or 0)
        body = env["wsgi.input"].read(length) if length else None
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in env.items()
            if key.startswith("HTTP_")
        }
        for key in ("PRIVATE-TOKEN", "JOB-TOKEN"):  # keep GitLab's spelling
            value = headers.pop(key.title(), None)
            if value is not None:
                headers[key] = value
        if env.get("CONTENT_TYPE"):
            headers["Content-Type"] = env["CONTENT_TYPE"]
        with self._lock:  # the fake keeps state: one request at a time
            answer = requests.request(env["REQUEST_METHOD"], url, data=body, headers=headers)
        text = answer.content.replace(FAKE_ROOT.encode(), self.root.encode())
        out = [
            (k, v.replace(FAKE_ROOT, self.root))
            for k, v in answer.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "connection")
        ]
        start(f"{answer.status_code} {answer.reason or 'OK'}", out)
        return [text]

    def __enter__(self) -> GitLabOverHttp:
        self._mock.start()
        self.gitlab.install()
        self._server = make_server("127.0.0.1", 0, self, handler_class=_Quiet)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._mock.stop()
        self._mock.reset()
