"""One agent per user: a QLocalServer with a per-user name; a second launch asks the first to
show itself and exits (as qutebrowser's `misc/ipc.py` does).

Where the name lives matters: a socket with a predictable name in the shared /tmp could be
created first by another local user, and every launch would then "hand over" to the squatter
and exit: the agent would never start. On Unix the name is therefore a full path (QLocalServer
takes one) inside the user's private runtime directory (`config.private_runtime_dir`: ours,
mode 0700, so nobody else can put a socket there); `app` passes it in. On Windows, where a
pipe name is global, the name carries a random part kept in a file in the user's own
`%LOCALAPPDATA%` runtime directory (`pipe_name`): another user cannot read it, so cannot
create the pipe first.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
import secrets
import sys
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger("tapi_agent.ui.single_instance")

SHOW = b"show\n"
SIGN_OUT = b"sign-out\n"  # `tapi-agent sign-out`: end the running agent's session
PING = b"ping\n"  # `tapi-agent diagnose`: is an agent running? (read and ignored)
CONNECT_TIMEOUT_MS = 1000


SOCKET_FILE = "agent.sock"


def default_name(runtime_dir: Path | None = None) -> str:
    """The per-user server name: on Unix the socket's full path in `runtime_dir` (the user's
    private runtime directory, required there); on Windows a per-user pipe name."""
    if sys.platform != "win32":
        if runtime_dir is None:
            raise ValueError("on Unix the single-instance socket needs the private runtime "
                             "directory (config.private_runtime_dir)")
        return str(runtime_dir / SOCKET_FILE)
    if runtime_dir is not None:
        return pipe_name(runtime_dir)
    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment (rare service contexts)
        user = "unknown"
    # Hashed so that a user name with odd characters still gives a valid pipe/socket name.
    digest = hashlib.sha256(user.encode("utf-8")).hexdigest()[:16]
    return f"tapi-agent-{digest}"


PIPE_ID_FILE = "instance-id"


def pipe_name(runtime_dir: Path) -> str:
    """A pipe name nobody else can guess: `tapi-agent-` and 32 random hex digits, made once
    and kept in `runtime_dir` (the user's private directory). A name derived from the user
    name, as before, let another user of a shared host (Remote Desktop, Citrix) create the
    pipe first, so the agent handed over to the squatter and never started."""
    path = runtime_dir / PIPE_ID_FILE
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        token = ""
    if len(token) != 32 or any(c not in "0123456789abcdef" for c in token):
        token = secrets.token_hex(16)
        temp = path.with_name(f".{PIPE_ID_FILE}.{secrets.token_hex(4)}")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(token)
            os.replace(temp, path)
        except OSError as exc:  # a name this run alone uses still beats a guessable one
            log.warning("single instance: cannot keep the pipe name in %s: %s", path, exc)
    return f"tapi-agent-{token}"


class SingleInstance(QObject):
    """Claims the per-user name; the first instance listens, later ones hand over and exit."""

    activated = Signal()  # a second launch asked us to show ourselves
    sign_out_requested = Signal()  # `tapi-agent sign-out` asked us to sign out

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or default_name()
        self._server: QLocalServer | None = None
        self._clients: list[QLocalSocket] = []

    @property
    def listening(self) -> bool:
        """Whether this instance owns the name."""
        return self._server is not None and self._server.isListening()

    def try_acquire(self) -> bool:
        """True when we are the first (now listening); False when another instance runs (it was
        told to show itself)."""
        if self._tell_running_instance():
            return False
        # Nobody answered: a socket file left by a crashed agent would block listen(); remove it.
        QLocalServer.removeServer(self.name)
        server = QLocalServer(self)
        # Only this user may connect (Unix socket mode 0700, Windows pipe ACL for the user).
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        server.newConnection.connect(self._on_new_connection)
        if not server.listen(self.name):
            # Lost a race with an instance starting at the same moment: hand over to it.
            log.warning("single instance: cannot listen on %s: %s", self.name,
                        server.errorString())
            server.deleteLater()
            return not self._tell_running_instance()
        self._server = server
        log.debug("single instance: listening on %s", server.fullServerName())
        return True

    def release(self) -> None:
        """Stop listening (on quit) so the next launch starts cleanly."""
        for sock in self._clients:
            sock.readyRead.disconnect()
            sock.disconnected.disconnect()
            sock.abort()
        self._clients.clear()
        if self._server is not None:
            self._server.close()
            self._server = None

    def _tell_running_instance(self, message: bytes = SHOW) -> bool:
        return tell(self.name, message)

    def tell(self, message: bytes) -> bool:
        """Send `message` (SHOW, SIGN_OUT) to the running instance; False when none runs."""
        return tell(self.name, message)

    def _on_new_connection(self) -> None:
        assert self._server is not None
        while self._server.hasPendingConnections():
            sock = self._server.nextPendingConnection()
            self._clients.append(sock)
            sock.readyRead.connect(self._on_ready_read)
            sock.disconnected.connect(self._on_disconnected)
            self._read(sock)

    def _read(self, sock: QLocalSocket) -> None:
        while sock.canReadLine():
            line = bytes(sock.readLine().data())
            if line == SHOW:
                log.info("single instance: a second launch asked us to show ourselves")
                self.activated.emit()
            elif line == SIGN_OUT:
                log.info("single instance: asked to sign out (tapi-agent sign-out)")
                self.sign_out_requested.emit()

    def _on_ready_read(self) -> None:
        sock = self.sender()
        if isinstance(sock, QLocalSocket):
            self._read(sock)

    def _on_disconnected(self) -> None:
        sock = self.sender()
        if isinstance(sock, QLocalSocket) and sock in self._clients:
            self._read(sock)
            self._clients.remove(sock)
            sock.deleteLater()


def tell(name: str, message: bytes) -> bool:
    """Connect to the instance listening on `name` and send it one line; False when none."""
    sock = QLocalSocket()
    sock.connectToServer(name)
    if not sock.waitForConnected(CONNECT_TIMEOUT_MS):
        return False
    sock.write(message)
    sock.waitForBytesWritten(CONNECT_TIMEOUT_MS)
    sock.disconnectFromServer()
    if sock.state() != QLocalSocket.LocalSocketState.UnconnectedState:
        sock.waitForDisconnected(CONNECT_TIMEOUT_MS)
    return True
