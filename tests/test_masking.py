"""Secrets are masked wherever the tool prints or sends text."""

from __future__ import annotations

from pathlib import Path

import pytest

from hie_notify.cli import main
from hie_notify.masking import MASK, Masker


def test_known_values_and_token_shapes() -> None:
    mask = Masker(["s3cr3t-value-1", "short"])
    assert mask("a s3cr3t-value-1 b") == f"a {MASK} b"
    assert mask("short") == "short"  # too short to mask safely
    assert mask("xoxb-1234567890-abcdefghij") == MASK
    assert mask("token glpat-ABCDEFGHIJKLMNOPQRSTUV end") == f"token {MASK} end"
    assert mask("see https://hooks.slack.com/services/T0/B0/XYZ now") == f"see {MASK} now"


def test_longest_secret_first() -> None:
    mask = Masker(["abcdef", "abcdefghijkl"])
    assert mask("abcdefghijkl") == MASK


def test_cli_errors_are_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "PLANTED-TF-TOKEN-998877"
    bad = tmp_path / f"{secret}.json"
    code = main(["classify", "--plan", str(bad)], env={"TF_API_TOKEN": secret})
    err = capsys.readouterr().err
    assert code == 2 and secret not in err and MASK in err
