"""Reapit Connect on the mock: authorize, PKCE code exchange, refresh rotation, logout, JWKS."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from tapi_agent.mock.server import MockServer

REDIRECT = "http://127.0.0.1:53682/callback"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
def http(mock_server: MockServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock_server.base_url, timeout=10) as client:
        yield client


def _authorize(http: httpx.Client, verifier: str, *, negotiator: str | None = "JAS",
               redirect: str = REDIRECT, **extra: str) -> httpx.Response:
    params = {"response_type": "code", "client_id": "tapi-agent", "redirect_uri": redirect,
              "scope": "openid profile offline_access", "state": "st4te",
              "code_challenge": _challenge(verifier), "code_challenge_method": "S256",
              "nonce": "n0nce", **extra}
    if negotiator:
        params["negotiator"] = negotiator
    return http.get("/oauth/authorize", params=params)


def _code(http: httpx.Client, verifier: str, **kw: Any) -> str:
    r = _authorize(http, verifier, **kw)
    assert r.status_code == 302, r.text
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["state"] == ["st4te"]
    return query["code"][0]


def _exchange(http: httpx.Client, code: str, verifier: str,
              redirect: str = REDIRECT) -> httpx.Response:
    return http.post("/oauth/token", data={
        "grant_type": "authorization_code", "client_id": "tapi-agent", "code": code,
        "redirect_uri": redirect, "code_verifier": verifier})


def _refresh(http: httpx.Client, token: str) -> httpx.Response:
    return http.post("/oauth/token", data={
        "grant_type": "refresh_token", "client_id": "tapi-agent", "refresh_token": token})


def _sign_in(http: httpx.Client) -> dict[str, Any]:
    verifier = secrets.token_urlsafe(48)
    r = _exchange(http, _code(http, verifier), verifier)
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


def test_authorize_page_lists_active_demo_negotiators(http: httpx.Client) -> None:
    r = _authorize(http, secrets.token_urlsafe(48), negotiator=None)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for name in ("James Smith", "Rachel Patel", "Tom Stevens", "Laura King", "David White"):
        assert name in r.text
    assert "Oliver Dean" not in r.text  # inactive
    assert 'name="code_challenge"' in r.text  # the buttons carry the request on


def test_auto_approve_redirects_at_once() -> None:
    with MockServer(auto_approve="RPT") as server, \
            httpx.Client(base_url=server.base_url) as http:
        verifier = secrets.token_urlsafe(48)
        code = _code(http, verifier, negotiator=None)
        tokens = _exchange(http, code, verifier).json()
        claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
        assert claims["custom:reapit:userCode"] == "RPT"


def test_pkce_code_exchange_returns_signed_tokens_with_reapit_claims(
    mock_server: MockServer, http: httpx.Client
) -> None:
    tokens = _sign_in(http)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    assert tokens["refresh_token"]
    jwks = http.get("/.well-known/jwks.json").json()
    key = jwt.PyJWK(jwks["keys"][0])
    header = jwt.get_unverified_header(tokens["id_token"])
    assert header["alg"] == "RS256" and header["kid"] == jwks["keys"][0]["kid"]
    ident = jwt.decode(tokens["id_token"], key.key, algorithms=["RS256"], audience="tapi-agent",
                       issuer=mock_server.base_url)
    assert ident["custom:reapit:userCode"] == "JAS"
    assert ident["custom:reapit:officeId"] == "OXF"
    assert ident["custom:reapit:clientCode"] == "SBOX"
    assert ident["name"] == "James Smith" and ident["email"] == "james.smith@example.com"
    assert ident["nonce"] == "n0nce"
    access = jwt.decode(tokens["access_token"], key.key, algorithms=["RS256"],
                        audience="tapi-agent")
    assert {"iss", "sub", "aud", "exp", "iat", "scope"} <= set(access)
    assert {"negotiators.read", "contacts.read"} <= set(access["scope"].split())
    # The access token works on the API and on the stream's auth.
    r = http.get("/negotiators/JAS", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert r.status_code == 200


def test_wrong_verifier_is_invalid_grant(http: httpx.Client) -> None:
    verifier = secrets.token_urlsafe(48)
    r = _exchange(http, _code(http, verifier), secrets.token_urlsafe(48))
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"
    assert "code_verifier" in r.json()["error_description"]


def test_code_is_single_use_and_reuse_revokes_what_it_gave(http: httpx.Client) -> None:
    verifier = secrets.token_urlsafe(48)
    code = _code(http, verifier)
    first = _exchange(http, code, verifier)
    assert first.status_code == 200
    again = _exchange(http, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert _refresh(http, first.json()["refresh_token"]).json()["error"] == "invalid_grant"


def test_expired_code_is_invalid_grant(mock_server: MockServer, http: httpx.Client) -> None:
    mock_server.state.code_ttl_s = -1  # codes are born expired (instead of waiting 10 minutes)
    verifier = secrets.token_urlsafe(48)
    r = _exchange(http, _code(http, verifier), verifier)
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "authorization code expired"}


def test_redirect_uri_must_match_the_authorize_request(http: httpx.Client) -> None:
    verifier = secrets.token_urlsafe(48)
    code = _code(http, verifier, redirect="http://localhost:40001/cb")
    r = _exchange(http, code, verifier, redirect="http://localhost:40002/cb")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("redirect", ["https://evil.example/cb", "http://10.0.0.1:80/cb",
                                      "http://127.0.0.1/cb", "not a url"])
def test_non_loopback_redirect_is_refused_without_redirecting(
    http: httpx.Client, redirect: str
) -> None:
    r = _authorize(http, secrets.token_urlsafe(48), redirect=redirect)
    assert r.status_code == 400 and "location" not in r.headers


def test_missing_pkce_redirects_with_invalid_request(http: httpx.Client) -> None:
    r = http.get("/oauth/authorize", params={
        "response_type": "code", "client_id": "tapi-agent", "redirect_uri": REDIRECT,
        "negotiator": "JAS", "state": "s"})
    assert r.status_code == 302
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and query["state"] == ["s"]


def test_refresh_rotates_and_reusing_an_old_token_revokes_the_session(
    mock_server: MockServer, http: httpx.Client
) -> None:
    tokens = _sign_in(http)
    first_refresh = tokens["refresh_token"]
    rotated = _refresh(http, first_refresh)
    assert rotated.status_code == 200
    second_refresh = rotated.json()["refresh_token"]
    assert second_refresh != first_refresh
    new_access = rotated.json()["access_token"]
    assert http.get("/negotiators", headers={"Authorization": f"Bearer {new_access}"}
                    ).status_code == 200
    # The old one comes back: the whole session ends, including the newest refresh token
    # and the access tokens it issued.
    reuse = _refresh(http, first_refresh)
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert _refresh(http, second_refresh).json()["error"] == "invalid_grant"
    assert http.get("/negotiators", headers={"Authorization": f"Bearer {new_access}"}
                    ).status_code == 401


def test_client_credentials_for_the_provider(http: httpx.Client) -> None:
    r = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                  auth=("demo-provider", "demo-secret"))
    assert r.status_code == 200
    scopes = set(r.json()["scope"].split())
    assert scopes == {"notifications.telephony.write", "negotiators.read", "contacts.read",
                      "journalEntries.read", "journalEntries.write"}
    bad = http.post("/oauth/token", data={"grant_type": "client_credentials",
                                          "client_id": "demo-provider", "client_secret": "nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    public = http.post("/oauth/token", data={"grant_type": "client_credentials",
                                             "client_id": "tapi-agent"})
    assert public.status_code == 400 and public.json()["error"] == "unauthorized_client"


def test_token_endpoint_errors_use_rfc_6749_bodies(http: httpx.Client) -> None:
    unknown = http.post("/oauth/token", data={"grant_type": "password", "client_id": "tapi-agent"})
    assert unknown.json()["error"] == "unsupported_grant_type"
    assert http.post("/oauth/token", data={"grant_type": "client_credentials",
                                           "client_id": "who"}).json()["error"] == "invalid_client"
    as_json = http.post("/oauth/token", json={"grant_type": "client_credentials"})
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


def test_logout_revokes_the_session_and_redirects_back(http: httpx.Client) -> None:
    tokens = _sign_in(http)
    r = http.get("/oidc/logout", params={"id_token_hint": tokens["id_token"],
                                         "post_logout_redirect_uri": "http://127.0.0.1:5000/bye",
                                         "state": "x"})
    assert r.status_code == 302
    assert r.headers["location"] == "http://127.0.0.1:5000/bye?state=x"
    assert _refresh(http, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    other = _sign_in(http)
    assert http.get("/oidc/logout", params={"refresh_token": other["refresh_token"]}
                    ).status_code == 200
    assert _refresh(http, other["refresh_token"]).json()["error"] == "invalid_grant"


def test_openid_configuration_points_at_the_endpoints(
    mock_server: MockServer, http: httpx.Client
) -> None:
    conf = http.get("/.well-known/openid-configuration").json()
    assert conf["issuer"] == mock_server.base_url
    assert conf["token_endpoint"] == mock_server.base_url + "/token"
    assert conf["authorization_endpoint"] == mock_server.base_url + "/authorize"
    assert conf["code_challenge_methods_supported"] == ["S256"]


def test_cancel_on_the_sign_in_page_redirects_with_access_denied(http: httpx.Client) -> None:
    r = _authorize(http, secrets.token_urlsafe(48), negotiator=None, deny="1")
    assert r.status_code == 302
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["st4te"]


def test_inactive_negotiator_cannot_sign_in(http: httpx.Client) -> None:
    r = _authorize(http, secrets.token_urlsafe(48), negotiator="OLD")
    assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == ["access_denied"]


def test_sign_in_page_escapes_what_it_echoes(http: httpx.Client) -> None:
    r = _authorize(http, secrets.token_urlsafe(48), negotiator=None,
                   state='"><script>alert(1)</script>')
    assert "<script>alert(1)</script>" not in r.text
    assert "&lt;script&gt;" in r.text
