"""`tapi-agent diagnose`: check, step by step, that calls can reach this PC.

Steps in order: config, DNS, TCP, TLS, HTTP, token, websocket. Each gives ok, a detail and how
long it took; a failed step says what to do, and the steps that depend on it are skipped.
Before the steps, `render_settings` lists every setting with the layer it came from, so IT can
see at once whether a value is the MSI's, the machine file's, a policy's or the user's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from tapi_agent.core.redact import redact_value
from tapi_agent.net.http import HttpError, make_http_client, tls_context
from tapi_agent.net.session import SessionGone, TokenSource, is_loopback_host
from tapi_agent.net.stream import InsecureServerError, stream_url
from tapi_agent.protocol.wire import FrameError, WelcomeFrame, parse_server_frame

# websockets logs the upgrade request's headers (the bearer token) at DEBUG: pin its logger.
_WIRE_LOG = logging.getLogger("tapi_agent.net.diagnose.wire")
_WIRE_LOG.setLevel(logging.INFO)

STEP_NAMES = ("config", "DNS", "TCP", "TLS", "HTTP", "token", "websocket")


@dataclass
class DiagnoseStep:
    """One check: its name, whether it passed, what was found, and what to do if not."""

    name: str
    ok: bool
    detail: str
    ms: float = 0.0
    hint: str = ""
    skipped: bool = False


@dataclass
class DiagnoseReport:
    """All steps for one server URL."""

    server_url: str
    steps: list[DiagnoseStep] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True only when every step passed."""
        return bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def failed(self) -> DiagnoseStep | None:
        """The first step that failed (not merely skipped), or None."""
        return next((s for s in self.steps if not s.ok and not s.skipped), None)

    def step(self, name: str) -> DiagnoseStep:
        """The step called `name`."""
        return next(s for s in self.steps if s.name == name)

    def render(self) -> str:
        """A readable report: one line per step, the failing step named with what to do."""
        lines = [f"TAPI Agent diagnose: {self.server_url}"]
        for s in self.steps:
            mark = "SKIP" if s.skipped else ("OK" if s.ok else "FAIL")
            timing = "" if s.skipped else f"  ({s.ms:.0f} ms)"
            lines.append(f"  {mark:<4}  {s.name:<9}  {s.detail}{timing}")
            if s.hint and not s.ok and not s.skipped:
                lines.append(f"        {'':<9}  What to do: {s.hint}")
        failed = self.failed
        if self.ok:
            lines.append("Result: OK - this PC can receive calls.")
        elif failed is not None:
            lines.append(f"Result: FAILED at step {failed.name}: {failed.detail}")
        else:
            lines.append("Result: FAILED")
        return "\n".join(lines)


def render_settings(values: Mapping[str, object], sources: Mapping[str, str],
                    locked: Collection[str]) -> str:
    """Every setting, its value and where it came from ("default", a file, the MSI's
    HKLM\\SOFTWARE\\TapiAgent, the policy key, "environment", "command line"), marked when
    locked. Tokens live in the credential store, not in settings; what a setting may hold (a
    proxy password, any URL's user:password@) is masked by `core.redact`."""
    lines = ["Settings (value, then where it came from):"]
    width = max((len(k) for k in values), default=0)
    for key in sorted(values):
        value = redact_value(values[key])
        shown = (", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "{}"
                 if isinstance(value, dict) else str(value).lower()
                 if isinstance(value, bool) else str(value))
        lock = ", locked" if key in locked else ""
        lines.append(f"  {key:<{width}}  {shown or '(empty)'}  [{sources.get(key, '?')}{lock}]")
    return "\n".join(lines)


class _StepFailed(Exception):
    def __init__(self, detail: str, hint: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.hint = hint


async def _timed(
    name: str, check: Callable[[], Awaitable[str]], timeout_s: float
) -> DiagnoseStep:
    start = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), timeout_s)
        ok, hint = True, ""
    except _StepFailed as exc:
        ok, detail, hint = False, exc.detail, exc.hint
    except TimeoutError:
        ok, detail = False, f"no answer within {timeout_s:g} s"
        hint = "a firewall or proxy may be dropping the connection; check network.proxy"
    except Exception as exc:  # a diagnostic reports every failure rather than crashing
        ok, detail, hint = False, f"{type(exc).__name__}: {exc}", ""
    return DiagnoseStep(name, ok, detail, (time.perf_counter() - start) * 1000, hint)


def _skip(name: str, why: str) -> DiagnoseStep:
    return DiagnoseStep(name, False, f"not checked: {why}", skipped=True)


async def diagnose(
    server_url: str,
    *,
    tokens: TokenSource | None,
    product: str = "AgencyCloud",
    timeout_s: float = 5.0,
    proxy: str = "system",
) -> DiagnoseReport:
    """Run the checks against `server_url` in order and return the report (never raises)."""
    report = DiagnoseReport(server_url)
    parts = urlsplit(server_url.strip())
    host = parts.hostname or ""
    secure = parts.scheme.lower() == "https"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError:
        port = 0
    loopback = is_loopback_host(host)
    addresses: list[str] = []

    async def check_config() -> str:
        if parts.scheme.lower() not in ("http", "https") or not host or not port:
            raise _StepFailed(
                f"{server_url!r} is not an http:// or https:// server URL",
                "set server.url to the backend origin, e.g. https://notifications.example.com")
        try:
            stream_url(server_url, product)
        except InsecureServerError as exc:
            raise _StepFailed(str(exc), "use the https:// address of the backend") from None
        if secure:
            return f"{server_url} (TLS, stream over wss)"
        return f"{server_url} (this PC: plain http allowed)"

    async def check_dns() -> str:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise _StepFailed(
                f"cannot resolve {host}: {exc.strerror or exc}",
                "check the server name in server.url and this PC's DNS / VPN") from None
        for info in infos:
            address = str(info[4][0])
            if address not in addresses:
                addresses.append(address)
        return f"{host} -> {', '.join(addresses[:3])}"

    async def check_tcp() -> str:
        errors: list[str] = []
        for address in addresses:
            try:
                _, writer = await asyncio.open_connection(address, port)
            except OSError as exc:
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                errors.append(f"{address}:{port}: {reason.lower()}")
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return f"connected to {address}:{port}"
        raise _StepFailed(
            "cannot connect to " + "; ".join(errors),
            "is the backend running? If it is, a firewall may block port "
            f"{port}" + ("" if loopback else " (or a proxy is required: network.proxy)"))

    async def check_tls() -> str:
        try:
            _, writer = await asyncio.open_connection(
                host, port, ssl=tls_context(), server_hostname=host)
        except ssl.SSLCertVerificationError as exc:
            raise _StepFailed(
                f"the certificate of {host} is not trusted: {exc.verify_message or exc}",
                "if your company inspects TLS, its root certificate must be in the Windows "
                "certificate store") from None
        except (ssl.SSLError, OSError) as exc:
            raise _StepFailed(f"TLS handshake with {host} failed: {exc}",
                              "check that server.url points at the https port") from None
        ssl_object = writer.get_extra_info("ssl_object")
        version = ssl_object.version() if ssl_object else "TLS"
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        return f"{version}, certificate trusted for {host}"

    async def check_http() -> str:
        client = make_http_client("none" if loopback else proxy, timeout_s=timeout_s)
        try:
            response = await client.get(server_url.rstrip("/") + "/")
        except HttpError as exc:
            raise _StepFailed(f"no HTTP answer: {exc or type(exc).__name__}",
                              "check network.proxy and that server.url is the backend") from None
        finally:
            await client.aclose()
        if response.status_code >= 500:
            raise _StepFailed(f"the server answers HTTP {response.status_code}",
                              "the backend (or a proxy in front of it) has a problem: try later")
        return f"the server answers (HTTP {response.status_code})"

    token_holder: list[str] = []

    async def check_token() -> str:
        if tokens is None:
            raise _StepFailed("not signed in", "sign in from the tray menu (Sign in)")
        try:
            token = await tokens.access_token()
        except SessionGone as exc:
            raise _StepFailed(f"not signed in ({exc})", "sign in from the tray menu") from None
        token_holder.append(token)
        expires = tokens.expires_at()
        if expires is None:
            return "access token present"
        left = expires - time.time()
        if left <= 0:
            raise _StepFailed("the access token has expired", "sign out and sign in again")
        return f"access token valid for {left / 60:.0f} more minutes"

    async def check_websocket() -> str:
        url = stream_url(server_url, product)
        extra: dict[str, object] = {"ssl": tls_context()} if url.startswith("wss:") else {}
        try:
            async with connect(
                url,
                additional_headers={"Authorization": f"Bearer {token_holder[0]}"},
                proxy=None if loopback else True,
                open_timeout=timeout_s,
                close_timeout=1.0,
                ping_interval=None,
                logger=_WIRE_LOG,
                **extra,  # type: ignore[arg-type]
            ) as ws:
                raw = await asyncio.wait_for(ws.recv(), timeout_s)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                raise _StepFailed("the backend refused the access token (HTTP 401)",
                                  "sign out and sign in again") from None
            if status == 403:
                raise _StepFailed("the backend forbids the stream for this user (HTTP 403)",
                                  "ask IT whether notifications are enabled for you") from None
            raise _StepFailed(f"the upgrade was refused (HTTP {status})",
                              "a proxy may not allow websockets; ask IT") from None
        except (InvalidHandshake, InvalidURI, OSError) as exc:
            raise _StepFailed(f"websocket upgrade failed: {exc}",
                              "a proxy may not allow websockets; ask IT") from None
        try:
            frame = parse_server_frame(raw)
        except FrameError as exc:
            raise _StepFailed(f"the first frame is not understood: {exc.reason}") from None
        if not isinstance(frame, WelcomeFrame):
            raise _StepFailed(f"expected a welcome frame, got {frame.type!r}")
        return (f"welcome for {frame.negotiatorId} ({product}, heartbeat "
                f"{frame.heartbeatMs / 1000:g} s)")

    network_ok = True
    checks: list[tuple[str, Callable[[], Awaitable[str]]]] = [
        ("config", check_config), ("DNS", check_dns), ("TCP", check_tcp),
    ]
    for name, check in checks:
        if not network_ok:
            report.steps.append(_skip(name, "an earlier step failed"))
            continue
        step = await _timed(name, check, timeout_s)
        report.steps.append(step)
        network_ok = step.ok

    if not network_ok:
        report.steps.append(_skip("TLS", "an earlier step failed"))
        report.steps.append(_skip("HTTP", "an earlier step failed"))
    else:
        if secure:
            report.steps.append(await _timed("TLS", check_tls, timeout_s))
        else:
            report.steps.append(DiagnoseStep("TLS", True, "not used (http on this PC)"))
        network_ok = report.steps[-1].ok
        if network_ok:
            report.steps.append(await _timed("HTTP", check_http, timeout_s))
            network_ok = report.steps[-1].ok
        else:
            report.steps.append(_skip("HTTP", "an earlier step failed"))

    held = getattr(tokens, "held_elsewhere", None)
    if held and network_ok:  # a running agent's session: checked by it, not spent here
        report.steps.append(DiagnoseStep("token", True, held))
        report.steps.append(DiagnoseStep("websocket", True, "not opened here: the running "
                                         "agent holds the connection", skipped=True))
        return report
    if tokens is None or network_ok:
        # "not signed in" is worth saying even when the network is down
        report.steps.append(await _timed("token", check_token, timeout_s))
    else:
        report.steps.append(_skip("token", "the backend cannot be reached"))

    if network_ok and report.steps[-1].ok:
        report.steps.append(await _timed("websocket", check_websocket, timeout_s))
    else:
        report.steps.append(_skip("websocket", "an earlier step failed"))
    return report
