"""A pop never takes the focus: checked on a real X server (Xvfb), where focus is real.

Qt's offscreen platform activates every window it shows, whatever its flags, so it cannot tell a
polite pop from a rude one. Here the user's window holds the X input focus, a call pops, and the
X server is asked who has the focus and where typed keys go. A control run with an ordinary
window shows the check can see a focus thief. And once the user clicks into a pop, it takes the
keyboard so that Esc dismisses it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import require_tool, wait_until

PROBE = r"""
import json, subprocess, sys
from datetime import datetime
from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer
from PySide6.QtWidgets import QApplication, QLineEdit, QWidget

app = QApplication([])

def run_loop(ms):
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()

def wait(cond, ms=5000):
    t = QElapsedTimer(); t.start()
    while not cond() and t.elapsed() < ms:
        run_loop(20)
    return bool(cond())

def x_focus():
    out = subprocess.run(["xdotool", "getwindowfocus"], capture_output=True, text=True).stdout
    return int(out.strip() or 0)

editor = QLineEdit()
editor.setWindowTitle("editor")
editor.resize(400, 40)
editor.move(20, 20)
editor.show()
editor.activateWindow()
editor.setFocus()
ready = wait(lambda: QApplication.activeWindow() is editor and x_focus() == int(editor.winId()))

if sys.argv[1] in ("pop", "esc"):
    from tapi_agent.core.calls import CallEvent
    from tapi_agent.ui.popstack import PopStack
    stack = PopStack("JAS")
    stack.on_event(CallEvent("incomingCall", "c1", "07123 456789", "01234 567890", True, None,
                             datetime(2026, 11, 30, 10, 0), None))
    pop = stack.pops["c1"]
else:  # control: an ordinary always-on-top window, as a naive pop would be
    pop = QWidget()
    pop.setWindowFlags(Qt.WindowType.Tool | Qt.WindowType.FramelessWindowHint
                       | Qt.WindowType.WindowStaysOnTopHint)
    pop.setGeometry(800, 600, 360, 120)
    pop.show()
    pop.activateWindow()

shown = wait(lambda: pop.isVisible() and getattr(pop, "painted", True))
if sys.argv[1] == "esc":
    # The user clicks into the card's text, then presses Esc: the card dismisses itself.
    g = pop.geometry()
    subprocess.run(["xdotool", "mousemove", str(g.x() + g.width() // 2), str(g.y() + 50),
                    "click", "1"], check=False)
    took_focus = wait(lambda: x_focus() == int(pop.winId()))
    subprocess.run(["xdotool", "key", "Escape"], check=False)
    gone = wait(lambda: "c1" not in stack.pops)
    print(json.dumps({"ready": ready, "shown": shown, "took_focus_on_click": took_focus,
                      "dismissed_by_esc": gone,
                      "history": [h.outcome for h in stack.book.history]}))
    sys.exit(0)
# Give a focus change every chance to happen (ends early if it does).
wait(lambda: x_focus() != int(editor.winId()), 700)
focus_kept = x_focus() == int(editor.winId())
subprocess.run(["xdotool", "type", "--delay", "5", "abc"], check=False)
typed = wait(lambda: editor.text() == "abc", 3000)
print(json.dumps({
    "ready": ready, "shown": shown, "x_focus_kept": focus_kept,
    "qt_active_is_editor": QApplication.activeWindow() is editor,
    "pop_active": pop.isActiveWindow(), "typed_into_editor": typed, "text": editor.text(),
}))
"""


@pytest.fixture
def xserver() -> Iterator[str]:
    """A private Xvfb display, stopped by its PID afterwards."""
    xvfb = require_tool("Xvfb", "focus is only real on a real X server")
    require_tool("xdotool", "asks the X server who has the focus and types keys")
    n = 140
    while Path(f"/tmp/.X11-unix/X{n}").exists() or Path(f"/tmp/.X{n}-lock").exists():
        n += 1
    proc = subprocess.Popen(
        [xvfb, f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: Path(f"/tmp/.X11-unix/X{n}").exists(), 10, what="Xvfb socket")
        yield f":{n}"
    finally:
        proc.terminate()
        proc.wait(10)


def probe(display: str, mode: str) -> dict[str, object]:
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True,
        timeout=60, cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ready"], f"the user's window never got the focus: {result}"
    assert result["shown"], result
    return result


@pytest.mark.needs_tool("Xvfb")
def test_showing_a_pop_does_not_change_the_focused_window(xserver: str) -> None:
    result = probe(xserver, "pop")
    assert result["x_focus_kept"] is True
    assert result["qt_active_is_editor"] is True
    assert result["pop_active"] is False
    assert result["typed_into_editor"] is True, result


@pytest.mark.needs_tool("Xvfb")
def test_the_focus_check_catches_an_ordinary_window_that_steals_it(xserver: str) -> None:
    result = probe(xserver, "control")
    assert result["x_focus_kept"] is False
    assert result["typed_into_editor"] is False


@pytest.mark.needs_tool("Xvfb")
def test_esc_dismisses_a_pop_after_the_user_clicks_into_it(xserver: str) -> None:
    result = probe(xserver, "esc")
    assert result["took_focus_on_click"] is True
    assert result["dismissed_by_esc"] is True
    assert result["history"] == ["dismissed"]
