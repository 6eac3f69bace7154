"""The real `tapi-agent` process signs in, refreshes and signs out: against panva's certified
`oidc-provider` (npm) driven by a browser stand-in through `$BROWSER`, and against the mock
with an issuer that has a path (as Reapit Connect's), where it also connects and pops a call.
Sign-out is asked for as a user or a script would: `tapi-agent sign-out`."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tapi_agent.mock.server import MockServer
from tests.app.test_agent_process import free_port
from tests.app.test_single_instance_process import _command, _pump, _wait_event, agent_env
from tests.helpers import require_tool
from tests.oidc_provider import OIDC_DIR, oidc_provider_factory

__all__ = ["agent_env", "oidc_provider_factory"]  # the fixtures, re-used

POOL = "/eu-west-2_demo"


class Agent:
    """A running `tapi-agent` with its JSON log on stdout."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.env = env
        self.proc = subprocess.Popen([*_command(), *args, "--log-json", "-"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=_pump, args=(self.proc.stdout, self.lines), daemon=True).start()

    def wait(self, event: str, timeout: float = 30, **fields: object) -> dict[str, object]:
        return _wait_event(self.lines, self.proc, event, timeout, **fields)

    def sign_out(self) -> str:
        done = subprocess.run([*_command(), "sign-out"], env=self.env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _browser_runs(record: Path, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The browser's recorded runs, once there are `count` of them (it records on exit)."""
    deadline = time.monotonic() + timeout
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if record.exists():
            runs = [json.loads(line) for line in record.read_text().splitlines() if line]
            if len(runs) >= count:
                return runs
        time.sleep(0.05)  # polling a file the browser process writes: no signal to wait on
    raise AssertionError(f"the browser ran {len(runs)} times, expected {count}")


@pytest.fixture
def pooled_mock() -> Iterator[MockServer]:
    with MockServer(issuer_path=POOL, auto_approve="JAS", token_ttl=6,
                    heartbeat_ms=2000) as server:
        yield server


def _env(agent_env: dict[str, str], browser: str, issuer: str) -> dict[str, str]:
    return dict(agent_env, BROWSER=browser, TAPI_AGENT_AUTH_ISSUER=issuer,
                TAPI_AGENT_AUTH_REDIRECT_PORT=str(free_port()),
                PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")


def test_agent_process_signs_in_refreshes_and_signs_out_on_oidc_provider(
    agent_env: dict[str, str], oidc_provider_factory, mock_server: MockServer, tmp_path: Path
) -> None:
    provider = oidc_provider_factory(access_ttl=6)
    record = tmp_path / "browser.jsonl"
    browser = (f"{sys.executable} {OIDC_DIR / 'browser.py'} --login JAS "
               f"--cookie-jar {tmp_path / 'cookies.txt'} --record {record} %s")
    # the notifications backend is the mock; it cannot read oidc-provider's tokens, which is
    # beside the point here: sign-in, refresh and sign-out are between agent and provider
    agent = Agent(_env(agent_env, browser, provider.issuer), "--server", mock_server.base_url)
    try:
        signed_in = agent.wait("auth.state", state="signed_in")
        assert signed_in["negotiatorId"] == "JAS"  # from UserInfo, after the ID token checks
        assert agent.wait("auth.state", state="refreshed")["negotiatorId"] == "JAS"
        assert "running TAPI Agent" in agent.sign_out()
        agent.wait("auth.state", state="signed_out")
        runs = _browser_runs(record, 2)
        ended = runs[-1]  # the browser was sent to the provider's end_session page...
        assert "/session/end" in ended["opened"]
        actions = [page["action"] for page in ended["pages"]]
        assert "logout" in actions  # ...and the provider session was really ended
        assert ended["pages"][-1]["url"].endswith("/session/end/success")
        sign_in_run = runs[0]
        assert "prompt=consent" in sign_in_run["opened"]
        assert sign_in_run["callbacks"][0]["status"] == 200
    finally:
        agent.stop()


def test_agent_process_on_an_issuer_with_a_path_connects_pops_and_signs_out(
    agent_env: dict[str, str], pooled_mock: MockServer
) -> None:
    curl = require_tool("curl", "plays the system browser in the sign-in test")
    issuer = pooled_mock.base_url + POOL
    agent = Agent(_env(agent_env, f"{curl} -sS -L -o /dev/null %s", issuer),
                  "--server", pooled_mock.base_url)
    try:
        assert agent.wait("auth.state", state="signed_in")["negotiatorId"] == "JAS"
        agent.wait("connection.state", state="connected")
        body = {"type": "telephony", "subType": "incomingCall", "products": ["AgencyCloud"],
                "targets": {"negotiatorId": ["JAS"]},
                "payload": {"id": "pool-1", "created": "2026-11-30T10:00:00",
                            "callerId": "07123 456789", "destinationId": "01865 000100"}}
        resp = httpx.post(f"{pooled_mock.base_url}/notifications", json=body,
                          headers={"Authorization": f"Bearer {pooled_mock.provider_token()}"})
        assert resp.status_code == 202
        agent.wait("pop.shown", callId="pool-1")
        agent.wait("auth.state", state="refreshed")  # 6 s tokens: refreshed at half life
        # The ID token was checked in a child process: cryptography (its 6.6 MiB Rust
        # extension) was never loaded into the agent, which lives all day (issue 14).
        maps = Path(f"/proc/{agent.proc.pid}/maps")
        if sys.platform.startswith("linux"):
            assert "PySide6" in maps.read_text()  # the map is the agent's own
            assert "cryptography" not in maps.read_text()
        agent.sign_out()
        agent.wait("auth.state", state="signed_out")
        sessions = list(pooled_mock.state.sessions.values())
        assert sessions and all(s.revoked for s in sessions)  # ended at the provider too
    finally:
        agent.stop()
