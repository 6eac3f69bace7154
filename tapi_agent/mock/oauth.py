"""Reapit Connect for the mock, at Reapit's documented paths.

`GET /authorize` (a sign-in page, or `--auto-approve`), `POST /token` (PKCE S256, rotating
refresh tokens, client_credentials), `GET /oauth2/userInfo`, `GET /oidc/logout`, the keys and
OpenID discovery at `{issuer}/.well-known/...` (the issuer may have a path: `--issuer-path`).
`/oauth/authorize` and `/oauth/token` stay as aliases. The sign-in page leaves a session cookie,
as Reapit Connect does: a later authorize signs in at once, `prompt=none` without it answers
`login_required`, `prompt=login` or an exceeded `max_age` asks again; ID tokens carry
`auth_time`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from tapi_agent.mock.http import state_of
from tapi_agent.mock.seed import READ_SCOPES, Client
from tapi_agent.mock.state import AuthCode, MockState, Session
from tapi_agent.mock.tokens import TokenError

router = APIRouter(tags=["reapit connect"])

# What the Reapit Connect endpoints answer, for the OpenAPI document (and Schemathesis).
_OAUTH_ERROR = {"application/json": {"schema": {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}}}}}
_HTML = {"text/html": {"schema": {"type": "string"}}}
_REDIRECT = {"description": "Redirect to the client's redirect_uri (code or error, state, iss)",
             "headers": {"Location": {"schema": {"type": "string"}}}}
_AUTHORIZE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The sign-in page", "content": _HTML},
    302: _REDIRECT,
    400: {"description": "Unknown client or a redirect_uri that is not loopback",
          "content": _HTML},
}
_TOKEN_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Tokens", "content": {"application/json": {"schema": {
        "type": "object", "required": ["access_token", "token_type", "expires_in"],
        "properties": {"access_token": {"type": "string"}, "id_token": {"type": "string"},
                       "refresh_token": {"type": "string"}, "token_type": {"type": "string"},
                       "expires_in": {"type": "integer"}, "scope": {"type": "string"}}}}}},
    400: {"description": "An OAuth error (RFC 6749 5.2)", "content": _OAUTH_ERROR},
    401: {"description": "Client authentication failed", "content": _OAUTH_ERROR},
}
_REVOKE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Revoked (or unknown: RFC 7009 2.2)"},
    400: {"description": "No token, or not a form", "content": _OAUTH_ERROR},
    401: {"description": "Unknown client", "content": _OAUTH_ERROR},
}
_LOGOUT_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Signed out", "content": _HTML},
    302: _REDIRECT,
    400: {"description": "A post_logout_redirect_uri that is not loopback", "content": _HTML},
}
_USERINFO_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The negotiator's claims", "content": {"application/json": {
        "schema": {"type": "object", "required": ["sub"],
                   "properties": {"sub": {"type": "string"}}}}}},
    401: {"description": "No valid bearer access token", "content": _OAUTH_ERROR,
          "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
}
_DISCOVERY_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The OpenID provider metadata", "content": {"application/json": {
        "schema": {"type": "object", "required": ["issuer", "authorization_endpoint",
                                                  "token_endpoint", "jwks_uri"]}}}},
    404: {"description": "With --issuer-path, discovery is under the issuer's path",
          "content": {"application/json": {"schema": {"type": "object"}}}},
}

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
SESSION_COOKIE = "mock_connect_session"
_BROWSER_SESSIONS_MAX = 4096


def oauth_error(error: str, description: str, status: int = 400,
                headers: dict[str, str] | None = None) -> JSONResponse:
    """An RFC 6749 error body."""
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={**_NO_STORE, **(headers or {})})


def is_loopback_uri(uri: str) -> bool:
    """True for `http://127.0.0.1:<port>/...`, `http://localhost:<port>/...` (RFC 8252)."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS and port is not None


def _redirect_allowed(client: Client, uri: str) -> bool:
    # Only the loopback redirects a native app may use; the mock registers no other URIs.
    return is_loopback_uri(uri)


def _with_query(uri: str, params: dict[str, str]) -> str:
    sep = "&" if urlsplit(uri).query else "?"
    return uri + sep + urlencode(params)


def pkce_s256(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _error_page(message: str, status: int = 400) -> HTMLResponse:
    body = (f"<!doctype html><title>Sign-in error</title><h1>Sign-in error</h1>"
            f"<p>{html.escape(message)}</p>")
    return HTMLResponse(body, status_code=status)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Reapit Connect (mock) - sign in</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; color: #222; }}
h1 {{ font-size: 1.4rem; }} .who {{ display: block; width: 100%; margin: .4rem 0;
padding: .7rem 1rem; text-align: left; font-size: 1rem; border: 1px solid #ccd;
border-radius: 8px; background: #f7f8fc; cursor: pointer; }}
.who:hover {{ background: #e8ecfb; }} small {{ color: #667; }} .deny {{ margin-top: 1rem; }}
</style></head><body>
<h1>Sign in to {client}</h1><p>Pick a demo negotiator (this is the mock backend).</p>
<form method="get" action="/authorize">{hidden}{buttons}
<button class="deny" name="deny" value="1">Cancel</button></form></body></html>
"""


def _sign_in_page(state: MockState, params: dict[str, str], client: Client) -> HTMLResponse:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params.items() if k not in ("negotiator", "deny")
    )
    buttons = "".join(
        f'<button class="who" name="negotiator" value="{html.escape(n["id"])}">'
        f'{html.escape(n.get("name", n["id"]))} <small>{html.escape(n["id"])} · '
        f'{html.escape(n.get("jobTitle", ""))} · {html.escape(n.get("officeId", ""))}</small>'
        f"</button>"
        for n in state.seed.negotiators if n.get("active", True)
    )
    return HTMLResponse(_PAGE.format(client=html.escape(client.id), hidden=hidden,
                                     buttons=buttons))


def _browser_session(state: MockState, request: Request, max_age: int | None
                     ) -> tuple[str, float] | None:
    """(negotiator, auth_time) of the browser's sign-in session, if it is fresh enough."""
    sid = request.cookies.get(SESSION_COOKIE, "")
    found = state.browser_sessions.get(sid)
    if found is None:
        return None
    negotiator_id, auth_time = found
    if max_age is not None and time.time() - auth_time > max_age:
        return None
    person = state.seed.negotiator(negotiator_id)
    if person is None or not person.get("active", True):
        return None
    return found


def _max_age(params: dict[str, str]) -> int | str | None:
    raw = params.get("max_age")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        return "max_age must be a whole number of seconds"
    return value if value >= 0 else "max_age must not be negative"


@router.get("/authorize", summary="Sign-in page (Authorization Code + PKCE)",
            response_class=HTMLResponse, responses=_AUTHORIZE_ANSWERS)
@router.get("/oauth/authorize", summary="Sign-in page (alias of /authorize)",
            response_class=HTMLResponse, include_in_schema=False)
async def authorize(request: Request) -> Response:
    """Lists demo negotiators; with `--auto-approve NEG`, or a sign-in session cookie,
    redirects at once with a code. `prompt=none`: `login_required` without a session;
    `prompt=login` / `max_age`: ask again."""
    state = state_of(request)
    params = dict(request.query_params)
    client = state.seed.client(params.get("client_id", ""))
    if client is None:
        return _error_page("Unknown client_id.")
    redirect_uri = params.get("redirect_uri", "")
    if not _redirect_allowed(client, redirect_uri):
        return _error_page("redirect_uri must be a loopback URL such as "
                           "http://127.0.0.1:PORT/callback.")
    out_state = {"state": params["state"]} if "state" in params else {}
    issuer = {"iss": state.issuer.issuer}  # RFC 9207, on every answer

    def fail(error: str, description: str) -> Response:
        return RedirectResponse(
            _with_query(redirect_uri, {"error": error, "error_description": description,
                                       **out_state, **issuer}), status_code=302)

    if params.get("response_type") != "code":
        return fail("unsupported_response_type", "response_type must be code")
    challenge = params.get("code_challenge", "")
    if params.get("code_challenge_method") != "S256" or not (43 <= len(challenge) <= 128):
        return fail("invalid_request", "PKCE is required: code_challenge with method S256")
    max_age = _max_age(params)
    if isinstance(max_age, str):
        return fail("invalid_request", max_age)
    prompts = set(params.get("prompt", "").split())
    if "none" in prompts and len(prompts) > 1:
        return fail("invalid_request", "prompt=none cannot be combined with other values")
    if params.get("deny"):
        return fail("access_denied", "the user cancelled the sign-in")
    chosen = params.get("negotiator")
    now = time.time()
    session = None if "login" in prompts else _browser_session(state, request, max_age)
    if chosen:
        negotiator_id, auth_time, new_cookie = chosen, now, True
    elif session is not None:
        (negotiator_id, auth_time), new_cookie = session, False
    elif state.auto_approve and "none" not in prompts:
        negotiator_id, auth_time, new_cookie = state.auto_approve, now, True
    elif state.auto_approve and "login" not in prompts and max_age is None:
        # --auto-approve stands for a user who is always signed in
        negotiator_id, auth_time, new_cookie = state.auto_approve, now, True
    elif "none" in prompts:
        return fail("login_required", "no sign-in session; sign in without prompt=none")
    else:
        return _sign_in_page(state, params, client)
    person = state.seed.negotiator(negotiator_id)
    if person is None or not person.get("active", True):
        return fail("access_denied", f"negotiator {negotiator_id} cannot sign in")
    code = secrets.token_urlsafe(24)
    state.codes[code] = AuthCode(
        code=code, client_id=client.id, negotiator_id=negotiator_id,
        redirect_uri=redirect_uri, challenge=challenge,
        scopes=tuple(params.get("scope", "openid").split()), nonce=params.get("nonce"),
        expires_at=now + state.code_ttl_s, auth_time=auth_time,
    )
    response = RedirectResponse(_with_query(redirect_uri, {"code": code, **out_state,
                                                           **issuer}), status_code=302)
    if new_cookie:
        sid = secrets.token_urlsafe(24)
        state.browser_sessions[sid] = (negotiator_id, auth_time)
        while len(state.browser_sessions) > _BROWSER_SESSIONS_MAX:
            del state.browser_sessions[next(iter(state.browser_sessions))]
        response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="lax", path="/")
    return response


def _client_auth(request: Request, form: dict[str, str]) -> tuple[str, str | None]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return "", None
        cid, _, secret = raw.partition(":")
        return cid, secret
    return form.get("client_id", ""), form.get("client_secret")


def _negotiator_scopes(requested: tuple[str, ...], client: Client) -> list[str]:
    allowed = [s for s in requested if s in client.scopes]
    return list(dict.fromkeys([*allowed, *READ_SCOPES]))


def _session_tokens(state: MockState, session: Session, nonce: str | None = None
                    ) -> dict[str, Any]:
    person = state.seed.negotiator(session.negotiator_id) or {"id": session.negotiator_id}
    body: dict[str, Any] = {
        "access_token": state.mint_token(session.negotiator_id, scopes=list(session.scopes),
                                         session_id=session.id, client_id=session.client_id),
        "id_token": state.issuer.id_token(client_id=session.client_id, negotiator=person,
                                          ttl=state.token_ttl, session_id=session.id,
                                          nonce=nonce, customer=state.seed.customer,
                                          auth_time=session.auth_time or None),
        "expires_in": state.token_ttl,
        "token_type": "Bearer",
        "scope": " ".join(session.scopes),
    }
    if "offline_access" in session.scopes:
        refresh = secrets.token_urlsafe(32)
        session.refresh_token = refresh
        state.refresh_index[refresh] = session.id
        body["refresh_token"] = refresh
    state.save_session(session)  # --state-dir: kept before the tokens are handed out
    return body


def revoke_session(state: MockState, session_id: str) -> bool:
    """Revoke a session: its refresh tokens and its access tokens stop working."""
    session = state.sessions.get(session_id)
    if session is None:
        return False
    session.revoked = True
    session.refresh_token = None
    state.save_session(session)
    return True


def _grant_code(state: MockState, form: dict[str, str], client: Client) -> Response:
    code = state.codes.get(form.get("code", ""))
    if code is None or code.client_id != client.id:
        return oauth_error("invalid_grant", "unknown authorization code")
    if code.used:
        # RFC 6749 10.5: a replayed code revokes what it was exchanged for.
        if code.session_id:
            revoke_session(state, code.session_id)
        return oauth_error("invalid_grant", "authorization code already used")
    code.used = True
    if time.time() > code.expires_at:
        return oauth_error("invalid_grant", "authorization code expired")
    if form.get("redirect_uri") != code.redirect_uri:
        return oauth_error("invalid_grant", "redirect_uri does not match the authorize request")
    verifier = form.get("code_verifier", "")
    if not verifier:
        return oauth_error("invalid_request", "code_verifier is required (PKCE)")
    if not secrets.compare_digest(pkce_s256(verifier), code.challenge):
        return oauth_error("invalid_grant", "code_verifier does not match the code_challenge")
    session = Session(
        id=secrets.token_hex(8), client_id=client.id, negotiator_id=code.negotiator_id,
        scopes=tuple(_negotiator_scopes(code.scopes, client)), refresh_token=None,
        auth_time=code.auth_time,
    )
    state.sessions[session.id] = session
    code.session_id = session.id
    return JSONResponse(_session_tokens(state, session, code.nonce), headers=_NO_STORE)


def _grant_refresh(state: MockState, form: dict[str, str], client: Client) -> Response:
    token = form.get("refresh_token", "")
    session = state.sessions.get(state.refresh_index.get(token, ""))
    if session is None or session.client_id != client.id:
        return oauth_error("invalid_grant", "unknown refresh token")
    if session.revoked:
        return oauth_error("invalid_grant", "the session was revoked; sign in again")
    if token != session.refresh_token:
        # Rotation: an old refresh token coming back means it leaked; end the whole session.
        revoke_session(state, session.id)
        return oauth_error("invalid_grant", "refresh token already used; the session is revoked")
    session.used_refresh.add(token)
    return JSONResponse(_session_tokens(state, session), headers=_NO_STORE)


def _grant_client_credentials(state: MockState, form: dict[str, str], client: Client,
                              secret: str | None) -> Response:
    if client.secret is None:
        return oauth_error("unauthorized_client", "a public client cannot use client_credentials")
    if secret is None or not secrets.compare_digest(secret, client.secret):
        return oauth_error("invalid_client", "client authentication failed", 401,
                           {"WWW-Authenticate": 'Basic realm="reapit-connect"'})
    requested = form.get("scope", "").split()
    unknown = [s for s in requested if s not in client.scopes]
    if unknown:
        return oauth_error("invalid_scope", "not allowed for this client: " + " ".join(unknown))
    scopes = requested or list(client.scopes)
    token = state.issuer.access_token(client_id=client.id, scopes=scopes, ttl=state.token_ttl,
                                      customer=state.seed.customer)
    return JSONResponse({"access_token": token, "expires_in": state.token_ttl,
                         "token_type": "Bearer", "scope": " ".join(scopes)}, headers=_NO_STORE)


_TOKEN_FORM = {
    "required": True,
    "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object",
        "required": ["grant_type"],
        "properties": {
            "grant_type": {"type": "string", "enum": [
                "authorization_code", "refresh_token", "client_credentials"]},
            "client_id": {"type": "string"}, "client_secret": {"type": "string"},
            "code": {"type": "string"}, "redirect_uri": {"type": "string"},
            "code_verifier": {"type": "string"}, "refresh_token": {"type": "string"},
            "scope": {"type": "string"},
        },
    }}},
}


async def _read_form(request: Request) -> dict[str, str] | Response:
    """The form of an OAuth POST, or the error answer for a body that is not one."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return oauth_error("invalid_request", "the body must be application/x-www-form-urlencoded")
    try:
        return dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return oauth_error("invalid_request", "the body is not UTF-8")


@router.post("/token", summary="Token endpoint (form-encoded)",
             openapi_extra={"requestBody": _TOKEN_FORM}, responses=_TOKEN_ANSWERS)
@router.post("/oauth/token", summary="Token endpoint (alias of /token)",
             openapi_extra={"requestBody": _TOKEN_FORM}, include_in_schema=False)
async def token(request: Request) -> Response:
    """authorization_code (+PKCE S256), refresh_token (rotating), client_credentials."""
    state = state_of(request)
    form = await _read_form(request)
    if isinstance(form, Response):
        return form
    client_id, secret = _client_auth(request, form)
    client = state.seed.client(client_id)
    if client is None:
        return oauth_error("invalid_client", "unknown client", 401)
    grant = form.get("grant_type", "")
    if grant == "authorization_code":
        return _grant_code(state, form, client)
    if grant == "refresh_token":
        return _grant_refresh(state, form, client)
    if grant == "client_credentials":
        return _grant_client_credentials(state, form, client, secret)
    return oauth_error("unsupported_grant_type", f"unsupported grant_type {grant!r}")


_REVOKE_FORM = {
    "required": True,
    "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": ["token"],
        "properties": {"token": {"type": "string"}, "token_type_hint": {"type": "string"},
                       "client_id": {"type": "string"}},
    }}},
}


@router.post("/oauth2/revoke", summary="Revoke a refresh token (RFC 7009)",
             openapi_extra={"requestBody": _REVOKE_FORM}, responses=_REVOKE_ANSWERS)
async def revoke(request: Request) -> Response:
    """Revoke the session of a refresh token (as Reapit Connect's Cognito `/oauth2/revoke`).
    An unknown token is 200 too (RFC 7009 2.2: nothing to tell an attacker)."""
    mock = state_of(request)
    form = await _read_form(request)
    if isinstance(form, Response):
        return form
    client_id, _ = _client_auth(request, form)
    if mock.seed.client(client_id) is None:
        return oauth_error("invalid_client", "unknown client", 401)
    if not form.get("token"):
        return oauth_error("invalid_request", "token is required")
    session_id = mock.refresh_index.get(form["token"])
    session = mock.sessions.get(session_id or "")
    if session is not None and session.client_id == client_id:
        revoke_session(mock, session.id)
    return Response(status_code=200, headers=_NO_STORE)


@router.get("/oidc/logout", summary="End the session", response_class=HTMLResponse,
            responses=_LOGOUT_ANSWERS)
async def logout(
    request: Request,
    id_token_hint: str | None = None,
    refresh_token: str | None = None,
    post_logout_redirect_uri: str | None = None,
    state: str | None = None,
) -> Response:
    """Revoke the session of the refresh token or ID token; redirect back if asked to."""
    mock = state_of(request)
    session_id: str | None = None
    if refresh_token:
        session_id = mock.refresh_index.get(refresh_token)
    if session_id is None and id_token_hint:
        try:
            session_id = mock.issuer.decode(id_token_hint, use="id", verify_exp=False).get("sid")
        except TokenError:
            session_id = None
    revoked = revoke_session(mock, session_id) if session_id else False
    # The browser's sign-in session ends too: the next authorize asks again.
    browser = mock.browser_sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
    response: Response
    if post_logout_redirect_uri:
        if not is_loopback_uri(post_logout_redirect_uri):
            return _error_page("post_logout_redirect_uri must be a loopback URL.")
        extra = {"state": state} if state else {}
        response = RedirectResponse(_with_query(post_logout_redirect_uri, extra) if extra
                                    else post_logout_redirect_uri, status_code=302)
    else:
        text = ("You are signed out." if revoked or browser is not None
                else "No session to sign out of.")
        response = HTMLResponse(f"<!doctype html><title>Signed out</title><p>{text}</p>")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/oauth2/userInfo", summary="UserInfo (claims of the signed-in negotiator)",
            responses=_USERINFO_ANSWERS)
async def userinfo(request: Request) -> Response:
    """The negotiator's claims for a bearer access token (OpenID Connect Core 5.3)."""
    mock = state_of(request)
    header = request.headers.get("authorization", "")
    challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    if not header.lower().startswith("bearer "):
        return oauth_error("invalid_token", "a bearer access token is required", 401,
                           {"WWW-Authenticate": "Bearer"})
    try:
        claims = mock.verify(header[7:].strip())
    except TokenError as exc:
        return oauth_error("invalid_token", exc.reason, 401, challenge)
    if not claims.negotiator_id:
        return oauth_error("invalid_token", "not a negotiator's token", 401, challenge)
    person = mock.seed.negotiator(claims.negotiator_id) or {"id": claims.negotiator_id}
    body = {
        "sub": claims.negotiator_id,
        "custom:reapit:userCode": claims.negotiator_id,
        "custom:reapit:clientCode": mock.seed.customer,
        "custom:reapit:officeId": person.get("officeId", ""),
        "name": person.get("name", ""),
        "email": person.get("email", ""),
    }
    return JSONResponse({k: v for k, v in body.items() if v}, headers=_NO_STORE)


def _issuer_prefix(request: Request, prefix: str) -> bool:
    """True when `/{prefix}/.well-known/...` is under this mock's issuer path."""
    return "/" + prefix.strip("/") == state_of(request).issuer_path


@router.get("/.well-known/jwks.json", summary="Signing keys")
async def jwks(request: Request) -> dict[str, Any]:
    """The RS256 public key, with its `kid`."""
    return state_of(request).issuer.jwks()


@router.get("/.well-known/openid-configuration", summary="OIDC discovery",
            responses=_DISCOVERY_ANSWERS)
async def openid_configuration(request: Request) -> Response:
    """Where the endpoints are, for clients that discover them (here when the issuer has no
    path; with `--issuer-path` only under it, as a provider publishes it)."""
    mock = state_of(request)
    if mock.issuer_path:
        return JSONResponse({"error": "not_found", "description":
                             f"discovery is at {mock.issuer.issuer}/.well-known/"
                             "openid-configuration"}, status_code=404)
    return JSONResponse(_discovery(mock))


@router.get("/{prefix:path}/.well-known/openid-configuration", include_in_schema=False)
async def openid_configuration_under_issuer(request: Request, prefix: str) -> Response:
    """Discovery under `--issuer-path` (an issuer such as Reapit Connect's has a path)."""
    if not _issuer_prefix(request, prefix):
        return JSONResponse({"error": "not_found"}, status_code=404)
    return JSONResponse(_discovery(state_of(request)))


@router.get("/{prefix:path}/.well-known/jwks.json", include_in_schema=False)
async def jwks_under_issuer(request: Request, prefix: str) -> Response:
    """The keys under `--issuer-path`, where Reapit documents them (`{issuer}/.well-known/...`)."""
    if not _issuer_prefix(request, prefix):
        return JSONResponse({"error": "not_found"}, status_code=404)
    return JSONResponse(state_of(request).issuer.jwks())


def _discovery(mock: MockState) -> dict[str, Any]:
    issuer = mock.issuer.issuer
    base = issuer[: len(issuer) - len(mock.issuer_path)] if mock.issuer_path else issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "userinfo_endpoint": f"{base}/oauth2/userInfo",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "end_session_endpoint": f"{base}/oidc/logout",
        "revocation_endpoint": f"{base}/oauth2/revoke",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                  "none"],
        "scopes_supported": sorted({"openid", "profile", "email", "offline_access",
                                    *(s for c in mock.seed.clients for s in c.scopes)}),
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": True,
        "claims_supported": ["sub", "name", "email", "auth_time", "nonce",
                             "custom:reapit:userCode", "custom:reapit:clientCode",
                             "custom:reapit:officeId"],
    }
