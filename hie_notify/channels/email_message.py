"""The RFC 5322 message for a rendered notice: text and HTML parts (and, later, an invite)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from hie_notify.render import Rendered

_HTML = """<!doctype html>
<html><body style="font-family: Arial, Helvetica, sans-serif; font-size: 14px; \
line-height: 1.45; white-space: pre-line">{body}</body></html>
"""


def build(
    message: Rendered,
    sender: str,
    recipients: Sequence[str],
    now: datetime,
    key: str,
    domain: str = "hie-notify.invalid",
) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = sender
    mail["To"] = ", ".join(recipients) if recipients else "undisclosed-recipients:;"
    mail["Date"] = format_datetime(now)
    # The idempotency key in the Message-ID lets a mail server or a person see a resend.
    mail["Message-ID"] = make_msgid(idstring=key[:24], domain=domain)
    mail["X-HIE-Notify-Key"] = key
    mail.set_content(message.body("text"))
    mail.add_alternative(_HTML.format(body=message.body("html")), subtype="html")
    return mail
