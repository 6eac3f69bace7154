"""Forged ID tokens are refused, each with the check that failed, and nothing is stored.

The keys, discovery and the sign-in are the real mock's over loopback; the tokens are forged
here: no signature (`alg: none`), the wrong issuer or audience, expired, the wrong nonce, an
unknown key id, another key under the right key id, a MAC made with the public key.
The agent checks them in a child process (net/id_token_child.py); each refusal is also
compared with the in-process `verify_id_token`, word for word.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tapi_agent.mock.server import MockServer
from tapi_agent.net.auth import AuthError, ReapitConnect, Session, TokenSet
from tapi_agent.net.oidc import IdTokenError, verify_id_token
from tapi_agent.net.tokens import MemoryTokenStore
from tests.net.test_auth import Browser

NONCE = "the-nonce-we-sent"


def _claims(server: MockServer, **override: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": server.state.issuer.issuer, "aud": "tapi-agent", "sub": "JAS",
              "iat": now, "exp": now + 300, "nonce": NONCE, "name": "James Smith",
              "custom:reapit:userCode": "JAS", "custom:reapit:officeId": "OXF"}
    claims.update(override)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(server: MockServer, claims: dict[str, Any], *, kid: str | None = None,
            key: Any = None) -> str:
    issuer = server.state.issuer
    return jwt.encode(claims, key if key is not None else issuer._key, algorithm="RS256",
                      headers={"kid": kid or issuer.kid})


def _unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


_OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _forgeries(server: MockServer) -> dict[str, tuple[str, str]]:
    """name -> (token, the check that must fail)."""
    day_ago = int(time.time()) - 86400
    public_pem = server.state.issuer._key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    mac = jwt.api_jws.PyJWS()
    mac._algorithms["HS256"].prepare_key = lambda key: key  # type: ignore[method-assign]
    confused = mac.encode(json.dumps(_claims(server)).encode(), public_pem, algorithm="HS256",
                          headers={"kid": server.state.issuer.kid})
    return {
        "alg none": (_unsigned(_claims(server)), "signature algorithm"),
        "alg none, wrong iss and aud, expired a day ago": (_unsigned(_claims(
            server, iss="https://evil.example", aud="someone-else", iat=day_ago - 3600,
            exp=day_ago)), "signature algorithm"),
        "wrong iss": (_signed(server, _claims(server, iss="https://evil.example")), "iss"),
        "wrong aud": (_signed(server, _claims(server, aud="someone-else")), "aud"),
        "expired a day ago": (_signed(server, _claims(server, iat=day_ago - 3600,
                                                      exp=day_ago)), "exp"),
        "issued tomorrow": (_signed(server, _claims(server, iat=int(time.time()) + 86400)),
                            "iat"),
        "wrong nonce": (_signed(server, _claims(server, nonce="another sign-in")), "nonce"),
        "no nonce": (_signed(server, _claims(server, nonce=None)), "nonce"),
        "no exp": (_signed(server, _claims(server, exp=None)), "exp"),
        "unknown kid": (_signed(server, _claims(server), kid="not-a-key-of-theirs"),
                        "signing key"),
        "signed by another key": (_signed(server, _claims(server), key=_OTHER_KEY),
                                  "signature"),
        "HS256 with the public key as secret": (confused, "signature algorithm"),
        "several audiences, azp not us": (_signed(server, _claims(
            server, aud=["tapi-agent", "other"], azp="other")), "azp"),
        "not a JWT": ("not.a.jwt", "format"),
    }


def test_each_forged_id_token_is_refused_with_its_reason(mock_server: MockServer) -> None:
    forgeries = _forgeries(mock_server)

    async def scenario() -> dict[str, str]:
        connect = ReapitConnect(mock_server.base_url, "tapi-agent")
        good = TokenSet("access", "refresh", _signed(mock_server, _claims(mock_server)), 0)
        assert (await connect.identity(good, nonce=NONCE)).negotiator_id == "JAS"  # control
        failed: dict[str, str] = {}
        for name, (token, _) in forgeries.items():
            with pytest.raises(IdTokenError) as caught:
                await connect.identity(TokenSet("access", "refresh", token, 0), nonce=NONCE)
            failed[name] = caught.value.check
            assert f"failed the {caught.value.check} check" in str(caught.value)
            assert connect._keys is not None
            with pytest.raises(IdTokenError) as in_process:
                verify_id_token(token, keys=connect._keys, metadata=await connect.metadata(),
                                client_id="tapi-agent", nonce=NONCE)
            assert str(in_process.value) == str(caught.value)  # the child's word for word
        await connect.aclose()
        return failed

    failed = asyncio.run(scenario())
    assert failed == {name: check for name, (_, check) in forgeries.items()}


@pytest.mark.parametrize("forgery", ["wrong iss", "alg none", "signed by another key"])
def test_a_sign_in_with_a_forged_id_token_ends_with_the_reason_and_stores_nothing(
    approving_mock: MockServer, forgery: str
) -> None:
    token, check = _forgeries(approving_mock)[forgery]
    approving_mock.state.issuer.id_token = lambda **_: token  # type: ignore[method-assign]
    store = MemoryTokenStore()
    browser = Browser()

    async def scenario() -> None:
        connect = ReapitConnect(approving_mock.base_url, "tapi-agent")
        session = Session(connect, store, open_browser=browser)
        with pytest.raises(IdTokenError) as caught:
            await session.sign_in(port=0, timeout_s=20)
        assert caught.value.check == check
        assert not session.signed_in and session.identity is None
        await connect.aclose()

    asyncio.run(scenario())
    assert store.load("session tapi-agent@" + approving_mock.base_url) is None
    (page,) = browser.pages
    assert page.status_code == 400 and f"failed the {check} check" in page.text


def test_an_unknown_kid_refetches_the_keys_once(mock_server: MockServer) -> None:
    """A provider that rotated its key: the cached JWKS lacks the new kid, so the agent
    fetches discovery and the keys again and then accepts the token."""

    async def scenario() -> None:
        connect = ReapitConnect(mock_server.base_url, "tapi-agent")
        good = TokenSet("a", "r", _signed(mock_server, _claims(mock_server)), 0)
        await connect.identity(good, nonce=NONCE)  # keys cached
        stale_keys = connect._keys
        assert stale_keys is not None
        connect._keys = {"keys": [dict(k, kid="old-key") for k in stale_keys["keys"]]}
        assert (await connect.identity(good, nonce=NONCE)).negotiator_id == "JAS"
        assert connect._keys == stale_keys  # refreshed from the provider
        await connect.aclose()

    asyncio.run(scenario())


def test_redirect_iss_from_another_provider_is_refused(approving_mock: MockServer) -> None:
    """RFC 9207: the mock sends `iss` with every answer; one that names another issuer (a
    mix-up) ends the sign-in before the code is exchanged."""

    def tamper(location: str) -> str:
        return location.replace("iss=http", "iss=https%3A%2F%2Fevil.example%2F%3Fx%3Dhttp", 1)

    browser = Browser(tamper=tamper)

    async def scenario() -> None:
        connect = ReapitConnect(approving_mock.base_url, "tapi-agent")
        with pytest.raises(AuthError, match="another provider"):
            await Session(connect, MemoryTokenStore(), open_browser=browser).sign_in(
                port=0, timeout_s=20)
        await connect.aclose()

    asyncio.run(scenario())
    assert all(not code.used for code in approving_mock.state.codes.values())
