"""The OpenID test harness itself, proven with plain httpx (no agent code).

oidc-provider (tests/oidc/provider.mjs, a certified OpenID provider) runs on a free loopback
port; `OidcBrowser` signs in on its built-in pages and lands on a loopback listener started
here on port 0, the way the agent's sign-in does. These tests also pin down how that provider
behaves where the specifications leave room (prompt=consent for offline_access, refresh token
rotation, logout), so the agent's own tests can rely on it. Details: tests/oidc/README.md.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import secrets
import shlex
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest

from tests.oidc_provider import (
    CLIENT_ID,
    OIDC_DIR,
    OidcBrowser,
    OidcProvider,
)

BROWSER_SCRIPT = OIDC_DIR / "browser.py"
SCOPE = "openid profile email offline_access"
USER_CODE = "custom:reapit:userCode"
# every non-default option in one provider: each node start costs ~0.5-1 s here
VARIANT = {"issuer_path": "/eu-west-2_demo", "rotate": False, "id_token_claims": True,
           "access_ttl": 120}


class Loopback:
    """A one-page HTTP listener on 127.0.0.1 port 0: the app's side of the redirect."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                body = b"signed in, you can close this window"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.redirect_uri = f"http://127.0.0.1:{self.port}/callback"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    listener = Loopback()
    try:
        yield listener
    finally:
        listener.close()


@dataclass
class Request:
    """One authorization request: its PKCE verifier, state and nonce, and its URL."""

    url: str
    verifier: str
    state: str
    nonce: str
    redirect_uri: str
    params: dict[str, str] = field(default_factory=dict)


def authorize_request(
    provider: OidcProvider, redirect_uri: str, *, scope: str = SCOPE,
    prompt: str | None = "consent", pkce: bool = True, **extra: str,
) -> Request:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": redirect_uri,
        "scope": scope, "state": secrets.token_urlsafe(16), "nonce": secrets.token_urlsafe(16),
    }
    if pkce:
        params |= {"code_challenge": challenge.rstrip(b"=").decode(),
                   "code_challenge_method": "S256"}
    if prompt is not None:
        params["prompt"] = prompt
    params |= extra
    url = f"{provider.endpoint('authorization')}?{urllib.parse.urlencode(params)}"
    return Request(url, verifier, params["state"], params["nonce"], redirect_uri, params)


def token(provider: OidcProvider, **form: str) -> httpx.Response:
    return provider.http.post(provider.endpoint("token"), data={"client_id": CLIENT_ID, **form})


def exchange(provider: OidcProvider, req: Request, code: str) -> httpx.Response:
    return token(provider, grant_type="authorization_code", code=code,
                 redirect_uri=req.redirect_uri, code_verifier=req.verifier)


def sign_in(
    provider: OidcProvider, browser: OidcBrowser, loopback: Loopback, **kwargs: Any
) -> tuple[Request, dict[str, Any]]:
    """Authorize through the browser to the loopback listener, then exchange the code."""
    req = authorize_request(provider, loopback.redirect_uri, **kwargs)
    assert browser(req.url) is True
    params = browser.last_callback.params
    assert params.get("state") == req.state, params
    assert "code" in params, params
    resp = exchange(provider, req, params["code"])
    assert resp.status_code == 200, resp.text
    return req, resp.json()


def id_token_claims(provider: OidcProvider, id_token: str, nonce: str | None) -> dict[str, Any]:
    """The ID token's claims, after checking its signature against the JWKS, iss, aud, exp."""
    jwks = jwt.PyJWKSet.from_dict(provider.http.get(provider.discovery()["jwks_uri"]).json())
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    claims: dict[str, Any] = jwt.decode(
        id_token, key, algorithms=["RS256"], audience=CLIENT_ID, issuer=provider.issuer,
    )
    if nonce is not None:
        assert claims["nonce"] == nonce
    return claims


def userinfo(provider: OidcProvider, access_token: str) -> httpx.Response:
    return provider.http.get(provider.endpoint("userinfo"),
                             headers={"Authorization": f"Bearer {access_token}"})


# --- discovery -----------------------------------------------------------------------------


def test_discovery_document_gives_the_endpoints_and_what_the_agent_asks_for(oidc_provider):
    doc = oidc_provider.discovery()
    issuer = oidc_provider.issuer
    assert doc["issuer"] == issuer
    for name, path in [("authorization_endpoint", "/auth"), ("token_endpoint", "/token"),
                       ("userinfo_endpoint", "/me"), ("end_session_endpoint", "/session/end"),
                       ("jwks_uri", "/jwks"), ("revocation_endpoint", "/token/revocation")]:
        assert doc[name] == issuer + path, name
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "none" in doc["token_endpoint_auth_methods_supported"]
    assert {"openid", "profile", "email", "offline_access"} <= set(doc["scopes_supported"])
    assert {"sub", "name", "email", USER_CODE, "custom:reapit:officeId"} <= set(
        doc["claims_supported"])
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token"]
    # RFC 9207: the authorization response carries `iss`
    assert doc["authorization_response_iss_parameter_supported"] is True
    # oidc-provider does not publish prompt_values_supported: a client cannot learn from
    # discovery that prompt=consent is understood; it has to send it (OIDC Core 11)
    assert "prompt_values_supported" not in doc


def test_an_issuer_with_a_path_serves_discovery_and_sign_in_under_that_path(
    oidc_provider_factory, loopback
):
    provider = oidc_provider_factory(**VARIANT)
    assert provider.issuer == f"{provider.origin}/eu-west-2_demo"
    doc = provider.discovery()
    assert doc["issuer"] == provider.issuer
    assert doc["token_endpoint"] == f"{provider.issuer}/token"
    # discovery lives under the issuer's path (OIDC Discovery 4), not at the host's root
    root = provider.http.get(f"{provider.origin}/.well-known/openid-configuration")
    assert root.status_code == 404
    with OidcBrowser("JAS") as browser:
        req, tokens = sign_in(provider, browser, loopback)
    assert browser.last_callback.params["iss"] == provider.issuer
    assert id_token_claims(provider, tokens["id_token"], req.nonce)["iss"] == provider.issuer


# --- authorization code + PKCE --------------------------------------------------------------


def test_code_flow_with_pkce_through_the_browser_to_a_loopback_listener(oidc_provider, loopback):
    with OidcBrowser("JAS") as browser:
        req, tokens = sign_in(oidc_provider, browser, loopback)
        # the browser filled the login page, then the consent page, then reached the app once
        assert [p.action for p in browser.pages] == ["login", "consent"]
        assert browser.logins == 1
        assert len(browser.callbacks) == 1 and browser.last_callback.status == 200
    assert len(loopback.requests) == 1 and loopback.requests[0].startswith("/callback?")
    params = browser.last_callback.params
    assert params["iss"] == oidc_provider.issuer
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    assert set(tokens["scope"].split()) == {"openid", "profile", "email", "offline_access"}
    assert tokens["refresh_token"]
    claims = id_token_claims(oidc_provider, tokens["id_token"], req.nonce)
    assert claims["aud"] == CLIENT_ID
    # the subject is not the negotiator id, and by default (OIDC Core 5.4 for the code flow)
    # the profile claims are not in the ID token: they come from UserInfo
    assert claims["sub"] != "JAS"
    assert USER_CODE not in claims and "name" not in claims
    info = userinfo(oidc_provider, tokens["access_token"])
    assert info.status_code == 200
    assert info.json() == {
        "sub": claims["sub"], USER_CODE: "JAS", "custom:reapit:officeId": "OXF",
        "name": "James Smith", "email": "jas@example.com", "email_verified": True,
    }
    # codes are single use
    again = exchange(oidc_provider, req, params["code"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_the_code_is_refused_without_the_right_verifier(oidc_provider, loopback):
    with OidcBrowser("JAS") as browser:
        req = authorize_request(oidc_provider, loopback.redirect_uri)
        browser(req.url)
    code = browser.last_callback.params["code"]
    resp = token(oidc_provider, grant_type="authorization_code", code=code,
                 redirect_uri=req.redirect_uri, code_verifier=secrets.token_urlsafe(48))
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


def test_pkce_is_required_for_the_public_client(oidc_provider, loopback):
    with OidcBrowser("JAS") as browser:
        browser(authorize_request(oidc_provider, loopback.redirect_uri, pkce=False).url)
    params = browser.last_callback.params
    assert params["error"] == "invalid_request"
    assert "PKCE" in params["error_description"]
    assert browser.logins == 0


def test_any_loopback_port_is_accepted_but_not_another_path_or_host_name(oidc_provider, loopback):
    # the listener's port 0 pick is accepted (RFC 8252 7.3), also in a later request
    other = Loopback()
    try:
        with OidcBrowser("JAS") as browser:
            sign_in(oidc_provider, browser, loopback)
            sign_in(oidc_provider, browser, other)
        assert len(loopback.requests) == 1 and len(other.requests) == 1
    finally:
        other.close()
    for wrong in (f"http://127.0.0.1:{loopback.port}/elsewhere",
                  f"http://localhost:{loopback.port}/callback"):
        with OidcBrowser("JAS") as browser:
            browser(authorize_request(oidc_provider, wrong).url)
        # not redirected anywhere: the provider shows its error page
        assert browser.callbacks == []
        assert browser.pages[-1].status == 400
        assert browser.pages[-1].text.startswith("invalid_redirect_uri: redirect_uri did not match")
    assert len(loopback.requests) == 1


def test_cancelling_the_consent_page_redirects_access_denied(oidc_provider, loopback):
    with OidcBrowser("JAS", consent=False) as browser:
        browser(authorize_request(oidc_provider, loopback.redirect_uri).url)
    assert [p.action for p in browser.pages] == ["login", "abort"]
    assert browser.last_callback.params["error"] == "access_denied"


# --- refresh tokens -------------------------------------------------------------------------


def test_offline_access_without_prompt_consent_gives_no_refresh_token(oidc_provider, loopback):
    with OidcBrowser("JAS") as browser:
        for prompt in (None, "login"):
            _, tokens = sign_in(oidc_provider, browser, loopback, prompt=prompt)
            # oidc-provider drops offline_access from the request (OIDC Core 11)
            assert "refresh_token" not in tokens, prompt
            assert "offline_access" not in tokens["scope"].split()
        _, tokens = sign_in(oidc_provider, browser, loopback, prompt="consent")
        assert tokens["refresh_token"]


def test_refresh_tokens_rotate_and_an_old_one_is_refused(oidc_provider, loopback):
    with OidcBrowser("JAS") as browser:
        req, tokens = sign_in(oidc_provider, browser, loopback)
    first = tokens["refresh_token"]
    resp = token(oidc_provider, grant_type="refresh_token", refresh_token=first)
    assert resp.status_code == 200, resp.text
    refreshed = resp.json()
    second = refreshed["refresh_token"]
    assert second != first
    assert refreshed["access_token"] != tokens["access_token"]
    assert userinfo(oidc_provider, refreshed["access_token"]).json()[USER_CODE] == "JAS"
    # the refresh response carries a new ID token for the same subject, with the sign-in's
    # nonce again (OIDC Core 12.2 leaves that open: a client must not demand a fresh one)
    again = id_token_claims(oidc_provider, refreshed["id_token"], req.nonce)
    assert again["sub"] == id_token_claims(oidc_provider, tokens["id_token"], req.nonce)["sub"]
    reused = token(oidc_provider, grant_type="refresh_token", refresh_token=first)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # reuse of a rotated token revokes the whole grant: the new one is gone too
    after = token(oidc_provider, grant_type="refresh_token", refresh_token=second)
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"


def test_without_rotation_the_same_refresh_token_keeps_working(oidc_provider_factory, loopback):
    provider = oidc_provider_factory(**VARIANT)
    with OidcBrowser("JAS") as browser:
        _, tokens = sign_in(provider, browser, loopback)
    assert tokens["expires_in"] == 120
    for _ in range(2):
        resp = token(provider, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
        assert resp.status_code == 200, resp.text
        assert resp.json()["refresh_token"] == tokens["refresh_token"]


def test_a_revoked_refresh_token_is_refused(oidc_provider, loopback):
    with OidcBrowser("JAS") as browser:
        _, tokens = sign_in(oidc_provider, browser, loopback)
    resp = oidc_provider.http.post(oidc_provider.endpoint("revocation"),
                                   data={"client_id": CLIENT_ID, "token": tokens["refresh_token"],
                                         "token_type_hint": "refresh_token"})
    assert resp.status_code == 200
    refused = token(oidc_provider, grant_type="refresh_token",
                    refresh_token=tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


# --- claims ---------------------------------------------------------------------------------


def test_userinfo_has_no_negotiator_id_for_a_user_without_one(oidc_provider, loopback):
    with OidcBrowser("nobody") as browser:
        req, tokens = sign_in(oidc_provider, browser, loopback)
    info = userinfo(oidc_provider, tokens["access_token"]).json()
    assert USER_CODE not in info
    assert info["sub"] == id_token_claims(oidc_provider, tokens["id_token"], req.nonce)["sub"]
    assert info["email"] == "nobody@example.com"
    with OidcBrowser("RPT") as browser:
        _, tokens = sign_in(oidc_provider, browser, loopback)
    assert userinfo(oidc_provider, tokens["access_token"]).json()[USER_CODE] == "RPT"


def test_id_token_claims_option_puts_the_negotiator_id_in_the_id_token(
    oidc_provider_factory, loopback
):
    provider = oidc_provider_factory(**VARIANT)
    with OidcBrowser("JAS") as browser:
        req, tokens = sign_in(provider, browser, loopback)
    claims = id_token_claims(provider, tokens["id_token"], req.nonce)
    assert claims[USER_CODE] == "JAS" and claims["name"] == "James Smith"


# --- the provider session and logout --------------------------------------------------------


def test_end_session_ends_the_provider_session(oidc_provider, loopback):
    with OidcBrowser("JAS") as browser:
        _, tokens = sign_in(oidc_provider, browser, loopback)
        # while the provider session lives, prompt=none gets past the login check but not
        # consent: oidc-provider asks a native client's user to confirm every authorization
        browser(authorize_request(oidc_provider, loopback.redirect_uri, prompt="none").url)
        assert browser.last_callback.params["error"] == "interaction_required"
        assert "native clients" in browser.last_callback.params["error_description"]
        # and an interactive sign-in shows the consent page only, no login page
        sign_in(oidc_provider, browser, loopback)
        assert browser.logins == 1 and browser.pages[-1].action == "consent"

        end = oidc_provider.endpoint("end_session") + "?" + urllib.parse.urlencode(
            {"id_token_hint": tokens["id_token"], "client_id": CLIENT_ID})
        browser(end)
        assert browser.pages[-2].action == "logout"
        assert browser.pages[-1].url.endswith("/session/end/success")
        assert len(loopback.requests) == 3  # the post-logout success page is the provider's

        browser(authorize_request(oidc_provider, loopback.redirect_uri, prompt="none").url)
        assert browser.last_callback.params["error"] == "login_required"
        assert browser.logins == 1
    # the offline_access grant outlives the provider session (OIDC Core 11): the refresh token
    # still works after logout, so a client that signs out must revoke it itself
    resp = token(oidc_provider, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert resp.status_code == 200, resp.text


# --- the browser as a command for $BROWSER --------------------------------------------------


def test_browser_command_signs_in_through_webbrowser_and_signs_out(
    oidc_provider, loopback, tmp_path
):
    jar, record = tmp_path / "cookies.txt", tmp_path / "browser.jsonl"
    command = [sys.executable, str(BROWSER_SCRIPT), "--login", "RPT", "--cookie-jar", str(jar),
               "--record", str(record)]
    env = dict(os.environ, BROWSER=shlex.join(command) + " %s")
    req = authorize_request(oidc_provider, loopback.redirect_uri)
    # the way the agent opens it: Python's webbrowser runs $BROWSER and waits for it
    opened = subprocess.run(
        [sys.executable, "-c", "import sys, webbrowser; sys.exit(not webbrowser.open(sys.argv[1]))",
         req.url], env=env, timeout=60, capture_output=True, text=True,
    )
    assert opened.returncode == 0, opened.stderr
    assert len(loopback.requests) == 1
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loopback.requests[0]).query))["code"]
    tokens = exchange(oidc_provider, req, code).json()
    assert userinfo(oidc_provider, tokens["access_token"]).json()[USER_CODE] == "RPT"

    # later windows share the cookie jar: sign out, then a silent authorize needs a login
    end = oidc_provider.endpoint("end_session") + "?" + urllib.parse.urlencode(
        {"id_token_hint": tokens["id_token"]})
    silent = authorize_request(oidc_provider, loopback.redirect_uri, prompt="none")
    for url in (end, silent.url):
        done = subprocess.run([*command, url], timeout=60, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    assert [[p["action"] for p in run["pages"]] for run in runs] == [
        ["login", "consent"], ["logout", "shown"], []]
    assert runs[2]["callbacks"][0]["params"]["error"] == "login_required"
    assert len(loopback.requests) == 2
