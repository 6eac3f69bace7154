"""The running agent's credential store calls, each in a short-lived child process, so the agent
never imports keyring (issue 14).

Why a child process:

- Memory for the process that lives all day. The agent reads, saves or deletes its session in
  the OS credential store a few times a day: the restore at start, a save after a sign-in,
  a load and a save at each refresh of the access token (`Session.refresh` re-reads the
  store for a token another process rotated, then saves the rotated one; with Reapit
  Connect's one-hour access tokens, about two children an hour), the delete at sign-out.
  keyring and its chain (importlib_metadata, zipp, jaraco.*, more_itertools, backports,
  configparser; on Linux the Secret Service backend adds jeepney and cryptography), once
  imported, stay for the life of the process: measured, 2.0 MiB of idle RSS, ~60 MiB on a
  Remote Desktop / Citrix server with 30 negotiators. The child imports them, makes one call
  and exits.
- One implementation. The child runs the in-process `TokenStore` (chunking for Windows'
  2,560-byte credentials, `MAX_SECRET_UNITS`, its error messages), unchanged; the short-lived
  commands (`tapi-agent sign-out`, `diagnose`) still use it in their own process.

Cost: one child per call, ~0.2-0.3 s of wall time each, which the call waits for (in a
thread, not on the event loop), and a peak of ~35 MiB for that time. Measured on Linux
(2 cores, Python 3.11, gnome-keyring's Secret Service over D-Bus, median of 7): a probe
0.18 s, a load finding nothing 0.18 s, the save / load / delete of a 6,000-character session
(5 chunks) 0.29 / 0.27 / 0.23 s; ~0.05 s of each is importing keyring. `available` and
`description` come from one probe child, cached after the first call: the agent's start pays
a probe and a load (~0.4 s before the restore's refresh), a refresh a load and a save
(~0.5 s more than in-process). Not measured on Windows, where a process starts slower.
The methods block (`subprocess.run`): `Session` calls them through `asyncio.to_thread`.

Protocol: one JSON object on the child's stdin, `{"op": "probe" | "load" | "save" | "delete",
"service": ..., "account": ..., "secret": ...}` (`secret` for save only), one JSON object on
stdout, and exit 0: `{"ok": true}` with `available` and `description` (probe) or `secret`
(load, a string or null), or `{"error": {"store": message}}` for a TokenStoreError, which the
parent raises with the same message. What the store logged in the child (`log`: level, logger,
message) is logged again by the parent. A request the child cannot read is
`{"error": {"internal": ...}}` and exit 2. Anything else (the child cannot start, crashes,
prints something else, exits non-zero or gives no answer within 60 s, generous because a
Secret Service may show an unlock prompt) is a TokenStoreError naming the cause; for the
probe, the store is reported unavailable (the agent keeps the session in memory).

The secret is a credential: it goes over stdin and stdout only, never on a command line or in
the environment, and is taken out of anything of the child's (stderr, messages) the parent
logs or raises.

How it is started (`child_process`, shared with `id_token_child`): `python -P -m
tapi_agent.net.token_child` from a pip install or a venv; from the frozen app
`tapi-agent-cli --token-store`, a hidden argument `tapi_agent.app.main` dispatches before
anything else, with `CREATE_NO_WINDOW` on Windows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, BinaryIO

from tapi_agent.net import child_process
from tapi_agent.net.tokens import TokenStore, TokenStoreError, store_message

_log = logging.getLogger(__name__)

CHILD_FLAG = "--token-store"  # hidden: `tapi-agent-cli --token-store` (frozen app)
MODULE = "tapi_agent.net.token_child"
TIMEOUT_S = 60.0
_MAX_REQUEST = 4 * 1024 * 1024  # the largest session (MAX_SECRET_UNITS) is < 0.5 MiB as JSON
_MAX_ANSWER = 4 * 1024 * 1024
_MAX_LOG_RECORDS = 20
_WHAT = "the credential store helper (a process of the agent)"
_DEFAULT_WHERE = "the credential store"


def child_command() -> list[str]:
    """How to start the child: this interpreter with `-m`, or the frozen app's console twin
    with the hidden argument."""
    return child_process.child_command(MODULE, CHILD_FLAG)


# ------------------------------------------------------------------------------- parent side


class _ChildFailed(Exception):
    """The child gave no usable answer; the message says why (no secret in it)."""


_redacted = child_process.redacted


class ChildTokenStore:
    """`TokenStore`'s API (`available`, `description`, `save`, `load`, `delete`), each call
    made by `TokenStore` in a short-lived child process. Blocking: call it in a thread."""

    def __init__(self, service: str = "TapiAgent", *, command: Sequence[str] | None = None,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.service = service
        self._command = list(command) if command is not None else None
        self._timeout_s = timeout_s
        self._probe_lock = threading.Lock()
        self._probed: tuple[bool, str] | None = None
        self.probe_problem: str | None = None
        """Why the probe child failed (None when it answered)."""

    @property
    def available(self) -> bool:
        """False when the child found no usable credential store, or could not tell."""
        return self._probe()[0]

    @property
    def description(self) -> str:
        """A short name of the store for messages ("SecretService Keyring", ...)."""
        return self._probe()[1]

    def save(self, account: str, secret: str) -> None:
        """Store `secret` under `account` (replacing any old value); raise TokenStoreError."""
        self._call("save", account, secret)

    def load(self, account: str) -> str | None:
        """The secret stored under `account`, or None; raise TokenStoreError if unreadable."""
        secret = self._call("load", account).get("secret")
        if secret is not None and not isinstance(secret, str):
            raise TokenStoreError(self._failed("read", account, f"{_WHAT} gave an answer the "
                                                                "agent does not understand"))
        return secret

    def delete(self, account: str) -> None:
        """Remove `account` and its chunks; no error if nothing is stored."""
        self._call("delete", account)

    # -- internals ------------------------------------------------------------------------

    def _probe(self) -> tuple[bool, str]:
        with self._probe_lock:
            if self._probed is None:
                try:
                    answer = self._run({"op": "probe", "service": self.service}, None)
                    available, where = answer.get("available"), answer.get("description")
                    if not (isinstance(available, bool) and isinstance(where, str)):
                        raise _ChildFailed(f"{_WHAT} gave an answer the agent does not "
                                           "understand")
                    self._probed = (available, where)
                except (_ChildFailed, TokenStoreError) as exc:
                    self.probe_problem = str(exc)
                    _log.warning("could not find out which credential store to use: %s", exc)
                    self._probed = (False, _DEFAULT_WHERE)
            return self._probed

    def _call(self, op: str, account: str, secret: str | None = None) -> dict[str, Any]:
        request: dict[str, Any] = {"op": op, "service": self.service, "account": account}
        if secret is not None:
            request["secret"] = secret
        try:
            return self._run(request, secret)
        except _ChildFailed as exc:
            action = {"load": "read"}.get(op, op)
            raise TokenStoreError(self._failed(action, account, str(exc))) from None

    def _failed(self, action: str, account: str, reason: str) -> str:
        # the probe's name for the store when it answered; never a second child to ask it
        where = self._probed[1] if self._probed is not None else _DEFAULT_WHERE
        return store_message(action, self.service, account, where, reason)

    def _run(self, request: dict[str, Any], secret: str | None) -> dict[str, Any]:
        """One child for `request`: its answer (`ok`), TokenStoreError for the store's error,
        _ChildFailed for anything else."""
        import subprocess  # here: the child does not need it

        argv = list(self._command) if self._command is not None else child_command()
        started = time.perf_counter()
        try:
            done = subprocess.run(
                argv, input=json.dumps(request).encode("utf-8"), capture_output=True,
                env=child_process.child_env(), timeout=self._timeout_s, check=False,
                **child_process.no_window())
        except subprocess.TimeoutExpired:  # run() has killed and reaped it
            raise _ChildFailed(f"{_WHAT} gave no answer within {self._timeout_s:g} s") from None
        except (OSError, ValueError) as exc:
            raise _ChildFailed(_redacted(f"{_WHAT} could not be started "
                                         f"({argv[0] if argv else '?'}: {exc})", secret)
                               ) from None
        _log.debug("credential store %s in a child process in %.0f ms (exit %s)",
                   request["op"], (time.perf_counter() - started) * 1000, done.returncode)
        return self._answer(done.returncode, done.stdout, done.stderr, secret)

    def _answer(self, returncode: int, out: bytes, err: bytes,
                secret: str | None) -> dict[str, Any]:
        answer: Any = None
        if len(out) <= _MAX_ANSWER:
            with contextlib.suppress(ValueError, RecursionError):
                answer = json.loads(out)
        if not isinstance(answer, dict):
            answer = {}
        loaded = answer.get("secret")
        known = secret if secret is not None else loaded if isinstance(loaded, str) else None
        _relog(answer.get("log"), known)
        error = answer.get("error")
        if returncode == 0:
            if isinstance(error, dict) and isinstance(error.get("store"), str):
                raise TokenStoreError(_redacted(error["store"], known))
            if answer.get("ok") is True:
                return answer
            raise _ChildFailed(f"{_WHAT} gave an answer the agent does not understand")
        if isinstance(error, dict) and isinstance(error.get("internal"), str):
            cause = error["internal"]
        else:
            cause = child_process.last_line(err) or "no message"
        how = (f"was ended by signal {-returncode}" if returncode < 0
               else f"failed (exit code {returncode})")
        raise _ChildFailed(f"{_WHAT} {how}: {_redacted(cause, known)[:300]}")


def _relog(records: object, secret: str | None) -> None:
    """Log again what the store logged in the child."""
    if not isinstance(records, list):
        return
    for record in records[:_MAX_LOG_RECORDS]:
        if (isinstance(record, list) and len(record) == 3 and isinstance(record[0], int)
                and isinstance(record[1], str) and isinstance(record[2], str)):
            logging.getLogger(record[1]).log(record[0], "%s (in %s)",
                                             _redacted(record[2], secret)[:500], _WHAT)


# -------------------------------------------------------------------------------- child side


class _Records(logging.Handler):
    """What is logged in the child, for the answer (the parent logs it again)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[list[Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < _MAX_LOG_RECORDS:
            with contextlib.suppress(Exception):
                self.records.append([record.levelno, record.name, record.getMessage()])


def _str_field(request: dict[str, Any], name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str):
        raise ValueError(f"the request's {name!r} is not a string")
    return value


def _do(request: dict[str, Any]) -> dict[str, Any]:
    store = TokenStore(_str_field(request, "service"))
    op = request.get("op")
    if op == "probe":
        return {"ok": True, "available": store.available, "description": store.description}
    account = _str_field(request, "account")
    if op == "load":
        return {"ok": True, "secret": store.load(account)}
    if op == "save":
        store.save(account, _str_field(request, "secret"))
    elif op == "delete":
        store.delete(account)
    else:
        raise ValueError(f"unknown op {op!r}")
    return {"ok": True}


def serve(stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Make the one call of the request on `stdin`; write the answer to `stdout`."""
    records = _Records()
    root, ours = logging.getLogger(), logging.getLogger("tapi_agent")
    root.addHandler(records)
    root.setLevel(logging.WARNING)  # keyring's and its backends' warnings
    ours.setLevel(logging.DEBUG)  # the store's own messages, all of them
    try:
        data = stdin.read(_MAX_REQUEST + 1)
        if len(data) > _MAX_REQUEST:
            raise ValueError("the request is too large")
        request = json.loads(data)
        if not isinstance(request, dict):
            raise ValueError("the request is not a JSON object")
        answer: dict[str, Any]
        try:
            answer = _do(request)
        except TokenStoreError as exc:
            answer = {"error": {"store": str(exc)}}
        answer["log"] = records.records
        stdout.write(json.dumps(answer).encode("utf-8"))
        stdout.flush()
        return 0
    except Exception as exc:  # a bad request or a bug: the parent turns it into an error
        stdout.write(json.dumps({"error": {"internal": f"{type(exc).__name__}: {exc}"},
                                 "log": records.records}).encode("utf-8"))
        stdout.flush()
        return 2
    finally:
        root.removeHandler(records)


def main() -> int:
    """Entry point of the child (`-m` here, `--token-store` in the frozen app)."""
    return child_process.run_child(serve)


if __name__ == "__main__":
    sys.exit(main())
