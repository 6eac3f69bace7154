"""Two processes of one user share the session: one refreshes at a time (`ProcessLock`) and
each re-reads the store first, so the rotating refresh token is never presented twice (the
mock, like Reapit Connect, revokes the whole session on a reuse). Each `Session` here has its
own lock object on the same file and its own store object on the same credential backend, as
two processes would; a real second process holds the lock in the last test."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tapi_agent.mock.server import MockServer
from tapi_agent.net.auth import AuthUnavailable, ReapitConnect, Session
from tapi_agent.net.session import SessionGone
from tapi_agent.net.tokens import ProcessLock, TokenStore
from tests.net.test_auth import Browser
from tests.net.test_tokens import WindowsLikeKeyring


def _session(mock: MockServer, backend: WindowsLikeKeyring, lock_file: Path,
             timeout_s: float = 30.0) -> Session:
    return Session(ReapitConnect(mock.base_url, "tapi-agent"),
                   TokenStore("TapiAgent", backend=backend),
                   process_lock=ProcessLock(lock_file, timeout_s=timeout_s))


def _revoked(mock: MockServer) -> list[bool]:
    return [s.revoked for s in mock.state.sessions.values()]


def test_a_second_process_refreshing_does_not_sign_the_first_out(
    approving_mock: MockServer, tmp_path: Path
) -> None:
    backend = WindowsLikeKeyring()
    lock_file = tmp_path / "session.lock"

    async def scenario() -> None:
        agent = _session(approving_mock, backend, lock_file)
        await agent.sign_in(port=0, open_browser=Browser(), timeout_s=20)
        # `diagnose` (or a second agent) restores from the store: it rotates the token
        other = _session(approving_mock, backend, lock_file)
        assert await other.restore() is True
        # the agent's own refresh token is spent now; it must use the stored one
        await agent.refresh()
        assert agent.signed_in
        # both at once, several times: the lock puts them in turn, each re-reads the store
        for _ in range(3):
            await asyncio.gather(agent.refresh(), other.refresh())
        assert agent.signed_in and other.signed_in

    asyncio.run(scenario())
    assert _revoked(approving_mock) == [False]  # one session, never seen as a reuse


def test_without_the_lock_and_re_read_the_same_steps_sign_out(
    approving_mock: MockServer, tmp_path: Path
) -> None:
    """The control: what the lock prevents really happens without it."""
    backend = WindowsLikeKeyring()

    async def scenario() -> None:
        agent = Session(ReapitConnect(approving_mock.base_url, "tapi-agent"),
                        TokenStore("TapiAgent", backend=backend))
        await agent.sign_in(port=0, open_browser=Browser(), timeout_s=20)
        other = Session(ReapitConnect(approving_mock.base_url, "tapi-agent"),
                        TokenStore("TapiAgent", backend=backend))
        assert await other.restore() is True
        with pytest.raises(SessionGone, match="sign in again"):
            await agent.refresh()

    asyncio.run(scenario())
    assert _revoked(approving_mock) == [True]


HOLD = """
import fcntl, sys
fh = open(sys.argv[1], "a+b")
fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="the holder uses flock")
def test_a_refresh_waits_for_another_process_and_gives_up_as_temporary(
    approving_mock: MockServer, tmp_path: Path
) -> None:
    backend = WindowsLikeKeyring()
    lock_file = tmp_path / "session.lock"

    async def scenario() -> None:
        agent = _session(approving_mock, backend, lock_file, timeout_s=0.5)
        await agent.sign_in(port=0, open_browser=Browser(), timeout_s=20)
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_file)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            with pytest.raises(AuthUnavailable, match="another TAPI Agent process"):
                await agent.refresh()  # not while the other process holds it
            assert agent.signed_in  # a temporary failure: still signed in
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(10)
        await agent.refresh()  # its turn now

    asyncio.run(scenario())
    assert _revoked(approving_mock) == [False]
