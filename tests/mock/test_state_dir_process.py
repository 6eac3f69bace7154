"""The real agent stays signed in and loses no call when `tapi-agent-mock serve --state-dir` is
killed (SIGKILL) and started again on the same directory and port."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.app.test_agent_process import free_port
from tests.app.test_single_instance_process import _command, _pump, _wait_event, agent_env
from tests.helpers import require_tool

__all__ = ["agent_env"]  # the fixture, re-used

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def _serve(port: int, state_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tapi_agent.mock.cli", "serve", "--port", str(port),
         "--heartbeat-ms", "2000", "--auto-approve", "JAS", "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    if not banner.startswith("tapi-agent-mock listening on "):
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"the mock did not start: {banner!r} {err}")
    return proc, banner.split()[3]


def _provider(url: str) -> dict[str, str]:
    r = httpx.post(url + "/token", data={"grant_type": "client_credentials"},
                   auth=("demo-provider", "demo-secret"), timeout=10)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_a_call_accepted_before_a_sigkill_pops_after_the_restart_without_a_new_sign_in(
    agent_env: dict[str, str], tmp_path: Path
) -> None:
    curl = require_tool("curl", "plays the system browser in the sign-in")
    port, state_dir = free_port(), tmp_path / "mock-state"
    mock, url = _serve(port, state_dir)
    env = dict(agent_env, BROWSER=f"{curl} -sS -L -o /dev/null %s",
               PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
               TAPI_AGENT_AUTH_REDIRECT_PORT=str(free_port()))
    agent = subprocess.Popen([*_command(), "--server", url, "--log-json", "-"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert agent.stdout is not None
    threading.Thread(target=_pump, args=(agent.stdout, lines), daemon=True).start()
    try:
        _wait_event(lines, agent, "auth.state", 30, state="signed_in")
        _wait_event(lines, agent, "connection.state", 30, state="connected")
        # The agent's link goes quiet (the mock sends nothing more on it): the call below is
        # accepted and kept, but not delivered.
        silenced = httpx.post(url + "/_mock/faults", json={"kind": "silence",
                                                           "negotiatorId": "JAS"}, timeout=10)
        assert silenced.json()["applied"] == 1
        created = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        call = {"type": "telephony", "subType": "incomingCall", "products": ["AgencyCloud"],
                "targets": {"negotiatorId": ["JAS"]},
                "payload": {"id": "kept-across-kill", "created": created,
                            "callerId": "07123 456789", "destinationId": "01865 000100"}}
        accepted = httpx.post(url + "/notifications", json=call, headers=_provider(url),
                              timeout=10)
        assert accepted.status_code == 202  # acknowledged to the caller: it must not be lost

        mock.send_signal(signal.SIGKILL)
        mock.wait(10)
        mock.communicate(timeout=10)
        mock, again = _serve(port, state_dir)
        assert again == url

        shown = _wait_event(lines, agent, "pop.shown", 40, callId="kept-across-kill")
        assert shown["state"] == "ringing"
        journal = httpx.get(url + "/_mock/journal", timeout=10).json()["entries"]
        requests = [e for e in journal if e["kind"] == "request"]
        # Connected again to the new process without signing in again: no authorize, no
        # code exchange; the stream was opened with the token from before the kill.
        assert not [e for e in requests if e["path"] in ("/authorize", "/oauth/authorize")]
        live = httpx.get(url + "/_mock/connections", timeout=10).json()["connections"]
        assert [c["negotiatorId"] for c in live] == ["JAS"]
        resumes = [e for e in journal if e["kind"] == "resume"]
        assert resumes and resumes[-1]["count"] >= 1 and resumes[-1]["complete"] is True
    finally:
        agent.terminate()
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
        if mock.poll() is None:
            mock.terminate()
            mock.communicate(timeout=20)
