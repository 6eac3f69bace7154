"""The ID token check, run in a short-lived child process so the agent never loads PyJWT or
cryptography (issue 14).

Why a child process:

- Memory for the process that lives all day. The check is needed at an interactive sign-in,
  about once a day (a refresh keeps the identity verified at sign-in, see `Session.refresh`),
  but PyJWT + cryptography, once imported, stay for the life of the process: +8.6-9.8 MiB of
  RSS (cryptography's Rust extension alone is 6.6 MiB), ~300 MiB on a Remote Desktop / Citrix
  server with 30 negotiators. The child imports them, checks one token and exits.
- Isolation. The ID token is untrusted input from the network; the code that parses it (JOSE
  header, base64, JSON, key material, signature maths) runs in a process that holds no refresh
  or access token, no UI, and lives for one token.

The checks are `oidc.verify_id_token`, unchanged. The parent (`ReapitConnect.verify_id_token`)
still fetches the discovery document and the JWKS with the agent's own HTTP client (proxy, OS
trust store) and refetches them once for an unknown `kid`. It writes one JSON object to the
child's stdin: `token`, `keys` (the JWKS), `issuer`, `algorithms` (the provider's ID token
algorithms), `clientId`, `nonce`, `now`, `leeway`. The child writes one JSON object to stdout,
`{"claims": {...}}` or `{"error": {"check": ..., "detail": ...}}` (the same IdTokenError in the
parent), and exits 0; anything else it could not do is `{"error": {"internal": ...}}` and exit 2.
The token is a credential: stdin only, never on a command line, never logged.

How it is started (`child_process`, shared with `token_child`): `python -P -m
tapi_agent.net.id_token_child` from a pip install or a venv; from the frozen app, the console
executable beside the running one (`tapi-agent-cli --verify-id-token`, a hidden argument
`tapi_agent.app.main` dispatches before anything else; a windowed executable may have no
stdio), with `CREATE_NO_WINDOW` on Windows.
A child that cannot start, crashes, prints something else or takes longer than 20 s ends the
sign-in with an AuthError naming the cause; nothing is stored.

Cost, measured (issue 14): the agent after a sign-in holds 9.8 MiB less (84.4 vs 94.2 MiB RSS,
benchmarks/bench_signin_rss.py); the child peaks at ~32 MiB for ~0.15-0.3 s, most of it
importing PyJWT + cryptography, which a sign-in now waits for (benchmarks/bench_signin.py).
The child is started when the token is there, not ahead while the user is in the browser:
that would hide the 0.2 s, but keep ~32 MiB per user alive for the whole sign-in, which on a
shared server where everybody signs in at nine o'clock is what this module saves.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any, BinaryIO

from tapi_agent.net import child_process
from tapi_agent.net.oidc import (
    LEEWAY_S,
    AuthError,
    AuthUnavailable,
    IdTokenError,
    ProviderMetadata,
    verify_id_token,
)

_log = logging.getLogger(__name__)

CHILD_FLAG = "--verify-id-token"  # hidden: `tapi-agent --verify-id-token` (frozen app)
MODULE = "tapi_agent.net.id_token_child"
TIMEOUT_S = 20.0
_MAX_REQUEST = 2 * 1024 * 1024  # a JWKS is at most 512 KiB (oidc._MAX_DOCUMENT) plus a token
_MAX_ANSWER = 1024 * 1024
_WHAT = "the ID token check (a helper process of the agent)"


# ------------------------------------------------------------------------------- parent side


def child_command() -> list[str]:
    """How to start the child: this interpreter with `-m`, or the frozen app's own executable
    (its console twin `tapi-agent-cli` when there is one) with the hidden argument."""
    return child_process.child_command(MODULE, CHILD_FLAG)


_child_env = child_process.child_env


_redacted = child_process.redacted


def _last_line(stderr: bytes, token: str) -> str:
    return _redacted(child_process.last_line(stderr), token)[:300]


async def verify_in_child(
    token: str,
    *,
    keys: dict[str, Any],
    metadata: ProviderMetadata,
    client_id: str,
    nonce: str | None,
    now: float | None = None,
    leeway: float = LEEWAY_S,
    command: Sequence[str] | None = None,
    timeout_s: float = TIMEOUT_S,
) -> dict[str, Any]:
    """`oidc.verify_id_token` in a child process: the claims, the same IdTokenError for a
    refused token, AuthError (AuthUnavailable for a timeout) when the child itself fails."""
    import asyncio  # here: the child itself does not need it (~45 ms of its start-up)

    request = json.dumps({
        "token": token, "keys": keys, "issuer": metadata.issuer,
        "algorithms": list(metadata.id_token_algs), "clientId": client_id, "nonce": nonce,
        "now": time.time() if now is None else now, "leeway": leeway,
    }).encode("utf-8")
    argv = list(command) if command is not None else child_command()
    started = time.perf_counter()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=_child_env(), **child_process.no_window())
    except (OSError, ValueError) as exc:
        raise AuthError(f"The sign-in could not be completed: {_WHAT} could not be started "
                        f"({argv[0] if argv else '?'}: {exc}). Nothing was saved") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(request), timeout_s)
    except TimeoutError:
        raise AuthUnavailable(f"The sign-in could not be completed: {_WHAT} gave no answer "
                              f"within {timeout_s:g} s. Nothing was saved; please try again"
                              ) from None
    finally:
        if proc.returncode is None:  # timed out or cancelled: never leave it behind
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    _log.debug("ID token checked in a child process in %.0f ms (exit %s)",
               (time.perf_counter() - started) * 1000, proc.returncode)
    return _answer(proc.returncode, out, err, token)


def _answer(returncode: int | None, out: bytes, err: bytes, token: str) -> dict[str, Any]:
    """The claims from the child's answer, or the error it stands for."""
    answer: Any = None
    if len(out) <= _MAX_ANSWER:
        with contextlib.suppress(ValueError, RecursionError):
            answer = json.loads(out)
    error = answer.get("error") if isinstance(answer, dict) else None
    if returncode == 0 and isinstance(answer, dict):
        claims = answer.get("claims")
        if isinstance(claims, dict):
            return claims
        if isinstance(error, dict) and isinstance(error.get("check"), str) and \
                isinstance(error.get("detail"), str):
            raise IdTokenError(error["check"], error["detail"])
    if returncode != 0:
        if isinstance(error, dict) and isinstance(error.get("internal"), str):
            cause = _redacted(error["internal"], token)[:300]
        else:
            cause = _last_line(err, token) or "no message"
        how = (f"was ended by signal {-returncode}" if returncode is not None and returncode < 0
               else f"failed (exit code {returncode})")
        raise AuthError(f"The sign-in could not be completed: {_WHAT} {how}: {cause}. "
                        "Nothing was saved")
    raise AuthError(f"The sign-in could not be completed: {_WHAT} gave an answer the agent "
                    "does not understand. Nothing was saved")


# -------------------------------------------------------------------------------- child side


def serve(stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Check the one token of the request on `stdin`; write the answer to `stdout`."""
    try:
        request = json.loads(stdin.read(_MAX_REQUEST + 1)[:_MAX_REQUEST])
        if not isinstance(request, dict):
            raise ValueError("the request is not a JSON object")
        token, issuer, client_id = request["token"], request["issuer"], request["clientId"]
        algorithms, nonce = request["algorithms"], request["nonce"]
        if not (isinstance(token, str) and isinstance(issuer, str) and isinstance(client_id, str)
                and isinstance(algorithms, list) and isinstance(request["keys"], dict)
                and (nonce is None or isinstance(nonce, str))):
            raise ValueError("a field of the request has the wrong type")
        metadata = ProviderMetadata(issuer=issuer, authorization_endpoint="", token_endpoint="",
                                    jwks_uri="", id_token_algs=tuple(map(str, algorithms)))
        answer: dict[str, Any]
        try:
            answer = {"claims": verify_id_token(
                token, keys=request["keys"], metadata=metadata, client_id=client_id,
                nonce=nonce, now=float(request["now"]), leeway=float(request["leeway"]))}
        except IdTokenError as exc:
            answer = {"error": {"check": exc.check, "detail": exc.detail}}
        stdout.write(json.dumps(answer).encode("utf-8"))
        stdout.flush()
        return 0
    except Exception as exc:  # a bad request or a bug: the parent turns it into an AuthError
        stdout.write(json.dumps({"error": {"internal": f"{type(exc).__name__}: {exc}"}}
                                ).encode("utf-8"))
        stdout.flush()
        return 2


def main() -> int:
    """Entry point of the child (`-m` here, `--verify-id-token` in the frozen app)."""
    return child_process.run_child(serve)


if __name__ == "__main__":
    sys.exit(main())
