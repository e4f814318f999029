"""Email against a real local SMTP server: STARTTLS, implicit TLS, the invite read back."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from pathlib import Path

import icalendar
import pytest

from tests.support.builders import rc
from tests.support.cli_flow import Flow as _Flow
from tests.support.paths import EXAMPLES
from tests.support.smtp_server import PASSWORD, SmtpServer

DB = rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["storage_encrypted"]])


def Flow(tmp: Path, capsys: pytest.CaptureFixture[str], env: dict[str, str]) -> _Flow:
    return _Flow(tmp, capsys, DB, env=env, policy=EXAMPLES / "policy.yaml")


def _parse(raw: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def _invite(msg: email.message.EmailMessage) -> icalendar.Calendar:
    part = next(p for p in msg.iter_attachments() if p.get_content_type() == "text/calendar")
    return icalendar.Calendar.from_ical(part.get_content())


# Retries wait through time.sleep: the conftest's `waits` records the waits instead.
pytestmark = pytest.mark.usefixtures("waits")


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    with SmtpServer(tmp_path) as server:
        yield server


def test_starttls_delivery_with_text_html_and_invite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], smtp: SmtpServer
) -> None:
    flow = Flow(tmp_path, capsys, smtp.env())
    code, out = flow("plan", "--plan", str(flow.plan))
    assert code == 0, flow.err
    assert len(smtp.handler.received) == 1
    got = smtp.handler.received[0]
    assert got.tls is True  # STARTTLS happened before anything else
    assert got.authenticated is True
    assert got.rcpt_tos == ["service-desk@eoe.example.org"]
    assert got.mail_from == "devops@hie.example.org"
    msg = _parse(got.content)
    assert msg["Subject"].startswith("Planned change to the HIE Secure Data Environment")
    assert msg.get_body(("plain",)).get_content().startswith("Dear East of England team,")
    assert ">When</th>" in msg.get_body(("html",)).get_content()
    cal = _invite(msg)
    assert str(cal["METHOD"]) == "REQUEST"
    event = cal.walk("VEVENT")[0]
    assert int(event["SEQUENCE"]) == 0
    assert event.decoded("DTSTART").isoformat() == "2026-12-08T19:00:00+00:00"
    assert str(event["UID"]).startswith("FFAPP-4458-customer-EoE@")
    entry = next(d for d in out["delivered"] if d["audience"] == "customer:EoE")
    assert entry["channel"] == "email" and entry["message_id"] == msg["Message-ID"]
    assert PASSWORD not in json.dumps(out) + flow.err


def test_moved_window_same_uid_higher_sequence_then_cancel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], smtp: SmtpServer
) -> None:
    flow = Flow(tmp_path, capsys, smtp.env())
    flow("plan", "--plan", str(flow.plan))
    flow.window("2026-12-10T19:00:00+00:00", "2026-12-10T21:00:00+00:00")
    code, out = flow("plan", "--plan", str(flow.plan), now="2026-12-02T10:00:00+00:00")
    assert code == 0 and {d["audience"] for d in out["delivered"]} >= {"customer:EoE"}
    code, _ = flow("cancel", now="2026-12-03T10:00:00+00:00")
    assert code == 0
    events = [_invite(_parse(r.content)) for r in smtp.handler.received]
    assert [str(c["METHOD"]) for c in events] == ["REQUEST", "REQUEST", "CANCEL"]
    vevents = [c.walk("VEVENT")[0] for c in events]
    assert len({str(e["UID"]) for e in vevents}) == 1
    assert [int(e["SEQUENCE"]) for e in vevents] == [0, 1, 2]
    assert vevents[1].decoded("DTSTART").isoformat() == "2026-12-10T19:00:00+00:00"
    assert str(vevents[2]["STATUS"]) == "CANCELLED"


def test_implicit_tls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with SmtpServer(tmp_path, mode="ssl") as smtp:
        flow = Flow(tmp_path, capsys, smtp.env("ssl"))
        code, _ = flow("plan", "--plan", str(flow.plan))
        assert code == 0, flow.err
        assert smtp.handler.received[0].tls is True
        assert smtp.handler.received[0].authenticated is True


def test_server_without_starttls_gets_no_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SmtpServer(tmp_path, mode="plain") as smtp:
        flow = Flow(tmp_path, capsys, smtp.env("starttls"))
        code, out = flow("plan", "--plan", str(flow.plan))
        assert code == 3  # the email is not sent; everyone else is told
        assert (
            "does not offer STARTTLS; refusing to send mail (and credentials) in clear" in flow.err
        )
        assert [f["channel"] for f in out["failed"]] == ["email"]
        assert smtp.handler.received == []


def test_no_auth_over_plain_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with SmtpServer(tmp_path, mode="plain") as smtp:
        flow = Flow(tmp_path, capsys, smtp.env("none"))
        code, _ = flow("plan", "--plan", str(flow.plan))
        assert code == 2
        assert "credentials are never sent over an unencrypted connection" in flow.err
        env = {
            k: v for k, v in smtp.env("none").items() if k not in ("SMTP_USERNAME", "SMTP_PASSWORD")
        }
        flow.env = env
        code, _ = flow("plan", "--plan", str(flow.plan))
        assert code == 0 and smtp.handler.received[0].authenticated is False


def test_unverifiable_certificate_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], smtp: SmtpServer
) -> None:
    env = {k: v for k, v in smtp.env().items() if k != "SMTP_CA_FILE"}
    flow = Flow(tmp_path, capsys, env)
    code, out = flow("plan", "--plan", str(flow.plan))
    assert code == 3
    assert "TLS certificate could not be verified" in flow.err
    assert [f["channel"] for f in out["failed"]] == ["email"]
    assert smtp.handler.received == []


def test_temporary_failure_is_retried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], smtp: SmtpServer, waits: list[float]
) -> None:
    smtp.handler.fail_next = ["451 4.3.0 try again later"]
    flow = Flow(tmp_path, capsys, smtp.env())
    code, _ = flow("plan", "--plan", str(flow.plan))
    assert code == 0
    assert len(smtp.handler.received) == 1 and waits == [1.0]
