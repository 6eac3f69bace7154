"""`--state-dir`: the mock's state in one SQLite file, so a restart (even `kill -9`) loses nothing.

What is kept: the signing key; sessions with their current and past refresh tokens; OAuth
clients; deferred (missed) calls; the stream's epoch, each negotiator's next `seq` and every
retained unacknowledged event (its frame text verbatim, so a replay keeps its `sentAt`);
journal entries; and when each directory record was first seen and last changed.

Why SQLite (the standard library's `sqlite3`): a transaction is atomic, and once `COMMIT`
returns it survives the process being killed at any instant, which is exactly the promise
"nothing acknowledged to a caller is lost": every write that a response reports (a 202, a 201,
a 204, a token) commits before that response is sent. A JSON file rewritten on each change
would need write-to-temp + fsync + rename for the same guarantee and rewrites everything per
event; an append-only log would need its own compaction. WAL journal with `synchronous=NORMAL`:
a commit is one `write()` to the WAL, durable against a killed process (the kernel has it);
only a power cut can lose the last commits, which a development mock may. Measured: see
BENCHMARKS.md ("mock --state-dir").

`locking_mode=EXCLUSIVE` holds the database for the life of the process, so a second mock
pointed at the same directory fails at start instead of forking the state; the lock goes
with the process, `kill -9` included. The directory is created private (0700, file 0600): it
holds a signing key and refresh tokens.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DB_NAME = "mock-state.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clients (id TEXT PRIMARY KEY, secret TEXT, scopes TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, client_id TEXT NOT NULL, negotiator_id TEXT NOT NULL,
    scopes TEXT NOT NULL, refresh_token TEXT, revoked INTEGER NOT NULL, auth_time REAL NOT NULL);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token TEXT PRIMARY KEY, session_id TEXT NOT NULL, used INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deferred (
    id TEXT PRIMARY KEY, negotiator_id TEXT NOT NULL, created TEXT NOT NULL,
    envelope TEXT NOT NULL, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS channels (
    negotiator_id TEXT PRIMARY KEY, next_seq INTEGER NOT NULL, lost_upto INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS retained (
    negotiator_id TEXT NOT NULL, seq INTEGER NOT NULL, notification_id TEXT NOT NULL,
    text TEXT NOT NULL, envelope TEXT NOT NULL, retained_wall REAL NOT NULL,
    PRIMARY KEY (negotiator_id, seq));
CREATE TABLE IF NOT EXISTS journal_entries (
    id TEXT PRIMARY KEY, position INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    collection TEXT NOT NULL, id TEXT NOT NULL, etag TEXT NOT NULL, first_seen TEXT NOT NULL,
    changed TEXT NOT NULL, PRIMARY KEY (collection, id));
"""


class StateDirError(Exception):
    """The state directory cannot be used (in use by another mock, unreadable, newer format)."""


@dataclass(frozen=True, slots=True)
class RetainedRow:
    """A retained event as stored: enough to rebuild the hub's `Delivery`."""

    negotiator_id: str
    seq: int
    notification_id: str
    text: str
    envelope: dict[str, Any]
    retained_wall: float


class Store:
    """One SQLite database in the state directory; every method commits before it returns
    (or, inside `transaction()`, when the block ends)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self.directory / DB_NAME
            if not path.exists():
                path.touch(mode=0o600)
            # isolation_level=None: transactions are ours (BEGIN IMMEDIATE ... COMMIT).
            self._db = sqlite3.connect(path, timeout=1.0, isolation_level=None,
                                       check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StateDirError(f"cannot use the state directory {directory}: {exc}") from None
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self.transaction():  # takes the exclusive lock now, not at the first event
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(statement)
                version = self.meta("schema")
                if version is None:
                    self.set_meta("schema", str(SCHEMA_VERSION))
                elif int(version) > SCHEMA_VERSION:
                    raise StateDirError(f"{directory} was written by a newer tapi-agent-mock")
        except sqlite3.Error as exc:
            self._db.close()
            if "locked" in str(exc):
                raise StateDirError(f"the state directory {directory} is in use by another "
                                    "tapi-agent-mock") from None
            raise StateDirError(f"cannot use the state directory {directory}: {exc}") from None
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        """Close the database (and release the directory)."""
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one atomic commit; nests (only the outermost commits)."""
        with self._lock:
            if self._depth == 0:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("COMMIT")

    def _write(self, sql: str, *params: Any) -> None:
        with self.transaction():
            self._db.execute(sql, params)

    def _rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, params))

    # -- meta and the signing key ---------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", key)
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", key, value)

    def signing_key(self, new: rsa.RSAPrivateKey) -> rsa.RSAPrivateKey:
        """The kept signing key; `new` is kept (and returned) when there is none yet."""
        pem = self.meta("signing_key")
        if pem is not None:
            key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise StateDirError("the kept signing key is not an RSA key")
            return key
        self.set_meta("signing_key", new.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode("ascii"))
        return new

    # -- clients ------------------------------------------------------------------------------

    def clients(self) -> list[tuple[str, str | None, tuple[str, ...]]]:
        return [(str(i), s, tuple(json.loads(sc)))
                for i, s, sc in self._rows("SELECT id, secret, scopes FROM clients ORDER BY id")]

    def save_clients(self, clients: list[tuple[str, str | None, tuple[str, ...]]]) -> None:
        with self.transaction():
            for cid, secret, scopes in clients:
                self._db.execute("INSERT OR REPLACE INTO clients (id, secret, scopes) "
                                 "VALUES (?, ?, ?)", (cid, secret, json.dumps(list(scopes))))

    # -- sessions -----------------------------------------------------------------------------

    def sessions(self) -> list[dict[str, Any]]:
        out = []
        for sid, cid, nid, scopes, refresh, revoked, auth_time in self._rows(
                "SELECT id, client_id, negotiator_id, scopes, refresh_token, revoked, auth_time "
                "FROM sessions"):
            out.append({"id": sid, "client_id": cid, "negotiator_id": nid,
                        "scopes": tuple(json.loads(scopes)), "refresh_token": refresh,
                        "revoked": bool(revoked), "auth_time": float(auth_time)})
        return out

    def refresh_tokens(self) -> list[tuple[str, str, bool]]:
        return [(str(t), str(s), bool(u)) for t, s, u in
                self._rows("SELECT token, session_id, used FROM refresh_tokens")]

    def save_session(self, session: Any, used_refresh: set[str]) -> None:
        """A session as it is now, with every refresh token it has had."""
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO sessions (id, client_id, negotiator_id, scopes, "
                "refresh_token, revoked, auth_time) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session.id, session.client_id, session.negotiator_id,
                 json.dumps(list(session.scopes)), session.refresh_token,
                 int(session.revoked), float(getattr(session, "auth_time", 0.0) or 0.0)))
            if session.refresh_token:
                self._db.execute("INSERT OR IGNORE INTO refresh_tokens (token, session_id, used) "
                                 "VALUES (?, ?, 0)", (session.refresh_token, session.id))
            for token in used_refresh:
                self._db.execute("INSERT OR REPLACE INTO refresh_tokens (token, session_id, "
                                 "used) VALUES (?, ?, 1)", (token, session.id))

    # -- deferred -----------------------------------------------------------------------------

    def deferred(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        return [(str(i), str(n), str(c), json.loads(e)) for i, n, c, e in self._rows(
            "SELECT id, negotiator_id, created, envelope FROM deferred ORDER BY position")]

    def add_deferred(self, deferred_id: str, negotiator_id: str, created: str,
                     envelope: dict[str, Any]) -> None:
        self._write("INSERT INTO deferred (id, negotiator_id, created, envelope, position) "
                    "VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(position), 0) + 1 FROM deferred))",
                    deferred_id, negotiator_id, created, json.dumps(envelope))

    def delete_deferred(self, deferred_id: str) -> None:
        self._write("DELETE FROM deferred WHERE id = ?", deferred_id)

    # -- the stream ---------------------------------------------------------------------------

    def channels(self) -> list[tuple[str, int, int]]:
        return [(str(n), int(s), int(lost)) for n, s, lost in
                self._rows("SELECT negotiator_id, next_seq, lost_upto FROM channels")]

    def retained(self) -> list[RetainedRow]:
        return [RetainedRow(str(n), int(s), str(i), str(t), json.loads(e), float(w))
                for n, s, i, t, e, w in self._rows(
                    "SELECT negotiator_id, seq, notification_id, text, envelope, retained_wall "
                    "FROM retained ORDER BY negotiator_id, seq")]

    def new_epoch(self, epoch: str) -> None:
        """A new backend run: numbering restarts and retained events are forgotten."""
        with self.transaction():
            self._db.execute("DELETE FROM retained")
            self._db.execute("DELETE FROM channels")
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', ?)",
                             (epoch,))

    def retain(self, negotiator_id: str, seq: int, notification_id: str, text: str,
               envelope: dict[str, Any], next_seq: int) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO retained (negotiator_id, seq, notification_id, text, "
                "envelope, retained_wall) VALUES (?, ?, ?, ?, ?, ?)",
                (negotiator_id, seq, notification_id, text, json.dumps(envelope), time.time()))
            self._db.execute(
                "INSERT INTO channels (negotiator_id, next_seq, lost_upto) VALUES (?, ?, 0) "
                "ON CONFLICT (negotiator_id) DO UPDATE SET next_seq = excluded.next_seq",
                (negotiator_id, next_seq))

    def drop(self, negotiator_id: str, seqs: list[int], lost_upto: int | None = None) -> None:
        """Forget retained events (acknowledged, or pruned: then `lost_upto` is recorded)."""
        with self.transaction():
            self._db.executemany("DELETE FROM retained WHERE negotiator_id = ? AND seq = ?",
                                 [(negotiator_id, s) for s in seqs])
            if lost_upto is not None:
                self._db.execute("UPDATE channels SET lost_upto = ? WHERE negotiator_id = ?",
                                 (lost_upto, negotiator_id))

    # -- journal entries and directory records ------------------------------------------------

    def journal_entries(self) -> list[dict[str, Any]]:
        return [json.loads(d) for (d,) in
                self._rows("SELECT data FROM journal_entries ORDER BY position")]

    def add_journal_entry(self, entry_id: str, data: dict[str, Any]) -> None:
        self._write("INSERT INTO journal_entries (id, position, data) VALUES (?, "
                    "(SELECT COALESCE(MAX(position), 0) + 1 FROM journal_entries), ?)",
                    entry_id, json.dumps(data))

    def resources(self) -> dict[tuple[str, str], tuple[str, str, str]]:
        return {(str(c), str(i)): (str(e), str(f), str(ch)) for c, i, e, f, ch in self._rows(
            "SELECT collection, id, etag, first_seen, changed FROM resources")}

    def save_resource(self, collection: str, record_id: str,
                      meta: tuple[str, str, str]) -> None:
        self._write("INSERT OR REPLACE INTO resources (collection, id, etag, first_seen, "
                    "changed) VALUES (?, ?, ?, ?, ?)", collection, record_id, *meta)

