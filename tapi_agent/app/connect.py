"""The sign-in provider, the private runtime directory and the session lock the settings name."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tapi_agent.config import Settings

if TYPE_CHECKING:
    from tapi_agent.net.auth import ReapitConnect
    from tapi_agent.net.tokens import ProcessLock

log = logging.getLogger("tapi_agent.app")


def runtime_dir() -> Path | None:
    """The user's private runtime directory (single-instance socket, token lock); None on
    Windows, where the pipe name needs none. See `config.private_runtime_dir`."""
    if sys.platform == "win32":
        return None
    from tapi_agent.config import private_runtime_dir

    return private_runtime_dir()


def process_lock() -> ProcessLock | None:
    """The lock every process of this user takes to refresh the session
    (`net.tokens.ProcessLock`), in the private runtime directory; None without one."""
    from tapi_agent.config import private_runtime_dir
    from tapi_agent.net.tokens import ProcessLock

    try:
        return ProcessLock(private_runtime_dir() / "session.lock")
    except OSError as exc:
        log.warning("no private runtime directory (%s): session refreshes are not "
                    "coordinated with other TAPI Agent processes", exc)
        return None


def make_connect(settings: Settings, server: str) -> ReapitConnect:
    """The OpenID provider the settings name: `auth.issuer` (or the server), its client id,
    the explicit `auth.*_url` endpoints, the negotiator claim, prompt and scope."""
    from tapi_agent.net.auth import ReapitConnect
    from tapi_agent.net.oidc import Endpoints

    return ReapitConnect(
        settings["auth.issuer"] or server,
        settings["auth.client_id"],
        proxy=settings["network.proxy"],
        endpoints=Endpoints(
            authorize=settings["auth.authorize_url"], token=settings["auth.token_url"],
            userinfo=settings["auth.userinfo_url"], end_session=settings["auth.end_session_url"],
            jwks=settings["auth.jwks_url"]),
        negotiator_claim=settings["auth.negotiator_claim"],
        prompt=settings["auth.prompt"],
        scope=settings["auth.scope"],
    )
