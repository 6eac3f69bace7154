"""The ID token check runs in a child process (net/id_token_child.py, issue 14): the agent never
imports PyJWT or cryptography, a refused token names the same check as the in-process one, and
a child that cannot start, crashes, hangs or prints junk ends the sign-in with a clear error.

The keys, discovery and sign-ins are the real mock's over loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tapi_agent.mock.server import MockServer
from tapi_agent.net import id_token_child, token_child
from tapi_agent.net.auth import ReapitConnect
from tapi_agent.net.id_token_child import CHILD_FLAG, verify_in_child
from tapi_agent.net.oidc import AuthError, AuthUnavailable, IdTokenError, ProviderMetadata
from tests.app.test_single_instance_process import _command
from tests.net.test_id_token import NONCE, _claims, _forgeries, _signed


async def _provider(server: MockServer) -> tuple[dict[str, Any], ProviderMetadata]:
    connect = ReapitConnect(server.base_url, "tapi-agent")
    try:
        return await connect.signing_keys(), await connect.metadata()
    finally:
        await connect.aclose()


def _check(server: MockServer, token: str, command: list[str] | None = None,
           timeout_s: float = id_token_child.TIMEOUT_S) -> dict[str, Any]:
    async def scenario() -> dict[str, Any]:
        keys, metadata = await _provider(server)
        return await verify_in_child(token, keys=keys, metadata=metadata,
                                     client_id="tapi-agent", nonce=NONCE, command=command,
                                     timeout_s=timeout_s)

    return asyncio.run(scenario())


def _fake_child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_valid_token_verifies_in_the_child_and_a_forged_one_names_its_check(
    mock_server: MockServer
) -> None:
    claims = _check(mock_server, _signed(mock_server, _claims(mock_server)))
    assert claims["sub"] == "JAS" and claims["nonce"] == NONCE
    assert claims["custom:reapit:userCode"] == "JAS"
    token, check = _forgeries(mock_server)["wrong aud"]
    with pytest.raises(IdTokenError) as caught:
        _check(mock_server, token)
    assert caught.value.check == check == "aud"
    assert str(caught.value) == str(IdTokenError("aud", "the token was not issued for client "
                                                        "'tapi-agent'"))


def test_the_frozen_apps_hidden_argument_runs_the_same_check(mock_server: MockServer) -> None:
    """`tapi-agent --verify-id-token` (what the frozen app starts) answers on stdout, before the
    command line is parsed; `--help` does not show it."""
    keys, metadata = asyncio.run(_provider(mock_server))
    request = {"token": _signed(mock_server, _claims(mock_server, iss="https://evil.example")),
               "keys": keys, "issuer": metadata.issuer, "algorithms": ["RS256"],
               "clientId": "tapi-agent", "nonce": NONCE, "now": 0, "leeway": 120}
    done = subprocess.run([*_command(), CHILD_FLAG], input=json.dumps(request), text=True,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["error"]["check"] == "iss"
    help_text = subprocess.run([*_command(), "--help"], capture_output=True, text=True,
                               timeout=60, check=True).stdout
    assert "usage" in help_text and CHILD_FLAG not in help_text


@pytest.mark.parametrize("child", [id_token_child, token_child], ids=["id-token", "token-store"])
def test_the_frozen_app_starts_its_console_twin(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path, child: Any) -> None:
    """Both helpers (the ID token check, the credential store) start from the frozen app as its
    console twin with their hidden argument (net/child_process.py)."""
    exe = tmp_path / "tapi-agent"
    exe.touch()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(exe))
    assert child.child_command() == [str(exe), child.CHILD_FLAG]  # no twin: itself
    (tmp_path / "tapi-agent-cli").touch()
    assert child.child_command() == [str(tmp_path / "tapi-agent-cli"), child.CHILD_FLAG]


@pytest.mark.parametrize(("code", "expected"), [
    ("import sys; sys.stdin.read(); sys.stderr.write('Traceback...\\nImportError: no jwt\\n');"
     " sys.exit(3)", "failed (exit code 3): ImportError: no jwt"),
    ("import os, signal, sys; sys.stdin.read(); os.kill(os.getpid(), signal.SIGKILL)",
     "was ended by signal 9"),
    ("import sys; sys.stdin.read(); print('<html>not JSON</html>')",
     "gave an answer the agent does not understand"),
    ("import sys; sys.stdin.read(); print('{\"claims\": [1]}')",
     "gave an answer the agent does not understand"),
])
def test_a_child_that_fails_or_prints_junk_gives_a_clear_error(
    mock_server: MockServer, code: str, expected: str
) -> None:
    if "signal" in code and sys.platform == "win32":
        pytest.skip("no SIGKILL on Windows")
    with pytest.raises(AuthError) as caught:
        _check(mock_server, _signed(mock_server, _claims(mock_server)), _fake_child(code))
    assert not isinstance(caught.value, IdTokenError)
    assert expected in str(caught.value) and "Nothing was saved" in str(caught.value)


def test_a_child_that_cannot_start_names_what_it_tried(mock_server: MockServer,
                                                       tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-tapi-agent-cli")
    with pytest.raises(AuthError, match="could not be started") as caught:
        _check(mock_server, _signed(mock_server, _claims(mock_server)), [missing, CHILD_FLAG])
    assert missing in str(caught.value)


def test_the_token_never_shows_in_what_a_failing_child_said(mock_server: MockServer) -> None:
    token = _signed(mock_server, _claims(mock_server))
    echo = "import sys; sys.stderr.write(sys.stdin.read()); sys.exit(1)"  # the request, token
    with pytest.raises(AuthError) as caught:
        _check(mock_server, token, _fake_child(echo))
    message = str(caught.value)
    assert "exit code 1" in message and "<redacted>" in message
    assert all(part not in message for part in token.split("."))


def test_a_child_that_hangs_is_ended_and_the_sign_in_told(mock_server: MockServer,
                                                          tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    hang = (f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
            "time.sleep(120)")
    with pytest.raises(AuthUnavailable, match="gave no answer within 2 s"):
        _check(mock_server, _signed(mock_server, _claims(mock_server)), _fake_child(hang),
               timeout_s=2)
    if pid_file.exists():  # it got as far as writing its pid: it must be gone (and reaped)
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid_file.read_text()), 0)


_SIGN_IN = """
import asyncio, json, sys
import httpx
from tapi_agent.net.auth import ReapitConnect, Session
from tapi_agent.net.tokens import MemoryTokenStore

def browser(url):
    httpx.get(url, follow_redirects=True, timeout=20)
    return True

async def main():
    connect = ReapitConnect(sys.argv[1], "tapi-agent")
    session = Session(connect, MemoryTokenStore(), open_browser=browser)
    identity = await session.sign_in(port=0, timeout_s=20)
    await session.refresh()
    await connect.aclose()
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("jwt", "cryptography"))
    print(json.dumps({"negotiator": identity.negotiator_id, "loaded": loaded}))

asyncio.run(main())
"""


def test_after_an_interactive_sign_in_the_agent_has_not_loaded_jwt_or_cryptography(
    approving_mock: MockServer
) -> None:
    """A process of its own (this one has the mock, which signs with PyJWT): a full sign-in
    through the browser against the real mock, then a refresh."""
    done = subprocess.run([sys.executable, "-c", _SIGN_IN, approving_mock.base_url],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {"negotiator": "JAS", "loaded": []}
