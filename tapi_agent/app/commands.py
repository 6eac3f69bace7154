"""The commands that run without the tray: `tapi-agent sign-out` and `tapi-agent diagnose`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from tapi_agent.app.connect import make_connect, process_lock, runtime_dir
from tapi_agent.config import Settings

if TYPE_CHECKING:
    from tapi_agent.net.auth import Session
    from tapi_agent.net.session import TokenSource


def run_sign_out(settings: Settings) -> int:
    """`tapi-agent sign-out`: the running agent signs out (its session revoked at the provider
    and ended in the browser); with no agent running, the saved session is ended the same way.
    For shared PCs and scripts (a sign-off script, IT's remote tools)."""
    from tapi_agent.ui.single_instance import SIGN_OUT, default_name, tell

    if tell(default_name(runtime_dir()), SIGN_OUT):
        print("Asked the running TAPI Agent to sign out.")
        return 0
    from tapi_agent.net.auth import Session
    from tapi_agent.net.tokens import TokenStore

    store = TokenStore()
    if not store.available:
        print("No agent is running and no credential store is available: nothing to sign out.")
        return 0
    session = Session(make_connect(settings, settings["server.url"]), store,
                      process_lock=process_lock())
    ended = asyncio.run(session.sign_out_saved())
    print("Signed out." if ended else "No saved session: nothing to sign out.")
    return 0

def run_diagnose(args: argparse.Namespace, settings: Settings) -> int:
    """`tapi-agent diagnose`: print a readable report; 0 only when every step works."""
    from tapi_agent.net.diagnose import diagnose, render_settings

    print(render_settings(settings.values, settings.sources, settings.locked))
    for err in settings.errors:
        print(f"config: {err}", file=sys.stderr)
    tokens = _diagnose_tokens(settings)
    report = asyncio.run(
        diagnose(settings["server.url"], tokens=tokens, product=settings["stream.product"],
                 timeout_s=args.timeout, proxy=settings["network.proxy"])
    )
    print(report.render())
    return 0 if report.ok and not settings.errors else 1


def _diagnose_tokens(settings: Settings) -> TokenSource | None:
    """The stored session, if any (diagnose never starts a sign-in)."""
    try:
        from tapi_agent.net.auth import Session
        from tapi_agent.net.tokens import TokenStore
    except ImportError:  # pragma: no cover - partial installs
        return None
    store = TokenStore()
    if not store.available:
        return None
    if agent_running():
        return _HeldByAgent()
    return _RestoringTokens(Session(make_connect(settings, settings["server.url"]), store,
                                    process_lock=process_lock()))


def agent_running() -> bool:
    """Whether a TAPI Agent of this user answers on the single-instance channel (a PING it
    ignores: it neither shows itself nor changes anything)."""
    try:
        from tapi_agent.ui.single_instance import PING, default_name, tell
    except ImportError:  # pragma: no cover - partial installs
        return False
    try:
        return tell(default_name(runtime_dir()), PING)
    except OSError:
        return False


class _HeldByAgent:
    """diagnose's tokens while an agent runs: it does not refresh the session the agent holds.

    A refresh rotates the refresh token; even with the process lock (`process_lock`) making
    that safe, diagnose has no business spending the agent's session: it reports that the
    agent holds it and checks everything else (config, DNS, TCP, TLS, HTTP)."""

    held_elsewhere = ("a running TAPI Agent holds the session (its status window shows it); "
                      "not renewed here, which would spend the agent's refresh token")

    async def access_token(self) -> str:
        from tapi_agent.net.session import SessionGone

        raise SessionGone(self.held_elsewhere)

    async def refresh(self) -> str:
        from tapi_agent.net.session import SessionGone

        raise SessionGone(self.held_elsewhere)

    def expires_at(self) -> float | None:
        return None


class _RestoringTokens:
    """TokenSource over a Session that restores itself from the store on first use."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._restored = False

    async def _ensure(self) -> None:
        if not self._restored:
            self._restored = True
            await self._session.restore()

    async def access_token(self) -> str:
        await self._ensure()
        token: str = await self._session.access_token()
        return token

    async def refresh(self) -> str:
        await self._ensure()
        token: str = await self._session.refresh()
        return token

    def expires_at(self) -> float | None:
        value: float | None = self._session.expires_at()
        return value
