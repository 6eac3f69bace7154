"""Token store on the OS credential store (keyring), with chunking for Windows' size limit.

Windows Credential Manager caps a credential blob at 2,560 bytes, and keyring writes the secret
as UTF-16, so one entry holds at most 1,280 UTF-16 code units. A longer secret is split: the
entry named `account` (the head) says how many chunks there are and under which generation,
and the chunks live in entries `account#gen#1..n`. A new value is written under a new
generation before the head switches to it, so a crash half-way leaves the old value readable.

A head is read from a store anybody of the same user can write, so its chunk count is bounded
by what a session can be: `MAX_SECRET_UNITS` (64 Ki UTF-16 units; an access, refresh and ID
token together are a few KiB, and an HTTP server refuses a header much above 16 KiB, so a
bearer token cannot be larger). A head claiming more chunks than that needs (a corrupt or
planted entry, e.g. `v1#30000000#...`) is read as no stored session, costing nothing, and
`save` refuses a secret beyond the bound so `load` never rejects what `save` wrote.

keyring is imported when a store first touches its backend, not with this module: the running
agent uses the store through a child process (`token_child`), and keyring's chain
(importlib_metadata, jaraco.*, and on Linux jeepney and cryptography) would otherwise stay
loaded in it all day (issue 14).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

_log = logging.getLogger(__name__)

WINDOWS_BLOB_LIMIT = 2560
"""CRED_MAX_CREDENTIAL_BLOB_SIZE: bytes of UTF-16 in one Windows credential."""

MAX_SECRET_UNITS = 64 * 1024
"""The largest secret the store saves or reads, in UTF-16 code units (see the module doc)."""

_INLINE = "v1="  # head holds the whole secret after this prefix
_CHUNKED = "v1#"  # head is `v1#<count>#<generation>`


class TokenStoreError(Exception):
    """The credential store failed; the message says what to tell the user."""


class SecretStore(Protocol):
    """What a session needs of a store: `TokenStore`, `token_child.ChildTokenStore` (the same
    in a child process) and `MemoryTokenStore`. The methods block: call them in a thread."""

    @property
    def available(self) -> bool:
        """False when there is no usable store."""

    def save(self, account: str, secret: str) -> None:
        """Store `secret` under `account`; raise TokenStoreError."""

    def load(self, account: str) -> str | None:
        """The secret under `account`, or None; raise TokenStoreError."""

    def delete(self, account: str) -> None:
        """Remove `account`; raise TokenStoreError."""


def store_message(action: str, service: str, account: str, where: str, reason: str) -> str:
    """The TokenStoreError text: what could not be done, in which store, why."""
    return (
        f"Could not {action} the sign-in ({service}/{account}) in "
        f"{where}: {reason}. Your session will not survive a restart."
    )


def _units(text: str) -> int:
    """UTF-16 code units of `text` (a character outside the BMP takes two)."""
    return len(text.encode("utf-16-le")) // 2


def split_utf16(secret: str, max_units: int) -> list[str]:
    """Split `secret` into pieces of at most `max_units` UTF-16 code units, never inside a
    surrogate pair."""
    if max_units < 2:
        raise ValueError("max_units must be at least 2")
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for ch in secret:
        width = 2 if ord(ch) > 0xFFFF else 1
        if used + width > max_units:
            pieces.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += width
    if current or not pieces:
        pieces.append("".join(current))
    return pieces


class TokenStore:
    """Secrets in the OS credential store under one service name, split when too long."""

    def __init__(
        self,
        service: str = "TapiAgent",
        *,
        backend: KeyringBackend | None = None,
        chunk_size: int = WINDOWS_BLOB_LIMIT,
    ) -> None:
        self.service = service
        self._backend = backend
        self._max_units = chunk_size // 2

    @property
    def backend(self) -> KeyringBackend:
        """The keyring backend in use (the platform's default unless one was given)."""
        if self._backend is None:
            import keyring  # here, not at module import: see the module doc

            self._backend = keyring.get_keyring()
        return self._backend

    @property
    def available(self) -> bool:
        """False when keyring found no usable credential store (fail or null backend)."""
        try:
            backend = self.backend
        except Exception:  # keyring raises various errors while probing backends
            return False
        return _usable(backend)

    @property
    def description(self) -> str:
        """A short name of the store for messages ("SecretService Keyring", ...)."""
        try:
            return str(self.backend.name)
        except Exception:
            return "the credential store"

    # -- public API -----------------------------------------------------------------------------

    def save(self, account: str, secret: str) -> None:
        """Store `secret` under `account` (replacing any old value); raise TokenStoreError."""
        if _units(secret) > MAX_SECRET_UNITS:
            raise TokenStoreError(self._message(
                "save", account, f"it is longer than {MAX_SECRET_UNITS} characters"))
        old_head = self._get(account, "read")
        if _units(_INLINE + secret) <= self._max_units:
            self._set(account, _INLINE + secret)
        else:
            gen = secrets.token_hex(4)
            pieces = split_utf16(secret, self._max_units)
            written: list[str] = []
            try:
                for i, piece in enumerate(pieces, 1):
                    name = _chunk_name(account, gen, i)
                    self._set(name, piece)
                    written.append(name)
                self._set(account, f"{_CHUNKED}{len(pieces)}#{gen}")
            except TokenStoreError:
                for name in written:  # do not leave half a secret behind
                    self._quiet_delete(name)
                raise
        for name in self._chunk_names(account, old_head):
            self._quiet_delete(name)

    def load(self, account: str) -> str | None:
        """The secret stored under `account`, or None; raise TokenStoreError if unreadable."""
        head = self._get(account, "read")
        if head is None:
            return None
        if head.startswith(_INLINE):
            return head[len(_INLINE):]
        if head.startswith(_CHUNKED) and _chunk_count(head) > self._max_chunks:
            _log.warning("credential %r claims more chunks than a session can have; "
                         "ignoring it", account)
            return None
        names = self._chunk_names(account, head)
        if not names:
            return head  # written by something else, unchunked
        parts: list[str] = []
        for name in names:
            piece = self._get(name, "read")
            if piece is None:
                # A chunk went missing (deleted by hand?): the value is unusable; the caller
                # treats it like no stored session and signs in again.
                _log.warning("credential %r is missing chunk %r; ignoring it", account, name)
                return None
            parts.append(piece)
        return "".join(parts)

    @property
    def _max_chunks(self) -> int:
        """The most chunks a secret of `MAX_SECRET_UNITS` takes (rounded up, plus one for a
        surrogate pair pushed to the next chunk in each)."""
        return -(-MAX_SECRET_UNITS // (self._max_units - 1))

    def _chunk_names(self, account: str, head: str | None) -> list[str]:
        """`_chunk_names`, but nothing for a head claiming more chunks than can exist (its
        chunks were never written by `save`, so there is nothing of ours to read or delete)."""
        if head and head.startswith(_CHUNKED) and _chunk_count(head) > self._max_chunks:
            return []
        return _chunk_names(account, head)

    def delete(self, account: str) -> None:
        """Remove `account` and its chunks; no error if nothing is stored."""
        from keyring.errors import PasswordDeleteError

        head = self._get(account, "delete")
        if head is None:
            return
        for name in self._chunk_names(account, head):
            self._quiet_delete(name)
        try:
            self.backend.delete_password(self.service, account)
        except PasswordDeleteError:
            if self._get(account, "delete") is not None:
                message = self._message("delete", account, "it is still there")
                raise TokenStoreError(message) from None
        except Exception as exc:
            raise TokenStoreError(self._message("delete", account, _reason(exc))) from None

    # -- backend calls --------------------------------------------------------------------------

    def _get(self, name: str, action: str) -> str | None:
        try:
            return self.backend.get_password(self.service, name)
        except Exception as exc:  # backends raise their own types (pywintypes.error, dbus...)
            raise TokenStoreError(self._message(action, name, _reason(exc))) from None

    def _set(self, name: str, value: str) -> None:
        try:
            self.backend.set_password(self.service, name, value)
        except Exception as exc:
            raise TokenStoreError(self._message("save", name, _reason(exc))) from None

    def _quiet_delete(self, name: str) -> None:
        try:
            self.backend.delete_password(self.service, name)
        except Exception as exc:  # a leftover chunk is harmless: it is never read again
            _log.debug("could not delete credential chunk %r: %s", name, _reason(exc))

    def _message(self, action: str, account: str, reason: str) -> str:
        return store_message(action, self.service, account, self.description, reason)


def _chunk_name(account: str, gen: str, index: int) -> str:
    return f"{account}#{gen}#{index}"


def _chunk_count(head: str) -> int:
    """The chunk count a `v1#<count>#<gen>` head claims (0 when it is not a number; a count
    of more than 9 digits is not converted, just reported as 10**9)."""
    count = head[len(_CHUNKED):].partition("#")[0]
    if not (count.isascii() and count.isdigit()):
        return 0
    return int(count) if len(count) <= 9 else 10**9


def _chunk_names(account: str, head: str | None) -> list[str]:
    """Entry names of the chunks a head points to (empty for inline or foreign heads)."""
    if not head or not head.startswith(_CHUNKED):
        return []
    count, _, gen = head[len(_CHUNKED):].partition("#")
    if not (count.isascii() and count.isdigit()) or not gen:
        return []
    return [_chunk_name(account, gen, i) for i in range(1, int(count) + 1)]


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _usable(backend: Any) -> bool:
    from keyring.backends import fail

    if isinstance(backend, fail.Keyring):
        return False
    try:
        from keyring.backends import null

        if isinstance(backend, null.Keyring):
            return False
    except ImportError:  # pragma: no cover - null backend exists in every keyring we support
        pass
    children = getattr(backend, "backends", None)
    if children is not None:  # the chainer: usable when it chains something usable
        return any(_usable(b) for b in children)
    return True


class MemoryTokenStore:
    """The same API in memory: the demo, tests, and the fallback when no keyring works."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}

    @property
    def available(self) -> bool:
        """Always True (but nothing survives a restart)."""
        return True

    def save(self, account: str, secret: str) -> None:
        """Keep `secret` under `account`."""
        self._data[account] = secret

    def load(self, account: str) -> str | None:
        """The secret under `account`, or None."""
        return self._data.get(account)

    def delete(self, account: str) -> None:
        """Forget `account`."""
        self._data.pop(account, None)


class ProcessLock:
    """One process of this user refreshes the session at a time.

    The refresh token rotates: a second process (`tapi-agent diagnose`, `sign-out`, a second
    agent starting) that refreshed with the same token would present a spent one, and the
    provider revokes the whole session as a reuse, signing the user out. So a refresh holds
    this lock, an exclusive lock on a file in the user's private runtime directory (`flock`
    on POSIX, `msvcrt.locking` on Windows; released by the OS if the process dies), and
    re-reads the store first (`Session.refresh`). The lock is polled, never waited on in a
    thread, so a cancelled refresh cannot leave a thread holding it.
    """

    def __init__(self, path: Path, *, timeout_s: float = 30.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._fh: Any = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False when another process holds it."""
        fh = open(self.path, "a+b")  # noqa: SIM115 - kept open while the lock is held
        try:
            if sys.platform == "win32":
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self._fh = fh
        return True

    def release(self) -> None:
        """Let the next process in."""
        fh, self._fh = self._fh, None
        if fh is None:
            return
        try:
            if sys.platform == "win32":
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        finally:
            fh.close()  # closing also drops a flock

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Hold the lock for the body; TimeoutError after `timeout_s` of someone else's turn."""
        import asyncio  # here: the credential store child imports this module, not asyncio

        deadline = time.monotonic() + self.timeout_s
        while not self.try_acquire():
            if time.monotonic() > deadline:
                raise TimeoutError(f"another TAPI Agent process held {self.path} for "
                                   f"{self.timeout_s:g} s")
            await asyncio.sleep(0.05)  # a file lock has no event to wait on
        try:
            yield
        finally:
            self.release()
