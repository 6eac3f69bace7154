"""The mock backend's transport: TCP_NODELAY and no permessage-deflate."""

from __future__ import annotations

import socket

from tapi_agent.mock.server import MockServer
from tests.mock.conftest import open_stream, recv_type


def test_listening_socket_says_tcp_so_asyncio_turns_nodelay_on() -> None:
    # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP (accepted sockets
    # inherit the listener's); with proto 0 each response waits for a delayed ACK.
    sock = MockServer(port=0)._bind()
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_stream_declines_permessage_deflate_even_when_the_client_offers_it(
    mock_server: MockServer,
) -> None:
    # The raw client offers permessage-deflate by default; the backend must not accept it.
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        assert ws.request is not None and "permessage-deflate" in str(
            ws.request.headers.get("Sec-WebSocket-Extensions"))
        assert ws.response is not None
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
