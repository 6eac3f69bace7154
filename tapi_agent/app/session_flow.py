"""Sign-in and sign-out: the session in the credential store, its identity told to the GUI."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from tapi_agent.app.connect import make_connect, process_lock
from tapi_agent.config import Settings

if TYPE_CHECKING:
    from tapi_agent.net.auth import Identity, Session
    from tapi_agent.net.tokens import SecretStore

log = logging.getLogger("tapi_agent.app")


class SessionFlow:
    """Opens (restores, or signs in through the browser) and ends the user's session; runs in
    the worker and reports through `notice` and `identity` (signals to the GUI thread)."""

    def __init__(self, settings: Settings, *, notice: Callable[[str, str], None],
                 identity: Callable[[Identity | None], None]) -> None:
        self._settings = settings
        self._notice = notice
        self._identity = identity
        self.session: Session | None = None

    @property
    def signed_in(self) -> bool:
        """Whether a session is open."""
        return self.session is not None and self.session.signed_in

    async def sign_in(self, server: str) -> Session | None:
        """Restore the saved session or sign in; None (the user told why) when that failed."""
        from tapi_agent.config import redirect_ports
        from tapi_agent.net.auth import Session
        from tapi_agent.net.token_child import ChildTokenStore
        from tapi_agent.net.tokens import MemoryTokenStore

        # The credential store in short-lived child processes: the agent never loads keyring
        # (net/token_child.py, issue 14). The probe is a child too: not on the event loop.
        child = ChildTokenStore()
        store: SecretStore = child
        if not await asyncio.to_thread(lambda: child.available):
            store = MemoryTokenStore()
            why = (f"Could not ask the credential store: {child.probe_problem}."
                   if child.probe_problem else "No working credential store was found.")
            self._notice("No credential store",
                         f"{why} You will have to sign in again after a restart.")
        session = Session(make_connect(self._settings, server), store,
                          process_lock=process_lock())
        self.session = session
        # a refresh refused mid-session (the stream sees SessionGone) must reach the tray
        session.add_listener(
            lambda state, ident: self._identity(None) if state == "signed_out" else None
        )
        try:
            restored = await session.restore()
            if not restored:
                await session.sign_in(port=redirect_ports(self._settings))
        except Exception as exc:
            log.warning("sign-in failed: %s", exc)
            self._notice("Sign-in failed", str(exc))
            self._identity(None)
            return None
        if session.store_problem:
            self._notice("Credential store problem", session.store_problem)
        if session.expiry_notice:
            self._notice("Session cannot be renewed", session.expiry_notice)
        self._identity(session.identity)
        return session

    async def sign_out(self) -> None:
        """End the session (revoked at the provider, forgotten here); the identity goes."""
        if self.session is None:
            return
        await self.session.sign_out()
        self._identity(None)
