"""Email with smtplib: STARTTLS or implicit TLS with certificate verification, never AUTH over
plain text."""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from hie_notify import progress
from hie_notify.channels import Delivery, Outgoing, email_message, sender
from hie_notify.errors import InputError, ServiceError

SECURITY = ("starttls", "ssl", "none")


class EmailChannel:
    kind = "email"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        from_address: str = "hie-notify <hie-notify@localhost>",
        ca_file: str | None = None,
        now: datetime,
        max_retries: int = 3,
        timeout: float = 30,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if security not in SECURITY:
            raise InputError(
                f"SMTP_SECURITY: expected one of {', '.join(SECURITY)}, got {security!r}"
            )
        if security == "none" and username:
            raise InputError(
                "SMTP_SECURITY=none with SMTP_USERNAME set: credentials are never sent over an "
                "unencrypted connection; use starttls or ssl"
            )
        self.host, self.port, self.security = host, port, security
        self._username, self._password = username, password
        self.from_address = from_address
        self.ca_file = ca_file
        self.now = now
        self.max_retries = max_retries
        self.timeout = timeout
        self.sleep = sleep or time.sleep  # looked up now, so tests can replace it

    def __repr__(self) -> str:
        return f"EmailChannel(host={self.host!r}, port={self.port}, security={self.security!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str], now: datetime) -> EmailChannel:
        security = (env.get("SMTP_SECURITY") or "starttls").lower()
        default_port = {"starttls": 587, "ssl": 465, "none": 25}.get(security, 587)
        port_text = env.get("SMTP_PORT") or str(default_port)
        if not port_text.isdigit():
            raise InputError(f"SMTP_PORT: expected a port number, got {port_text!r}")
        return cls(
            env["SMTP_HOST"],
            int(port_text),
            security=security,
            username=env.get("SMTP_USERNAME") or None,
            password=env.get("SMTP_PASSWORD") or None,
            from_address=sender(env),
            ca_file=env.get("SMTP_CA_FILE") or None,
            now=now,
        )

    def _context(self) -> ssl.SSLContext:
        # smtplib verifies nothing unless given a context: this one checks the certificate and
        # the host name.
        return ssl.create_default_context(cafile=self.ca_file)

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self._context()
            )
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                smtp.quit()
                raise InputError(
                    f"SMTP server {self.host}:{self.port} does not offer STARTTLS; refusing to "
                    "send mail (and credentials) in clear text"
                )
            smtp.starttls(context=self._context())
            smtp.ehlo()
        return smtp

    def send(self, outgoing: Outgoing) -> Delivery:
        recipients = list(outgoing.rendered.audience.emails)
        if not recipients:
            raise InputError(f"{outgoing.rendered.audience.id}: no email address to send to")
        mail = email_message.build(outgoing, self.from_address, self.now)
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                with self._connect() as smtp:
                    if self._username:
                        smtp.login(self._username, self._password or "")
                    replies = _keep_data_reply(smtp)
                    refused = smtp.send_message(mail, to_addrs=recipients)
                accepted = [r for r in recipients if r not in refused]
                message_id = str(mail["Message-ID"])
                code, text = replies[-1] if replies else (0, b"")
                receipt = {
                    "message_id": message_id,
                    "smtp_reply": f"{code} {text.decode('utf-8', 'replace')}"[:300],
                }
                return Delivery("email", ", ".join(accepted), message_id, receipt=receipt)
            except smtplib.SMTPAuthenticationError as exc:
                raise InputError(
                    f"SMTP server {self.host} refused the login ({_reply(exc)}): check "
                    "SMTP_USERNAME and SMTP_PASSWORD (an app password or SMTP credentials "
                    "where the provider asks for one)"
                ) from None
            except smtplib.SMTPNotSupportedError:
                raise InputError(
                    f"SMTP server {self.host} does not offer AUTH on this connection: check "
                    "SMTP_SECURITY and SMTP_PORT, or unset SMTP_USERNAME"
                ) from None
            except smtplib.SMTPRecipientsRefused:
                raise InputError(
                    f"SMTP server {self.host} refused every recipient of "
                    f"{outgoing.rendered.audience.id}"
                ) from None
            except ssl.SSLCertVerificationError:
                raise InputError(
                    f"SMTP server {self.host}: its TLS certificate could not be verified "
                    "(set SMTP_CA_FILE for a private CA)"
                ) from None
            except smtplib.SMTPResponseException as exc:
                if isinstance(exc, smtplib.SMTPSenderRefused) and exc.smtp_code >= 500:
                    raise InputError(
                        f"SMTP server {self.host} refused the sender ({_reply(exc)}): SMTP_FROM "
                        "must be an address SMTP_USERNAME may send as"
                    ) from None
                if exc.smtp_code < 400 or exc.smtp_code >= 500:
                    raise InputError(
                        f"SMTP server {self.host} refused the message ({exc.smtp_code})"
                    ) from None
                last = f"SMTP {exc.smtp_code}"
            except (smtplib.SMTPException, OSError) as exc:
                last = type(exc).__name__
            if attempt < self.max_retries:
                wait = min(2.0**attempt, 30.0)
                with progress.waiting(wait, f"SMTP server {self.host}:{self.port} ({last})"):
                    self.sleep(wait)
        raise ServiceError(
            f"SMTP server {self.host}:{self.port} still failing after {self.max_retries} "
            f"retries ({last})"
        )


def _reply(exc: smtplib.SMTPResponseException) -> str:
    """The server's code and words, on one short line (masked, as every printed line is)."""
    raw = exc.smtp_error
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return f"{exc.smtp_code} {' '.join(text.split())[:160]}".strip()


def _keep_data_reply(smtp: smtplib.SMTP) -> list[tuple[int, bytes]]:
    """The server's answer to DATA (e.g. `250 2.0.0 Ok: queued as 4F1A2`), which smtplib's
    send_message checks and then drops: wrap this connection's `data` to keep it."""
    replies: list[tuple[int, bytes]] = []
    original = smtp.data

    def data(msg: Any) -> tuple[int, bytes]:
        reply = original(msg)
        replies.append(reply)
        return reply

    smtp.data = data  # type: ignore[method-assign]  # smtplib has no hook for the reply
    return replies
