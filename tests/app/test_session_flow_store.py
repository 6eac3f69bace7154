"""The agent's sign-in asks the credential store through its child process (net/token_child.py)
and, when there is none or the child cannot tell, keeps the session in memory and says why."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tapi_agent.app.session_flow import SessionFlow
from tapi_agent.config import load_settings
from tapi_agent.net import token_child
from tapi_agent.net.auth import Session
from tapi_agent.net.tokens import MemoryTokenStore


def _sign_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Session, list[str]]:
    """SessionFlow.sign_in with a restore that succeeds at once (no provider needed): the
    session it built and the notices it gave."""
    async def restored(self: Session) -> bool:
        return True

    monkeypatch.setattr(Session, "restore", restored)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    settings = load_settings(machine_file=tmp_path / "none.toml", user_file=tmp_path / "no.toml",
                             environ={})
    notices: list[str] = []
    flow = SessionFlow(settings, notice=lambda title, text: notices.append(f"{title}: {text}"),
                       identity=lambda identity: None)
    session = asyncio.run(flow.sign_in("http://127.0.0.1:9"))
    assert session is not None
    return session, notices


def test_the_session_goes_to_the_credential_store_child(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.net.child_keyrings.FileKeyring")
    monkeypatch.setenv("TAPI_TEST_KEYRING_FILE", str(tmp_path / "keyring.json"))
    session, notices = _sign_in(monkeypatch, tmp_path)
    assert isinstance(session._store, token_child.ChildTokenStore) and notices == []


def test_without_a_credential_store_the_session_stays_in_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    session, notices = _sign_in(monkeypatch, tmp_path)
    assert isinstance(session._store, MemoryTokenStore)
    assert notices == ["No credential store: No working credential store was found. You will "
                       "have to sign in again after a restart."]


def test_a_credential_store_child_that_cannot_start_is_named_in_the_notice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-tapi-agent-cli")
    monkeypatch.setattr(token_child, "child_command", lambda: [missing, token_child.CHILD_FLAG])
    session, notices = _sign_in(monkeypatch, tmp_path)
    assert isinstance(session._store, MemoryTokenStore)
    assert len(notices) == 1 and notices[0].startswith("No credential store: Could not ask")
    assert "could not be started" in notices[0] and missing in notices[0]
