"""Reapit Connect sign-in (Authorization Code + PKCE S256, loopback redirect) and the session.

`sign_in` opens the authorize URL in the system browser and listens once on
`http://127.0.0.1:<port>/callback` (RFC 8252 native-app redirect). `Session` keeps the tokens:
it persists each rotated refresh token before handing out the access token that came with it,
never runs two refreshes at once, and signs out when the server refuses the refresh token.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import json
import logging
import secrets
import time
import webbrowser
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tapi_agent.core.log import log_event
from tapi_agent.net.http import make_http_client
from tapi_agent.net.session import SessionGone
from tapi_agent.net.tokens import MemoryTokenStore, TokenStore, TokenStoreError

_log = logging.getLogger(__name__)

DEFAULT_SCOPE = "openid profile email offline_access negotiators.read contacts.read"
CALLBACK_PATH = "/callback"
_REQUEST_TIMEOUT_S = 10.0


class AuthError(Exception):
    """Sign-in or token refresh failed; the message is meant for the user."""


class AuthUnavailable(AuthError):
    """Reapit Connect could not be reached (network, 5xx): try again later, keep the session."""


class InvalidGrant(AuthError):
    """The server refused a code or refresh token (`invalid_grant`): the session is over."""


@dataclass(frozen=True)
class Identity:
    """Who is signed in, from the ID token's claims."""

    negotiator_id: str
    name: str
    email: str
    office_id: str


@dataclass(frozen=True, repr=False)
class TokenSet:
    """Tokens from `POST /oauth/token`; `expires_at` is the access token's expiry (epoch s)."""

    access_token: str
    refresh_token: str | None
    id_token: str | None
    expires_at: float

    def __repr__(self) -> str:  # never show a token
        return (
            f"TokenSet(access_token=<redacted>, refresh_token="
            f"{'<redacted>' if self.refresh_token else None}, id_token="
            f"{'<redacted>' if self.id_token else None}, expires_at={self.expires_at:.0f})"
        )

    __str__ = __repr__


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(64)  # 86 characters of [A-Za-z0-9_-]
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified: the ID token came straight from the token endpoint over
    the connection we opened (OIDC Core 3.1.3.7 allows TLS to stand in for the signature)."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise AuthError(f"The sign-in returned an ID token that cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise AuthError("The sign-in returned an ID token that cannot be read")
    return data


def identity_from_id_token(id_token: str | None) -> Identity:
    """Identity from the Reapit claims; raise AuthError when the negotiator id is missing."""
    if not id_token:
        raise AuthError("The sign-in returned no ID token: the 'openid' scope is needed")
    claims = jwt_claims(id_token)
    negotiator = claims.get("custom:reapit:userCode")
    if not isinstance(negotiator, str) or not negotiator:
        raise AuthError(
            "This account is not a Reapit negotiator (no custom:reapit:userCode in the ID "
            "token): sign in with your AgencyCloud user, or ask IT to check the account"
        )
    return Identity(
        negotiator_id=negotiator,
        name=str(claims.get("name") or negotiator),
        email=str(claims.get("email") or ""),
        office_id=str(claims.get("custom:reapit:officeId") or ""),
    )


class ReapitConnect:
    """The OAuth endpoints of Reapit Connect (or the mock) for one public client."""

    def __init__(
        self, issuer: str, client_id: str, *, http: httpx.AsyncClient | None = None,
        proxy: str = "system",
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._http = http if http is not None else make_http_client(proxy)

    @property
    def token_url(self) -> str:
        """`POST` here for tokens."""
        return self.issuer + "/oauth/token"

    def authorize_url(
        self, redirect_uri: str, state: str, code_challenge: str, scope: str = DEFAULT_SCOPE,
        *, nonce: str | None = None,
    ) -> str:
        """The URL the browser opens to sign in."""
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        if nonce:
            params["nonce"] = nonce
        return self.issuer + "/oauth/authorize?" + urlencode(params)

    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str) -> TokenSet:
        """Trade an authorization code (with its PKCE verifier) for tokens."""
        return await self._token_request({
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        })

    async def refresh(self, refresh_token: str) -> TokenSet:
        """Trade a refresh token for new tokens (the refresh token rotates)."""
        return await self._token_request({
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "refresh_token": refresh_token,
        })

    async def logout(self, id_token: str | None = None) -> None:
        """End the session at Reapit Connect (`GET /oidc/logout`); errors are the caller's."""
        params = {"client_id": self.client_id}
        if id_token:
            params["id_token_hint"] = id_token
        try:
            response = await self._http.get(self.issuer + "/oidc/logout", params=params)
        except httpx.HTTPError as exc:
            raise AuthUnavailable(f"Could not reach Reapit Connect to sign out: {exc}") from None
        if response.status_code >= 400:
            raise AuthError(f"Reapit Connect refused the sign-out (HTTP {response.status_code})")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def _token_request(self, form: dict[str, str]) -> TokenSet:
        sent = time.time()
        try:
            response = await self._http.post(
                self.token_url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise AuthUnavailable(
                f"Could not reach Reapit Connect at {self.issuer}: {exc or type(exc).__name__}"
            ) from None
        if response.status_code >= 500:
            raise AuthUnavailable(
                f"Reapit Connect is not working right now (HTTP {response.status_code})")
        body = _json_or_empty(response)
        if response.status_code != 200:
            error = str(body.get("error") or f"HTTP {response.status_code}")
            description = str(body.get("error_description") or "")
            text = f"{error}: {description}" if description else error
            if error == "invalid_grant":
                raise InvalidGrant(f"Reapit Connect refused the sign-in ({text})")
            raise AuthError(f"Reapit Connect refused the request ({text})")
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise AuthError("Reapit Connect answered without an access token")
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        refresh = body.get("refresh_token")
        id_token = body.get("id_token")
        return TokenSet(
            access_token=access,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            id_token=id_token if isinstance(id_token, str) and id_token else None,
            expires_at=sent + lifetime,  # from when we asked: errs on the early side
        )


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# -- the loopback redirect -------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TAPI Agent</title>
<style>body{{font-family:"Segoe UI",system-ui,sans-serif;background:#f3f3f3;margin:0;
display:flex;align-items:center;justify-content:center;height:100vh}}
main{{background:#fff;border-radius:8px;padding:32px 40px;box-shadow:0 2px 12px #0002;
max-width:460px}}h1{{font-size:20px;margin:0 0 12px;color:{colour}}}p{{color:#333}}</style>
</head><body><main><h1>{title}</h1><p>{message}</p></main></body></html>"""


def _page(title: str, message: str, *, ok: bool) -> str:
    return _PAGE.format(
        title=html.escape(title), message=html.escape(message),
        colour="#0f7b0f" if ok else "#c42b1c",
    )


async def _respond(writer: asyncio.StreamWriter, status: int, reason: str, body: str) -> None:
    data = body.encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\n"
        "Cache-Control: no-store\r\n"
        "Referrer-Policy: no-referrer\r\n"
        "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n"
        "Connection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        writer.write(head.encode("ascii") + data)
        await writer.drain()
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _read_target(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    """Method and target of one HTTP request (headers are read and ignored)."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _REQUEST_TIMEOUT_S)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
        return None
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    if len(parts) != 3:
        return None
    return parts[0], parts[1]


async def sign_in(
    connect: ReapitConnect,
    *,
    port: int,
    open_browser: Callable[[str], object] = webbrowser.open,
    timeout_s: float = 300.0,
    scope: str = DEFAULT_SCOPE,
) -> tuple[TokenSet, Identity]:
    """Sign in through the browser: PKCE S256, a random `state`, one loopback redirect.

    Raises AuthError with a message for the user (wrong state, refused, timed out, port busy).
    """
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(16)
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[tuple[TokenSet, Identity]] = loop.create_future()
    redirect_uri = ""
    claimed: list[bool] = []

    def finish(error: AuthError | None, result: tuple[TokenSet, Identity] | None = None) -> None:
        if outcome.done():
            return
        if error is not None:
            outcome.set_exception(error)
        elif result is not None:
            outcome.set_result(result)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reply(reader, writer)
        except Exception as exc:  # never leave the sign-in hanging on a bug or a broken socket
            _log.exception("sign-in redirect handler failed")
            writer.close()
            finish(AuthError(f"The sign-in failed unexpectedly ({type(exc).__name__})"))

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_target(reader)
        if request is None:
            writer.close()
            return
        method, target = request
        url = urlsplit(target)
        if method != "GET" or url.path != CALLBACK_PATH:
            # the browser also asks for /favicon.ico; that does not end the sign-in
            await _respond(writer, 404, "Not Found", _page("Not found", "", ok=False))
            return
        if outcome.done() or claimed:
            await _respond(writer, 410, "Gone", _page(
                "This sign-in is finished", "Return to TAPI Agent to sign in again.", ok=False))
            return
        claimed.append(True)  # one-shot: any later callback is turned away
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        got_state = query.get("state", "")
        if not secrets.compare_digest(got_state.encode(), state.encode()):
            # Not the reply to our request (stale tab, or another page posting to us).
            message = ("The sign-in reply did not match the sign-in TAPI Agent started "
                       "(wrong or missing state). Start the sign-in again from the tray menu.")
            await _respond(writer, 400, "Bad Request",
                           _page("Sign-in refused", message, ok=False))
            finish(AuthError(message))
            return
        if "error" in query:
            detail = query.get("error_description") or query["error"]
            message = f"Reapit Connect did not sign you in: {detail}"
            await _respond(writer, 400, "Bad Request", _page("Not signed in", message, ok=False))
            finish(AuthError(message))
            return
        code = query.get("code", "")
        if not code:
            message = "The sign-in reply carried no authorization code. Please try again."
            await _respond(writer, 400, "Bad Request", _page("Not signed in", message, ok=False))
            finish(AuthError(message))
            return
        try:
            tokens = await connect.exchange_code(code, redirect_uri, verifier)
            identity = identity_from_id_token(tokens.id_token)
            if tokens.id_token:
                got_nonce = jwt_claims(tokens.id_token).get("nonce")
                if got_nonce is not None and got_nonce != nonce:
                    raise AuthError("The ID token was not issued for this sign-in (nonce)")
        except AuthError as exc:
            await _respond(writer, 400, "Bad Request",
                           _page("Not signed in", str(exc), ok=False))
            finish(exc)
            return
        await _respond(writer, 200, "OK", _page(
            f"You are signed in as {identity.name}",
            "You are signed in — you can close this tab and return to your work.", ok=True))
        finish(None, (tokens, identity))

    try:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
    except OSError as exc:
        raise AuthError(
            f"Cannot listen for the sign-in on 127.0.0.1:{port} ({exc.strerror or exc}); "
            "another program may be using the port (setting auth.redirect_port)"
        ) from None
    try:
        bound = server.sockets[0].getsockname()[1]
        redirect_uri = f"http://127.0.0.1:{bound}{CALLBACK_PATH}"
        url = connect.authorize_url(redirect_uri, state, challenge, scope, nonce=nonce)
        try:
            # In a thread: `webbrowser` may wait for the browser command to exit ($BROWSER,
            # xdg-open), and the redirect it brings back is served by this very loop.
            opened = await asyncio.get_running_loop().run_in_executor(None, open_browser, url)
        except Exception as exc:  # webbrowser and custom openers raise many kinds
            _log.warning("could not open the browser for sign-in: %s", exc)
            opened = False
        if opened is False:
            _log.warning("no browser opened for sign-in; open %s yourself", url.split("?")[0])
        try:
            return await asyncio.wait_for(asyncio.shield(outcome), timeout_s)
        except TimeoutError:
            raise AuthError(
                f"Sign-in timed out after {timeout_s:.0f} s: the browser did not come back. "
                "Try Sign in again from the tray menu."
            ) from None
    finally:
        if not outcome.done():
            outcome.cancel()
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)


# -- the session ---------------------------------------------------------------------------------

_run_sign_in = sign_in  # Session.sign_in shadows the name inside the class


class Session:
    """The signed-in negotiator's tokens: restore, sign in, refresh with rotation, sign out.

    Implements `net.session.TokenSource` for the stream and the API client.
    """

    def __init__(
        self,
        connect: ReapitConnect,
        store: TokenStore | MemoryTokenStore,
        *,
        margin_s: float = 60.0,
        account: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connect = connect
        self._clock = clock
        self._store = store
        self._margin = margin_s
        self.account = account or f"session {connect.client_id}@{connect.issuer}"
        self._lock = asyncio.Lock()
        self._tokens: TokenSet | None = None
        self._issued_at = 0.0
        self._refresh_token: str | None = None
        self._identity: Identity | None = None
        self._generation = 0
        self._listeners: list[Callable[[str, Identity | None], object]] = []
        self.store_problem: str | None = None
        """Why the session is not being saved (None when the store works)."""

    # -- state ----------------------------------------------------------------------------------

    @property
    def identity(self) -> Identity | None:
        """The signed-in negotiator, or None."""
        return self._identity

    @property
    def signed_in(self) -> bool:
        """True while there is a session to get tokens from."""
        return self._identity is not None and (
            self._refresh_token is not None or self._tokens is not None)

    def add_listener(self, callback: Callable[[str, Identity | None], object]) -> None:
        """Call `callback(state, identity)` on every `auth.state` change (in the loop thread)."""
        self._listeners.append(callback)

    def _changed(self, state: str, level: int = logging.INFO) -> None:
        identity = self._identity
        log_event("auth.state", level, state=state,
                  negotiatorId=identity.negotiator_id if identity else None)
        for callback in list(self._listeners):
            try:
                callback(state, identity)
            except Exception:
                _log.exception("auth listener failed")

    # -- TokenSource ----------------------------------------------------------------------------

    async def access_token(self) -> str:
        """A valid access token, refreshed first when it is close to expiry."""
        tokens = self._tokens
        if tokens is not None:
            # Short-lived tokens (tests, demo) get half their life as the margin.
            margin = min(self._margin, (tokens.expires_at - self._issued_at) / 2)
            if tokens.expires_at - margin > self._clock():
                return tokens.access_token
        return await self.refresh()

    def expires_at(self) -> float | None:
        """Expiry of the current access token (epoch s), or None without one."""
        return self._tokens.expires_at if self._tokens else None

    async def refresh(self) -> str:
        """Refresh now (one at a time); raise SessionGone when the server ends the session."""
        generation = self._generation
        async with self._lock:
            if self._generation != generation and self._tokens is not None:
                return self._tokens.access_token  # a concurrent caller just refreshed
            refresh_token = self._refresh_token
            if refresh_token is None:
                raise SessionGone("Not signed in")
            try:
                tokens = await self._connect.refresh(refresh_token)
            except InvalidGrant as exc:
                # Refused (reused, revoked or expired): the stored token is worthless.
                await self._forget()
                self._changed("signed_out", logging.WARNING)
                self._identity = None
                raise SessionGone(f"Your session has ended; please sign in again ({exc})") \
                    from None
            except AuthError:
                self._changed("failed", logging.WARNING)
                raise
            identity = self._identity
            if tokens.id_token:
                with contextlib.suppress(AuthError):
                    identity = identity_from_id_token(tokens.id_token)
            new_refresh = tokens.refresh_token or refresh_token
            # Rotation: the old refresh token is spent now. Save the new one first, so a crash
            # after this point still restarts signed in.
            await self._persist(new_refresh, identity)
            self._refresh_token = new_refresh
            self._identity = identity
            self._set_tokens(tokens)
            self._changed("refreshed")
            return tokens.access_token

    # -- sign in / out --------------------------------------------------------------------------

    async def restore(self) -> bool:
        """Load the saved session and refresh it; True when signed in (or only offline)."""
        try:
            blob = await asyncio.to_thread(self._store.load, self.account)
        except TokenStoreError as exc:
            self.store_problem = str(exc)
            _log.warning("%s", exc)
            return False
        if not blob:
            return False
        try:
            data = json.loads(blob)
            refresh_token = str(data["refresh_token"])
            identity = Identity(**data["identity"]) if data.get("identity") else None
        except (ValueError, KeyError, TypeError):
            _log.warning("the saved session cannot be read; signing in again")
            return False
        async with self._lock:
            self._refresh_token = refresh_token
            self._identity = identity
            self._generation += 1
        try:
            await self.refresh()
        except SessionGone:
            return False
        except AuthUnavailable as exc:
            # Offline at start: keep the session; the stream retries the refresh later.
            _log.warning("could not refresh the saved session yet: %s", exc)
            return self._identity is not None
        except AuthError as exc:
            _log.warning("the saved session was refused: %s", exc)
            return False
        return True

    async def sign_in(self, **kwargs: Any) -> Identity:
        """Sign in through the browser (`sign_in` keyword arguments: port, open_browser, ...)."""
        kwargs.setdefault("port", 0)
        try:
            tokens, identity = await _run_sign_in(self._connect, **kwargs)
        except AuthError:
            self._changed("failed", logging.WARNING)
            raise
        async with self._lock:
            if tokens.refresh_token:
                await self._persist(tokens.refresh_token, identity)
            self._refresh_token = tokens.refresh_token
            self._identity = identity
            self._set_tokens(tokens)
        self._changed("signed_in")
        return identity

    async def sign_out(self) -> None:
        """Forget the session here and end it at Reapit Connect (best effort)."""
        async with self._lock:
            id_token = self._tokens.id_token if self._tokens else None
            await self._forget()
        self._changed("signed_out")
        self._identity = None
        try:
            await asyncio.wait_for(self._connect.logout(id_token), _REQUEST_TIMEOUT_S)
        except (AuthError, TimeoutError) as exc:
            _log.info("sign-out at Reapit Connect did not complete: %s", exc)

    # -- internals ------------------------------------------------------------------------------

    def _set_tokens(self, tokens: TokenSet) -> None:
        self._tokens = tokens
        self._issued_at = self._clock()
        self._generation += 1

    async def _persist(self, refresh_token: str, identity: Identity | None) -> None:
        blob = json.dumps({
            "version": 1,
            "refresh_token": refresh_token,
            "identity": asdict(identity) if identity else None,
        })
        try:
            await asyncio.to_thread(self._store.save, self.account, blob)
        except TokenStoreError as exc:
            # Keep working in memory; the app tells the user once (store_problem).
            if self.store_problem is None:
                _log.warning("%s", exc)
            self.store_problem = str(exc)
        else:
            self.store_problem = None

    async def _forget(self) -> None:
        self._tokens = None
        self._refresh_token = None
        self._generation += 1
        try:
            await asyncio.to_thread(self._store.delete, self.account)
        except TokenStoreError as exc:
            self.store_problem = str(exc)
            _log.warning("%s", exc)
