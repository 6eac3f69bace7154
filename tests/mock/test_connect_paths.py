"""The mock as Reapit Connect is documented: its paths, an issuer with a path, UserInfo,
the sign-in session (`prompt=none`, `prompt=login`, `max_age` -> `auth_time`), RFC 9207 `iss`."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from tapi_agent.mock.server import MockServer
from tests.mock.test_oauth import REDIRECT, _challenge

POOL = "/eu-west-2_demo"


@pytest.fixture
def pooled() -> Iterator[MockServer]:
    with MockServer(issuer_path=POOL) as server:
        yield server


def _authorize(http: httpx.Client, verifier: str, **extra: str) -> httpx.Response:
    params = {"response_type": "code", "client_id": "tapi-agent", "redirect_uri": REDIRECT,
              "scope": "openid profile offline_access", "state": "st4te",
              "code_challenge": _challenge(verifier), "code_challenge_method": "S256",
              "nonce": "n0nce", **extra}
    return http.get("/authorize", params=params)


def _query(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


def _tokens(http: httpx.Client, code: str, verifier: str) -> dict[str, Any]:
    r = http.post("/token", data={"grant_type": "authorization_code", "client_id": "tapi-agent",
                                  "code": code, "redirect_uri": REDIRECT,
                                  "code_verifier": verifier})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_reapit_paths_sign_in_and_the_old_paths_still_answer(mock_server: MockServer) -> None:
    with httpx.Client(base_url=mock_server.base_url) as http:
        verifier = secrets.token_urlsafe(48)
        query = _query(_authorize(http, verifier, negotiator="JAS"))
        assert query["iss"] == mock_server.base_url  # RFC 9207
        tokens = _tokens(http, query["code"], verifier)
        info = http.get("/oauth2/userInfo",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert info.status_code == 200
        assert info.json()["custom:reapit:userCode"] == "JAS"
        assert info.json()["sub"] == "JAS" and info.json()["name"] == "James Smith"
    with httpx.Client(base_url=mock_server.base_url) as http:  # aliases, no cookie
        verifier = secrets.token_urlsafe(48)
        r = http.get("/oauth/authorize", params={
            "response_type": "code", "client_id": "tapi-agent", "redirect_uri": REDIRECT,
            "scope": "openid", "state": "s", "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256", "negotiator": "RPT"})
        code = _query(r)["code"]
        r = http.post("/oauth/token", data={"grant_type": "authorization_code",
                                            "client_id": "tapi-agent", "code": code,
                                            "redirect_uri": REDIRECT, "code_verifier": verifier})
        assert r.status_code == 200


def test_userinfo_refuses_a_missing_or_forged_token(mock_server: MockServer) -> None:
    with httpx.Client(base_url=mock_server.base_url) as http:
        r = http.get("/oauth2/userInfo")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        r = http.get("/oauth2/userInfo", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"


def test_issuer_path_puts_issuer_discovery_and_keys_under_it(pooled: MockServer) -> None:
    base = pooled.base_url
    with httpx.Client(base_url=base) as http:
        assert http.get("/.well-known/openid-configuration").status_code == 404
        assert http.get("/other_pool/.well-known/openid-configuration").status_code == 404
        conf = http.get(f"{POOL}/.well-known/openid-configuration").json()
        assert conf["issuer"] == base + POOL
        assert conf["authorization_endpoint"] == base + "/authorize"  # endpoints at the root
        assert conf["token_endpoint"] == base + "/token"
        assert conf["userinfo_endpoint"] == base + "/oauth2/userInfo"
        assert conf["jwks_uri"] == base + POOL + "/.well-known/jwks.json"
        keys = http.get(conf["jwks_uri"]).json()
        verifier = secrets.token_urlsafe(48)
        query = _query(_authorize(http, verifier, negotiator="JAS"))
        assert query["iss"] == base + POOL
        id_token = _tokens(http, query["code"], verifier)["id_token"]
    key = jwt.PyJWK(keys["keys"][0])
    claims = jwt.decode(id_token, key.key, algorithms=["RS256"], audience="tapi-agent",
                        issuer=base + POOL)
    assert claims["custom:reapit:userCode"] == "JAS"


def test_prompt_none_needs_a_sign_in_session_and_logout_ends_it(mock_server: MockServer) -> None:
    with httpx.Client(base_url=mock_server.base_url) as browser:
        verifier = secrets.token_urlsafe(48)
        refused = _query(_authorize(browser, verifier, prompt="none"))
        assert refused["error"] == "login_required" and refused["state"] == "st4te"
        signed = _query(_authorize(browser, verifier, negotiator="RPT"))  # the page, then...
        assert "code" in signed
        silent = _query(_authorize(browser, verifier, prompt="none"))  # ...single sign-on
        tokens = _tokens(browser, silent["code"], verifier)
        assert jwt.decode(tokens["id_token"], options={"verify_signature": False}
                          )["custom:reapit:userCode"] == "RPT"
        # without prompt the session signs in at once too (Reapit: "automatically skipped")
        assert "code" in _query(_authorize(browser, verifier))
        # prompt=login asks again: the page, not a redirect
        assert _authorize(browser, verifier, prompt="login").status_code == 200
        browser.get("/oidc/logout", params={"id_token_hint": tokens["id_token"]})
        after = _query(_authorize(browser, verifier, prompt="none"))
        assert after["error"] == "login_required"


def test_max_age_yields_auth_time_and_an_old_session_asks_again(mock_server: MockServer) -> None:
    with httpx.Client(base_url=mock_server.base_url) as browser:
        verifier = secrets.token_urlsafe(48)
        before = int(time.time())
        code = _query(_authorize(browser, verifier, negotiator="JAS", max_age="300"))["code"]
        claims = jwt.decode(_tokens(browser, code, verifier)["id_token"],
                            options={"verify_signature": False})
        assert before - 1 <= claims["auth_time"] <= int(time.time()) + 1
        sid = browser.cookies["mock_connect_session"]
        negotiator, _ = mock_server.state.browser_sessions[sid]
        mock_server.state.browser_sessions[sid] = (negotiator, time.time() - 3600)  # an hour ago
        assert _authorize(browser, verifier, max_age="300").status_code == 200  # asks again
        stale = _query(_authorize(browser, verifier, max_age="300", prompt="none"))
        assert stale["error"] == "login_required"
        fresh = _query(_authorize(browser, verifier, max_age="7200", prompt="none"))
        assert "code" in fresh
        bad = _query(_authorize(browser, verifier, max_age="soon", prompt="none"))
        assert bad["error"] == "invalid_request"


def test_cli_serve_takes_issuer_path() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tapi_agent.mock.cli", "serve", "--port", "0",
         "--issuer-path", POOL], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "listening on" in first, first
        base = first.split("listening on ", 1)[1].split()[0]
        lines = [proc.stdout.readline() for _ in range(4)]
        assert any(f"issuer:  {base}{POOL}" in line for line in lines), lines
        conf = httpx.get(f"{base}{POOL}/.well-known/openid-configuration").json()
        assert conf["issuer"] == base + POOL
    finally:
        proc.terminate()
        proc.wait(10)
    bad = subprocess.run(
        [sys.executable, "-m", "tapi_agent.mock.cli", "serve", "--port", "0",
         "--issuer-path", "no-slash"], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "issuer_path" in bad.stderr


def test_revocation_ends_the_session_of_a_refresh_token(mock_server: MockServer) -> None:
    with httpx.Client(base_url=mock_server.base_url) as http:
        conf = http.get("/.well-known/openid-configuration").json()
        assert conf["revocation_endpoint"] == mock_server.base_url + "/oauth2/revoke"
        verifier = secrets.token_urlsafe(48)
        tokens = _tokens(http, _query(_authorize(http, verifier, negotiator="JAS"))["code"],
                         verifier)
        form = {"token": tokens["refresh_token"], "token_type_hint": "refresh_token",
                "client_id": "tapi-agent"}
        assert http.post("/oauth2/revoke", data=form).status_code == 200
        again = http.post("/token", data={"grant_type": "refresh_token",
                                          "client_id": "tapi-agent",
                                          "refresh_token": tokens["refresh_token"]})
        assert again.json()["error"] == "invalid_grant"
        assert http.post("/oauth2/revoke", data={**form, "token": "unknown"}).status_code == 200
        assert http.post("/oauth2/revoke", data={**form, "client_id": "nobody"}
                         ).status_code == 401
        assert http.post("/oauth2/revoke", data={"client_id": "tapi-agent"}).status_code == 400
