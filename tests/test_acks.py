"""Acknowledgement links: every notice to a customer or stakeholder carries a personal link signed
with HIE_ACK_KEY; without the key there is none (and validate says so). Tokens refuse forgery,
alteration, expiry and another change's or customer's use."""

from __future__ import annotations

import email
import json
import re
from datetime import datetime, timedelta, timezone
from email.message import Message
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hie_notify import acks
from hie_notify.cli import main
from tests.support.builders import rc
from tests.support.cli_flow import Flow

NODES = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])  # impacting
KEY = "ack-key-0123456789abcdef"
BASE = "https://notify.example.org"
ENV = {"HIE_ACK_KEY": KEY, "HIE_PUBLIC_URL": BASE}
NOW = datetime(2026, 12, 1, 10, tzinfo=timezone.utc)
LINK = re.compile(r"https://notify\.example\.org/ack/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")


def claim(**over: object) -> acks.Claim:
    fields: dict[str, object] = {
        "change_id": "FFAPP-4458",
        "announcement": "abc",
        "audience": "customer:EoE",
        "contact": "ops@eoe.example",
        "zone": "Europe/London",
        "expires": NOW + timedelta(days=7),
    }
    fields.update(over)
    return acks.Claim(**fields)  # type: ignore[arg-type]


def parts(path: Path) -> dict[str, str]:
    mail: Message = email.message_from_bytes(path.read_bytes())
    out = {}
    for part in mail.walk():
        if part.get_content_type() in ("text/plain", "text/html"):
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out[part.get_content_type()] = payload.decode()
    return out


def announce(tmp: Path, capsys: pytest.CaptureFixture[str], env: dict[str, str]) -> Flow:
    flow = Flow(tmp, capsys, NODES, env=env)
    code, _ = flow("plan", "--plan", str(flow.plan))
    assert code == 0, flow.err
    return flow


def test_a_customer_notice_carries_a_personal_signed_link_in_text_and_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    announce(tmp_path, capsys, ENV)
    mail = parts(tmp_path / "outbox/FFAPP-4458/announce/customer-EoE.eml")
    (text_token,) = LINK.findall(mail["text/plain"])
    (html_token,) = LINK.findall(mail["text/html"])
    assert text_token == html_token
    got = acks.read(KEY.encode(), text_token, NOW)
    assert (got.change_id, got.audience) == ("FFAPP-4458", "customer:EoE")
    assert got.zone == "Europe/London"
    # Valid until a week after the window (2026-12-08 21:00 UTC) ends.
    assert got.expires == datetime(2026, 12, 15, 21, tzinfo=timezone.utc)
    # The announcement it answers is what the customer was told (the ledger's `told` digest).
    ledger = [json.loads(x) for x in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    told = {e["extra"].get("told") for e in ledger if e["audience"] == "customer:EoE"}
    assert told == {got.announcement}
    # Internal channels get no link; the key itself is never written anywhere.
    slack = (tmp_path / "outbox/FFAPP-4458/announce/slack-devops.json").read_text()
    assert "/ack/" not in slack
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace")


def test_without_the_key_there_is_no_link_and_a_rerun_after_adding_it_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = announce(tmp_path, capsys, {})
    mail = parts(tmp_path / "outbox/FFAPP-4458/announce/customer-EoE.eml")
    assert "/ack/" not in mail["text/plain"] and "acknowledge" not in mail["text/plain"]
    # The link is not part of what the customer is told: adding the key re-sends nothing.
    flow.env.update(ENV)
    code, out = flow("plan", "--plan", str(flow.plan))
    assert code == 0, flow.err
    assert out["delivered"] == []


def test_validate_says_whether_links_are_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate"], env={}) == 0
    assert "acknowledgement links: off (HIE_ACK_KEY and HIE_PUBLIC_URL not set)" in (
        capsys.readouterr().out
    )
    assert main(["validate"], env=ENV) == 0
    assert f"acknowledgement links: on ({BASE}/ack/" in capsys.readouterr().out
    assert main(["validate"], env={**ENV, "HIE_ACK_KEY": "short"}) == 2
    err = capsys.readouterr().err
    assert "HIE_ACK_KEY: expected at least 16 characters" in err and "short" not in err


def test_a_token_round_trips_and_every_alteration_is_refused() -> None:
    key = KEY.encode()
    token = acks.sign(key, claim())
    assert acks.read(key, token, NOW) == claim()
    payload, mac = token.split(".")
    with pytest.raises(acks.TokenError, match="not issued by us"):
        acks.read(b"another-key-0123456789", token, NOW)  # forged (or the key rotated)
    other = acks.sign(key, claim(audience="customer:NHS"))
    with pytest.raises(acks.TokenError, match="not issued by us"):
        acks.read(key, other.split(".")[0] + "." + mac, NOW)  # another customer's payload
    with pytest.raises(acks.TokenError, match="expired"):
        acks.read(key, token, NOW + timedelta(days=7))
    for bad in ("", "x", token + ".x", payload, "a" * 5000, token.replace(".", "!")):
        with pytest.raises(acks.TokenError):
            acks.read(key, bad, NOW)


@given(st.text(max_size=300))
def test_no_text_is_taken_as_a_token(text: str) -> None:
    with pytest.raises(acks.TokenError):
        acks.read(KEY.encode(), text, NOW)


@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=255))
def test_any_single_byte_change_is_refused(at: int, value: int) -> None:
    token = acks.sign(KEY.encode(), claim())
    at %= len(token)
    altered = token[:at] + chr(value) + token[at + 1 :]
    if altered == token:
        return
    with pytest.raises(acks.TokenError):
        acks.read(KEY.encode(), altered, NOW)


def test_the_form_token_is_bound_to_its_link() -> None:
    key = KEY.encode()
    one, two = acks.sign(key, claim()), acks.sign(key, claim(contact="b@eoe.example"))
    assert acks.form_ok(key, one, acks.form_token(key, one))
    assert not acks.form_ok(key, two, acks.form_token(key, one))
    assert not acks.form_ok(key, one, "")


def test_a_merge_requests_ledger_travels_in_the_token_and_the_announcement() -> None:
    env = {**ENV, "CI_MERGE_REQUEST_IID": "12"}
    links = acks.AckLinks.from_env(env, "gitlab")
    assert links is not None and links.ledger == "gitlab:mr:12"
    assert acks.AckLinks.from_env(env, "gitlab:issue:7").ledger == "gitlab:issue:7"  # type: ignore[union-attr]
    assert acks.AckLinks.from_env(env, "file:x.jsonl").ledger == ""  # type: ignore[union-attr]
    url = links.url(
        change_id="FFAPP-4458",
        announcement="abc",
        audience="customer:EoE",
        contact="ops@eoe.example",
        zone="Europe/London",
        now=NOW,
        window_end=None,
    )
    token = url.rsplit("/", 1)[1]
    got = acks.read(KEY.encode(), token, NOW)
    assert got.ledger == "gitlab:mr:12" and got.expires == NOW + timedelta(days=30)
    from dataclasses import replace

    from hie_notify.records import Entry
    from hie_notify.service.ackpages import _ledger_ref

    entry = Entry(
        "FFAPP-4458",
        "announce",
        "customer:EoE",
        "email",
        "",
        "",
        None,
        False,
        (),
        NOW,
        "",
        "",
        extra={"ledger": "gitlab:mr:12"},
    )
    assert _ledger_ref(entry) == "gitlab:mr:12"
    assert _ledger_ref(replace(entry, extra={"ledger": "file:/etc/passwd"})) == ""


def test_a_teams_card_to_a_customer_links_to_the_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "support": {"name": "DevOps", "email": "devops@hie.example"},
                "customers": {"EoE": {"name": "East of England", "channels": ["teams"]}},
            }
        )
    )
    flow = Flow(tmp_path, capsys, NODES, env=ENV, policy=policy)
    code, _ = flow("plan", "--plan", str(flow.plan))
    assert code == 0, flow.err
    (path,) = (tmp_path / "outbox/FFAPP-4458/announce").glob("customer-EoE*")
    card = json.loads(path.read_text())
    text = json.dumps(card)
    (token,) = LINK.findall(text)
    assert acks.read(KEY.encode(), token, NOW).audience == "customer:EoE"
    assert "[acknowledge or object](https://notify.example.org/ack/" in text
