"""The mock backend's transport: TCP_NODELAY, no permessage-deflate, a clean restart."""

from __future__ import annotations

import socket
import threading

from websockets.exceptions import ConnectionClosed

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


def test_a_client_reconnecting_at_once_on_1012_never_gets_into_the_old_run(
    mock_server: MockServer,
) -> None:
    old_epoch = mock_server.epoch
    restarter = threading.Thread(target=mock_server.restart, name="restart")
    with open_stream(mock_server, "JAS") as ws:
        recv_type(ws, "welcome")
        restarter.start()
        try:
            while True:
                ws.recv(timeout=10)
        except ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 1012
    # Reconnect at once, as the agent does on 1012: the old run has stopped listening, so this
    # is refused or lands in the new run, never in the old one that is shutting down.
    try:
        again = open_stream(mock_server, "JAS")
    except OSError:
        again = None
    if again is not None:
        with again:
            assert recv_type(again, "welcome")["epoch"] != old_epoch
    restarter.join(15)
    assert not restarter.is_alive()
    with open_stream(mock_server, "JAS") as fresh:
        assert recv_type(fresh, "welcome")["epoch"] == mock_server.epoch != old_epoch
