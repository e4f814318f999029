"""The acknowledgement page in `receive`: a GET only shows; the form's POST records once, with
its anti-forgery value; refused tokens get a clear page; strict headers on every answer."""

from __future__ import annotations

import json
from datetime import timedelta

from hie_notify import acks
from tests.support.ack_harness import FORM_TOKEN, KEY, AckHarness, ack_harness, mail_parts

_ = ack_harness


def test_a_get_shows_the_change_as_told_in_the_readers_zone_and_records_nothing(
    ack_harness: AckHarness,
) -> None:
    h = ack_harness
    before = h.ledger_lines()
    path = h.link()
    for _ in range(3):  # a mail scanner, a preview, the reader
        code, headers, page = h.request("GET", path)
        assert code == 200
    assert h.ledger_lines() == before
    assert "Tue 8 Dec 2026 19:00 to 21:00 GMT" in page
    assert "The service may be unavailable for up to 1 hour during this time." in page
    assert "FFAPP-4458" in page and "East of England" in page
    assert 'value="acknowledged"' in page and 'value="objected"' in page
    assert "<script" not in page and "http://" not in page.replace(h.url, "")
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
    code, _, _ = h.request("HEAD", path)
    assert code == 200 and h.ledger_lines() == before


def test_acknowledging_records_a_sealed_ledger_entry_once_and_registers_it(
    ack_harness: AckHarness,
) -> None:
    h = ack_harness
    path = h.link()
    code, page = h.answer(path, "acknowledged")
    assert code == 200 and "your acknowledgement is recorded" in page
    code, page = h.answer(path, "acknowledged")  # replayed: nothing new
    assert code == 200 and "We already have this answer" in page
    entries = [json.loads(x) for x in h.ledger_lines()]
    answers = [e for e in entries if e["stage"] == "ack"]
    assert len(answers) == 1
    (a,) = answers
    assert a["audience"] == "customer:EoE" and a["recipient"] == "East of England"
    assert a["extra"]["decision"] == "acknowledged"
    assert a["delivered_at"] == h.now.isoformat()
    previous = [e for e in entries if e is not a][-1]
    assert a["prev"] == previous["digest"] and a["digest"]  # chained like every entry
    from hie_notify.register.store import open_register

    register = open_register(f"sqlite:{h.tmp}/register.sqlite3", {})
    assert register is not None
    record = register.get("FFAPP-4458")
    assert record is not None
    assert [e.stage for e in record.entries].count("ack") == 1
    assert "You acknowledged this notice on Wed 2 Dec 2026 09:30 GMT" in h.request("GET", path)[2]


def test_an_objection_needs_a_reason_is_recorded_and_posted_to_the_internal_channels(
    ack_harness: AckHarness,
) -> None:
    h = ack_harness
    path = h.link()
    code, page = h.answer(path, "objected", "")
    assert code == 400 and "Please tell us why" in page
    assert not [x for x in h.ledger_lines() if '"stage": "ack"' in x]
    code, page = h.answer(path, "objected", "Month-end <b>reporting</b> runs that night")
    assert code == 200 and "your objection is recorded" in page
    assert "Month-end &lt;b&gt;reporting&lt;/b&gt; runs that night" in page
    posted = sorted((h.tmp / "outbox/FFAPP-4458/objection").iterdir())
    assert [p.name for p in posted] == [
        "slack-devops.json",
        "slack-infrastructure.json",
        "slack-product.json",
    ]
    slack = posted[0].read_text()
    assert "East of England" in slack and "Month-end &lt;b&gt;reporting&lt;/b&gt;" in slack
    stages = [json.loads(x)["stage"] for x in h.ledger_lines()]
    assert stages.count("ack") == 1 and stages.count("objection") == 3
    # Shown again, the page says what they answered and chooses no answer for them: a second
    # send without a choice is asked to choose, never taken as an acknowledgement.
    code, _, again = h.request("GET", path)
    assert code == 200 and "does not work for you" in again and " checked" not in again
    code, page = h.answer(path, "", "")
    assert code == 400 and "Please choose one of the two answers." in page
    assert [json.loads(x)["stage"] for x in h.ledger_lines()].count("ack") == 1


def test_a_post_without_the_pages_form_value_is_refused_and_records_nothing(
    ack_harness: AckHarness,
) -> None:
    h = ack_harness
    path = h.link()
    before = h.ledger_lines()
    for form in (
        {"decision": "acknowledged"},
        {"decision": "acknowledged", "form_token": "x"},
        # Another link's form value (the portal's, or another contact's) does not fit.
        {"decision": "acknowledged", "form_token": acks.form_token(KEY.encode(), path + "x")},
    ):
        code, headers, page = h.request("POST", path, form)
        assert code == 403 and "did not come from the page we showed you" in page
        assert headers["x-frame-options"] == "DENY"
    code, _, _ = h.request("POST", path, None, **{"Content-Type": "application/json"})
    assert code == 415
    code, _, _ = h.request("PUT", path)
    assert code == 405
    assert h.ledger_lines() == before


def test_forged_altered_expired_and_foreign_tokens_get_a_clear_refusal(
    ack_harness: AckHarness,
) -> None:
    h = ack_harness
    path = h.link()
    token = path.removeprefix("/ack/")
    claim = acks.read(KEY.encode(), token, h.now)
    cases = {
        "forged": acks.sign(b"not-our-key-0123456789", claim),
        "altered": token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),
        "another change": acks.sign(
            KEY.encode(), acks.Claim(**{**claim.__dict__, "change_id": "FFAPP-9999"})
        ),
        "another customer": acks.sign(
            KEY.encode(), acks.Claim(**{**claim.__dict__, "audience": "customer:CUH"})
        ),
        "another notice": acks.sign(
            KEY.encode(), acks.Claim(**{**claim.__dict__, "announcement": "0" * 32})
        ),
    }
    for why, bad in cases.items():
        code, headers, page = h.request("GET", f"/ack/{bad}")
        assert code in (403, 404), why
        assert "This link cannot be used" in page, why
        assert 'name="form_token"' not in page, why
        assert "default-src 'none'" in headers["content-security-policy"]
        code, _, page = h.request(
            "POST",
            f"/ack/{bad}",
            {"decision": "acknowledged", "form_token": acks.form_token(KEY.encode(), bad)},
        )
        assert code in (403, 404), why
    h.now = claim.expires + timedelta(seconds=1)
    code, _, page = h.request("GET", path)
    assert code == 410 and "the link expired on 2026-12-15 21:00 UTC" in page
    assert not [x for x in h.ledger_lines() if '"stage": "ack"' in x]


def test_a_new_key_ends_every_old_link(ack_harness: AckHarness) -> None:
    h = ack_harness
    path = h.link()
    h.stop()
    h.start(key="rotated-key-0123456789abcdef")
    code, _, page = h.request("GET", path)
    assert code == 403 and "issued before the key changed" in page


def test_the_token_never_reaches_the_log(ack_harness: AckHarness, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    caplog.set_level(logging.INFO)
    h = ack_harness
    path = h.link()
    h.answer(path, "acknowledged")
    token = path.removeprefix("/ack/")
    assert "/ack/..." in caplog.text
    assert token not in caplog.text and token.split(".")[1] not in caplog.text
    assert FORM_TOKEN.pattern not in caplog.text


NASTY = [
    "<script>alert(1)</script> <!channel> @here [click](https://evil.example)",
    "bell\x07 escape\x1b[31m red \u202eevil\u202c zero\u200bwidth",
    "x" * 5000,
]


def test_a_hostile_reason_is_cleaned_bounded_and_escaped_everywhere(
    ack_harness: AckHarness,
) -> None:
    h = ack_harness
    path = h.link()
    for n, reason in enumerate(NASTY):
        code, page = h.answer(path, "objected", f"{n} {reason}")
        assert code == 200
        assert "<script>alert" not in page and "\x1b" not in page and "\u202e" not in page
    entries = [json.loads(x) for x in h.ledger_lines()]
    reasons = [e["extra"]["reason"] for e in entries if e["stage"] == "ack"]
    assert len(reasons) == 3
    assert all(len(r) <= 2000 for r in reasons)
    assert not any(c in r for r in reasons for c in "\x07\x1b\u202e\u200b")
    slack = "".join(p.read_text() for p in (h.tmp / "outbox/FFAPP-4458/objection").iterdir())
    assert "<!channel>" not in slack and "<script>" not in slack
    assert "&lt;!channel&gt;" in slack


def test_a_cancelled_change_shows_as_cancelled_and_takes_no_answer(
    ack_harness: AckHarness,
) -> None:
    h = ack_harness
    path = h.link()
    _, _, page = h.request("GET", path)
    (token,) = FORM_TOKEN.findall(page)
    code, _ = h.flow("cancel", now="2026-12-02T09:00:00+00:00")
    assert code == 0, h.flow.err
    code, _, page = h.request("GET", path)
    assert code == 200 and "Cancelled: it will not go ahead" in page
    assert 'name="form_token"' not in page and "nothing more to answer" in page
    code, _, page = h.request(
        "POST", path, {"form_token": token, "decision": "acknowledged", "reason": ""}
    )
    assert code == 409
    assert not [x for x in h.ledger_lines() if '"stage": "ack"' in x]


def test_once_the_work_started_a_reader_may_acknowledge_but_not_object(
    ack_harness: AckHarness,
) -> None:
    h = ack_harness
    path = h.link()
    _, _, page = h.request("GET", path)
    (token,) = FORM_TOKEN.findall(page)
    code, _ = h.flow("apply", "--status", "started", now="2026-12-08T19:05:00+00:00")
    assert code == 0, h.flow.err
    started = mail_parts(h.tmp / "outbox/FFAPP-4458/apply_started/customer-EoE.eml")["text/plain"]
    assert "Please confirm you have read this: acknowledge (https://notify.example.org/ack/" in (
        started
    )
    assert "does not work for you" not in started
    code, _, page = h.request("GET", path)
    assert code == 200 and "In progress" in page
    assert 'value="objected"' not in page and 'value="acknowledged"' in page
    code, _, page = h.request(
        "POST", path, {"form_token": token, "decision": "objected", "reason": "too late"}
    )
    assert code == 409 and "can no longer change" in page
    code, _, page = h.request("POST", path, {"form_token": token, "decision": "acknowledged"})
    assert code == 200 and "your acknowledgement is recorded" in page
