"""A stand-in for a GitLab project's PyPI package registry: pypiserver (a real PyPI server)
behind the paths and the authentication GitLab uses, on 127.0.0.1.

Like GitLab it speaks HTTPS (a `trustme` certificate for 127.0.0.1: clients trust `ca_file`;
pip, like any client, only caches what it fetched over HTTPS). GitLab serves a project's
registry at `<CI_API_V4_URL>/projects/<id or URL-encoded path>/
packages/pypi/simple/...` and, for a private project, wants HTTP Basic `gitlab-ci-token:<job
token>` (see ../shared/reference/gitlab-release-and-packages.md). Anything else is 404 or 401
here too, and every request is recorded with the raw path it used and the user it sent.
"""

from __future__ import annotations

import base64
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import trustme

JOB_TOKEN_USER = "gitlab-ci-token"


@dataclass(frozen=True)
class Request:
    method: str
    raw_path: str
    user: str
    status: int


class _RawPathHandler(WSGIRequestHandler):
    """wsgiref decodes PATH_INFO (%2F becomes /): keep the path as the client sent it."""

    def get_environ(self) -> dict[str, Any]:
        env = super().get_environ()
        env["RAW_PATH"] = self.path.split("?", 1)[0]
        return env

    def log_message(self, format: str, *args: Any) -> None:
        del format, args  # quiet: the requests are recorded instead


class GitLabPypiStandIn:
    """pypiserver serving `root` as `project`'s registry; `token` is the job token it accepts."""

    def __init__(self, root: Path, project: str, token: str, ca_dir: Path) -> None:
        self.root = root
        ca = trustme.CA()
        self._cert = ca.issue_cert("127.0.0.1")
        self.ca_file = ca_dir / "registry-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.project = project
        self.token = token
        self.requests: list[Request] = []
        import pypiserver  # the dev extra's: the tests that use this are marked for it

        self._pypi = pypiserver.app(
            roots=[root],
            disable_fallback=True,
            authenticate=[],
            password_file=".",
            # Files cacheable, as PyPI serves them (pip keeps only cacheable downloads).
            cache_control=86400,
        )
        self._server: WSGIServer | None = None

    @property
    def prefix(self) -> str:
        return f"/api/v4/projects/{urllib.parse.quote(self.project, safe='')}/packages/pypi"

    @property
    def api(self) -> str:
        """What GitLab puts in CI_API_V4_URL."""
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_port}/api/v4"

    @property
    def simple(self) -> str:
        return self.api.removesuffix("/api/v4") + self.prefix + "/simple"

    def __call__(self, env: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        raw = env.get("RAW_PATH", env.get("PATH_INFO", ""))
        user, password = _basic(env.get("HTTP_AUTHORIZATION", ""))
        status = 200
        if not raw.startswith(self.prefix + "/"):
            status = 404
        elif (user, password) != (JOB_TOKEN_USER, self.token):
            status = 401
        self.requests.append(Request(env["REQUEST_METHOD"], raw, user, status))
        if status == 404:
            start("404 Not Found", [("Content-Type", "text/plain")])
            return [b"404 Project Not Found"]
        if status == 401:
            start("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="GitLab"')])
            return [b"401 Unauthorized"]
        env = dict(env)
        env["SCRIPT_NAME"] = self.prefix
        env["PATH_INFO"] = urllib.parse.unquote(raw[len(self.prefix) :])
        result: Iterable[bytes] = self._pypi(env, start)
        return result

    def __enter__(self) -> GitLabPypiStandIn:
        self._server = make_server("127.0.0.1", 0, self, handler_class=_RawPathHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._cert.configure_cert(context)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
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

    def downloads(self) -> list[str]:
        """File names the clients fetched (authenticated, found)."""
        return [
            r.raw_path.rsplit("/", 1)[-1]
            for r in self.requests
            if r.status == 200 and r.raw_path.endswith((".whl", ".tar.gz"))
        ]


def _basic(header: str) -> tuple[str, str]:
    if not header.startswith("Basic "):
        return "", ""
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return "", ""
    return user, password
