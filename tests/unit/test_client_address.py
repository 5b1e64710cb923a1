"""The caller's address in the audit log: the peer, or behind a trusted reverse proxy the last
X-Forwarded-For hop that is not a trusted proxy; a client's own header never chooses it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from enclave.api.deps import client_address
from enclave.config import Settings


def request(tmp_path: Path, peer: str | None, forwarded: list[str], proxies: str = "") -> Request:
    settings = Settings(home=tmp_path, trusted_proxies=proxies)
    app = SimpleNamespace(state=SimpleNamespace(services=SimpleNamespace(settings=settings)))
    return Request(
        {
            "type": "http",
            "client": (peer, 50000) if peer else None,
            "headers": [(b"x-forwarded-for", h.encode()) for h in forwarded],
            "app": app,
        }
    )


@pytest.mark.parametrize(
    ("peer", "forwarded", "proxies", "expected"),
    [
        ("198.51.100.4", [], "", "198.51.100.4"),
        ("198.51.100.4", ["203.0.113.9"], "", "198.51.100.4"),  # no proxy trusted: the header is a claim
        ("198.51.100.4", ["203.0.113.9"], "10.0.0.0/8", "198.51.100.4"),  # not from a trusted proxy
        ("10.1.2.3", ["203.0.113.9"], "10.0.0.0/8", "203.0.113.9"),
        # the client's own claim first, then what the proxies appended: the last untrusted hop wins
        ("10.1.2.3", ["1.2.3.4, 203.0.113.9", "10.9.9.9"], "10.0.0.0/8", "203.0.113.9"),
        ("10.1.2.3", ["10.9.9.9"], "10.0.0.0/8", "10.1.2.3"),  # every hop a proxy: the peer
        ("10.1.2.3", ["<script>"], "10.0.0.0/8", "10.1.2.3"),  # not an address: the peer
        ("::1", ["2001:db8::5"], "::1, 10.0.0.0/8", "2001:db8::5"),
        (None, ["203.0.113.9"], "10.0.0.0/8", None),  # the Unix socket: no address
    ],
)
def test_the_address_recorded(
    tmp_path: Path, peer: str | None, forwarded: list[str], proxies: str, expected: str | None
) -> None:
    assert client_address(request(tmp_path, peer, forwarded, proxies)) == expected


def test_trusted_proxies_are_checked_when_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCLAVE_TRUSTED_PROXIES", " 10.0.0.0/8, 192.168.1.5 ")
    assert Settings(home=tmp_path).trusted_proxies == ("10.0.0.0/8", "192.168.1.5/32")
    monkeypatch.setenv("ENCLAVE_TRUSTED_PROXIES", "10.0.0.0/8, proxy.example")
    with pytest.raises(ValidationError, match="not an address or a network"):
        Settings(home=tmp_path)
