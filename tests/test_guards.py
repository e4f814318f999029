"""The guards of tests/conftest.py are on: no connection or look-up beyond loopback."""

from __future__ import annotations

import socket

import pytest

from tests.support.paths import is_loopback


def test_connections_are_restricted_to_loopback(pytestconfig: pytest.Config) -> None:
    # Checked without trying a real address: a guard that failed would send the packet.
    assert pytestconfig.getoption("--allow-hosts") == "127.0.0.1,::1"
    assert socket.socket.connect.__name__ == "guarded_connect"


def test_look_ups_are_restricted_to_loopback() -> None:
    assert socket.getaddrinfo.__name__ == "guarded"
    assert socket.getaddrinfo("127.0.0.1", 80)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        (b"localhost", True),
        (None, True),
        ("gitlab.example.com", False),
        ("10.0.0.1", False),
        ("app.terraform.io", False),
        ("localhost.evil.example", False),
    ],
)
def test_is_loopback(host: object, loopback: bool) -> None:
    assert is_loopback(host) is loopback
