"""The real `tapi-agent` pointed at `http://` on another host sends it nothing: no sign-in
code, verifier, refresh token or bearer token in clear text, and the user is told which
setting to change and what to write instead.

The agent's `network.proxy` is a loopback proxy started here that records every byte it
receives and answers 502: no request ever leaves this machine, and whatever the agent would
have sent to the remote host would be in the recording."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import closing, suppress

import pytest

from tests.app.test_sign_in_process import Agent
from tests.app.test_single_instance_process import agent_env

__all__ = ["agent_env"]

REMOTE = "notifications.example.test"


class CaptureProxy:
    """An HTTP proxy on 127.0.0.1 that records what it receives and forwards nothing."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.captured: list[bytes] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with closing(conn):
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                    data += chunk
            except OSError:
                pass
            with self._lock:
                self.captured.append(data)
            with suppress(OSError):
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")

    def everything(self) -> bytes:
        with self._lock:
            return b"\n".join(self.captured)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def capture_proxy() -> Iterator[CaptureProxy]:
    proxy = CaptureProxy()
    yield proxy
    proxy.close()


def test_agent_refuses_http_to_another_host_and_says_which_setting(
    agent_env: dict[str, str], capture_proxy: CaptureProxy
) -> None:
    env = dict(agent_env, TAPI_AGENT_SERVER_URL=f"http://{REMOTE}:8765",
               TAPI_AGENT_AUTH_ISSUER=f"http://{REMOTE}/issuer",
               TAPI_AGENT_PLATFORM_URL=f"http://user:hunter2@{REMOTE}",
               TAPI_AGENT_NETWORK_PROXY=capture_proxy.url,
               PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    agent = Agent(env)
    try:
        shown = agent.wait("log", timeout=60, contains="Settings not applied")
        message = str(shown["message"])
        for key in ("server.url", "auth.issuer", "platform.url"):
            assert key in message
        assert "https://" in message and "127.0.0.1 or localhost" in message
        assert "hunter2" not in message  # the refused URL is shown without its password
        logged = agent.wait("log", contains="sign-in failed")  # it did not sign in anywhere
        assert REMOTE not in str(logged["message"])
    finally:
        agent.stop()
        if agent.proc.stdout is not None:
            agent.proc.stdout.close()
    captured = capture_proxy.everything()
    # Nothing at all went to the proxy: nothing for the remote host, and the server.url it fell
    # back to, on this PC, is reached directly (a proxy cannot reach this PC's loopback). That
    # the proxy setting is used for remote hosts is shown in tests/net/test_http_client.py
    # (through tinyproxy) and tests/net/test_stream_frames.py.
    assert REMOTE.encode() not in captured
    assert captured == b""
    for secret in (b"code_verifier", b"refresh_token", b"code=", b"Authorization",
                   b"Bearer", b"hunter2"):
        assert secret not in captured, secret
