"""One agent per user: a `multiprocessing.connection` listener with a per-user name; a second
launch asks the first to show itself and exits (as qutebrowser's `misc/ipc.py` does, there
over QLocalServer).

Not QtNetwork (issue 14, idle memory): `PySide6.QtNetwork` (libQt6Network, and on Linux the
Kerberos libraries it links) with a QLocalServer listening cost 3.0 MiB of RSS for one socket;
the standard library's `Listener`/`Client` (a Unix socket, a Windows named pipe) with its thread
cost 0.2 MiB (both measured after a QApplication, offscreen, with the agent's other modules
already loaded). A bare socket would save another 0.2 MiB on Unix only, leaving Windows named
pipes to be written by hand. The listener runs in a daemon thread; each message reaches the GUI
thread as a Qt signal (queued), so `activated` and `sign_out_requested` are emitted there.

Where the name lives matters: a socket with a predictable name in the shared /tmp could be
created first by another local user, and every launch would then "hand over" to the squatter
and exit: the agent would never start. On Unix the name is therefore a full path inside the
user's private runtime directory (`config.private_runtime_dir`: ours, mode 0700, so nobody else
can put a socket there); `app` passes it in. On Windows, where a pipe name is global, the name
carries a random part kept in a file in the user's own `%LOCALAPPDATA%` runtime directory
(`pipe_name`): another user cannot read it, so cannot create the pipe first.

Exactly one of two launches at once becomes the server. On Unix the socket is only ever
removed and bound by the holder of an exclusive `flock` on `<socket>.lock` beside it, held for
the server's life (the kernel drops it when the process dies): a socket file left by a crashed
agent is removed by the next one, and a launch that finds the lock held hands over to its
holder (retrying `tell` while the holder is still binding), so a connect-refused, unlink, bind
race cannot leave two servers. On Windows CPython's `PipeListener` creates the first pipe
instance with FILE_FLAG_FIRST_PIPE_INSTANCE, so the second `Listener` fails (access denied)
and that launch hands over.

The wire: one message per connection, framed by `Connection.send_bytes` (a 4-byte length,
then `SHOW`, `SIGN_OUT` or `PING`, the same bytes as before). A message over `MAX_MESSAGE`
bytes is dropped and logged; a client that sends nothing within `CLIENT_TIMEOUT_S` is dropped;
each connection is read in its own short-lived thread (at most `MAX_CLIENTS` at once), so a
silent client never holds up a second launch's SHOW. A client that stalls in the middle of a
message keeps its slot until it disconnects: only this user's processes can write to the
channel (a private directory on Unix; on Windows the pipe's default ACL grants other users read
access only, so they can connect but never send, and are dropped after the timeout). Agents
before this change read lines over QLocalSocket: an old agent still running when the new one
starts reads the new SHOW as an unknown line and ignores it (the new launch still exits).

Windows is untested here (no Windows machine in CI): the code is the same, with family
'AF_PIPE' and the `\\\\.\\pipe\\` prefix; CPython's own test suite runs `Listener`/`Client`
over AF_PIPE on Windows (test_multiprocessing_*), which is why we believe it works.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import logging
import os
import secrets
import socket
import sys
import threading
import time
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal, Slot

log = logging.getLogger("tapi_agent.ui.single_instance")

SHOW = b"show\n"
SIGN_OUT = b"sign-out\n"  # `tapi-agent sign-out`: end the running agent's session
PING = b"ping\n"  # `tapi-agent diagnose`: is an agent running? (read and ignored)
CONNECT_TIMEOUT_MS = 1000  # `tell`'s connect and send on Unix; `release`'s wait for the thread
MAX_MESSAGE = 64  # bytes; our messages are a word and a newline
CLIENT_TIMEOUT_S = 2.0  # a client must send its message this soon after connecting
MAX_CLIENTS = 8  # connections read at once; more are closed unread (and logged)
HANDOVER_TIMEOUT_S = 5.0  # how long a launch that lost the race waits for the winner to answer
PIPE_PREFIX = "\\\\.\\pipe\\"
FAMILY = "AF_PIPE" if sys.platform == "win32" else "AF_UNIX"

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


def address(name: str) -> str:
    """Where the server for `name` listens: on Unix `name` itself when it is a path (else a file
    of that name in the temporary directory, as QLocalServer did; only tests pass one), on
    Windows the pipe `\\\\.\\pipe\\<name>`."""
    if sys.platform == "win32":
        return name if name.startswith(PIPE_PREFIX) else PIPE_PREFIX + name
    if os.sep in name:
        return name
    import tempfile

    return os.path.join(tempfile.gettempdir(), name)


class SingleInstance(QObject):
    """Claims the per-user name; the first instance listens, later ones hand over and exit."""

    activated = Signal()  # a second launch asked us to show ourselves
    sign_out_requested = Signal()  # `tapi-agent sign-out` asked us to sign out
    _received = Signal(bytes)  # from the listener's threads to the GUI thread (queued)

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or default_name()
        self._address = address(self.name)
        self._listener: Listener | None = None
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._received.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)

    @property
    def listening(self) -> bool:
        """Whether this instance owns the name."""
        return self._listener is not None

    def try_acquire(self) -> bool:
        """True when we are the first (now listening); False when another instance runs (it was
        told to show itself)."""
        if self._tell_running_instance():
            return False
        deadline = time.monotonic() + HANDOVER_TIMEOUT_S
        while True:
            claimed = self._claim()
            if claimed is not None:
                return claimed
            # Another launch holds the name and may still be binding: hand over once it answers.
            if self._tell_running_instance():
                return False
            if time.monotonic() >= deadline:
                log.warning("single instance: another TAPI Agent holds %s but does not answer; "
                            "not starting a second one", self._address)
                return False
            time.sleep(0.02)

    def release(self) -> None:
        """Stop listening (on quit) so the next launch starts cleanly: the thread ends, the
        socket file is removed (Unix) and the lock let go."""
        listener, self._listener = self._listener, None
        self._stopping.set()
        thread, self._thread = self._thread, None
        if listener is not None and thread is not None:
            self._wake(thread)
        if listener is not None:
            listener.close()  # on Unix this also unlinks the socket file
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # after the unlink: the next holder binds afresh
            self._lock_fd = None

    def _tell_running_instance(self, message: bytes = SHOW) -> bool:
        return tell(self.name, message)

    def tell(self, message: bytes) -> bool:
        """Send `message` (SHOW, SIGN_OUT) to the running instance; False when none runs."""
        return tell(self.name, message)

    # ------------------------------------------------------------------ claiming the name

    def _claim(self) -> bool | None:
        """Listen on the name: True when we now listen, None when another launch holds it. An
        unexpected error also gives True, not listening: this launch runs without the channel,
        as it did when QLocalServer could not listen."""
        if sys.platform != "win32" and not self._take_lock():
            return None
        try:
            if sys.platform != "win32":
                # We hold the lock, so no live agent owns this file: a crashed one left it.
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._address)
            listener = Listener(self._address, FAMILY, backlog=MAX_CLIENTS)
        except OSError as exc:
            if _held_by_another(exc):
                self._drop_lock()
                return None
            log.warning("single instance: cannot listen on %s: %s", self._address, exc)
            self._drop_lock()
            return True
        if sys.platform != "win32":
            with contextlib.suppress(OSError):
                os.chmod(self._address, 0o600)  # the directory is private already
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, args=(listener,), daemon=True,
                                        name="single-instance")
        self._thread.start()
        log.debug("single instance: listening on %s", self._address)
        return True

    def _take_lock(self) -> bool:
        """The exclusive lock beside the socket; False when another process holds it. Without
        a lock file (an unwritable directory) we go ahead, as before the lock existed."""
        import fcntl

        try:
            fd = os.open(self._address + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("single instance: no lock file beside %s: %s", self._address, exc)
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _drop_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ------------------------------------------------------------------ the listener thread

    def _serve(self, listener: Listener) -> None:
        """Accept connections until `release`; each is read in a thread of its own."""
        while not self._stopping.is_set():
            try:
                conn = listener.accept()
            except OSError as exc:
                if self._stopping.is_set():
                    return
                log.warning("single instance: accept failed: %s", exc)
                self._stopping.wait(0.5)  # never a busy loop
                continue
            if self._stopping.is_set():
                conn.close()
                return
            if not self._slots.acquire(blocking=False):
                log.warning("single instance: more than %d clients at once; one closed unread",
                            MAX_CLIENTS)
                conn.close()
                continue
            try:
                threading.Thread(target=self._read, args=(conn,), daemon=True,
                                 name="single-instance-client").start()
            except RuntimeError as exc:  # no thread to be had: this client goes unread
                log.warning("single instance: cannot read a client: %s", exc)
                self._slots.release()
                conn.close()

    def _read(self, conn: Connection) -> None:
        """One message from one client, within `CLIENT_TIMEOUT_S` and `MAX_MESSAGE` bytes."""
        try:
            with conn:
                if not conn.poll(CLIENT_TIMEOUT_S):
                    log.warning("single instance: a client sent nothing within %g s; dropped",
                                CLIENT_TIMEOUT_S)
                    return
                message = conn.recv_bytes(MAX_MESSAGE)
        except (EOFError, BrokenPipeError, ConnectionResetError):
            return  # connected and left without a word (`release`'s wake-up does this)
        except OSError as exc:  # "bad message length": over MAX_MESSAGE bytes
            log.warning("single instance: dropped a message (longer than %d bytes or cut "
                        "short): %s", MAX_MESSAGE, exc)
            return
        finally:
            self._slots.release()
        if not self._stopping.is_set():
            with contextlib.suppress(RuntimeError):  # the QObject is gone (exiting)
                self._received.emit(message)

    def _wake(self, thread: threading.Thread) -> None:
        """End the listener thread, blocked in accept(): connect to ourselves until it sees
        `_stopping`. On Windows a spare pipe instance may take the first connection, hence
        more than one try."""
        clients = []
        try:
            for _ in range(3):
                try:
                    clients.append(_connect(self._address))
                except OSError:
                    break
                thread.join(CONNECT_TIMEOUT_MS / 1000)
                if not thread.is_alive():
                    break
        finally:
            for client in clients:
                client.close()

    @Slot(bytes)
    def _dispatch(self, message: bytes) -> None:
        """On the GUI thread: act on one message (PING and unknown ones are ignored)."""
        if message == SHOW:
            log.info("single instance: a second launch asked us to show ourselves")
            self.activated.emit()
        elif message == SIGN_OUT:
            log.info("single instance: asked to sign out (tapi-agent sign-out)")
            self.sign_out_requested.emit()


def _held_by_another(exc: OSError) -> bool:
    """Whether a failed Listener means that someone else listens on the name: on Windows the
    first pipe instance exists (access denied); on Unix a socket bound by an agent that takes
    no lock (one before the lock existed) between our unlink and bind."""
    import errno

    if sys.platform == "win32":
        return isinstance(exc, PermissionError)
    return exc.errno == errno.EADDRINUSE


def _connect(where: str) -> Connection:
    """A client connection to the listener at `where`; on Unix the connect is bounded by
    CONNECT_TIMEOUT_MS (a frozen agent with a full backlog must not hang `diagnose`). On
    Windows `Client` waits for a busy pipe as CPython does (up to 20 s); a missing pipe fails
    at once."""
    if sys.platform == "win32":
        return Client(where, FAMILY)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT_MS / 1000)
        sock.connect(where)
        sock.setblocking(True)
        return Connection(sock.detach())
    finally:
        sock.close()


def tell(name: str, message: bytes) -> bool:
    """Connect to the instance listening on `name` and send it one message; False when none."""
    try:
        conn = _connect(address(name))
    except OSError:
        return False
    try:
        conn.send_bytes(message)
    except OSError as exc:  # it answered the connect: it runs, whatever became of the message
        log.debug("single instance: sending to %s failed: %s", name, exc)
    finally:
        conn.close()
    return True
