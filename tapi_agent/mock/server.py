"""`MockServer`: the embeddable mock backend (uvicorn in a daemon thread with its own loop)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from tapi_agent.mock.app import create_app
from tapi_agent.mock.seed import load_seed
from tapi_agent.mock.state import MockState
from tapi_agent.mock.store import Store

CLOSE_GOING_AWAY = 1001
CLOSE_RESTART = 1012
_START_TIMEOUT_S = 15.0


class MockServer:
    """The mock backend, embeddable in tests, `tapi-agent demo` and `tapi-agent-mock serve`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        heartbeat_ms: int = 15000,
        token_ttl: int = 3600,
        retention_s: float = 300,
        retention_max: int = 1000,
        auto_approve: str | None = None,
        seed: Path | None = None,
        issuer_path: str = "",
        state_dir: Path | None = None,
    ) -> None:
        if heartbeat_ms <= 0 or token_ttl <= 0 or retention_s < 0 or retention_max < 1:
            raise ValueError("heartbeat_ms and token_ttl must be positive, retention_s at least "
                             "0 and retention_max at least 1")
        self.host = host
        self._port = port
        loaded_seed = load_seed(seed) if seed is not None else None
        # `state_dir`: keep everything in a SQLite file there (tapi_agent/mock/store.py); a new
        # MockServer on the same directory carries on where the last one stopped or died.
        self.store = Store(state_dir) if state_dir is not None else None
        try:
            self.state = MockState(
                seed=loaded_seed,
                heartbeat_ms=heartbeat_ms, token_ttl=token_ttl, retention_s=retention_s,
                retention_max=retention_max, auto_approve=auto_approve, store=self.store,
            )
        except BaseException:
            if self.store is not None:
                self.store.close()
            raise
        # Reapit Connect's issuer has a path (`https://cognito-idp.../{poolId}`) and another
        # place than its endpoints; `issuer_path` plays that: the issuer (and its discovery
        # document and keys) live under the path, the endpoints stay at the root.
        if issuer_path and not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", issuer_path):
            raise ValueError("issuer_path must look like /eu-west-2_demo")
        self.state.issuer_path = issuer_path
        self.app = create_app(self.state)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    # -- addresses ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        return self._port

    @property
    def base_url(self) -> str:
        """`http://HOST:PORT` of the running backend."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def ws_url(self) -> str:
        """The stream URL for AgencyCloud."""
        return self.base_url.replace("http", "ws", 1) + "/notifications/stream?product=AgencyCloud"

    @property
    def epoch(self) -> str:
        """The current backend run; changes on restart()."""
        return self.state.hub.epoch

    # -- tokens ---------------------------------------------------------------------------------

    def mint_token(
        self, negotiator_id: str, *, scopes: list[str] | None = None, ttl: int | None = None
    ) -> str:
        """An access token for a negotiator (the in-process POST /_mock/tokens)."""
        return self.state.mint_token(negotiator_id, scopes=scopes, ttl=ttl)

    def provider_token(self) -> str:
        """A client_credentials token for `demo-provider` (write and read scopes)."""
        return self.state.provider_token()

    # -- lifecycle ------------------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio turns TCP_NODELAY on only for sockets whose `proto` says
        # TCP, and accepted sockets inherit it. Without it a response written in two parts
        # waits for the client's delayed ACK (about 40 ms per request).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        # SO_REUSEADDR lets restart() rebind the same port while old sockets sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.setblocking(False)
        return sock

    def start(self) -> None:
        """Bind, serve in a daemon thread, and return once listening."""
        with self._lock:
            if self._thread is not None:
                return
            sock = self._bind()
            self._port = sock.getsockname()[1]
            self.state.issuer.issuer = self.base_url + self.state.issuer_path
            config = uvicorn.Config(
                self.app, log_level="warning", access_log=False, lifespan="off",
                ws_ping_interval=None, ws_ping_timeout=None, timeout_graceful_shutdown=2,
                # Frames are small JSON: deflate saves little and costs a compression per
                # socket per frame, which dominates a fan-out to many negotiators.
                ws_per_message_deflate=False,
            )
            server = uvicorn.Server(config)
            started = threading.Event()
            errors: list[BaseException] = []

            def run() -> None:
                loop = asyncio.new_event_loop()
                self._loop = loop
                asyncio.set_event_loop(loop)

                async def serve() -> None:
                    task = loop.create_task(server.serve(sockets=[sock]))
                    while not server.started and not task.done():
                        await asyncio.sleep(0.005)
                    started.set()
                    await task

                try:
                    loop.run_until_complete(serve())
                except BaseException as exc:  # reported to start() when it happens early
                    errors.append(exc)
                finally:
                    started.set()
                    with contextlib.suppress(Exception):
                        loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.close()
                    sock.close()

            thread = threading.Thread(target=run, name=f"mock-backend-{self._port}", daemon=True)
            thread.start()
            if not started.wait(_START_TIMEOUT_S) or errors or not server.started:
                server.should_exit = True
                thread.join(5)
                raise RuntimeError(f"mock backend failed to start: {errors[:1]}")
            self._server = server
            self._thread = thread

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        """Run a coroutine on the server's loop from another thread and return its result."""
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("mock backend is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    @staticmethod
    async def _close_listeners(server: uvicorn.Server) -> None:
        loop = asyncio.get_running_loop()
        listeners = list(getattr(server, "servers", []))
        for listener in listeners:
            for sock in listener.sockets:
                loop.remove_reader(sock.fileno())  # accept nothing more
        # Connections accepted just now attach to their server on the next turn; closing the
        # server before that leaves their sockets open with nobody reading them (Python 3.11:
        # the client then hangs in its opening handshake).
        await asyncio.sleep(0)
        for listener in listeners:
            listener.close()

    def _shutdown(self, close_code: int) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            if server is None or thread is None:
                return
            # Stop listening first: a client that reconnects at once on the close code (the
            # agent does on 1012) must be refused, not let in to hold up the graceful shutdown.
            with contextlib.suppress(Exception):
                self.call(self._close_listeners(server), timeout=5)
            with contextlib.suppress(Exception):
                self.call(self.state.hub.close_all(close_code), timeout=5)
            server.should_exit = True
            thread.join(10)
            self._server = None
            self._thread = None
            self._loop = None

    def stop(self) -> None:
        """Close every websocket (1001) and stop serving; safe to call twice. A state
        directory is released: a new MockServer may open it."""
        self._shutdown(CLOSE_GOING_AWAY)
        if self.store is not None:
            self.store.close()

    def restart(self) -> None:
        """Stop (sockets get 1012) and serve again on the same port with a new epoch."""
        self._shutdown(CLOSE_RESTART)
        self.state.hub.new_epoch()
        self.start()

    def __enter__(self) -> MockServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
