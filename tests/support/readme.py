"""The README's shell blocks, as the README and docs tests read them
(moved from tests/test_readme.py)."""

from __future__ import annotations

import re

from tests.support.paths import ROOT

FENCE = re.compile(r"^```[a-z]*\n(.*?)^```$", re.S | re.M)


def _blocks() -> list[list[str]]:
    return [
        m.group(1).rstrip("\n").split("\n")
        for m in FENCE.finditer(ROOT.joinpath("README.md").read_text())
    ]


def _block(first_line: re.Pattern[str]) -> list[str]:
    found = [b for b in _blocks() if first_line.search(b[0])]
    assert len(found) == 1, f"expected one README block starting with {first_line.pattern}"
    return found[0]


def _sh_lines() -> list[str]:
    text = ROOT.joinpath("README.md").read_text()
    return [
        line
        for m in re.finditer(r"^```sh\n(.*?)^```$", text, re.S | re.M)
        for line in m.group(1).splitlines()
    ]
