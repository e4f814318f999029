"""A real local SMTP server (aiosmtpd) with STARTTLS or implicit TLS, certificates from trustme."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "hie-bot", "SMTP-PLANTED-PASSWORD-42"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    authenticated: bool


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    fail_next: list[str] = field(default_factory=list)  # replies to give DATA first

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail_next:
            return self.fail_next.pop(0)
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content or envelope.content,
                server.transport.get_extra_info("ssl_object") is not None,
                bool(session.authenticated),
            )
        )
        return "250 OK"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    def __init__(self, tmp: Path, mode: str = "starttls") -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server_ctx)
        self.ca_file = tmp / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.handler = Handler()
        self.port = free_port()
        kwargs: dict[str, Any] = {"authenticator": _authenticator, "auth_require_tls": True}
        if mode == "starttls":
            kwargs.update(tls_context=server_ctx, require_starttls=True)
            self.controller = Controller(
                self.handler, hostname="127.0.0.1", port=self.port, **kwargs
            )
        elif mode == "ssl":
            # Implicit TLS: the whole session is encrypted, which aiosmtpd's auth_require_tls
            # (a STARTTLS check) does not see.
            kwargs["auth_require_tls"] = False
            self.controller = Controller(
                self.handler, hostname="127.0.0.1", port=self.port, ssl_context=server_ctx, **kwargs
            )
        else:  # plain: no TLS offered at all
            self.controller = Controller(
                self.handler,
                hostname="127.0.0.1",
                port=self.port,
                auth_require_tls=False,
                authenticator=_authenticator,
            )

    def env(self, security: str = "starttls") -> dict[str, str]:
        return {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.port),
            "SMTP_SECURITY": security,
            "SMTP_USERNAME": USER,
            "SMTP_PASSWORD": PASSWORD,
            "SMTP_FROM": "HIE DevOps <devops@hie.example.org>",
            "SMTP_CA_FILE": str(self.ca_file),
        }

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()
