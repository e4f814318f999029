"""A change announced with acknowledgement links on, and `receive` serving its pages: shared by
the acknowledgement, gate and browser tests."""

from __future__ import annotations

import email
import http.client
import re
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timezone
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from hie_notify.options import Options
from hie_notify.service.server import Service
from hie_notify.service.settings import Settings
from tests.support.builders import rc
from tests.support.cli_flow import Flow

NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])  # impacting
KEY = "ack-key-0123456789abcdef"
BASE = "https://notify.example.org"
ENV = {"HIE_ACK_KEY": KEY, "HIE_PUBLIC_URL": BASE}
ANNOUNCED = "2026-12-01T10:00:00+00:00"
LATER = datetime(2026, 12, 2, 9, 30, tzinfo=timezone.utc)
LINK = re.compile(r"https://notify\.example\.org(/ack/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")
FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')


def mail_parts(path: Path) -> dict[str, str]:
    mail: Message = email.message_from_bytes(path.read_bytes())
    out = {}
    for part in mail.walk():
        if part.get_content_type() in ("text/plain", "text/html"):
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out[part.get_content_type()] = payload.decode()
    return out


class AckHarness:
    def __init__(
        self,
        tmp: Path,
        capsys: pytest.CaptureFixture[str],
        policy: Path | None = None,
        **change: Any,
    ) -> None:
        self.tmp = tmp
        self.policy = policy
        self.flow = Flow(tmp, capsys, NODES, env=dict(ENV), policy=policy, **change)
        self.now = LATER
        self.service: Service | None = None
        self.thread: threading.Thread | None = None

    def announce(self) -> None:
        code, _ = self.flow("plan", "--plan", str(self.flow.plan), now=ANNOUNCED)
        assert code == 0, self.flow.err

    def link(self, audience_file: str = "customer-EoE.eml") -> str:
        """The path of the link in the customer's email (text part)."""
        text = mail_parts(self.tmp / "outbox/FFAPP-4458/announce" / audience_file)["text/plain"]
        (path,) = LINK.findall(text)
        return str(path)

    def options(self, env: dict[str, str]) -> Options:
        return Options(
            policy=self.policy,
            ledger=f"file:{self.tmp}/ledger.jsonl",
            register=f"sqlite:{self.tmp}/register.sqlite3",
            outbox=self.tmp / "outbox",
            env=env,
            wall_clock=lambda: self.now,
        )

    def start(self, key: str = KEY, **extra: str) -> Service:
        env = {**ENV, "HIE_ACK_KEY": key, "HIE_LISTEN": "127.0.0.1:0", **extra}
        settings = Settings.from_env(env)
        self.service = Service(
            settings, self.options(env), clock=lambda: self.now, workdir=self.tmp / "work"
        )
        self.thread = threading.Thread(target=self.service.run, daemon=True)
        self.thread.start()
        return self.service

    def stop(self) -> None:
        if self.service is not None:
            self.service.close(5)
            self.service = None

    @property
    def url(self) -> str:
        assert self.service is not None
        return f"http://127.0.0.1:{self.service.port}"

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        raw: bytes | None = None,
        **headers: str,
    ) -> tuple[int, dict[str, str], str]:
        assert self.service is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.service.port, timeout=10)
        body = urllib.parse.urlencode(form).encode() if form is not None else raw
        if form is not None:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        got = {k.lower(): v for k, v in response.getheaders()}
        conn.close()
        return response.status, got, text

    def answer(self, path: str, decision: str, reason: str = "") -> tuple[int, str]:
        code, _, page = self.request("GET", path)
        assert code == 200, page
        (token,) = FORM_TOKEN.findall(page)
        code, _, page = self.request(
            "POST", path, {"form_token": token, "decision": decision, "reason": reason}
        )
        return code, page

    def ledger_lines(self) -> list[str]:
        return (self.tmp / "ledger.jsonl").read_text().splitlines()


@pytest.fixture
def ack_harness(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[AckHarness]:
    h = AckHarness(tmp_path, capsys)
    h.announce()
    h.start()
    try:
        yield h
    finally:
        h.stop()
