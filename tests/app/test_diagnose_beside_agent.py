"""`tapi-agent diagnose` run while the real agent runs never signs the user out.

Both processes use one real Secret Service (gnome-keyring under a private dbus-run-session),
the way a desktop shares the credential store. The backend is the real mock with 30 s tokens;
it revokes a whole session when a refresh token is presented twice, as Reapit Connect does.
Before the fix, each `diagnose` refreshed the stored session: the agent's next refresh then
presented a spent token and the user was signed out.

A driver script runs inside the D-Bus session (the agent and every `diagnose` must see the
same bus) and reports what it saw as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tapi_agent.mock.server import MockServer
from tests.app.test_agent_process import free_port
from tests.app.test_single_instance_process import _command, agent_env
from tests.helpers import require_tool
from tests.net.test_tokens import WAIT_FOR_SECRET_SERVICE

__all__ = ["agent_env"]

DRIVER = WAIT_FOR_SECRET_SERVICE + textwrap.dedent("""
    import json, queue, subprocess, sys, threading, time

    command = json.loads(sys.argv[1])
    agent = subprocess.Popen(command + ["--log-json", "-"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in agent.stdout], daemon=True).start()
    seen = []

    def wait(pred, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if agent.poll() is not None:
                    break
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            seen.append(record)
            if pred(record):
                return record
        raise SystemExit("timed out; seen: " + json.dumps(seen[-40:]))

    def auth(state):
        return lambda r: r.get("event") == "auth.state" and r.get("state") == state

    result = {}
    try:
        wait(auth("signed_in"), 60)
        wait(lambda r: r.get("event") == "connection.state" and r.get("state") == "connected", 60)
        result["diagnose"] = []
        for _ in range(5):
            run = subprocess.run(command + ["diagnose"], capture_output=True, text=True,
                                 timeout=120)
            result["diagnose"].append({"rc": run.returncode, "out": run.stdout,
                                       "err": run.stderr})
        mark = len(seen)
        # the agent's own refresh after the diagnose runs (30 s tokens: at half life)
        wait(lambda r: r.get("event") == "auth.state"
             and r.get("state") in ("refreshed", "signed_out"), 60)
        result["events"] = seen
        result["after"] = mark
    finally:
        agent.terminate()
        agent.wait(20)
    print("RESULT " + json.dumps(result))
""")


@pytest.mark.slow
def test_diagnose_five_times_beside_a_running_agent_keeps_it_signed_in(
    agent_env: dict[str, str], tmp_path: Path
) -> None:
    require_tool("dbus-run-session", "runs a private D-Bus session for gnome-keyring")
    require_tool("gnome-keyring-daemon", "the Secret Service both processes share")
    curl = require_tool("curl", "plays the system browser in the sign-in")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    with MockServer(port=0, token_ttl=30, auto_approve="JAS", heartbeat_ms=2000) as mock:
        env = dict(agent_env, BROWSER=f"{curl} -sS -L -o /dev/null %s",
                   TAPI_AGENT_SERVER_URL=mock.base_url,
                   TAPI_AGENT_AUTH_REDIRECT_PORT=str(free_port()),
                   XDG_DATA_HOME=str(tmp_path / "data"))
        env.pop("PYTHON_KEYRING_BACKEND", None)  # the Secret Service, as on a desktop
        (tmp_path / "home").mkdir(exist_ok=True)
        command = (
            "echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; "
            f"exec {sys.executable} {driver} '{json.dumps(_command())}'"
        )
        done = subprocess.run(["dbus-run-session", "--", "sh", "-c", command], env=env,
                              capture_output=True, text=True, timeout=400, check=False)
        sessions = list(mock.state.sessions.values())
    out = next((line for line in done.stdout.splitlines() if line.startswith("RESULT ")), "")
    assert out, f"driver failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result = json.loads(out[len("RESULT "):])
    messages = [str(r.get("message", "")) for r in result["events"]]
    assert not any("No credential store" in m for m in messages)  # the keyring was used
    for run in result["diagnose"]:
        assert run["rc"] == 0, run
        assert "a running TAPI Agent holds the session" in run["out"], run["out"]
    states = [r["state"] for r in result["events"] if r.get("event") == "auth.state"]
    assert "signed_out" not in states, states
    after = [r for r in result["events"][result["after"]:] if r.get("event") == "auth.state"]
    assert after and after[-1]["state"] == "refreshed"  # it renewed its session afterwards
    assert len(sessions) == 1 and not sessions[0].revoked  # never seen as a reuse
