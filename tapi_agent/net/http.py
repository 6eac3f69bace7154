"""The agent's HTTP client: HTTP/1.1 over the worker's asyncio streams, parsed by h11.

Why not httpx, which DESIGN.md names: issue 14 asks the idle agent to stay within 1.5x the bare
tray app, and httpx with httpcore, anyio and their imports cost the running agent about 8 MiB
of its ~26 MiB above that app (`benchmarks/stack_floor.py --steps`; BENCHMARKS.md section 4),
for four kinds of request: GET a JSON document, POST a form (the token endpoint, revocation),
POST JSON (journal entries), DELETE. h11 is the HTTP/1.1 state machine httpx itself runs on
(python-hyper, pure Python, ~0.4 MiB); this module adds what httpx added for us, and no more:

- TLS with the one OS-trust-store context of the process (`tls_context`), hostname checked;
- `network.proxy`: `system` (the environment and, on Windows, the registry, as
  `urllib.request.getproxies` reads them, with its bypass list), `none`, or an `http://` proxy
  URL (credentials in it go as `Proxy-Authorization: Basic`). https goes through a `CONNECT`
  tunnel, plain http in absolute form. This PC is always reached directly;
- a timeout on connecting and on each read and write (`timeout_s`, 15 s), as httpx's;
- keep-alive: an idle connection is kept 5 s (httpx's `keepalive_expiry`), then closed; a GET
  or DELETE whose reused connection turns out closed is sent once more on a new one;
- gzip and deflate answers; an answer larger than `MAX_BODY` is refused, not buffered;
- no redirects followed (neither the token endpoint nor the API should redirect).

Every failure to get an answer is an `HttpError` whose text names the host, never a credential.
The mock backend and the tests still use httpx as an independent client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json as jsonlib
import ssl
import threading
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import h11
import truststore

USER_AGENT = "tapi-agent"
MAX_BODY = 16 * 1024 * 1024  # a page of 100 contacts is ~100 KiB
KEEPALIVE_S = 5.0
_READ = 64 * 1024

_tls: ssl.SSLContext | None = None
_tls_lock = threading.Lock()


def tls_context() -> ssl.SSLContext:
    """The process's one TLS client context: it trusts what the OS trusts (corporate roots too).

    Shared by every HTTP client and the stream: on Linux each context loads the system's CA
    bundle into its own store at its first handshake (about 1.7 MiB), so one context per client
    would hold as many copies. truststore configures it under its own lock at every handshake,
    which makes sharing it between clients and threads safe.
    """
    global _tls
    with _tls_lock:
        if _tls is None:
            _tls = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        return _tls


class HttpError(Exception):
    """No usable answer: the connection, TLS, the proxy, a timeout or a malformed answer."""


class Headers(Mapping[str, str]):
    """A response's headers, looked up case-insensitively; repeated ones joined with ", "."""

    def __init__(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        self._map: dict[str, str] = {}
        for raw_name, raw_value in items:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            self._map[name] = f"{self._map[name]}, {value}" if name in self._map else value

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()]

    def __iter__(self) -> Any:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)


@dataclass(frozen=True)
class Response:
    """A complete answer: status, headers and the (decoded) body."""

    status_code: int
    reason_phrase: str
    headers: Headers
    content: bytes
    method: str
    url: str

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def path(self) -> str:
        return urlsplit(self.url).path or "/"

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON (ValueError when it is not)."""
        return jsonlib.loads(self.content)


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class _Proxy:
    host: str
    port: int
    authorization: str | None  # "Basic ..." or None


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    state: h11.Connection  # the HTTP/1.1 state of this connection
    reused: bool = False
    expiry: asyncio.TimerHandle | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        with contextlib.suppress(Exception):
            self.writer.close()


def _is_loopback(host: str) -> bool:
    host = host.lower()
    return host in ("localhost", "::1") or host.endswith(".localhost") or host.startswith("127.")


class HttpClient:
    """An HTTP/1.1 client for the backend and the sign-in provider (see the module docstring).

    Use it from one event loop (the worker's); `aclose` closes its kept connections.
    """

    def __init__(self, *, proxy: str = "system", timeout_s: float = 15.0,
                 headers: Mapping[str, str] | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._proxy_setting = proxy or "system"
        self._timeout = timeout_s
        self._headers = dict(headers or {})
        self._ssl = ssl_context
        self._idle: dict[tuple[_Origin, _Proxy | None], list[_Connection]] = {}
        self._closed = False
        self._system_proxies: dict[str, str] | None = None
        self._fixed_proxy: _Proxy | HttpError | None = None
        if self._proxy_setting not in ("system", "none"):
            try:
                self._fixed_proxy = _parse_proxy(self._proxy_setting)
            except HttpError as exc:  # said at each request, as a failure to connect
                self._fixed_proxy = exc

    # -- the API the agent uses -------------------------------------------------------------

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> Response:
        return await self.request("GET", url, headers=headers)

    async def post(self, url: str, *, data: Mapping[str, str] | None = None,
                   json: Any = None, headers: Mapping[str, str] | None = None) -> Response:
        return await self.request("POST", url, data=data, json=json, headers=headers)

    async def request(
        self, method: str, url: str, *, params: Iterable[tuple[str, Any]] | None = None,
        json: Any = None, data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request and read the whole answer; HttpError when there is none."""
        if self._closed:
            raise HttpError("the HTTP client is closed")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise HttpError(f"not an http(s) URL: {scheme}://{parts.hostname or ''}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise HttpError(f"bad port in the URL for {parts.hostname}") from None
        origin = _Origin(scheme, parts.hostname, port)
        query = parts.query
        if params:
            extra = urlencode([(k, str(v)) for k, v in params])
            query = f"{query}&{extra}" if query else extra
        target = (parts.path or "/") + (f"?{query}" if query else "")
        body = b""
        sent_headers = {"User-Agent": USER_AGENT, **self._headers,
                        "Accept-Encoding": "gzip, deflate"}
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode()
            sent_headers["Content-Type"] = "application/json"
        elif data is not None:
            body = urlencode(list(data.items())).encode()
            sent_headers["Content-Type"] = "application/x-www-form-urlencoded"
        sent_headers.update(headers or {})
        if body or method in ("POST", "PUT", "PATCH"):
            sent_headers["Content-Length"] = str(len(body))
        proxy = self._proxy_for(origin)
        if proxy is not None and scheme == "http":
            target = f"http://{origin.authority}{target}"  # absolute form through a proxy
            if proxy.authorization:
                sent_headers["Proxy-Authorization"] = proxy.authorization
        request = h11.Request(method=method, target=target, headers=[
            ("Host", origin.authority), *sent_headers.items()])
        for attempt in (1, 2):
            connection = await self._acquire(origin, proxy)
            try:
                return await self._exchange(connection, origin, proxy, request, body, url)
            except _StaleConnection:
                connection.close()
                if attempt == 2 or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
                    raise HttpError(f"{origin.host} closed the connection before "
                                    "answering") from None
            except BaseException:
                connection.close()
                raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close every kept connection; the client cannot be used after."""
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    # -- connections --------------------------------------------------------------------------

    def _proxy_for(self, origin: _Origin) -> _Proxy | None:
        if _is_loopback(origin.host) or self._proxy_setting == "none":
            return None
        if isinstance(self._fixed_proxy, HttpError):
            raise HttpError(str(self._fixed_proxy))
        if self._fixed_proxy is not None:
            return self._fixed_proxy
        import urllib.request  # websockets loads it for its own proxy setting too

        if self._system_proxies is None:  # read once per client, as httpx did (on Windows
            self._system_proxies = urllib.request.getproxies()  # it reads the registry)
        url = self._system_proxies.get(origin.scheme)
        if not url or urllib.request.proxy_bypass(origin.host):
            return None
        return _parse_proxy(url)

    async def _acquire(self, origin: _Origin, proxy: _Proxy | None) -> _Connection:
        idle = self._idle.get((origin, proxy))
        while idle:
            connection = idle.pop()
            if connection.expiry is not None:
                connection.expiry.cancel()
                connection.expiry = None
            if connection.reader.at_eof() or connection.writer.is_closing():
                connection.close()
                continue
            connection.reused = True
            return connection
        return await self._connect(origin, proxy)

    def _release(self, connection: _Connection, origin: _Origin, proxy: _Proxy | None) -> None:
        state = connection.state
        if (self._closed or state.our_state is not h11.DONE
                or state.their_state is not h11.DONE):
            connection.close()
            return
        state.start_next_cycle()
        key = (origin, proxy)
        idle = self._idle.setdefault(key, [])
        idle.append(connection)

        def expire() -> None:
            if connection in idle:
                idle.remove(connection)
            connection.close()

        connection.expiry = asyncio.get_running_loop().call_later(KEEPALIVE_S, expire)

    async def _connect(self, origin: _Origin, proxy: _Proxy | None) -> _Connection:
        tls = (self._ssl or tls_context()) if origin.scheme == "https" else None
        where = f"{origin.host}:{origin.port}"
        try:
            if proxy is None:
                async with asyncio.timeout(self._timeout):
                    reader, writer = await asyncio.open_connection(
                        origin.host, origin.port, ssl=tls,
                        server_hostname=origin.host if tls else None)
            else:
                where = f"the proxy {proxy.host}:{proxy.port}"
                async with asyncio.timeout(self._timeout):
                    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
                if tls is not None:
                    await self._tunnel(reader, writer, origin, proxy)
                    where = f"{origin.host}:{origin.port} (through the proxy)"
                    async with asyncio.timeout(self._timeout):
                        await writer.start_tls(tls, server_hostname=origin.host)
        except TimeoutError:
            raise HttpError(f"timed out connecting to {where}") from None
        except ssl.SSLCertVerificationError as exc:
            raise HttpError(f"the certificate of {origin.host} is not trusted: "
                            f"{exc.verify_message or exc}") from None
        except (OSError, ssl.SSLError) as exc:
            raise HttpError(f"could not connect to {where}: {exc}") from None
        return _Connection(reader, writer, h11.Connection(h11.CLIENT))

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      origin: _Origin, proxy: _Proxy) -> None:
        """CONNECT through the proxy; raise HttpError unless it answers 2xx."""
        tunnel = h11.Connection(h11.CLIENT)
        host = f"[{origin.host}]" if ":" in origin.host else origin.host
        authority = f"{host}:{origin.port}"  # CONNECT always names the port
        headers = [("Host", authority), ("User-Agent", USER_AGENT)]
        if proxy.authorization:
            headers.append(("Proxy-Authorization", proxy.authorization))
        writer.write(tunnel.send(h11.Request(method="CONNECT", target=authority,
                                             headers=headers)))
        writer.write(tunnel.send(h11.EndOfMessage()))
        try:
            async with asyncio.timeout(self._timeout):
                await writer.drain()
                while True:
                    event = tunnel.next_event()
                    if event is h11.NEED_DATA:
                        tunnel.receive_data(await reader.read(_READ))
                    elif isinstance(event, h11.Response):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        raise HttpError(f"the proxy {proxy.host}:{proxy.port} closed the "
                                        f"connection instead of opening a tunnel")
        except TimeoutError:
            writer.close()
            raise HttpError(f"timed out opening a tunnel through the proxy "
                            f"{proxy.host}:{proxy.port}") from None
        except h11.ProtocolError as exc:
            writer.close()
            raise HttpError(f"the proxy {proxy.host}:{proxy.port} answered CONNECT with "
                            f"something that is not HTTP ({exc})") from None
        if not 200 <= event.status_code < 300:
            writer.close()
            raise HttpError(f"the proxy {proxy.host}:{proxy.port} refused a tunnel to "
                            f"{origin.host}:{origin.port} (HTTP {event.status_code})")

    # -- one exchange -------------------------------------------------------------------------

    async def _exchange(self, connection: _Connection, origin: _Origin, proxy: _Proxy | None,
                        request: h11.Request, body: bytes, url: str) -> Response:
        state, reader, writer = connection.state, connection.reader, connection.writer
        started = False  # any byte of the answer seen
        try:
            writer.write(state.send(request))
            if body:
                writer.write(state.send(h11.Data(data=body)))
            writer.write(state.send(h11.EndOfMessage()))
            async with asyncio.timeout(self._timeout):
                await writer.drain()
            head: h11.Response | None = None
            chunks: list[bytes] = []
            size = 0
            while True:
                event = state.next_event()
                if event is h11.NEED_DATA:
                    async with asyncio.timeout(self._timeout):
                        data = await reader.read(_READ)
                    if not data and not started and connection.reused:
                        raise _StaleConnection
                    started = started or bool(data)
                    state.receive_data(data)
                elif isinstance(event, h11.InformationalResponse):
                    continue
                elif isinstance(event, h11.Response):
                    head = event
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > MAX_BODY:
                        raise HttpError(f"the answer from {origin.host} is larger than "
                                        f"{MAX_BODY // (1024 * 1024)} MiB")
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:  # ConnectionClosed or PAUSED: no complete answer
                    raise HttpError(f"{origin.host} closed the connection mid-answer")
        except ConnectionError as exc:
            if not started and connection.reused:
                raise _StaleConnection from None
            raise HttpError(f"the connection to {origin.host} failed: {exc}") from None
        except TimeoutError:
            raise HttpError(f"timed out waiting for {origin.host}") from None
        except h11.ProtocolError as exc:
            raise HttpError(f"{origin.host} answered with something that is not HTTP/1.1 "
                            f"({exc})") from None
        except (OSError, ssl.SSLError) as exc:
            raise HttpError(f"the connection to {origin.host} failed: {exc}") from None
        assert head is not None
        headers = Headers(head.headers)
        content = _decode(b"".join(chunks), headers.get("content-encoding", ""), origin.host)
        self._release(connection, origin, proxy)
        return Response(status_code=head.status_code,
                        reason_phrase=head.reason.decode("latin-1"),
                        headers=headers, content=content,
                        method=request.method.decode("ascii"), url=url)


class _StaleConnection(Exception):
    """A kept connection the server had already closed: nothing was answered on it."""


def _decode(content: bytes, encoding: str, host: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return content
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise HttpError(f"{host} answered with an encoding the agent does not read: {encoding}")
    wbits = 31 if "gzip" in encoding else 15
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(content, MAX_BODY + 1)
        if encoding == "deflate" and not out and content:
            out = zlib.decompressobj(-15).decompress(content, MAX_BODY + 1)  # raw deflate
    except zlib.error as exc:
        raise HttpError(f"the {encoding} answer from {host} is corrupt: {exc}") from None
    if len(out) > MAX_BODY:
        raise HttpError(f"the answer from {host} is larger than "
                        f"{MAX_BODY // (1024 * 1024)} MiB once decompressed")
    return out


def _parse_proxy(url: str) -> _Proxy:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise HttpError(f"unsupported proxy {parts.scheme}://{parts.hostname or ''}: "
                        f"network.proxy takes an http:// proxy")
    try:
        port = parts.port or 80
    except ValueError:
        raise HttpError(f"bad port in the proxy URL for {parts.hostname}") from None
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return _Proxy(parts.hostname, port, authorization)


def make_http_client(proxy: str = "system", *, timeout_s: float = 15.0) -> HttpClient:
    """The client for the backend and Reapit Connect.

    `proxy` is the `network.proxy` setting: `system` (environment, and on Windows the registry
    settings, through urllib's getproxies), `none`, or a proxy URL.
    """
    from tapi_agent import __version__

    return HttpClient(proxy=proxy, timeout_s=timeout_s, ssl_context=tls_context(),
                      headers={"User-Agent": f"{USER_AGENT}/{__version__}"})
