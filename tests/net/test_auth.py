"""Reapit Connect sign-in and Session against the real mock: PKCE, state, rotation, sign-out."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import json
import logging
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapi_agent.core.log import EVENTS_LOGGER
from tapi_agent.mock.server import MockServer
from tapi_agent.net.api import ApiClient
from tapi_agent.net.auth import (
    AuthError,
    Identity,
    InvalidGrant,
    ReapitConnect,
    Session,
    TokenSet,
    pkce_pair,
    sign_in,
)
from tapi_agent.net.session import SessionGone
from tapi_agent.net.tokens import MemoryTokenStore, TokenStore
from tests.helpers import events
from tests.net.test_tokens import WindowsLikeKeyring


class Browser:
    """Plays the system browser: follows the authorize URL to the loopback redirect.

    Like `$BROWSER` or xdg-open under `webbrowser`, it runs in the thread `sign_in` calls it in
    and blocks there until its pages are read.
    """

    def __init__(self, tamper: Callable[[str], str] | None = None, favicon: bool = False,
                 then_genuine: bool = False) -> None:
        self.tamper = tamper
        self.favicon = favicon
        self.then_genuine = then_genuine  # after the tampered reply, deliver the real one
        self.opened: list[str] = []
        self.pages: list[httpx.Response] = []
        self.redirects: list[str] = []

    def __call__(self, url: str) -> bool:
        self.opened.append(url)
        self._visit(url)
        return True

    async def finished(self) -> None:
        """Every page was read before the opener returned; kept for the tests' readability."""

    def _visit(self, url: str) -> None:
        with httpx.Client() as client:
            answer = client.get(url)
            if answer.status_code != 302:  # a page, such as the provider's "signed out"
                self.pages.append(answer)
                return

            location = answer.headers["location"]
            self.redirects.append(location)
            if self.favicon:
                icon = urlunsplit(urlsplit(location)._replace(path="/favicon.ico", query=""))
                self.pages.append(client.get(icon))
            if self.tamper:
                self.pages.append(client.get(self.tamper(location)))
                if not self.then_genuine:
                    return
            self.pages.append(client.get(location))


def with_state(value: str | None) -> Callable[[str], str]:
    def tamper(location: str) -> str:
        parts = urlsplit(location)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if value is None:
            query.pop("state")
        else:
            query["state"] = value
        return urlunsplit(parts._replace(query=urlencode(query)))

    return tamper




def test_pkce_challenge_is_the_s256_of_the_verifier() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert pkce_pair()[0] != verifier


def test_token_set_repr_never_shows_tokens() -> None:
    tokens = TokenSet("access-secret", "refresh-secret", "id-secret", 1_800_000_000)
    assert "secret" not in repr(tokens)
    assert "secret" not in str(tokens)


def test_sign_in_end_to_end_through_the_loopback_redirect(approving_mock: MockServer) -> None:
    browser = Browser(favicon=True)

    async def scenario() -> tuple[TokenSet, Identity]:
        connect = ReapitConnect(approving_mock.base_url, "tapi-agent")
        result = await sign_in(connect, port=0, open_browser=browser, timeout_s=20)
        await browser.finished()
        api = ApiClient(approving_mock.base_url, _Fixed(result[0].access_token))
        assert "JAS" in await api.negotiators()  # the access token works on the backend
        await api.aclose()
        await connect.aclose()
        return result

    tokens, identity = asyncio.run(scenario())
    assert identity == Identity("JAS", "James Smith", "james.smith@example.com", "OXF")
    assert tokens.refresh_token and tokens.id_token

    query = parse_qs(urlsplit(browser.opened[0]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["response_type"] == ["code"]
    assert "offline_access" in query["scope"][0].split()
    redirect = urlsplit(query["redirect_uri"][0])
    assert (redirect.scheme, redirect.hostname, redirect.path) == ("http", "127.0.0.1",
                                                                   "/callback")
    favicon, page = browser.pages
    assert favicon.status_code == 404  # a favicon request does not end the sign-in
    assert page.status_code == 200
    assert "You are signed in" in page.text
    assert "you can close this tab" in page.text
    # one-shot: the listener is gone once the sign-in is over
    with pytest.raises(httpx.ConnectError):
        httpx.get(query["redirect_uri"][0])


@pytest.mark.parametrize("state", ["forged-state", None])
def test_reply_with_wrong_or_missing_state_is_refused_and_the_sign_in_goes_on(
    approving_mock: MockServer, state: str | None
) -> None:
    """Any local program can call the loopback redirect: a reply without our `state` is
    refused (and its code never exchanged) but cannot end the sign-in; the real one does."""
    browser = Browser(tamper=with_state(state), then_genuine=True)

    async def scenario() -> Identity:
        connect = ReapitConnect(approving_mock.base_url, "tapi-agent")
        _, identity = await sign_in(connect, port=0, open_browser=browser, timeout_s=20)
        await connect.aclose()
        return identity

    assert asyncio.run(scenario()).negotiator_id == "JAS"
    refused, accepted = browser.pages
    assert refused.status_code == 400
    assert "Sign-in refused" in refused.text and "wrong or missing state" in refused.text
    assert accepted.status_code == 200


def test_reply_with_wrong_state_alone_never_signs_in(approving_mock: MockServer) -> None:
    browser = Browser(tamper=with_state("forged-state"))

    async def scenario() -> None:
        connect = ReapitConnect(approving_mock.base_url, "tapi-agent")
        with pytest.raises(AuthError, match="timed out"):
            await sign_in(connect, port=0, open_browser=browser, timeout_s=1)
        await connect.aclose()

    asyncio.run(scenario())
    (page,) = browser.pages
    assert page.status_code == 400
    code = parse_qs(urlsplit(browser.redirects[0]).query)["code"][0]
    assert approving_mock.state.codes[code].used is False  # never exchanged


def test_refused_sign_in_at_connect_fails_with_its_reason() -> None:
    server = MockServer(port=0, auto_approve="OLD")  # an inactive negotiator cannot sign in
    server.start()
    try:
        async def scenario() -> None:
            connect = ReapitConnect(server.base_url, "tapi-agent")
            with pytest.raises(AuthError, match="OLD cannot sign in"):
                await sign_in(connect, port=0, open_browser=Browser(), timeout_s=20)
            await connect.aclose()

        asyncio.run(scenario())
    finally:
        server.stop()


def test_sign_in_gives_up_after_its_timeout_and_closes_the_listener(
    approving_mock: MockServer,
) -> None:
    opened: list[str] = []

    async def scenario() -> None:
        connect = ReapitConnect(approving_mock.base_url, "tapi-agent")
        with pytest.raises(AuthError, match="timed out"):
            await sign_in(connect, port=0, open_browser=opened.append, timeout_s=0.3)
        await connect.aclose()

    asyncio.run(scenario())
    redirect = parse_qs(urlsplit(opened[0]).query)["redirect_uri"][0]
    with pytest.raises(httpx.ConnectError):
        httpx.get(redirect)


class _Fixed:
    def __init__(self, token: str) -> None:
        self.token = token

    async def access_token(self) -> str:
        return self.token

    async def refresh(self) -> str:
        return self.token

    def expires_at(self) -> float | None:
        return None


def test_refresh_rotation_survives_a_restart_of_the_agent(
    approving_mock: MockServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, to prove no token is ever logged
    backend = WindowsLikeKeyring()
    tokens_seen: list[str] = []

    def stored_refresh_token() -> str:
        blob = TokenStore("TapiAgent", backend=backend).load(
            f"session tapi-agent@{approving_mock.base_url}")
        assert blob is not None
        token: str = json.loads(blob)["refresh_token"]
        return token

    async def first_run() -> None:
        session = Session(ReapitConnect(approving_mock.base_url, "tapi-agent"),
                          TokenStore("TapiAgent", backend=backend))
        identity = await session.sign_in(port=0, open_browser=Browser(), timeout_s=20)
        assert identity.negotiator_id == "JAS"
        assert session.signed_in
        tokens_seen.append(stored_refresh_token())
        await session.refresh()  # rotation: a new refresh token, saved before use
        tokens_seen.append(stored_refresh_token())

    async def second_run() -> None:
        # a new agent process: nothing in memory, the same credential store
        session = Session(ReapitConnect(approving_mock.base_url, "tapi-agent"),
                          TokenStore("TapiAgent", backend=backend))
        assert session.identity is None
        assert await session.restore() is True
        assert session.identity is not None
        assert session.identity.name == "James Smith"
        tokens_seen.append(stored_refresh_token())
        api = ApiClient(approving_mock.base_url, session)
        assert "RPT" in await api.negotiators()
        await api.aclose()
        tokens_seen.append(await session.access_token())

    asyncio.run(first_run())
    asyncio.run(second_run())
    assert len(set(tokens_seen[:3])) == 3  # each refresh stored a new token
    states = [e["state"] for e in events(caplog, "auth.state")]
    assert states == ["signed_in", "refreshed", "refreshed"]
    assert all(e["negotiatorId"] == "JAS" for e in events(caplog, "auth.state"))
    # never a token in the logs
    for token in tokens_seen:
        assert token not in caplog.text


def test_reuse_of_an_old_refresh_token_signs_out(
    approving_mock: MockServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)

    async def scenario() -> None:
        store = MemoryTokenStore()
        session = Session(ReapitConnect(approving_mock.base_url, "tapi-agent"), store)
        await session.sign_in(port=0, open_browser=Browser(), timeout_s=20)
        stale_copy = store.load(session.account)  # e.g. a backup brings the old token back
        await session.refresh()

        # another agent starts from the stale copy: the server sees a reused token
        other_store = MemoryTokenStore()
        assert stale_copy is not None
        other_store.save(session.account, stale_copy)
        other = Session(ReapitConnect(approving_mock.base_url, "tapi-agent"), other_store)
        assert await other.restore() is False
        assert other_store.load(other.account) is None
        assert not other.signed_in

        # reuse revokes the whole session: the first agent is signed out on its next refresh
        with pytest.raises(SessionGone):
            await session.refresh()
        assert store.load(session.account) is None
        assert session.identity is None
        assert not session.signed_in
        with pytest.raises(SessionGone):
            await session.access_token()

    asyncio.run(scenario())
    assert "signed_out" in [e["state"] for e in events(caplog, "auth.state")]


def test_two_refreshes_at_once_make_one_request(approving_mock: MockServer) -> None:
    async def scenario() -> None:
        connect = ReapitConnect(approving_mock.base_url, "tapi-agent")
        session = Session(connect, MemoryTokenStore())
        await session.sign_in(port=0, open_browser=Browser(), timeout_s=20)
        calls = 0
        real_refresh = connect.refresh

        async def counting(refresh_token: str) -> TokenSet:
            nonlocal calls
            calls += 1
            return await real_refresh(refresh_token)

        connect.refresh = counting  # type: ignore[method-assign]
        # with rotation, a second request with the same refresh token would revoke the session
        first, second = await asyncio.gather(session.refresh(), session.refresh())
        assert first == second
        assert calls == 1
        assert await session.access_token() == first

    asyncio.run(scenario())


def test_sign_out_clears_the_store_and_ends_the_session_at_connect(
    approving_mock: MockServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)

    async def scenario() -> None:
        store = MemoryTokenStore()
        connect = ReapitConnect(approving_mock.base_url, "tapi-agent")
        browser = Browser()
        session = Session(connect, store, open_browser=browser)
        await session.sign_in(port=0, timeout_s=20)
        access = await session.access_token()
        saved = store.load(session.account)
        assert saved is not None
        refresh_token = json.loads(saved)["refresh_token"]
        await session.sign_out()
        # the provider's session is ended in the browser (RP-initiated logout)
        ended = urlsplit(browser.opened[-1])
        assert ended.path == "/oidc/logout"
        assert parse_qs(ended.query)["client_id"] == ["tapi-agent"]
        assert "signed out" in browser.pages[-1].text
        assert store.load(session.account) is None
        assert session.identity is None and not session.signed_in
        with pytest.raises(InvalidGrant):
            await connect.refresh(refresh_token)  # revoked at Reapit Connect
        async with httpx.AsyncClient() as client:
            answer = await client.get(approving_mock.base_url + "/negotiators",
                                      headers={"Authorization": f"Bearer {access}"})
        assert answer.status_code == 401

    asyncio.run(scenario())
    assert [e["state"] for e in events(caplog, "auth.state")][-1] == "signed_out"


def test_failing_credential_store_keeps_the_session_in_memory(
    approving_mock: MockServer,
) -> None:
    backend = WindowsLikeKeyring()
    backend.fail_writes_after = 0

    async def scenario() -> None:
        session = Session(ReapitConnect(approving_mock.base_url, "tapi-agent"),
                          TokenStore(backend=backend))
        identity = await session.sign_in(port=0, open_browser=Browser(), timeout_s=20)
        assert identity.negotiator_id == "JAS"
        assert session.store_problem is not None
        assert "will not survive a restart" in session.store_problem
        assert await session.refresh()  # still works from memory

    asyncio.run(scenario())


def test_restore_without_a_saved_session_is_false() -> None:
    async def scenario() -> None:
        session = Session(ReapitConnect("http://127.0.0.1:9", "tapi-agent"), MemoryTokenStore())
        assert await session.restore() is False
        assert session.expires_at() is None
        with pytest.raises(SessionGone):
            await session.access_token()

    asyncio.run(scenario())


def test_access_token_is_reused_until_close_to_expiry_then_refreshed(
    approving_mock: MockServer,
) -> None:
    now = [0.0]

    def clock() -> float:
        import time

        return time.time() + now[0]

    async def scenario() -> None:
        session = Session(ReapitConnect(approving_mock.base_url, "tapi-agent"),
                          MemoryTokenStore(), margin_s=60, clock=clock)
        await session.sign_in(port=0, open_browser=Browser(), timeout_s=20)
        first = await session.access_token()
        assert await session.access_token() == first  # fresh: no refresh
        expires = session.expires_at()
        assert expires is not None
        now[0] = 3600 - 90  # 90 s before expiry: still outside the 60 s margin
        assert await session.access_token() == first
        now[0] = 3600 - 30  # inside the margin: refreshed before it expires
        second = await session.access_token()
        assert second != first
        assert (session.expires_at() or 0) >= expires

    asyncio.run(scenario())


def test_listener_is_one_shot_a_second_callback_cannot_spoil_the_sign_in(
    approving_mock: MockServer,
) -> None:
    async def scenario() -> None:
        connect = ReapitConnect(approving_mock.base_url, "tapi-agent")
        exchanging = asyncio.Event()
        release = asyncio.Event()
        real_exchange = connect.exchange_code

        async def slow_exchange(code: str, redirect_uri: str, verifier: str) -> TokenSet:
            exchanging.set()
            await release.wait()
            return await real_exchange(code, redirect_uri, verifier)

        connect.exchange_code = slow_exchange  # type: ignore[method-assign]
        pages: list[httpx.Response] = []

        async def browse(url: str) -> None:
            async with httpx.AsyncClient() as client:
                location = (await client.get(url)).headers["location"]
                real = asyncio.create_task(client.get(location))
                await exchanging.wait()
                # another page fires a forged callback while the real code is being exchanged
                pages.append(await client.get(with_state("forged")(location)))
                release.set()
                pages.append(await real)

        loop = asyncio.get_running_loop()
        tasks: list[concurrent.futures.Future[None]] = []
        # the opener runs in a worker thread (like webbrowser): it schedules the browsing here
        result = await sign_in(
            connect, port=0, timeout_s=20,
            open_browser=lambda url: tasks.append(
                asyncio.run_coroutine_threadsafe(browse(url), loop)))
        await asyncio.gather(*(asyncio.wrap_future(t) for t in tasks))
        assert result[1].negotiator_id == "JAS"
        forged, real = pages
        assert forged.status_code == 410
        assert real.status_code == 200
        await connect.aclose()

    asyncio.run(scenario())


def test_sign_out_saved_ends_a_stored_session_without_an_agent(
    approving_mock: MockServer,
) -> None:
    """`tapi-agent sign-out` with no agent running: the saved session is revoked and gone."""
    store = MemoryTokenStore()

    async def scenario() -> None:
        connect = ReapitConnect(approving_mock.base_url, "tapi-agent")
        await Session(connect, store, open_browser=Browser()).sign_in(port=0, timeout_s=20)
        later = Session(connect, store, open_browser=Browser())  # another process, later
        saved = json.loads(store.load(later.account) or "{}")["refresh_token"]
        assert await later.sign_out_saved() is True
        assert store.load(later.account) is None
        with pytest.raises(InvalidGrant):
            await connect.refresh(saved)
        assert await later.sign_out_saved() is False  # nothing left to end
        await connect.aclose()

    asyncio.run(scenario())


@given(st.text())
def test_the_sign_in_page_escapes_as_html_escape_does(text: str) -> None:
    """The result page shows provider-supplied text (error descriptions) as plain text; the
    agent escapes without the `html` module (issue 14) and must escape exactly as it does."""
    import html

    from tapi_agent.net.auth import _escape, _page

    assert _escape(text) == html.escape(text, quote=True)
    page = _page(text, text, ok=False)
    assert page.count(html.escape(text, quote=True)) >= 2
