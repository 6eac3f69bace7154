"""What the stream and the API client need from a signed-in session: access tokens, and the
one rule for where a session's secrets may go.

`TokenSource` is implemented by the Reapit Connect session (`net/auth.py`) and, for the demo and
tests, by `CallableTokenSource`. `secrets_may_go_to` is the rule the sign-in, the API client and
the stream apply before they send a code, a verifier or a token: encrypted, or to this PC.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import Protocol


class SessionGone(Exception):
    """The session cannot give tokens any more (refresh refused, signed out): sign in again."""


class TokenSource(Protocol):
    """Gives access tokens for the signed-in negotiator."""

    async def access_token(self) -> str:
        """A currently valid access token (refreshed first when it is about to expire)."""
        ...

    async def refresh(self) -> str:
        """Force a refresh and return the new token; raise SessionGone if the session is gone."""
        ...

    def expires_at(self) -> float | None:
        """When the current access token expires (epoch seconds), or None if unknown."""
        ...


class CallableTokenSource:
    """A TokenSource backed by a function that mints a token (the demo's embedded backend)."""

    def __init__(
        self, mint: Callable[[], Awaitable[tuple[str, float]]], *, margin_s: float = 30.0
    ) -> None:
        self._mint = mint
        self._margin = margin_s
        self._token: str | None = None
        self._expires: float | None = None

    async def access_token(self) -> str:
        if self._token is None or (
            self._expires is not None and self._expires - self._margin < time.time()
        ):
            return await self.refresh()
        return self._token

    async def refresh(self) -> str:
        self._token, self._expires = await self._mint()
        return self._token

    def expires_at(self) -> float | None:
        return self._expires


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1): traffic that never
    leaves this PC."""
    if not host:
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def secrets_may_go_to(scheme: str, host: str | None) -> bool:
    """https/wss to any host, or plain http/ws to this PC only."""
    if scheme in ("https", "wss"):
        return bool(host)
    return scheme in ("http", "ws") and is_loopback_host(host)
