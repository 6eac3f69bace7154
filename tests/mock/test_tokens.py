"""Access-token verification and its cache: a cached token is refused as soon as a fresh
verification would refuse it (expiry, revoked session, another issuer)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tapi_agent.mock import tokens
from tapi_agent.mock.oauth import revoke_session
from tapi_agent.mock.server import MockServer
from tapi_agent.mock.state import Session
from tapi_agent.mock.tokens import TokenError, TokenIssuer
from tests.mock.conftest import Api, envelope


def _token(issuer: TokenIssuer, ttl: int = 60, negotiator_id: str | None = None) -> str:
    return issuer.access_token(client_id="demo-provider", scopes=["s"], ttl=ttl,
                               negotiator_id=negotiator_id)


def test_a_verified_token_is_refused_once_its_exp_has_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer = TokenIssuer()
    token = _token(issuer)
    claims = issuer.verify_access(token)
    assert issuer.verify_access(token) == claims  # from the cache
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: claims.expires_at))
    with pytest.raises(TokenError) as info:
        issuer.verify_access(token)
    assert info.value.expired and info.value.reason == "token expired"


def test_a_token_verified_for_one_issuer_is_refused_by_another() -> None:
    issuer = TokenIssuer("http://127.0.0.1:1111")
    token = _token(issuer)
    issuer.verify_access(token)
    issuer.issuer = "http://127.0.0.1:2222"
    with pytest.raises(TokenError):
        issuer.verify_access(token)


def test_the_cache_keeps_only_the_newest_tokens_and_still_verifies_older_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tokens, "VERIFIED_MAX", 3)
    issuer = TokenIssuer()
    minted = [_token(issuer, negotiator_id=f"N{i}") for i in range(5)]
    for token in minted:
        issuer.verify_access(token)
    assert list(issuer._verified) == minted[2:]
    assert issuer.verify_access(minted[0]).negotiator_id == "N0"


def test_an_invalid_token_is_never_remembered() -> None:
    issuer = TokenIssuer()
    with pytest.raises(TokenError):
        issuer.verify_access(_token(issuer)[:-4] + "AAAA")
    assert not issuer._verified


def test_an_expired_token_is_refused_by_post_even_after_being_accepted(
    mock_server: MockServer, api: Api, monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = mock_server.state.provider_token(ttl=60)
    assert api.post(envelope(), token=token).status_code == 202
    expires = mock_server.state.issuer.verify_access(token).expires_at
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: expires + 1))
    r = api.post(envelope(), token=token)
    assert r.status_code == 401 and "token expired" in r.json()["description"]
    assert r.headers["x-amzn-RequestId"]


def test_a_revoked_sessions_token_is_refused_even_after_being_accepted(
    mock_server: MockServer, api: Api,
) -> None:
    state = mock_server.state
    state.sessions["sid-1"] = Session("sid-1", "tapi-agent", "JAS", ("s",), None)
    token = state.mint_token("JAS", session_id="sid-1")
    assert api.get("/notifications/deferred", token=token).status_code == 200
    assert api.get("/notifications/deferred", token=token).status_code == 200
    assert revoke_session(state, "sid-1")
    r = api.get("/notifications/deferred", token=token)
    assert r.status_code == 401 and "session revoked" in r.json()["description"]
