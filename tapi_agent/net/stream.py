"""The websocket stream client: connects, resumes, dedupes, acks, and keeps reconnecting.

DESIGN.md section 4 is the wire contract. Everything here runs in the asyncio worker thread;
results leave through the `on_delivery`/`on_status`/`on_resync` callbacks, which the app turns
into Qt signals. The timing and bookkeeping decisions live in `core.connection` (pure).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from tapi_agent import __version__
from tapi_agent.core.backoff import Backoff
from tapi_agent.core.connection import ConnectionMachine, ConnectionStatus, Continuity, Verdict
from tapi_agent.core.log import log_event
from tapi_agent.core.redact import redact_url
from tapi_agent.net.http import tls_context
from tapi_agent.net.session import SessionGone, TokenSource, is_loopback_host
from tapi_agent.protocol.wire import (
    MAX_FRAME_BYTES,
    AckFrame,
    AuthFrame,
    FrameError,
    HeartbeatFrame,
    NotificationFrame,
    ReplayedFrame,
    ResumeFrame,
    WelcomeFrame,
    dump_frame,
    parse_server_frame,
)

log = logging.getLogger(__name__)

# websockets logs request headers and frame text at DEBUG: that would put the bearer token and
# the `auth` frame into the log file. Its logger is pinned at INFO whatever the app's level.
_WIRE_LOG = logging.getLogger("tapi_agent.net.stream.wire")
_WIRE_LOG.setLevel(logging.INFO)

STREAM_PATH = "/notifications/stream"

# Frames up to MAX_FRAME_BYTES are the contract. Larger ones up to this hard limit are read and
# rejected (logged, dropped) with the connection kept; beyond it websockets closes with 1009,
# which is logged as a rejection and followed by an instant reconnect.
HARD_FRAME_LIMIT = 8 * MAX_FRAME_BYTES

_DEFAULT_HEARTBEAT_S = 15.0  # watchdog before `welcome` tells us the real heartbeat
_SEND_TIMEOUT_S = 5.0
# One watcher wakes on one tick for both the sleep and the route check: an idle agent should
# not wake the CPU more often than that (the sleep check's threshold is 5 s anyway).
_SLEEP_TICK_S = 5.0
_ROUTE_TICK_S = 5.0
_SLEEP_JUMP_S = 5.0  # wall clock vs monotonic drift that means the PC slept (or was frozen)
_MIN_RENEW_S = 0.5
_STOP_TIMEOUT_S = 2.0
# Acks repeated after a resume: those of the last half minute of acking, at most about the
# backend's retention (acks a busy backend had not read yet are lost with a cut link).
_REACK_MAX = 1024
_REACK_WINDOW_S = 30.0


def route_source(peer_ip: str) -> str | None:
    """The local address the OS would use to reach `peer_ip` now (no packet is sent)."""
    family = socket.AF_INET6 if ":" in peer_ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((peer_ip, 9))
            source: str = probe.getsockname()[0]
            return source
    except OSError:
        return None  # no route at all right now: the watchdog decides about the link


class InsecureServerError(ValueError):
    """The server URL would send the token in clear text to a host that is not this machine."""


def stream_url(server_url: str, product: str = "AgencyCloud") -> str:
    """The stream URL for a backend base URL; refuse plain ws:// to a non-loopback host."""
    parts = urlsplit(server_url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise InsecureServerError(
            f"Server URL {redact_url(server_url)!r} is not an http(s) or ws(s) URL: "
            "set it to something like https://notifications.example.com"
        )
    if scheme == "ws" and not is_loopback_host(parts.hostname):
        raise InsecureServerError(
            f"Refusing an unencrypted connection to {parts.hostname}: "
            "use an https:// (wss) server URL; plain http is only allowed to this computer"
        )
    path = parts.path.rstrip("/") + STREAM_PATH
    # Never a user:password@ in the stream URL: websockets would turn it into a second
    # Authorization (Basic) header beside the bearer token, sending the password too.
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((scheme, host, path, "product=" + quote(product, safe=""), ""))


@dataclass(frozen=True)
class Delivery:
    """A new (deduplicated) notification: its backend epoch, the frame, and if it was replayed."""

    epoch: str
    frame: NotificationFrame
    replayed: bool


class _Dead(Exception):
    """The connection is unusable (watchdog, 1009) and must be replaced."""


@dataclass
class _Link:
    """Per-connection state."""

    welcomed: bool = False
    epoch: str = ""
    heartbeat_s: float = _DEFAULT_HEARTBEAT_S
    replaying: bool = False
    lowest_seq: int | None = None  # the lowest plausible seq this connection brought
    lost: bool = False  # its replay said events after our resume point were lost


class StreamClient:
    """Holds the notifications stream open: reconnects, resumes, dedupes and acks (asyncio)."""

    def __init__(
        self,
        server_url: str,
        tokens: TokenSource,
        *,
        product: str = "AgencyCloud",
        on_delivery: Callable[[Delivery], None],
        on_status: Callable[[ConnectionStatus], None],
        on_resync: Callable[[str], None],
        backoff: Backoff | None = None,
        watchdog_grace_s: float = 10.0,
        renew_margin_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        proxy: str = "system",
    ) -> None:
        self.server_url = server_url
        self._proxy = proxy
        self.product = product
        self._tokens = tokens
        self._on_delivery = on_delivery
        self._on_status = on_status
        self._on_resync = on_resync
        self._machine = ConnectionMachine(backoff)
        self._continuity = Continuity()
        self._grace_s = watchdog_grace_s
        self._renew_margin_s = renew_margin_s
        self._clock = clock
        self._link = _Link()
        self._wake = asyncio.Event()
        self._wake_reason = ""
        self._stopping = False
        self._running = False
        self._done = asyncio.Event()
        self._ssl: ssl.SSLContext | None = None
        self._token_obtained_at = 0.0
        self._refreshed_after_401 = False
        self._sleep_tick_s = _SLEEP_TICK_S
        self._route_tick_s = _ROUTE_TICK_S
        # The live link the watcher checks the route of: (local ip, peer ip, set when it moved).
        self._route_probe: tuple[str, str, asyncio.Event] | None = None
        self._run_task: asyncio.Task[Any] | None = None
        self._recent_acks: deque[int] = deque(maxlen=_REACK_MAX)
        self._acks_sent = 0
        self._ack_marks: deque[tuple[float, int]] = deque()  # (when, acks sent before then)

    # -- public API ------------------------------------------------------------------------

    @property
    def status(self) -> ConnectionStatus:
        """The current connection status."""
        return self._machine.status

    @property
    def continuity(self) -> Continuity:
        """The epoch / seq bookkeeping (read-only use: diagnostics and tests)."""
        return self._continuity

    async def run(self) -> None:
        """Connect and keep connecting until `stop()`; network errors never escape.

        A stopped client stays stopped (even when `stop()` came before `run()`): make a new one.
        """
        if self._stopping:
            return
        self._running = True
        self._done.clear()
        self._run_task = asyncio.current_task()
        watcher = asyncio.create_task(self._watch_sleep())
        try:
            while not self._stopping:
                delay = await self._attempt()
                if self._stopping:
                    break
                await self._wait(delay)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            self._running = False
            self._done.set()

    async def stop(self) -> None:
        """Close the connection and make `run()` return."""
        self._stopping = True
        self._wake.set()
        if not self._running:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._done.wait()), _STOP_TIMEOUT_S)
        except TimeoutError:
            # Something did not honour the wake-up (a hung token source): cancel outright.
            if self._run_task is not None:
                self._run_task.cancel()
            await self._done.wait()

    def reconnect_now(self, reason: str = "reconnect requested") -> None:
        """Skip any wait and (re)connect at once; call in the loop thread."""
        self._wake_reason = reason
        self._wake.set()

    # -- frames ----------------------------------------------------------------------------

    def begin_connection(self) -> None:
        """Reset the per-connection state (a new socket is about to speak)."""
        self._link = _Link()

    def process_frame(self, raw: str | bytes) -> list[str]:
        """Handle one inbound frame; return the frames to send back (resume, ack).

        A frame that cannot be used is logged as `notification.rejected` and dropped, and so is
        one that raises anything at all on its way through here (issue 14): the connection
        stays up, and the event is neither acked nor marked seen, so it can come again.
        """
        try:
            return self._process(raw)
        except Exception as exc:
            log.warning("frame handling failed", exc_info=True)
            return self._reject(f"internal error handling the frame ({type(exc).__name__}); "
                                "not acked")

    def _process(self, raw: str | bytes) -> list[str]:
        try:
            frame = parse_server_frame(raw)
        except FrameError as exc:
            return self._reject(exc.reason)
        if isinstance(frame, WelcomeFrame):
            return self._on_welcome(frame)
        if not self._link.welcomed:
            return self._reject(f"{frame.type} frame before welcome")
        if isinstance(frame, NotificationFrame):
            return self._on_notification(frame)
        if isinstance(frame, ReplayedFrame):
            link = self._link
            link.replaying = False
            if not frame.complete:
                # The replay starts at the oldest event the backend still holds (frames on one
                # connection come in order): what lies below was lost, and is skipped so that
                # the next resume does not report the same loss again.
                link.lost = True
                if link.lowest_seq is not None:
                    self._continuity.skip_lost(link.lowest_seq)
                self._resync("replay_incomplete", replayed=frame.count)
            return []
        assert isinstance(frame, HeartbeatFrame)
        return []

    def _reject(self, reason: str) -> list[str]:
        log_event("notification.rejected", logging.WARNING, reason=reason[:300])
        return []

    def _on_welcome(self, frame: WelcomeFrame) -> list[str]:
        if self._link.welcomed:
            return self._reject("unexpected second welcome on one connection")
        self._link.welcomed = True
        self._link.epoch = frame.epoch
        self._link.heartbeat_s = frame.heartbeatMs / 1000.0
        self._refreshed_after_401 = False
        self._report(self._machine.connected(time.monotonic()))
        outcome = self._continuity.on_welcome(frame.epoch)
        if outcome.epoch_changed:
            self._recent_acks.clear()
            self._ack_marks.clear()
            self._resync("epoch_changed")
        if outcome.resume_seq is None:
            return []
        self._link.replaying = True
        # Acks sent before a drop may never have been read (a busy backend reads them late);
        # the server would then keep those events until its retention runs out, counting them
        # against its limit. Repeating the recent ones is harmless.
        again = [dump_frame(AckFrame(seq=seq)) for seq in self._acks_to_repeat()]
        return [dump_frame(ResumeFrame(epoch=frame.epoch, lastSeq=outcome.resume_seq)), *again]

    def _ack(self, seq: int) -> list[str]:
        now = time.monotonic()
        marks = self._ack_marks
        if not marks or now - marks[-1][0] >= 1.0:  # one mark a second at most
            marks.append((now, self._acks_sent))
            while len(marks) > 1 and marks[1][0] <= now - _REACK_WINDOW_S:
                marks.popleft()
        self._recent_acks.append(seq)
        self._acks_sent += 1
        return [dump_frame(AckFrame(seq=seq))]

    def _acks_to_repeat(self) -> list[int]:
        """The acks sent in the last `_REACK_WINDOW_S` of acking (at most `_REACK_MAX`)."""
        marks = self._ack_marks
        if not marks:
            return []
        start = marks[-1][0] - _REACK_WINDOW_S
        since = next((count for when, count in marks if when >= start), self._acks_sent)
        n = min(self._acks_sent - since, len(self._recent_acks))
        return list(self._recent_acks)[-n:] if n else []

    def _on_notification(self, frame: NotificationFrame) -> list[str]:
        """Deliver a new event, then remember and ack it; nothing else is acked (issue 14).

        Duplicates were delivered before: acked again, logged at INFO. A seq implausibly far
        from the others (Continuity) is a continuity break: rejected unacked at WARNING, and
        the live pops resync; once a second far frame agrees, the client reconnects to have
        the new range replayed. An event for another product is rejected, not acked.
        """
        env = frame.notification
        seq, call_id, sub_type = frame.seq, env.payload.id, env.subType
        continuity = self._continuity
        verdict = continuity.classify(self._link.epoch, seq, call_id, sub_type)
        if verdict is Verdict.NEW or verdict is Verdict.DUPLICATE:
            self._note_link_seq(seq)
        if verdict is Verdict.DUPLICATE:
            log.info("notification seq %s (%s) is a duplicate: acked, not shown again",
                     seq, sub_type)
            continuity.record(seq, None, sub_type)
            return self._ack(seq)
        if verdict is Verdict.FOREIGN:
            return self._reject(f"notification seq {seq} is not of epoch {continuity.epoch}")
        if verdict is Verdict.IMPLAUSIBLE:
            continuity.suspect(seq)
            self._reject(f"notification seq {seq} is implausibly far from the highest seen "
                         f"({continuity.highest}): not trusted, not acked; continuity break, "
                         "resync")
            self._resync("seq_jump")
            return []
        if verdict is Verdict.MOVED:
            resume = continuity.rebase()
            self._reject(f"notification seq {seq} confirms the backend's numbering moved: "
                         f"not acked; reconnecting to resume after seq {resume}")
            self.reconnect_now("the backend's numbering moved")
            return []
        if not env.for_product(self.product):
            # The backend should not have sent it. Not handed over, so not acked; its seq is
            # noted so that the resume point moves past it.
            continuity.record(seq, None, sub_type)
            return self._reject(f"notification seq {seq} is not for product {self.product}; "
                                "not acked")
        latency_ms = round((self._clock() - frame.sent_at_utc.timestamp()) * 1000)
        log_event(
            "notification.received",
            seq=seq, subType=sub_type, callId=call_id, latencyMs=latency_ms,
        )
        try:
            self._on_delivery(Delivery(self._link.epoch, frame, self._link.replaying))
        except Exception as exc:
            # Not handed over: neither acked nor marked seen, so it comes again (logged each
            # time) on the next connection instead of being lost.
            log.warning("on_delivery failed for seq %s", seq, exc_info=True)
            return self._reject(f"notification seq {seq} could not be handed over "
                                f"({type(exc).__name__}); not acked")
        continuity.record(seq, call_id, sub_type)
        return self._ack(seq)

    def _note_link_seq(self, seq: int) -> None:
        link = self._link
        if link.lowest_seq is None or seq < link.lowest_seq:
            link.lowest_seq = seq
            if link.lost:
                # Nothing had come before the incomplete replay (it replayed nothing): the
                # first event after it is the oldest the backend holds.
                self._continuity.skip_lost(seq)

    def _resync(self, reason: str, **fields: object) -> None:
        # Visible at WARNING whatever the GUI does with it: a provider's developer reading the
        # log sees why live pops were closed (replay_incomplete: events lost to the backend's
        # retention; epoch_changed: the backend restarted; seq_jump: a frame not trusted).
        log_event("stream.resync", logging.WARNING, reason=reason, epoch=self._link.epoch,
                  lastSeq=self._continuity.last_seq, **fields)
        try:
            self._on_resync(reason)
        except Exception:
            log.exception("on_resync failed")

    # -- connection lifecycle --------------------------------------------------------------

    def _report(self, status: ConnectionStatus) -> None:
        log_event(
            "connection.state",
            state=str(status.state), attempt=status.attempt, retryInMs=status.retry_in_ms,
            detail=status.detail,
        )
        try:
            self._on_status(status)
        except Exception:
            log.exception("on_status failed")

    def _lost(
        self, *, immediate: bool = False, restarting: bool = False, reason: str = ""
    ) -> float:
        status = self._machine.lost(
            time.monotonic(), immediate=immediate, restarting=restarting, reason=reason
        )
        self._report(status)
        return (status.retry_in_ms or 0) / 1000.0

    async def _attempt(self) -> float | None:
        """One connection attempt and, when it works, the whole session; return the wait."""
        self._wake.clear()
        self._wake_reason = ""
        self._report(self._machine.attempting(time.monotonic()))
        try:
            url = stream_url(self.server_url, self.product)
        except InsecureServerError as exc:
            self._report(self._machine.failed(str(exc)))
            return None
        done, got = await self._race(self._tokens.access_token())
        if not done:
            return self._kicked()
        assert got is not None
        try:
            token: str = got.result()
        except SessionGone:
            self._report(self._machine.signed_out())
            return None
        except Exception as exc:
            return self._lost(reason=f"cannot get an access token: {type(exc).__name__}")
        self._token_obtained_at = self._clock()

        done, ws = await self._race(self._open(url, token))
        if not done:
            return self._kicked()
        try:
            assert ws is not None
            ws_conn: ClientConnection = ws.result()
        except InvalidStatus as exc:
            return await self._refused(exc.response.status_code)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            return self._lost(reason=_short(exc))
        except Exception as exc:
            # E.g. a SOCKS proxy configured without python-socks: say so, keep trying.
            log.warning("cannot open the stream: %s", _short(exc), exc_info=True)
            return self._lost(reason=_short(exc))
        return await self._session(ws_conn)

    async def _open(self, url: str, token: str) -> ClientConnection:
        loopback = is_loopback_host(urlsplit(url).hostname or "")
        extra: dict[str, Any] = {}
        if url.startswith("wss:"):
            extra["ssl"] = self._ssl_context()
        return await connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            user_agent_header=f"tapi-agent/{__version__}",
            # `network.proxy`: system = the environment and the OS settings (urllib.getproxies
            # reads the Windows registry), none, or a proxy URL; never for this machine, where
            # a proxy can only get in the way.
            proxy=None if loopback or self._proxy == "none" else
            (True if self._proxy in ("system", "") else self._proxy),
            max_size=HARD_FRAME_LIMIT,
            # The backend's heartbeat and our watchdog detect dead links; no second mechanism.
            ping_interval=None,
            # Frames are small JSON: permessage-deflate gains nothing and costs CPU per frame.
            compression=None,
            open_timeout=10.0,
            close_timeout=2.0,
            logger=_WIRE_LOG,
            **extra,
        )

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            # The OS trust store, so corporate TLS-inspecting proxies' roots are honoured; the
            # context the HTTP clients use too (one copy of the CA bundle in the process).
            self._ssl = tls_context()
        return self._ssl

    async def _refused(self, status_code: int) -> float | None:
        if status_code == 401:
            if self._refreshed_after_401:
                return self._lost(reason="access token refused (HTTP 401)")
            self._refreshed_after_401 = True
            return await self._refresh_then(reason="access token refused; refreshed")
        if status_code == 403:
            self._report(self._machine.failed(_FORBIDDEN))
            return None
        return self._lost(reason=f"HTTP {status_code} from the server")

    async def _refresh_then(self, *, reason: str) -> float | None:
        try:
            await self._tokens.refresh()
        except SessionGone:
            self._report(self._machine.signed_out())
            return None
        except Exception as exc:
            return self._lost(reason=f"token refresh failed: {type(exc).__name__}")
        return self._lost(immediate=True, reason=reason)

    def _kicked(self) -> float | None:
        if self._stopping:
            return None
        # The user (or a wake from sleep / network change) asked: a fresh start, no backoff.
        self._machine.restart()
        return self._lost(immediate=True, reason=self._wake_reason or "reconnect requested")

    async def _session(self, ws: ClientConnection) -> float | None:
        self.begin_connection()
        try:
            done, task = await self._race(
                self._read_loop(ws), self._renew_loop(ws), self._watch_route(ws)
            )
        finally:
            await self._discard(ws)
        if not done:
            return self._kicked()
        assert task is not None
        try:
            task.result()
        except ConnectionClosed as exc:
            return await self._closed(exc)
        except _Dead as exc:
            return self._lost(immediate=True, reason=str(exc))
        except SessionGone:
            self._report(self._machine.signed_out())
            return None
        except (OSError, TimeoutError) as exc:
            return self._lost(reason=_short(exc))
        except Exception:
            # A bug must not end the stream for the rest of the day: log it and reconnect.
            log.exception("stream session failed")
            return self._lost(reason="internal error")
        return self._lost(reason="connection ended")

    async def _discard(self, ws: ClientConnection) -> None:
        """Say goodbye when stopping; otherwise cut the link without waiting on the peer.

        A link we leave is usually dead (watchdog, sleep, network change): a close handshake
        would only wait out its timeout before the reconnect can start.
        """
        if self._stopping:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(1001), 1.0)
            return
        with contextlib.suppress(Exception):
            ws.transport.abort()

    async def _closed(self, exc: ConnectionClosed) -> float | None:
        sent = exc.sent.code if exc.sent is not None else None
        code = exc.rcvd.code if exc.rcvd is not None else 1006
        reason = exc.rcvd.reason if exc.rcvd is not None else ""
        if sent == 1009:
            self._reject(f"frame too large (over {HARD_FRAME_LIMIT} bytes); connection reset")
            return self._lost(immediate=True, reason="oversized frame")
        if code == 4001:
            return await self._refresh_then(reason="access token expired; refreshed")
        if code == 4003:
            detail = _FORBIDDEN + (f" (server said: {reason[:120]})" if reason else "")
            self._report(self._machine.failed(detail))
            return None
        if code == 1012:
            return self._lost(immediate=True, restarting=True, reason="backend restarting")
        return self._lost(reason=f"closed with code {code}")

    async def _read_loop(self, ws: ClientConnection) -> None:
        while True:
            timeout = self._link.heartbeat_s + self._grace_s
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout)
            except TimeoutError:
                raise _Dead(f"no frame for {timeout:.1f} s (heartbeat missed)") from None
            for out in self.process_frame(raw):
                await asyncio.wait_for(ws.send(out), _SEND_TIMEOUT_S)

    async def _renew_loop(self, ws: ClientConnection) -> None:
        """Renew the access token in-band before it expires (an `auth` frame)."""
        while True:
            expires = self._tokens.expires_at()
            if expires is None:
                await asyncio.Event().wait()  # expiry unknown: the server's 4001 will tell us
                return
            lifetime = max(expires - self._token_obtained_at, 0.0)
            renew_at = expires - min(self._renew_margin_s, lifetime / 2)
            await asyncio.sleep(max(renew_at - self._clock(), _MIN_RENEW_S))
            try:
                token = await self._tokens.refresh()
            except SessionGone:
                raise
            except Exception as exc:
                # Keep the connection: if the token does run out the server closes with 4001.
                log.warning("token renewal failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(max(min(5.0, lifetime / 4), _MIN_RENEW_S))
                continue
            self._token_obtained_at = self._clock()
            await asyncio.wait_for(
                ws.send(dump_frame(AuthFrame(accessToken=token))), _SEND_TIMEOUT_S
            )
            log.info("access token renewed in-band")

    async def _race(
        self, *coros: Coroutine[Any, Any, Any]
    ) -> tuple[bool, asyncio.Task[Any] | None]:
        """Run `coros` until the first finishes or `reconnect_now`/`stop` wakes us.

        Returns (True, the finished task) or (False, None) when woken; the rest are cancelled.
        """
        tasks = [asyncio.ensure_future(c) for c in coros]
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            done, _ = await asyncio.wait([*tasks, waker], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in [*tasks, waker]:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*tasks, waker, return_exceptions=True)
        finished = [t for t in tasks if t in done]
        if waker in done and not finished:
            return False, None
        if waker in done and finished and finished[0].exception() is None:
            # Woken while the connection just opened: close it, the caller reconnects.
            result = finished[0].result()
            if isinstance(result, ClientConnection):
                await self._discard(result)
            return False, None
        return True, finished[0]

    async def _wait(self, delay: float | None) -> None:
        """Sleep `delay` seconds (None: until woken); `reconnect_now`/`stop` cut it short."""
        if self._wake.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
        if self._wake.is_set():
            # Woken by a person or the system (wake from sleep, sign-in): start afresh.
            self._machine.restart()

    async def _watch_route(self, ws: ClientConnection) -> None:
        """Replace the connection when the network changed under it (Wi-Fi to wired, VPN).

        The socket's local address is compared with the one the OS would pick now for the
        same peer; a different one means the old path is gone, often without any error. The
        check runs on the one watcher's tick (`_watch_sleep`); this waits for its verdict.
        """
        local, remote = ws.local_address, ws.remote_address
        if not local or not remote:
            await asyncio.Event().wait()
        probe = (str(local[0]), str(remote[0]), asyncio.Event())
        self._route_probe = probe
        try:
            await probe[2].wait()
        finally:
            if self._route_probe is probe:
                self._route_probe = None
        log.info("network changed (local address moved): reconnecting")
        raise _Dead("network changed")

    def _check_route(self) -> None:
        probe = self._route_probe
        if probe is None or probe[2].is_set():
            return
        local, peer, moved = probe
        now = route_source(peer)
        if now is not None and now != local:
            moved.set()

    async def _watch_sleep(self) -> None:
        """The one watcher: on each tick, reconnect at once after the PC slept (the wall clock
        jumps against the monotonic) or when the network moved under the live connection."""
        last_wall, last_mono = self._clock(), time.monotonic()
        while True:
            tick = min(self._sleep_tick_s, self._route_tick_s)
            await asyncio.sleep(tick)
            wall, mono = self._clock(), time.monotonic()
            drift = (wall - last_wall) - (mono - last_mono)
            stalled = (mono - last_mono) - tick
            last_wall, last_mono = wall, mono
            if abs(drift) > _SLEEP_JUMP_S or stalled > _SLEEP_JUMP_S:
                log.info("clock jumped by %.1f s (sleep or resume?): reconnecting", drift)
                self.reconnect_now("resumed from sleep")
                continue  # the link is being replaced: its route no longer matters
            self._check_route()


_FORBIDDEN = (
    "Forbidden: the backend refused this account's notifications. Ask your administrator, "
    "then choose Reconnect now"
)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
