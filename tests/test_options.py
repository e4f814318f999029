"""The one machine-clock read of the tool is injectable, and skipped when `--now` is given."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hie_notify.errors import InputError
from hie_notify.options import Options, parse_now
from hie_notify.output import section

NOW = datetime(2026, 12, 8, 10, 30, tzinfo=timezone.utc)


def _never() -> datetime:
    raise AssertionError("the machine clock was read although --now was given")


def test_now_given_never_reads_the_machine_clock() -> None:
    options = Options.from_raw({"now": "2026-12-08T10:30:00Z"}, {})
    assert options.now == NOW
    assert Options(now=NOW, wall_clock=_never).clock() == NOW


def test_without_now_the_injected_machine_clock_is_read_each_time() -> None:
    ticks = iter([NOW, NOW + timedelta(seconds=1)])
    options = Options(wall_clock=lambda: next(ticks))
    assert options.clock() == NOW
    assert options.clock() == NOW + timedelta(seconds=1)


def test_the_machine_clock_is_not_part_of_equality() -> None:
    assert Options(wall_clock=lambda: NOW) == Options()


@pytest.mark.parametrize("bad", ["tomorrow", "2026-12-08T10:30:00"])
def test_bad_now(bad: str) -> None:
    with pytest.raises(InputError, match="--now / HIE_NOW"):
        parse_now(bad)


def test_section_markers_carry_the_given_time() -> None:
    text = section({"GITLAB_CI": "true"}, "hie_x", "Head:", "body", collapsed=True, now=NOW)
    stamp = int(NOW.timestamp())
    assert text == (
        f"\x1b[0Ksection_start:{stamp}:hie_x[collapsed=true]\r\x1b[0KHead:\nbody\n"
        f"\x1b[0Ksection_end:{stamp}:hie_x\r\x1b[0K"
    )
    later = section({"GITLAB_CI": "true"}, "hie_x", "Head:", "b", False, NOW + timedelta(hours=1))
    assert f"section_start:{stamp + 3600}:hie_x\r" in later


def test_section_outside_gitlab_is_plain() -> None:
    assert section({}, "hie_x", "Head:", "body", collapsed=True, now=NOW) == "Head:\nbody"
    assert section({}, "hie_x", "Head:", "", collapsed=True, now=NOW) == "Head:"
