"""Where the sign-in goes and how it listens: an issuer with a path on the mock, explicit
endpoints without discovery, the redirect ports of a shared host, and no secret in clear
text; the Platform API's own origin and `api-version` header."""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tapi_agent.mock.server import MockServer
from tapi_agent.net.api import ApiClient, ApiError
from tapi_agent.net.auth import AuthError, ReapitConnect, Session, sign_in
from tapi_agent.net.oidc import Endpoints
from tapi_agent.net.tokens import MemoryTokenStore
from tests.net.test_auth import Browser

POOL = "/eu-west-2_demo"


@pytest.fixture
def pooled() -> Iterator[MockServer]:
    with MockServer(issuer_path=POOL, auto_approve="RPT") as server:
        yield server


def test_agent_signs_in_to_an_issuer_with_a_path(pooled: MockServer) -> None:
    browser = Browser()

    async def scenario() -> None:
        connect = ReapitConnect(pooled.base_url + POOL, "tapi-agent")
        session = Session(connect, MemoryTokenStore(), open_browser=browser)
        assert (await session.sign_in(port=0, timeout_s=20)).negotiator_id == "RPT"
        meta = await connect.metadata()
        assert meta.issuer == pooled.base_url + POOL
        assert meta.token_endpoint == pooled.base_url + "/token"
        assert await session.refresh()  # the refreshed ID token verifies too
        await connect.aclose()

    asyncio.run(scenario())
    assert browser.opened[0].startswith(pooled.base_url + "/authorize?")


def test_the_issuer_without_its_path_is_refused_by_name(pooled: MockServer) -> None:
    async def scenario() -> None:
        connect = ReapitConnect(pooled.base_url, "tapi-agent")
        with pytest.raises(AuthError, match=r"discovery document is not at .*auth.issuer"):
            await connect.metadata()
        await connect.aclose()

    asyncio.run(scenario())


def test_explicit_endpoints_replace_discovery(pooled: MockServer) -> None:
    """A provider without discovery: the auth.*_url settings are enough (keys by default at
    `{issuer}/.well-known/jwks.json`, as Reapit documents)."""
    base = pooled.base_url
    endpoints = Endpoints(authorize=base + "/authorize", token=base + "/token",
                          userinfo=base + "/oauth2/userInfo", end_session=base + "/oidc/logout",
                          jwks=base + POOL + "/.well-known/jwks.json")
    browser = Browser()

    async def scenario() -> None:
        connect = ReapitConnect(base + POOL, "tapi-agent", endpoints=endpoints)
        session = Session(connect, MemoryTokenStore(), open_browser=browser)
        assert (await session.sign_in(port=0, timeout_s=20)).negotiator_id == "RPT"
        assert not (await connect.metadata()).discovered
        await connect.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("issuer", ["http://connect.example.com", "http://10.0.0.5:8765"])
def test_no_secret_goes_to_a_plain_http_host_that_is_not_this_pc(issuer: str) -> None:
    async def scenario() -> None:
        connect = ReapitConnect(issuer, "tapi-agent")
        with pytest.raises(AuthError, match=r"clear text.*https://"):
            await connect.metadata()
        with pytest.raises(AuthError, match="clear text"):
            await connect.refresh("a-refresh-token")
        await connect.aclose()
        api = ApiClient(issuer, _Tokens())
        with pytest.raises(ApiError, match="clear text"):
            await api.negotiators()
        await api.aclose()

    asyncio.run(scenario())


class _Tokens:
    async def access_token(self) -> str:
        return "an-access-token"

    async def refresh(self) -> str:
        return "an-access-token"


def _listen_on_free_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def test_a_taken_redirect_port_falls_back_to_the_next_listed(approving_mock: MockServer) -> None:
    taken = _listen_on_free_port()  # another user's sign-in on a shared host
    spare = _listen_on_free_port()
    spare_port = spare.getsockname()[1]
    spare.close()
    browser = Browser()
    try:
        async def scenario() -> None:
            connect = ReapitConnect(approving_mock.base_url, "tapi-agent")
            await sign_in(connect, port=[taken.getsockname()[1], spare_port],
                          open_browser=browser, timeout_s=20)
            await connect.aclose()

        asyncio.run(scenario())
    finally:
        taken.close()
    assert f"127.0.0.1%3A{spare_port}%2Fcallback" in browser.opened[0]


def test_every_redirect_port_taken_says_so_and_names_the_setting(
    approving_mock: MockServer,
) -> None:
    first, second = _listen_on_free_port(), _listen_on_free_port()
    ports = [first.getsockname()[1], second.getsockname()[1]]
    try:
        async def scenario() -> None:
            connect = ReapitConnect(approving_mock.base_url, "tapi-agent")
            with pytest.raises(AuthError) as caught:
                await sign_in(connect, port=ports, open_browser=Browser(), timeout_s=20)
            message = str(caught.value)
            assert "every sign-in port" in message and "auth.redirect_ports" in message
            assert all(str(p) in message for p in ports)
            await connect.aclose()

        asyncio.run(scenario())
    finally:
        first.close()
        second.close()


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, dict(self.headers.items())))
        body = json.dumps({"_embedded": [{"id": "JAS", "name": "James Smith"}],
                           "totalPageCount": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_platform_url_gets_contacts_and_negotiators_with_the_api_version_header(
    mock_server: MockServer,
) -> None:
    platform = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=platform.serve_forever, daemon=True)
    thread.start()
    _Recorder.seen.clear()
    token = mock_server.state.mint_token("JAS")

    class Tokens(_Tokens):
        async def access_token(self) -> str:
            return token

    try:
        async def scenario() -> None:
            api = ApiClient(mock_server.base_url, Tokens(),
                            platform_url=f"http://127.0.0.1:{platform.server_port}")
            assert "JAS" in await api.negotiators()
            assert await api.deferred() == []  # the notifications backend, not the platform
            await api.aclose()

        asyncio.run(scenario())
    finally:
        platform.shutdown()
        platform.server_close()
    ((path, headers),) = _Recorder.seen
    assert path.startswith("/negotiators?")
    assert headers["api-version"] == "2020-01-31"
    assert headers["Authorization"] == f"Bearer {token}"
