"""The agent's HTTP client (`tapi_agent.net.http`) against servers and a proxy nobody here wrote.

The servers are the standard library's `http.server` (its own HTTP/1.1, keep-alive and all) and
the real mock backend (uvicorn); the proxy is Debian's tinyproxy, which tunnels https with
CONNECT, forwards plain http in absolute form and checks Basic credentials.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import gzip
import http.server
import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tapi_agent.net import http as agent_http
from tapi_agent.net.http import HttpClient, HttpError


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {"Content-Type": "application/json"}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.seen.append((self.command, self.path, self.client_address[1],
                                 dict(self.headers.items()), b""))
        if self.path.startswith("/gzip"):
            self._answer(200, gzip.compress(b'{"packed": true}'),
                         {"Content-Type": "application/json", "Content-Encoding": "gzip"})
        elif self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b'{"a":', b' 1}'):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path.startswith("/big"):
            self._answer(200, b"x" * 5000, {"Content-Type": "text/plain"})
        elif self.path.startswith("/silent"):
            self.server.release.wait(10)
        else:
            self._answer(200, json.dumps({"path": self.path}).encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.seen.append((self.command, self.path, self.client_address[1],
                                 dict(self.headers.items()), body))
        self._answer(201, b"{}", {"Location": "/journalEntries/JE1",
                                  "Content-Type": "application/json"})


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str, int, dict[str, str], bytes]] = []
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_get_with_params_post_json_and_form_reach_the_server_as_sent(server: _Server) -> None:
    async def scenario() -> tuple[Any, ...]:
        client = HttpClient(proxy="none", headers={"User-Agent": "tapi-agent/test"})
        try:
            got = await client.request("GET", f"{server.url}/contacts?x=1",
                                       params=[("contactDetail", "+44 7700 900123"),
                                               ("pageNumber", 2)])
            posted = await client.post(f"{server.url}/journalEntries",
                                       json={"typeId": "IC", "description": "Caf\u00e9"})
            form = await client.post(f"{server.url}/token",
                                     data={"grant_type": "refresh_token", "r": "a&b=c"})
            return got, posted, form
        finally:
            await client.aclose()

    got, posted, form = _run(scenario())
    assert got.status_code == 200 and got.is_success
    assert got.json() == {"path": "/contacts?x=1&contactDetail=%2B44+7700+900123&pageNumber=2"}
    assert got.headers["content-type"] == "application/json"  # any case
    assert posted.status_code == 201 and posted.headers.get("location") == "/journalEntries/JE1"
    methods = [(m, p) for m, p, *_ in server.seen]
    assert methods[1:] == [("POST", "/journalEntries"), ("POST", "/token")]
    _, _, _, headers, body = server.seen[1]
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"typeId": "IC", "description": "Caf\u00e9"}
    assert headers["User-Agent"] == "tapi-agent/test"
    _, _, _, headers, body = server.seen[2]
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert body == b"grant_type=refresh_token&r=a%26b%3Dc"
    assert form.status_code == 201


def test_requests_in_a_row_share_one_kept_connection_and_it_is_closed_after_the_expiry(
    server: _Server, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent_http, "KEEPALIVE_S", 0.2)

    async def scenario() -> int:
        client = HttpClient(proxy="none")
        for _ in range(3):
            assert (await client.get(f"{server.url}/a")).status_code == 200
        kept = [c for cs in client._idle.values() for c in cs]
        assert len(kept) == 1
        deadline = time.monotonic() + 10
        while not kept[0].writer.is_closing():  # the expiry closes it: no idle socket stays
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert not any(client._idle.values())
        assert (await client.get(f"{server.url}/b")).status_code == 200
        await client.aclose()
        return len({port for _, _, port, *_ in server.seen})

    assert _run(scenario()) == 2  # three requests on the first connection, one on a new one


def test_gzip_and_chunked_answers_are_decoded(server: _Server) -> None:
    async def scenario() -> tuple[Any, Any]:
        client = HttpClient(proxy="none")
        try:
            return ((await client.get(f"{server.url}/gzip")).json(),
                    (await client.get(f"{server.url}/chunked")).json())
        finally:
            await client.aclose()

    assert _run(scenario()) == ({"packed": True}, {"a": 1})
    assert server.seen[0][3]["Accept-Encoding"] == "gzip, deflate"


def test_an_answer_over_the_limit_is_refused_not_buffered(
    server: _Server, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent_http, "MAX_BODY", 4096)

    async def scenario() -> None:
        client = HttpClient(proxy="none")
        try:
            await client.get(f"{server.url}/big")
        finally:
            await client.aclose()

    with pytest.raises(HttpError, match="larger than"):
        _run(scenario())


def test_a_server_that_never_answers_times_out_with_a_clear_error(server: _Server) -> None:
    async def scenario() -> None:
        client = HttpClient(proxy="none", timeout_s=0.3)
        try:
            await client.get(f"{server.url}/silent")
        finally:
            await client.aclose()

    with pytest.raises(HttpError, match=r"timed out waiting for 127\.0\.0\.1"):
        _run(scenario())


def test_nothing_listening_is_an_http_error_naming_the_host() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario() -> None:
        await HttpClient(proxy="none").get(f"http://127.0.0.1:{port}/")

    with pytest.raises(HttpError, match=f"could not connect to 127.0.0.1:{port}"):
        _run(scenario())


def test_the_real_mock_backend_answers_through_the_client(mock_server: Any) -> None:
    async def scenario() -> dict[str, Any]:
        client = agent_http.make_http_client("none")
        try:
            response = await client.get(f"{mock_server.base_url}/.well-known/openid-configuration")
            assert response.status_code == 200
            return dict(response.json())
        finally:
            await client.aclose()

    assert _run(scenario())["issuer"] == mock_server.base_url


# -- TLS ------------------------------------------------------------------------------------------

def _tls_pair(host: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for `host` signed by a throwaway CA, and a client context trusting it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_path.write_bytes(pem)
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        server_ctx.load_cert_chain(cert_path, key_path)
    client_ctx = ssl.create_default_context(cadata=pem.decode())
    return server_ctx, client_ctx


@pytest.fixture
def tls_server() -> Iterator[tuple[_Server, ssl.SSLContext]]:
    server_ctx, client_ctx = _tls_pair("localhost")
    srv = _Server()
    srv.socket = server_ctx.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, client_ctx
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def test_https_is_verified_against_the_given_trust(
    tls_server: tuple[_Server, ssl.SSLContext],
) -> None:
    srv, trusting = tls_server
    url = f"https://localhost:{srv.server_address[1]}/over-tls"

    async def get(ctx: ssl.SSLContext | None) -> Any:
        client = HttpClient(proxy="none", ssl_context=ctx)
        try:
            return (await client.get(url)).json()
        finally:
            await client.aclose()

    assert _run(get(trusting)) == {"path": "/over-tls"}
    with pytest.raises(HttpError, match="certificate of localhost is not trusted"):
        _run(get(None))  # the OS trust store does not know the throwaway CA


# -- a real proxy: tinyproxy -----------------------------------------------------------------------

@contextlib.contextmanager
def _tinyproxy(basic_auth: tuple[str, str] | None = None) -> Iterator[str]:
    exe = shutil.which("tinyproxy")
    assert exe is not None
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(5):  # a free port, taken by tinyproxy a moment later
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            conf = Path(tmp, "tinyproxy.conf")
            lines = [f"Port {port}", "Listen 127.0.0.1", "Timeout 30", "MaxClients 20",
                     "Allow 127.0.0.1", "LogLevel Info", f"LogFile \"{tmp}/log\"",
                     "DisableViaHeader Yes"]  # no ConnectPort line: CONNECT to any port
            if basic_auth:
                lines.append(f"BasicAuth {basic_auth[0]} {basic_auth[1]}")
            conf.write_text("\n".join(lines) + "\n")
            proc = subprocess.Popen([exe, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            up = False
            while time.monotonic() < deadline and proc.poll() is None:
                with contextlib.suppress(OSError), socket.create_connection(
                        ("127.0.0.1", port), timeout=1):
                    up = True
                    break
                time.sleep(0.02)
            if up:
                break
            proc.kill()
            proc.wait()
        else:
            pytest.fail("tinyproxy did not start")
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


@pytest.fixture
def remote_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the loopback test servers stand for remote hosts: the client otherwise (rightly)
    never sends a request for this PC to a proxy."""
    monkeypatch.setattr(agent_http, "_is_loopback", lambda host: False)


@pytest.mark.needs_tool("tinyproxy")
def test_plain_http_and_https_go_through_a_real_proxy_with_credentials(
    server: _Server, tls_server: tuple[_Server, ssl.SSLContext], remote_loopback: None,
) -> None:
    tls_srv, trusting = tls_server
    with _tinyproxy(("agent", "s3cret")) as proxy:  # tinyproxy's config takes no punctuation
        user_proxy = proxy.replace("http://", "http://agent:s3cret@")

        async def scenario() -> tuple[Any, Any, int]:
            client = HttpClient(proxy=user_proxy, ssl_context=trusting)
            try:
                plain = await client.get(f"{server.url}/via-proxy")
                tunnelled = await client.get(
                    f"https://localhost:{tls_srv.server_address[1]}/through-tunnel")
                wrong = HttpClient(proxy=proxy)  # no credentials: the proxy says 407
                refused = await wrong.get(f"{server.url}/no")
                await wrong.aclose()
                return plain.json(), tunnelled.json(), refused.status_code
            finally:
                await client.aclose()

        plain, tunnelled, refused = _run(scenario())
    assert plain == {"path": "/via-proxy"}
    assert tunnelled == {"path": "/through-tunnel"}
    assert refused == 407
    # The proxy, not the client, reached the servers; and tinyproxy took the credentials off.
    seen = server.seen[0][3]
    assert "Proxy-Authorization" not in seen
    assert [p for _, p, *_ in server.seen] == ["/via-proxy"]


@pytest.mark.needs_tool("tinyproxy")
def test_a_tunnel_the_proxy_refuses_is_an_error_naming_the_proxy(
    tls_server: tuple[_Server, ssl.SSLContext], remote_loopback: None,
) -> None:
    tls_srv, trusting = tls_server
    with _tinyproxy(("agent", "right")) as proxy:
        wrong = proxy.replace("http://", "http://agent:wrong@")

        async def scenario() -> None:
            client = HttpClient(proxy=wrong, ssl_context=trusting)
            try:
                await client.get(f"https://localhost:{tls_srv.server_address[1]}/x")
            finally:
                await client.aclose()

        with pytest.raises(HttpError, match=r"refused a tunnel to localhost:\d+ \(HTTP 40[17]\)")\
                as raised:
            _run(scenario())
    assert "wrong" not in str(raised.value)  # no credential in the message


def test_system_proxy_comes_from_the_environment_and_no_proxy_is_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy",
                 "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("https_proxy", "http://u:p%40ss@proxy.corp:3128")
    monkeypatch.setenv("no_proxy", "direct.example")
    client = HttpClient()
    route = client._proxy_for(agent_http._Origin("https", "api.example", 443))
    assert route is not None and (route.host, route.port) == ("proxy.corp", 3128)
    assert route.authorization == "Basic " + base64.b64encode(b"u:p@ss").decode()
    assert client._proxy_for(agent_http._Origin("https", "direct.example", 443)) is None
    assert client._proxy_for(agent_http._Origin("http", "api.example", 80)) is None
    assert client._proxy_for(agent_http._Origin("https", "127.0.0.1", 8443)) is None
    assert HttpClient(proxy="none")._proxy_for(
        agent_http._Origin("https", "api.example", 443)) is None


def test_an_unsupported_proxy_setting_fails_each_request_clearly() -> None:
    async def scenario() -> None:
        await HttpClient(proxy="socks5://user:pw@proxy:1080").get("https://api.example/")

    with pytest.raises(HttpError, match="unsupported proxy socks5://proxy") as raised:
        _run(scenario())
    assert "pw" not in str(raised.value)
