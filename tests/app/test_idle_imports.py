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
from typing import Any

import pytest

from tests.app.test_agent_process import free_port
from tests.app.test_single_instance_process import agent_env
from tests.helpers import require_tool
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
