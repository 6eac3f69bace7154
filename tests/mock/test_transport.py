"""The mock backend's transport: TCP_NODELAY, no permessage-deflate, a clean restart."""

from __future__ import annotations

import socket

from tapi_agent.mock.server import MockServer


def test_listening_socket_says_tcp_so_asyncio_turns_nodelay_on() -> None:
    # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP (accepted sockets
    # inherit the listener's); with proto 0 each response waits for a delayed ACK.
    sock = MockServer(port=0)._bind()
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
