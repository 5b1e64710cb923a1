"""The API's TCP listener: accepted connections carry TCP_NODELAY, so a small response on a
kept-alive connection is not held back by Nagle's algorithm (about 40 ms a request)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from enclave.cli.server import listen_tcp


def test_accepted_connections_have_tcp_nodelay() -> None:
    listener = listen_tcp("127.0.0.1", 0)
    assert listener.proto == socket.IPPROTO_TCP  # what asyncio looks at before setting TCP_NODELAY
    port = listener.getsockname()[1]
    seen: list[int] = []

    async def main() -> None:
        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(main())
    assert seen
    assert seen[0] != 0


def test_a_taken_port_is_an_error() -> None:
    taken = listen_tcp("127.0.0.1", 0)
    try:
        with pytest.raises(OSError, match="in use"):
            listen_tcp("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()
