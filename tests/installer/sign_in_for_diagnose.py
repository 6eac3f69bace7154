"""Sign in to a running mock as the agent does and keep the session in the OS credential store,
so that a frozen `tapi-agent-cli diagnose` in the same D-Bus session finds it.

    python sign_in_for_diagnose.py SERVER_URL

The mock must auto-approve (`MockServer(auto_approve=...)`); this script plays the browser.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import httpx

from tapi_agent.net.auth import ReapitConnect, Session
from tapi_agent.net.tokens import TokenStore


def _browser(url: str) -> bool:
    # The loopback listener runs on this script's event loop, so the "browser" needs a thread.
    def visit() -> None:
        httpx.get(url, follow_redirects=True, timeout=20)

    threading.Thread(target=visit, daemon=True).start()
    return True


def _wait_for_secret_service(timeout_s: float = 20.0) -> None:
    # gnome-keyring-daemon may still be registering on the bus when this script starts, and
    # keyring keeps the first backend it picks: probe the Secret Service until it answers.
    from keyring.backends import SecretService

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            SecretService.Keyring().get_password("TapiAgentInstallerTest", "probe")
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"Secret Service not ready: {exc!r}") from exc
            time.sleep(0.05)


async def _main(server: str) -> int:
    _wait_for_secret_service()
    store = TokenStore()
    if not store.available:
        print(f"no usable credential store: {store.description}", file=sys.stderr)
        return 2
    connect = ReapitConnect(server, "tapi-agent")
    try:
        identity = await Session(connect, store).sign_in(port=0, open_browser=_browser,
                                                         timeout_s=20)
    finally:
        await connect.aclose()
    print(f"SIGNED-IN {identity.negotiator_id}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1])))
