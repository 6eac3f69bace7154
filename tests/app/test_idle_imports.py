"""What the running agent has loaded once it started (issue 14, idle memory): modules only some
paths need are imported on those paths, so an idle agent does not keep them.

Checked in a fresh interpreter that runs the real `tapi_agent.app.main` (the pytest process has
everything loaded): `Agent.start` is wrapped to report `sys.modules` and `linecache` right after
the agent started, then to quit as the menu's Quit does. The sign-in it starts goes to a port
nobody listens on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tapi_agent.mock.server import MockServer
from tests.app.test_agent_process import free_port
from tests.app.test_single_instance_process import agent_env
from tests.helpers import require_tool
from tests.net.child_keyrings import FILE_ENV
from tests.ui.xtray import x_display_with_tray

__all__ = ["agent_env"]  # the fixture, re-used

STARTED = textwrap.dedent("""
    import json, linecache, sys
    from tapi_agent.app import agent as agent_module, main

    started = agent_module.Agent.start

    def start(self):
        started(self)
        from PySide6.QtCore import QTimer

        print("STARTED " + json.dumps({
            "tray": type(self.tray).__name__,
            "modules": sorted(sys.modules),
            "linecache": sorted(n for n, entry in linecache.cache.items() if len(entry) > 1),
        }), flush=True)
        QTimer.singleShot(0, self.tray.quit_requested.emit)  # the menu's Quit

    agent_module.Agent.start = start
    sys.exit(main(sys.argv[1:]))
""")


def _started_agent(env: dict[str, str]) -> dict[str, Any]:
    """Run the agent until it started; what it had loaded then."""
    env = dict(env, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    done = subprocess.run(
        [sys.executable, "-c", STARTED, "--server", f"http://127.0.0.1:{free_port()}"],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("STARTED ")]
    assert len(lines) == 1, done.stdout[-3000:] + done.stderr[-3000:]
    report: dict[str, Any] = json.loads(lines[0].removeprefix("STARTED "))
    return report


@pytest.fixture(scope="module")
def tray_display() -> Any:
    for tool in ("Xvfb", "trayer"):
        require_tool(tool, "the agent's tray needs a real X server with a system tray")
    with x_display_with_tray() as display:
        yield display


def test_an_agent_with_a_tray_does_not_load_the_status_window(
    agent_env: dict[str, str], tray_display: str,
) -> None:
    report = _started_agent(dict(agent_env, DISPLAY=tray_display, QT_QPA_PLATFORM="xcb"))
    assert report["tray"] == "Tray"
    assert "tapi_agent.ui.tray" in report["modules"]  # the check sees what the agent loaded
    assert "tapi_agent.ui.status_window" not in report["modules"]


def test_an_agent_without_a_tray_imports_and_shows_the_status_window(
    agent_env: dict[str, str],
) -> None:
    report = _started_agent(agent_env)  # offscreen: no system tray
    assert report["tray"] == "StatusWindow"
    assert "tapi_agent.ui.status_window" in report["modules"]



def test_the_started_agent_keeps_no_source_lines_pyside_read_while_it_loaded(
    agent_env: dict[str, str],
) -> None:
    report = _started_agent(agent_env)
    assert "PySide6" in report["modules"]
    kept = [name for name in report["linecache"]
            if name.endswith(("enum.py", "shiboken6/__init__.py"))]
    assert kept == []  # dropped by ui.feature_scan when it installed its check


def test_the_started_agent_has_not_loaded_zoneinfo(agent_env: dict[str, str]) -> None:
    """`calls.timezone` is read only for a payload time without a zone that makes a call
    stale; a started agent has not loaded `zoneinfo` (nor the `sysconfig` it imports)."""
    report = _started_agent(agent_env)
    assert "tapi_agent.core.calls" in report["modules"]  # the pops' call book is built
    assert [m for m in report["modules"] if m.split(".")[0] in ("zoneinfo", "sysconfig")] == []


SIGNED_IN = textwrap.dedent("""
    import json, sys
    from tapi_agent.app import agent as agent_module, main, session_flow

    agents = []
    started, opened = agent_module.Agent.start, session_flow.SessionFlow.sign_in

    def start(self):
        agents.append(self)
        started(self)

    async def sign_in(self, server):
        session = await opened(self, server)
        print("SIGNED-IN " + json.dumps({
            "signedIn": session is not None and session.signed_in,
            "modules": sorted(sys.modules),
        }), flush=True)
        agents[0].tray.quit_requested.emit()  # the menu's Quit (queued to the GUI thread)
        return session

    agent_module.Agent.start = start
    session_flow.SessionFlow.sign_in = sign_in
    sys.exit(main(sys.argv[1:]))
""")

KEYRING_CHAIN = ("keyring", "importlib_metadata", "jaraco", "jeepney", "secretstorage")


def _signed_in_agent(env: dict[str, str], server: str) -> dict[str, Any]:
    """Run the agent until its sign-in (a restore or through the browser) is done; what it
    had loaded then."""
    done = subprocess.run([sys.executable, "-c", SIGNED_IN, "--server", server], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("SIGNED-IN ")]
    assert len(lines) == 1, done.stdout[-3000:] + done.stderr[-3000:]
    report: dict[str, Any] = json.loads(lines[0].removeprefix("SIGNED-IN "))
    return report


def test_the_agent_signs_in_and_restores_without_loading_keyring(
    agent_env: dict[str, str], approving_mock: MockServer, tmp_path: Path,
) -> None:
    """The credential store is used through short-lived children (net/token_child.py): after
    a sign-in that saved the session, and after a start that restored (loaded, refreshed and
    saved) it, the agent has not loaded keyring or its chain (issue 14)."""
    curl = require_tool("curl", "plays the system browser in the sign-in")
    browser = tmp_path / "browser.sh"
    runs = tmp_path / "browser-runs"
    browser.write_text(f'#!/bin/sh\necho "$1" >> "{runs}"\nexec {curl} -sS -L -o /dev/null "$1"\n',
                       encoding="utf-8")
    browser.chmod(0o755)
    store = tmp_path / "keyring.json"
    env = dict(agent_env, BROWSER=str(browser), TAPI_AGENT_AUTH_REDIRECT_PORT=str(free_port()),
               PYTHON_KEYRING_BACKEND="tests.net.child_keyrings.FileKeyring",
               **{FILE_ENV: str(store)})

    signed_in = _signed_in_agent(env, approving_mock.base_url)
    assert signed_in["signedIn"] and len(runs.read_text().splitlines()) == 1  # the browser
    assert "tapi_agent.net.auth" in signed_in["modules"]
    assert [m for m in signed_in["modules"] if m.split(".")[0] in KEYRING_CHAIN] == []
    saved = json.loads(store.read_text())
    assert [key for key in saved if key.startswith("TapiAgent/session ")]  # saved by a child

    restored = _signed_in_agent(env, approving_mock.base_url)
    assert restored["signedIn"] and len(runs.read_text().splitlines()) == 1  # no browser
    assert [m for m in restored["modules"] if m.split(".")[0] in KEYRING_CHAIN] == []
    assert json.loads(store.read_text()) != saved  # the refresh's rotated token, saved
