"""The agent's sign-in against a certified OpenID provider nobody here wrote (panva's
`oidc-provider`, npm): discovery, PKCE, consent for a refresh token, the negotiator from
UserInfo, rotation, no rotation, no refresh token, sign-out that really ends the session."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from typing import Any

import pytest

from tapi_agent.net.auth import AuthError, InvalidGrant, ReapitConnect, Session
from tapi_agent.net.session import SessionGone
from tapi_agent.net.tokens import MemoryTokenStore
from tests.oidc_provider import (
    CLIENT_ID,
    OidcBrowser,
    OidcProvider,
    oidc_provider,
    oidc_provider_factory,
)

__all__ = ["oidc_provider", "oidc_provider_factory"]  # the fixtures, re-used


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_sign_in_refresh_and_sign_out_against_oidc_provider(oidc_provider: OidcProvider) -> None:
    store = MemoryTokenStore()
    with OidcBrowser("JAS") as browser:

        async def scenario() -> None:
            connect = ReapitConnect(oidc_provider.issuer, CLIENT_ID)
            session = Session(connect, store, open_browser=browser)
            identity = await session.sign_in(port=0, timeout_s=20)
            # the provider keeps requested claims for UserInfo (the spec's default): the
            # negotiator id and name come from there, after the ID token was verified
            assert identity.negotiator_id == "JAS"
            assert identity.name == "James Smith"
            assert identity.office_id == "OXF"
            assert session.expiry_notice is None
            saved = json.loads(store.load(session.account) or "{}")
            first_refresh = saved["refresh_token"]
            first_access = await session.access_token()

            assert await session.refresh() != first_access
            rotated = json.loads(store.load(session.account) or "{}")["refresh_token"]
            assert rotated != first_refresh  # rotation on: the new one was saved first
            with pytest.raises(InvalidGrant):
                await connect.refresh(first_refresh)  # the provider refuses a spent one
            # (that reuse made the provider revoke the grant, as rotation requires: sign in
            # again before signing out)
            await session.sign_in(port=0, timeout_s=20)
            last_refresh = json.loads(store.load(session.account) or "{}")["refresh_token"]

            await session.sign_out()
            assert store.load(session.account) is None and not session.signed_in
            with pytest.raises(InvalidGrant):
                await connect.refresh(last_refresh)  # revoked at the provider, not only here
            await connect.aclose()

        _run(scenario())
        authorize = urllib.parse.parse_qs(urllib.parse.urlsplit(browser.opened[0]).query)
        assert authorize["code_challenge_method"] == ["S256"]
        assert "offline_access" in authorize["scope"][0].split()
        # discovery lists offline_access, so OIDC Core 11 needs prompt=consent for a refresh
        assert authorize["prompt"] == ["consent"]
        assert browser.callbacks[0].status == 200 and "You are signed in" in \
            browser.callbacks[0].text
        # sign-out ended the provider session in the browser (its confirmation page)...
        assert urllib.parse.urlsplit(browser.opened[-1]).path.endswith("/session/end")
        assert browser.pages[-1].url.endswith("/session/end/success")
        # ...so a silent sign-in now needs a login
        logins = browser.logins
        loop_redirect = authorize["redirect_uri"][0]
        silent = oidc_provider.endpoint("authorization") + "?" + urllib.parse.urlencode({
            "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": loop_redirect,
            "scope": "openid", "state": "s", "prompt": "none",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256"})
        browser(silent)
        error = urllib.parse.parse_qs(urllib.parse.urlsplit(browser.last_callback.url).query)
        assert error["error"] == ["login_required"] and browser.logins == logins


def test_provider_without_rotation_keeps_the_same_refresh_token(oidc_provider_factory) -> None:
    provider = oidc_provider_factory(rotate=False)
    store = MemoryTokenStore()
    with OidcBrowser("RPT") as browser:

        async def scenario() -> None:
            connect = ReapitConnect(provider.issuer, CLIENT_ID)
            session = Session(connect, store, open_browser=browser)
            assert (await session.sign_in(port=0, timeout_s=20)).negotiator_id == "RPT"
            before = json.loads(store.load(session.account) or "{}")["refresh_token"]
            await session.refresh()
            await session.refresh()
            after = json.loads(store.load(session.account) or "{}")["refresh_token"]
            assert after == before  # kept, and it keeps working
            assert session.signed_in and session.identity is not None
            await connect.aclose()

        _run(scenario())


def test_no_refresh_token_still_signs_in_and_says_when_the_session_ends(
    oidc_provider: OidcProvider,
) -> None:
    store = MemoryTokenStore()
    now = [0.0]
    with OidcBrowser("JAS") as browser:

        async def scenario() -> None:
            # prompt off: oidc-provider then issues no refresh token for offline_access
            connect = ReapitConnect(oidc_provider.issuer, CLIENT_ID, prompt="off")
            now[0] = time.time()
            session = Session(connect, store, open_browser=browser, clock=lambda: now[0])
            assert (await session.sign_in(port=0, timeout_s=20)).negotiator_id == "JAS"
            assert session.expiry_notice is not None
            assert "sign in again in about 60 minutes" in session.expiry_notice
            assert store.load(session.account) is None  # nothing that could restore it
            assert await session.access_token()  # works while the access token lives
            now[0] += 3600  # an hour later
            with pytest.raises(SessionGone, match="no refresh token"):
                await session.access_token()
            assert not session.signed_in
            await connect.aclose()

        _run(scenario())
        authorize = urllib.parse.parse_qs(urllib.parse.urlsplit(browser.opened[0]).query)
        assert "prompt" not in authorize


def test_an_account_without_the_negotiator_claim_is_refused_naming_it(
    oidc_provider: OidcProvider,
) -> None:
    store = MemoryTokenStore()
    with OidcBrowser("nobody") as browser:

        async def scenario() -> None:
            connect = ReapitConnect(oidc_provider.issuer, CLIENT_ID)
            session = Session(connect, store, open_browser=browser)
            with pytest.raises(AuthError, match="not a Reapit negotiator") as failure:
                await session.sign_in(port=0, timeout_s=20)
            assert "'custom:reapit:userCode'" in str(failure.value)
            assert store.load(session.account) is None
            await connect.aclose()

        _run(scenario())
        assert browser.callbacks[0].status == 400
        assert "not a Reapit negotiator" in browser.callbacks[0].text


def test_negotiator_claim_setting_and_claims_in_the_id_token(oidc_provider_factory) -> None:
    provider = oidc_provider_factory(id_token_claims=True)
    with OidcBrowser("JAS") as browser:

        async def scenario() -> None:
            connect = ReapitConnect(provider.issuer, CLIENT_ID,
                                    negotiator_claim="custom:reapit:officeId")
            session = Session(connect, MemoryTokenStore(), open_browser=browser)
            identity = await session.sign_in(port=0, timeout_s=20)
            assert identity.negotiator_id == "OXF"  # the claim the setting names
            await connect.aclose()

        _run(scenario())


def test_issuer_with_a_path_on_oidc_provider(oidc_provider_factory) -> None:
    provider = oidc_provider_factory(issuer_path="/eu-west-2_demo")
    assert provider.issuer.endswith("/eu-west-2_demo")
    with OidcBrowser("JAS") as browser:

        async def scenario() -> None:
            connect = ReapitConnect(provider.issuer, CLIENT_ID)
            session = Session(connect, MemoryTokenStore(), open_browser=browser)
            assert (await session.sign_in(port=0, timeout_s=20)).negotiator_id == "JAS"
            assert (await connect.metadata()).issuer == provider.issuer
            await connect.aclose()

        _run(scenario())
