"""The PyInstaller bundle built from installer/tapi-agent.spec runs: version, diagnose, contents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from PyInstaller.archive.readers import CArchiveReader

from tapi_agent import __version__
from tapi_agent.mock.server import MockServer
from tests.helpers import require_tool, wait_until

pytestmark = pytest.mark.timeout(360)  # the first test here builds the bundle

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _isolated_env(tmp_path: Path) -> dict[str, str]:
    """No settings, keyrings or logs of the machine running the tests leak in or out."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPI_AGENT_")}
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_RUNTIME_DIR": str(tmp_path),
        "NO_PROXY": "127.0.0.1,localhost",
    })
    return env


@pytest.mark.parametrize("exe", ["tapi-agent", "tapi-agent-cli"])
def test_frozen_agent_prints_its_version(frozen_bundle: Path, exe: str, tmp_path: Path) -> None:
    result = subprocess.run([str(frozen_bundle / exe), "--version"], capture_output=True,
                            text=True, timeout=60, env=_isolated_env(tmp_path), check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tapi-agent {__version__}"


def test_frozen_bundle_leaves_out_the_mock_and_its_dependencies(frozen_bundle: Path) -> None:
    archive = CArchiveReader(str(frozen_bundle / "tapi-agent"))
    modules = set(archive.open_embedded_archive("PYZ.pyz").toc)
    tops = {m.split(".")[0] for m in modules}
    assert not tops & {"fastapi", "uvicorn", "starlette", "pytest", "hypothesis",
                       "numpy", "PIL"}
    # ID tokens are verified with PyJWT + cryptography, in a child process the frozen app
    # starts as `tapi-agent-cli --verify-id-token` (net/id_token_child.py)
    assert {"jwt", "cryptography"} <= tops
    assert not {m for m in modules if m.startswith("tapi_agent.mock")}
    # ...while what the agent imports lazily (after parsing its command line) is in, and
    # keyring for the credential store child (`tapi-agent-cli --token-store`, net/token_child.py)
    assert {"tapi_agent.app", "tapi_agent.config", "tapi_agent.net.tokens",
            "tapi_agent.net.token_child", "tapi_agent.ui.tray", "keyring.backends.Windows",
            "keyring.backends.SecretService", "truststore"} <= modules
    internal = frozen_bundle / "_internal"
    assert not (internal / "fastapi").exists() and not (internal / "uvicorn").exists()
    assert (internal / "tapi_agent" / "resources" / "app-icon.ico").is_file()


def test_frozen_diagnose_passes_against_a_running_mock_and_fails_when_it_is_gone(
    frozen_bundle: Path, approving_mock: MockServer, tmp_path: Path
) -> None:
    require_tool("dbus-run-session", "runs a private D-Bus session for gnome-keyring")
    require_tool("gnome-keyring-daemon", "the credential store the frozen agent reads")
    server = approving_mock.base_url
    cli = frozen_bundle / "tapi-agent-cli"
    env = _isolated_env(tmp_path)
    env["PYTHONPATH"] = str(ROOT)
    # One private Secret Service: sign in as the agent would (the session goes to the keyring),
    # then the frozen agent's diagnose finds the session, refreshes it and opens the stream.
    command = (
        "echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null && "
        f'"{sys.executable}" "{HERE / "sign_in_for_diagnose.py"}" "{server}" && '
        f'exec "{cli}" diagnose --server "{server}" --timeout 10'
    )
    result = subprocess.run(["dbus-run-session", "--", "sh", "-c", command], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert "SIGNED-IN JAS" in result.stdout, output
    assert result.returncode == 0, output
    assert "Result: OK" in result.stdout, output

    approving_mock.stop()
    down = subprocess.run([str(cli), "diagnose", "--server", server, "--timeout", "3"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert down.returncode == 1, down.stdout + down.stderr
    assert "FAILED at step TCP" in down.stdout, down.stdout + down.stderr


def _events(log: Path) -> list[dict[str, object]]:
    if not log.exists():
        return []
    lines = log.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{") and line.endswith("}")]


def _seen(log: Path, event: str, **fields: object) -> bool:
    return any(e["event"] == event and all(e.get(k) == v for k, v in fields.items())
               for e in _events(log))


def test_frozen_agent_signs_in_by_itself_and_pops_an_incoming_call(
    frozen_bundle: Path, approving_mock: MockServer, tmp_path: Path
) -> None:
    # $BROWSER plays the system browser: it follows the authorize URL to the agent's loopback
    # redirect, in the background as a real browser would.
    browser = tmp_path / "browser.sh"
    browser.write_text(
        "#!/bin/sh\n"
        f'"{sys.executable}" -c "import httpx, sys; '
        f'httpx.get(sys.argv[1], follow_redirects=True, timeout=20)" "$1" &\n',
        encoding="utf-8")
    browser.chmod(0o755)
    env = _isolated_env(tmp_path)
    env.update({"BROWSER": str(browser), "QT_QPA_PLATFORM": "offscreen",
                "DBUS_SESSION_BUS_ADDRESS": "disabled:",  # no keyring: the session stays in memory
                # ...as the frozen credential store child (`tapi-agent-cli --token-store`) finds
                "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    log = tmp_path / "events.jsonl"
    stderr = tmp_path / "stderr.txt"
    with stderr.open("wb") as err:
        agent = subprocess.Popen(
            [str(frozen_bundle / "tapi-agent"), "--server", approving_mock.base_url,
             "--log-json", str(log), "--log-level", "DEBUG"],
            env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_until(lambda: agent.poll() is not None or _seen(log, "connection.state",
                                                             state="connected"),
                   timeout=60, what="the frozen agent to sign in and connect")
        assert agent.poll() is None, stderr.read_text(errors="replace")
        assert _seen(log, "auth.state", state="signed_in", negotiatorId="JAS")
        # ...with the ID token checked by the frozen child (`tapi-agent-cli --verify-id-token`):
        # cryptography is never loaded into the agent (issue 14)
        maps = (Path("/proc") / str(agent.pid) / "maps").read_text()
        assert "pyside6" in maps.lower() and "cryptography" not in maps
        # ...and the credential store asked by the frozen child, which answered: no store
        probes = [e for e in _events(log) if e.get("logger") == "tapi_agent.net.token_child"]
        assert any("probe in a child process" in str(e["message"])
                   and "(exit 0)" in str(e["message"]) for e in probes), probes
        assert not any("could not find out" in str(e["message"]) for e in probes), probes

        body = {
            "type": "telephony", "subType": "incomingCall", "products": ["AgencyCloud"],
            "targets": {"negotiatorId": ["JAS"]},
            "payload": {"id": "frozen-1", "created": datetime.now(UTC).isoformat(),
                        "callerId": "07123 456789", "destinationId": "01234 567890"},
        }
        response = httpx.post(f"{approving_mock.base_url}/notifications", json=body, headers={
            "Authorization": f"Bearer {approving_mock.provider_token()}"})
        assert response.status_code == 202, response.text
        wait_until(lambda: _seen(log, "pop.shown", callId="frozen-1"), timeout=30,
                   what="the frozen agent to pop the call")
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait(timeout=10)
