"""Helpers for the mock backend tests: envelopes, authorised HTTP, raw websocket clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tapi_agent.mock.server import MockServer


def envelope(sub_type: str = "incomingCall", to: list[str] | None = None,
             products: list[str] | None = None, **payload: Any) -> dict[str, Any]:
    """A valid telephony envelope; keyword arguments override payload fields."""
    body: dict[str, Any] = {
        "id": "call-1", "created": "2023-11-01T10:28:00", "callerId": "07123 456789",
        "destinationId": "01865 000100", "huntGroup": False,
    }
    body.update(payload)
    return {
        "type": "telephony", "subType": sub_type, "products": products or ["AgencyCloud"],
        "targets": {"negotiatorId": to or ["JAS"]}, "payload": body,
    }


class Api:
    """An httpx client against a running MockServer with the provider token preset."""

    def __init__(self, server: MockServer) -> None:
        self.server = server
        self.token = server.provider_token()
        self.http = httpx.Client(base_url=server.base_url, timeout=10)

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def post(self, env: Any, token: str | None = None) -> httpx.Response:
        return self.http.post("/notifications", json=env, headers=self.auth(token))

    def get(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.http.get(path, headers=self.auth(token), **kw)


@pytest.fixture
def api(mock_server: MockServer) -> Iterator[Api]:
    client = Api(mock_server)
    try:
        yield client
    finally:
        client.http.close()


def open_stream(server: MockServer, negotiator_id: str, *, product: str = "AgencyCloud",
                token: str | None = None) -> ClientConnection:
    """A raw websocket client for a negotiator (the welcome frame is left unread)."""
    url = server.base_url.replace("http", "ws", 1) + f"/notifications/stream?product={product}"
    token = token or server.mint_token(negotiator_id)
    return connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                   open_timeout=10, ping_interval=None, close_timeout=1)


def recv(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    """The next frame as a dict (fails the test when none arrives within `timeout`)."""
    frame: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return frame


def recv_type(ws: ClientConnection, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next frame of type `kind`, skipping heartbeats."""
    while True:
        frame = recv(ws, timeout)
        if frame["type"] == kind:
            return frame
        assert frame["type"] == "heartbeat", f"expected {kind}, got {frame}"
