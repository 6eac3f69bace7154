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
import json
import logging
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tapi_agent.core.log import log_event
from tapi_agent.net.http import HttpClient, HttpError, Response, make_http_client
from tapi_agent.net.id_token_child import verify_in_child
from tapi_agent.net.oidc import (
    AuthError,
    AuthUnavailable,
    Endpoints,
    IdTokenError,
    InvalidGrant,
    ProviderMetadata,
    discovery_url,
    has_key,
    metadata_from,
    parse_json_document,
    require_secure,
    same_issuer,
    unverified_kid,
)
from tapi_agent.net.session import SessionGone
from tapi_agent.net.tokens import ProcessLock, SecretStore, TokenStoreError

_log = logging.getLogger(__name__)

# What the agent asks for. Platform scopes (negotiators.read, ...) are granted to the app when a
# customer installs it, not requested here; a strict provider refuses scopes it does not know.
DEFAULT_SCOPE = "openid profile email offline_access"
NEGOTIATOR_CLAIM = "custom:reapit:userCode"  # Reapit's FAQ: "Negotiator ID 'userCode'"
CALLBACK_PATH = "/callback"
_REQUEST_TIMEOUT_S = 10.0


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
    return verifier, pkce_challenge(verifier)


def pkce_challenge(verifier: str) -> str:
    """The S256 challenge of a PKCE verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def identity_from_claims(claims: dict[str, Any], negotiator_claim: str = NEGOTIATOR_CLAIM,
                         userinfo: dict[str, Any] | None = None) -> Identity:
    """Identity from verified ID token claims, filled in from UserInfo; AuthError without the
    negotiator claim in either."""
    extra = userinfo or {}

    def claim(name: str) -> Any:
        value = claims.get(name)
        return value if value not in (None, "") else extra.get(name)

    negotiator = claim(negotiator_claim)
    if not isinstance(negotiator, str) or not negotiator:
        raise AuthError(
            f"This account is not a Reapit negotiator: the sign-in gave no "
            f"'{negotiator_claim}' claim (in the ID token or UserInfo). Sign in with your "
            "AgencyCloud user, or ask IT to check the account or the setting "
            "auth.negotiator_claim"
        )
    return Identity(
        negotiator_id=negotiator,
        name=str(claim("name") or negotiator),
        email=str(claim("email") or ""),
        office_id=str(claim("custom:reapit:officeId") or ""),
    )


class ReapitConnect:
    """An OpenID provider (Reapit Connect, the mock, any certified one) for one public client.

    The endpoints come from discovery at `{issuer}/.well-known/openid-configuration`, cached
    for the life of the process and fetched again when an ID token names an unknown key;
    `endpoints` (the `auth.*_url` settings) override it or, when they give the authorize,
    token and keys URLs, replace it for providers that publish none.
    """

    def __init__(
        self, issuer: str, client_id: str, *, http: HttpClient | None = None,
        proxy: str = "system", endpoints: Endpoints | None = None,
        negotiator_claim: str = NEGOTIATOR_CLAIM, prompt: str = "auto",
        scope: str = DEFAULT_SCOPE,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.endpoints = endpoints or Endpoints()
        self.negotiator_claim = negotiator_claim or NEGOTIATOR_CLAIM
        self.prompt = prompt
        self.scope = scope or DEFAULT_SCOPE
        self._http = http if http is not None else make_http_client(proxy)
        self._metadata: ProviderMetadata | None = None
        self._keys: dict[str, Any] | None = None
        self._meta_lock = asyncio.Lock()

    # -- metadata -------------------------------------------------------------------------------

    async def metadata(self, *, refresh: bool = False) -> ProviderMetadata:
        """The provider's endpoints: discovered once, then cached (`refresh` fetches again)."""
        async with self._meta_lock:
            if self._metadata is None or refresh:
                self._metadata = await self._load_metadata()
            return self._metadata

    async def _load_metadata(self) -> ProviderMetadata:
        if self.endpoints.complete:
            return metadata_from(self.issuer, None, self.endpoints)
        url = discovery_url(self.issuer)
        document = await self._get_document(url, "provider's discovery document", "auth.issuer")
        return metadata_from(self.issuer, document, self.endpoints)

    async def _get_document(self, url: str, what: str, setting: str) -> dict[str, Any]:
        require_secure(url, f"The {what}", setting)  # what we trust tokens by must be authentic
        response = await self._get(url, {})
        if response.status_code != 200:
            raise AuthError(f"The {what} is not at {url} (HTTP {response.status_code}): check "
                            f"the setting {setting}")
        return parse_json_document(response.content, f"{what} at {url}")

    async def _get(self, url: str, headers: dict[str, str]) -> Response:
        """GET from the provider; AuthUnavailable when it cannot answer (network, 5xx)."""
        try:
            response = await self._http.get(url, headers={**headers,
                                                          "Accept": "application/json"})
        except HttpError as exc:
            raise AuthUnavailable(
                f"Could not reach the sign-in provider at {url}: {exc or type(exc).__name__}"
            ) from None
        if response.status_code >= 500:
            raise AuthUnavailable(f"The sign-in provider is not working right now "
                                  f"(HTTP {response.status_code} from {url})")
        return response

    async def signing_keys(self, kid: Any = None) -> dict[str, Any]:
        """The provider's JWKS; fetched again (with the metadata) when `kid` is not in it."""
        if self._keys is not None and (kid is None or has_key(self._keys, kid)):
            return self._keys
        metadata = await self.metadata(refresh=self._keys is not None)
        self._keys = await self._get_document(metadata.jwks_uri, "provider's signing keys",
                                              "auth.jwks_url")
        return self._keys

    # -- the authorization request ------------------------------------------------------------

    async def authorize_url(
        self, redirect_uri: str, state: str, code_challenge: str, scope: str | None = None,
        *, nonce: str | None = None,
    ) -> str:
        """The URL the browser opens to sign in."""
        metadata = await self.metadata()
        scope = scope or self.scope
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
        prompt = self._prompt_for(metadata, scope)
        if prompt:
            params["prompt"] = prompt
        endpoint = metadata.authorization_endpoint
        sep = "&" if urlsplit(endpoint).query else "?"
        return endpoint + sep + urlencode(params)

    def _prompt_for(self, metadata: ProviderMetadata, scope: str) -> str:
        """`prompt`: the setting, or (auto) `consent` where the provider issues refresh tokens
        only with it: OIDC Core 11 makes `offline_access` require `prompt=consent`, so a
        provider that lists `offline_access` in `scopes_supported` follows that rule."""
        if self.prompt == "off":
            return ""
        if self.prompt != "auto":
            return self.prompt
        if "offline_access" not in scope.split():
            return ""
        if "offline_access" not in metadata.scopes_supported:
            return ""  # e.g. Reapit Connect (Cognito): refresh tokens come without asking
        if metadata.prompt_values_supported and "consent" not in metadata.prompt_values_supported:
            return ""
        return "consent"

    def check_callback_issuer(self, metadata: ProviderMetadata, iss: str | None) -> None:
        """RFC 9207: the `iss` on the redirect names our provider (a mix-up attack otherwise)."""
        if iss is None:
            if metadata.iss_parameter_supported:
                raise AuthError("The sign-in reply did not say which provider sent it (no 'iss'"
                                " although the provider always sends one). Please try again.")
            return
        if not same_issuer(iss, metadata.issuer):
            raise AuthError(f"The sign-in reply came from another provider ({iss!r}, expected "
                            f"{metadata.issuer!r}); nothing was saved")

    # -- tokens ---------------------------------------------------------------------------------

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
        """Trade a refresh token for new tokens (it may rotate, or come back unchanged)."""
        return await self._token_request({
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "refresh_token": refresh_token,
        })

    async def verify_id_token(self, id_token: str, nonce: str | None) -> dict[str, Any]:
        """The claims of a verified ID token (IdTokenError names the failed check).

        The keys and metadata are fetched here, with the agent's HTTP client; the checks run
        in a short-lived child process, so the agent never loads PyJWT or cryptography (see
        `id_token_child`)."""
        keys = await self.signing_keys(unverified_kid(id_token))
        return await verify_in_child(id_token, keys=keys, metadata=await self.metadata(),
                                     client_id=self.client_id, nonce=nonce)

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        """The UserInfo claims for an access token ({} when the provider has no endpoint)."""
        metadata = await self.metadata()
        url = metadata.userinfo_endpoint
        if not url:
            return {}
        require_secure(url, "UserInfo", "auth.userinfo_url")
        response = await self._get(url, {"Authorization": f"Bearer {access_token}"})
        if response.status_code != 200:
            raise AuthError(f"The sign-in provider refused UserInfo (HTTP "
                            f"{response.status_code})")
        if response.headers.get("content-type", "").split(";")[0].strip() == "application/jwt":
            raise AuthError("The provider answers UserInfo as a signed JWT, which the agent "
                            "does not read: ask IT to configure it to answer JSON")
        return parse_json_document(response.content, "UserInfo answer")

    async def identity(self, tokens: TokenSet, *, nonce: str | None,
                       previous: Identity | None = None) -> Identity:
        """Who signed in: the verified ID token, then UserInfo for claims it lacks.

        `nonce` None (a refresh) does not check the nonce; with `previous` (a refresh) a token
        that no longer names a negotiator keeps the previous identity.
        """
        if not tokens.id_token:
            if previous is not None:
                return previous
            raise AuthError("The sign-in returned no ID token: the 'openid' scope is needed "
                            "(setting auth.scope)")
        claims = await self.verify_id_token(tokens.id_token, nonce)
        if previous is not None and previous.negotiator_id and \
                claims.get(self.negotiator_claim) in (None, ""):
            return previous
        userinfo: dict[str, Any] = {}
        if claims.get(self.negotiator_claim) in (None, "") or not claims.get("name"):
            userinfo = await self.userinfo(tokens.access_token)
            # OIDC Core 5.3.2: UserInfo for another subject is not this user's.
            if userinfo and userinfo.get("sub") != claims.get("sub"):
                raise AuthError("UserInfo described another user than the ID token (sub); "
                                "nothing was saved")
        return identity_from_claims(claims, self.negotiator_claim, userinfo)

    async def end_session_url(self, id_token: str | None) -> str:
        """Where the browser ends the provider's session ('' when the provider has none)."""
        try:
            metadata = await self.metadata()
        except AuthError:
            return ""
        endpoint = metadata.end_session_endpoint
        if not endpoint:
            return ""
        params = {"client_id": self.client_id}
        if id_token:
            params["id_token_hint"] = id_token
        sep = "&" if urlsplit(endpoint).query else "?"
        return endpoint + sep + urlencode(params)

    async def revoke(self, token: str, hint: str = "refresh_token") -> None:
        """Revoke a token at the provider (RFC 7009) when it has a revocation endpoint."""
        metadata = await self.metadata()
        url = metadata.revocation_endpoint
        if not url:
            return
        require_secure(url, "Token revocation", "auth.issuer")
        try:
            response = await self._http.post(url, data={
                "token": token, "token_type_hint": hint, "client_id": self.client_id})
        except HttpError as exc:
            raise AuthUnavailable(f"Could not reach the provider to revoke the session: "
                                  f"{exc or type(exc).__name__}") from None
        if response.status_code >= 400:
            raise AuthError(f"The provider refused to revoke the session (HTTP "
                            f"{response.status_code})")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def _token_request(self, form: dict[str, str]) -> TokenSet:
        metadata = await self.metadata()
        url = metadata.token_endpoint
        require_secure(url, "The token endpoint", "auth.token_url")
        sent = time.time()
        try:
            response = await self._http.post(
                url, data=form, headers={"Accept": "application/json"})
        except HttpError as exc:
            raise AuthUnavailable(
                f"Could not reach the sign-in provider at {url}: {exc or type(exc).__name__}"
            ) from None
        if response.status_code >= 500:
            raise AuthUnavailable(
                f"The sign-in provider is not working right now (HTTP {response.status_code})")
        body = _json_or_empty(response)
        if response.status_code != 200:
            error = str(body.get("error") or f"HTTP {response.status_code}")
            description = str(body.get("error_description") or "")
            text = f"{error}: {description}" if description else error
            if error == "invalid_grant":
                raise InvalidGrant(f"The sign-in provider refused the sign-in ({text})")
            raise AuthError(f"The sign-in provider refused the request ({text})")
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise AuthError("The sign-in provider answered without an access token")
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        if not 0 < lifetime < 10 * 365 * 86400:  # nan, negative or absurd: an hour
            lifetime = 3600.0
        refresh = body.get("refresh_token")
        id_token = body.get("id_token")
        return TokenSet(
            access_token=access,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            id_token=id_token if isinstance(id_token, str) and id_token else None,
            expires_at=sent + lifetime,  # from when we asked: errs on the early side
        )


def _json_or_empty(response: Response) -> dict[str, Any]:
    try:
        data = response.json()
    except (ValueError, RecursionError):
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


# What html.escape(quote=True) replaces. Not `html` itself: importing it loads html.entities
# (2,000-odd named references, ~0.5 MiB kept all day) for this one page (issue 14).
_HTML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                               "'": "&#x27;"})


def _escape(text: str) -> str:
    return text.translate(_HTML_ESCAPES)


def _open_in_browser(url: str) -> bool:
    """`webbrowser.open`, imported when a sign-in first needs it (not kept by an idle agent
    that restored its session)."""
    import webbrowser

    return webbrowser.open(url)


def _page(title: str, message: str, *, ok: bool) -> str:
    return _PAGE.format(
        title=_escape(title), message=_escape(message),
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


def _listen_socket(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:port that no other process can share."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # Windows: no one may bind over us
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(8)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _bind_redirect(ports: Sequence[int]) -> socket.socket:
    """The first free port of `ports` (auth.redirect_port, then auth.redirect_ports).

    On a shared Windows host (Remote Desktop, Citrix) another user's sign-in may hold a port;
    each port listed must be registered with the provider as `http://127.0.0.1:PORT/callback`.
    """
    tried: list[str] = []
    for port in dict.fromkeys(ports):
        try:
            return _listen_socket(port)
        except OSError as exc:
            tried.append(f"{port} ({exc.strerror or exc})")
            _log.info("sign-in redirect port %s is not free: %s", port, exc.strerror or exc)
    if len(tried) == 1:
        raise AuthError(
            f"Cannot sign in: the sign-in port 127.0.0.1:{tried[0]} is in use, perhaps by "
            "another user signing in on this computer. Try again in a minute; IT can list "
            "spare ports in the setting auth.redirect_ports")
    raise AuthError(
        "Cannot sign in: every sign-in port on this computer is in use (" + ", ".join(tried)
        + "), perhaps by other users signing in. Try again in a minute; IT can list more "
        "ports in the setting auth.redirect_ports")


async def sign_in(
    connect: ReapitConnect,
    *,
    port: int | Sequence[int],
    open_browser: Callable[[str], object] = _open_in_browser,
    timeout_s: float = 300.0,
    scope: str | None = None,
) -> tuple[TokenSet, Identity]:
    """Sign in through the browser: PKCE S256, a random `state` and `nonce`, one loopback
    redirect; the ID token verified before anything is trusted.

    `port` is a port or a list of ports to try in order (0: any free port). A reply with a
    wrong or missing `state` is refused and does not end the sign-in (any local program can
    send one); the first reply with our `state` does, whatever it says.
    Raises AuthError with a message for the user (refused, timed out, ports busy, a token
    that fails a check).
    """
    metadata = await connect.metadata()  # before listening: a wrong issuer fails at once
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
            if claimed:
                finish(AuthError(f"The sign-in failed unexpectedly ({type(exc).__name__})"))

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_target(reader)
        if request is None:
            writer.close()
            return
        method, target = request
        path, _, raw_query = target.partition("?")
        if method != "GET" or path != CALLBACK_PATH:
            # the browser also asks for /favicon.ico; `//host/callback` is not our path either
            await _respond(writer, 404, "Not Found", _page("Not found", "", ok=False))
            return
        if outcome.done() or claimed:
            await _respond(writer, 410, "Gone", _page(
                "This sign-in is finished", "Return to TAPI Agent to sign in again.", ok=False))
            return
        query = {k: v[0] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        got_state = query.get("state", "")
        if not secrets.compare_digest(got_state.encode(), state.encode()):
            # Not the reply to our request (a stale tab, or another program or page calling
            # us): refuse it, and keep waiting for the real one.
            _log.warning("sign-in reply refused: wrong or missing state")
            message = ("This reply does not belong to the sign-in TAPI Agent is waiting for "
                       "(wrong or missing state). Return to TAPI Agent.")
            await _respond(writer, 400, "Bad Request",
                           _page("Sign-in refused", message, ok=False))
            return
        claimed.append(True)  # one-shot: any later callback is turned away
        try:
            connect.check_callback_issuer(metadata, query.get("iss"))
            if "error" in query:
                detail = query.get("error_description") or query["error"]
                raise AuthError(f"The sign-in provider did not sign you in: {detail}")
            code = query.get("code", "")
            if not code:
                raise AuthError("The sign-in reply carried no authorization code. "
                                "Please try again.")
            tokens = await connect.exchange_code(code, redirect_uri, verifier)
            identity = await connect.identity(tokens, nonce=nonce)
        except AuthError as exc:
            await _respond(writer, 400, "Bad Request",
                           _page("Not signed in", str(exc), ok=False))
            finish(exc)
            return
        await _respond(writer, 200, "OK", _page(
            f"You are signed in as {identity.name}",
            "You are signed in — you can close this tab and return to your work.", ok=True))
        finish(None, (tokens, identity))

    ports = [port] if isinstance(port, int) else list(port)
    sock = _bind_redirect(ports or [0])
    try:
        server = await asyncio.start_server(handle, sock=sock)
    except OSError as exc:
        sock.close()
        raise AuthError(f"Cannot listen for the sign-in ({exc.strerror or exc})") from None
    try:
        bound = server.sockets[0].getsockname()[1]
        redirect_uri = f"http://127.0.0.1:{bound}{CALLBACK_PATH}"
        url = await connect.authorize_url(redirect_uri, state, challenge, scope, nonce=nonce)
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
        store: SecretStore,
        *,
        margin_s: float = 60.0,
        account: str | None = None,
        clock: Callable[[], float] = time.time,
        open_browser: Callable[[str], object] = _open_in_browser,
        process_lock: ProcessLock | None = None,
    ) -> None:
        self._connect = connect
        self._process_lock = process_lock
        self._clock = clock
        self._open_browser = open_browser
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
        self.expiry_notice: str | None = None
        """Set when the provider gave no refresh token: when the user must sign in again."""

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
        """Refresh now (one at a time, across this user's processes too: see `ProcessLock`);
        raise SessionGone when the server ends the session."""
        generation = self._generation
        async with self._lock:
            if self._generation != generation and self._tokens is not None:
                return self._tokens.access_token  # a concurrent caller just refreshed
            if self._process_lock is None:
                return await self._refresh_now()
            try:
                async with self._process_lock.held():
                    await self._adopt_stored_refresh_token()
                    return await self._refresh_now()
            except TimeoutError as exc:  # a hung process holds it: a temporary failure
                self._changed("failed", logging.WARNING)
                raise AuthUnavailable(f"Could not renew the session yet: {exc}") from None

    async def _adopt_stored_refresh_token(self) -> None:
        """Another process of this user (a second agent, `diagnose`, `sign-out`) may have
        rotated the refresh token since we read it: the store then holds the new one, and
        ours is spent. Use the stored one (we hold the process lock, so it is current)."""
        if self._refresh_token is None:
            return
        try:
            blob = await asyncio.to_thread(self._store.load, self.account)
            stored = str(json.loads(blob)["refresh_token"]) if blob else None
        except (TokenStoreError, ValueError, KeyError, TypeError) as exc:
            _log.debug("could not re-read the saved session: %s", exc)
            return
        if stored and stored != self._refresh_token:
            _log.info("another TAPI Agent process renewed the session; using its refresh token")
            self._refresh_token = stored

    async def _refresh_now(self) -> str:
        """The refresh itself; the caller holds `_lock` (and the process lock, if any)."""
        refresh_token = self._refresh_token
        if refresh_token is None:
            if self._identity is None:
                raise SessionGone("Not signed in")
            # The provider gave no refresh token: the session ends with the access token.
            await self._forget()
            self._changed("signed_out", logging.WARNING)
            self._identity = None
            raise SessionGone("Your session has ended (the sign-in provider gives no "
                              "refresh token); please sign in again")
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
        identity: Identity | None = self._identity
        problem: AuthError | None = None
        try:
            # The identity was verified at sign-in and a refresh does not change who is
            # signed in, so a refreshed ID token is not used, and so not verified (OIDC
            # Core 12.2): no JWKS fetch and no check child (id_token_child) at every start
            # or refresh, only at an interactive sign-in. A session saved without an
            # identity has its new ID token verified before it is used.
            if identity is None:
                identity = await self._connect.identity(tokens, nonce=None)
        except IdTokenError as exc:
            # Never trust (or keep) a session whose new ID token fails a check.
            await self._forget()
            self._changed("signed_out", logging.WARNING)
            self._identity = None
            raise SessionGone(str(exc)) from None
        except AuthError as exc:
            identity = self._identity  # UserInfo unreachable: keep who we knew
            problem = exc
        new_refresh = tokens.refresh_token or refresh_token
        # Rotation: the old refresh token is spent now. Save the new one first, so a crash
        # after this point still restarts signed in.
        await self._persist(new_refresh, identity)
        if identity is None and problem is not None:
            self._refresh_token = new_refresh
            self._changed("failed", logging.WARNING)
            raise problem
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
        kwargs.setdefault("open_browser", self._open_browser)
        try:
            tokens, identity = await _run_sign_in(self._connect, **kwargs)
        except AuthError:
            self._changed("failed", logging.WARNING)
            raise
        async with self._lock:
            if tokens.refresh_token:
                await self._persist(tokens.refresh_token, identity)
                self.expiry_notice = None
            else:
                minutes = max(1, round((tokens.expires_at - self._clock()) / 60))
                self.expiry_notice = (
                    "The sign-in provider gave no refresh token, so this session cannot be "
                    f"renewed: you will be asked to sign in again in about {minutes} minutes, "
                    "and after a restart")
                _log.warning("%s", self.expiry_notice)
            self._refresh_token = tokens.refresh_token
            self._identity = identity
            self._set_tokens(tokens)
        self._changed("signed_in")
        return identity

    async def sign_out(self) -> None:
        """Forget the session here, revoke its refresh token at the provider when it can, and
        end the provider's session in the browser (`end_session_endpoint`), best effort."""
        async with self._lock:
            id_token = self._tokens.id_token if self._tokens else None
            refresh_token = self._refresh_token
            await self._forget()
        self._changed("signed_out")
        self._identity = None
        if refresh_token:
            try:
                await asyncio.wait_for(self._connect.revoke(refresh_token), _REQUEST_TIMEOUT_S)
            except (AuthError, TimeoutError) as exc:
                _log.info("revoking the session at the provider did not complete: %s", exc)
        url = await self._connect.end_session_url(id_token)
        if not url:
            return
        try:
            # The provider's session lives in the browser's cookies: only the browser ends it
            # (OpenID Connect RP-Initiated Logout).
            opened = await asyncio.get_running_loop().run_in_executor(
                None, self._open_browser, url)
        except Exception as exc:  # webbrowser and custom openers raise many kinds
            _log.info("could not open the browser to end the provider session: %s", exc)
        else:
            if opened is False:
                _log.info("no browser opened to end the provider session")

    async def sign_out_saved(self) -> bool:
        """End the session saved in the store without restoring it (no agent running):
        revoke it at the provider, forget it here. False when nothing was saved."""
        try:
            blob = await asyncio.to_thread(self._store.load, self.account)
            refresh_token = str(json.loads(blob)["refresh_token"]) if blob else None
        except (TokenStoreError, ValueError, KeyError, TypeError) as exc:
            _log.warning("the saved session cannot be read: %s", exc)
            refresh_token = None
        if refresh_token is None:
            return False
        async with self._lock:
            self._refresh_token = refresh_token
        await self.sign_out()
        return True

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
