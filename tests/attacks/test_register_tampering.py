"""The GitLab register against people who can write to its issues (any maintainer can edit any
note; anyone with Reporter access can comment): only its own, unedited notes, exactly as it
wrote them, register a delivery. Else a backdated `delivered_at` would make `report` show
notice that was never given."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hie_notify.ledger.gitlab import decode_marker
from hie_notify.records import Entry
from hie_notify.register.gitlab import GitLabRegister, note_body
from hie_notify.register.model import Registered
from tests.support.builders import rc
from tests.support.cli_flow import Flow
from tests.support.register_fake import BOT, ENV, HUMAN, RegisterFake
from tests.support.register_records import NOW, entry, record

UTC = timezone.utc
THREE_WEEKS = timedelta(weeks=3)


@pytest.fixture
def fake() -> Iterator[RegisterFake]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield RegisterFake(rsps).install()


def _registered(fake: RegisterFake) -> tuple[int, dict[str, Any]]:
    """The issue and the one delivery note the register wrote."""
    ((iid, notes),) = fake.notes.items()
    (note,) = notes
    return iid, note


def _backdated(n: int = 0) -> str:
    return note_body([replace(entry(n=n), delivered_at=NOW - THREE_WEEKS)])


def _read() -> Registered:
    got = GitLabRegister.from_env(ENV, None).get("FFAPP-1")
    assert got is not None
    return got


def test_the_register_reads_back_what_it_wrote(fake: RegisterFake) -> None:
    GitLabRegister.from_env(ENV, None).put(record(), [entry(n=0), entry(n=1)], NOW)
    assert [e.message_id for e in _read().entries] == ["m0", "m1"]


def test_a_delivery_note_edited_to_backdate_it_is_not_counted(fake: RegisterFake) -> None:
    GitLabRegister.from_env(ENV, None).put(record(), [entry(n=0)], NOW)
    iid, note = _registered(fake)
    # A maintainer rewrites the bot's note in the bot's exact format, three weeks earlier.
    fake.edit_note(iid, note["id"], _backdated())
    assert note["author"] == BOT and note["updated_at"] != note["created_at"]
    reg = GitLabRegister.from_env(ENV, None)
    assert reg.get("FFAPP-1").entries == ()  # type: ignore[union-attr]
    # The report's read (a range, then each change's notes) sees no delivery either.
    (ranged,) = reg.between_with_entries(NOW - timedelta(days=30), NOW + timedelta(days=30))
    assert ranged.entries == ()


def test_an_edit_that_changes_nothing_visible_still_uncounts_the_note(
    fake: RegisterFake,
) -> None:
    """GitLab cannot say what an edit changed: an edited note is never evidence."""
    GitLabRegister.from_env(ENV, None).put(record(), [entry(n=0)], NOW)
    iid, note = _registered(fake)
    fake.edit_note(iid, note["id"], note["body"])
    assert _read().entries == ()


def test_a_note_by_another_user_in_the_bots_format_is_not_counted(fake: RegisterFake) -> None:
    GitLabRegister.from_env(ENV, None).put(record(), [entry(n=0)], NOW)
    iid, _ = _registered(fake)
    fake.add_note(iid, _backdated(n=1), HUMAN)
    lookalike = {**HUMAN, "id": 902, "username": f"{BOT['username']}_", "name": BOT["name"]}
    fake.add_note(iid, _backdated(n=2), lookalike)
    assert [e.message_id for e in _read().entries] == ["m0"]


@pytest.mark.parametrize(
    "wrap",
    [
        lambda body: "> quoted from an earlier note\n\n" + body,
        lambda body: body + "\n\nedited by hand",
        lambda body: body.replace("registered 1 delivery(ies)", "registered 2 delivery(ies)"),
    ],
    ids=["quoted", "text-after", "other-lines"],
)
def test_a_note_of_ours_that_is_not_exactly_a_registration_is_not_counted(
    fake: RegisterFake, wrap: Any
) -> None:
    """A marker inside some other note (a quote, a lookalike posted with the bot's token
    elsewhere) is not a registration: only the body `put` writes is."""
    GitLabRegister.from_env(ENV, None).put(record(), [entry(n=0)], NOW)
    iid, _ = _registered(fake)
    fake.add_note(iid, wrap(_backdated(n=1)), BOT)
    assert [e.message_id for e in _read().entries] == ["m0"]


_MUTATIONS = st.one_of(
    st.tuples(st.just("edit"), st.text(max_size=40)),
    st.tuples(st.just("author"), st.integers(min_value=1, max_value=10_000)),
    st.tuples(st.just("prefix"), st.text(min_size=1, max_size=40)),
    st.tuples(st.just("suffix"), st.text(min_size=1, max_size=40)),
    st.tuples(st.just("system"), st.just("")),
    st.tuples(st.just("touch"), st.just("")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation=_MUTATIONS, weeks=st.integers(min_value=0, max_value=52))
def test_no_change_to_a_note_makes_a_notice_look_earlier(
    mutation: tuple[str, Any], weeks: int
) -> None:
    """Whatever is done to the bot's note (a backdated body behind any edit, another author,
    text around it, a system note, only a touch), what the register reads is what it wrote or
    nothing: never a delivery earlier than the real one."""
    kind, value = mutation
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = RegisterFake(rsps).install()
        GitLabRegister.from_env(ENV, None).put(record(), [entry(n=0)], NOW)
        iid, note = _registered(fake)
        early = note_body([replace(entry(n=0), delivered_at=NOW - timedelta(weeks=weeks))])
        if kind == "edit":
            fake.edit_note(iid, note["id"], early + value)
        elif kind == "author":
            note["author"] = {**HUMAN, "id": value if value != BOT["id"] else value + 1}
            note["body"] = early
        elif kind == "prefix":
            note["body"] = value + early
        elif kind == "suffix":
            note["body"] = early + value
        elif kind == "system":
            note["system"], note["body"] = True, early
        else:
            fake.edit_note(iid, note["id"], note["body"])
        got = _read().entries
        assert all(e.delivered_at >= NOW for e in got), got
        assert got in ((), (entry(n=0),))


def test_report_shows_no_notice_from_a_backdated_delivery_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole story: a customer told one day ahead; a maintainer moves the bot's note three
    weeks earlier; the report must not turn the short notice into notice given."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = RegisterFake(rsps).install()
        nodes = rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])
        flow = Flow(tmp_path, capsys, nodes, env=dict(ENV))
        told = datetime(2026, 12, 7, 10, tzinfo=UTC)  # the window is Tue 8 Dec 19:00
        code, _ = flow(
            "--register", "gitlab", "plan", "--plan", str(flow.plan), now=told.isoformat()
        )
        assert code == 0, flow.err

        def eoe() -> dict[str, Any]:
            code, out = flow(
                "--register",
                "gitlab",
                "report",
                "--from",
                "2026-12-01",
                "--to",
                "2026-12-31",
                now="2026-12-31T12:00:00+00:00",
            )
            assert code == 0, flow.err
            (row,) = [r for r in out["tables"]["notices"] if r["audience"] == "customer:EoE"]
            return dict(row)

        before = eoe()
        assert (before["given_at"], before["level"]) == (told.isoformat(), "short")
        ((iid, notes),) = fake.notes.items()
        for note in notes:
            raw = decode_marker(note["body"], "test") or []
            entries = [Entry.from_json(x, "test") for x in raw]
            if entries:
                moved = [replace(e, delivered_at=e.delivered_at - THREE_WEEKS) for e in entries]
                fake.edit_note(iid, note["id"], note_body(moved))
        after = eoe()
        assert after["given_at"] != (told - THREE_WEEKS).isoformat()
        assert (after["given_at"], after["level"]) == (None, "not given")
