"""Screenshots of the screen pops in each state, taken from a real X display.

    xvfb-run -a -s "-screen 0 1280x800x24" env QT_QPA_PLATFORM=xcb \
        .venv/bin/python docs/screenshots/make_screenshots.py

Writes pop-*.png next to this file. Each shot grabs the screen corner where the pops stack, over
a stand-in desktop, so what you see is what the window system shows (mask, stacking, fonts).
Scaled shots (150 %, 200 %) rerun this script with QT_SCALE_FACTOR set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QEventLoop, Qt, QTimer
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QLabel, QLineEdit, QVBoxLayout, QWidget

from tapi_agent.core.calls import CallEvent, CallSettings
from tapi_agent.core.directory import Contact
from tapi_agent.ui.popstack import PopStack

OUT = Path(__file__).resolve().parent
NOW = 1_800_000_000.0
LINES = {"01234 567890": "Sales line", "01234 567891": "Lettings line"}
NAMES = {"RPT": "Rachel Taylor", "JAS": "James Smith"}


class Clock:
    """A settable clock so the timers in the shots show fixed, readable times."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def ev(sub: str, call_id: str, caller: str, *, dest: str = "01234 567890", hunt: bool = False,
       by: str | None = None, at: float = NOW) -> CallEvent:
    sub_type = {"in": "incomingCall", "ans": "answeredCall", "end": "endedCall"}[sub]
    return CallEvent(sub_type, call_id, caller, dest, hunt, by, datetime(2026, 11, 30, 10, 0), at)


def settle(app: QApplication, ms: int = 300) -> None:
    """Let the window system map and paint the windows: run the event loop for `ms`.

    (An event loop, not a processEvents() busy loop: PySide6 6.12 leaks a reference to None on
    each processEvents() call and aborts after some thousands.)
    """
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def desktop(app: QApplication) -> QWidget:
    """A stand-in desktop with a focused text field (the user's CRM), behind the pops."""
    screen = app.primaryScreen()
    w = QWidget()
    w.setWindowFlags(Qt.WindowType.FramelessWindowHint)
    pal = w.palette()
    pal.setColor(QPalette.ColorRole.Window, QColor("#3A6EA5"))
    w.setPalette(pal)
    w.setAutoFillBackground(True)
    box = QVBoxLayout(w)
    box.setContentsMargins(40, 40, 40, 40)
    title = QLabel("AgencyCloud (stand-in)")
    title.setStyleSheet("color: white; font-size: 18pt;")
    field = QLineEdit("Typing here keeps working while calls pop")
    field.setMaximumWidth(420)
    box.addWidget(title)
    box.addWidget(field)
    box.addStretch(1)
    w.setGeometry(screen.geometry())
    w.show()
    w.activateWindow()
    field.setFocus()
    return w


def shoot(app: QApplication, stack: PopStack, name: str) -> Path:
    """Grab the region the visible pops (and the "+N more" line) cover, with a margin."""
    settle(app)
    widgets = [c for c in stack.pops.values() if c.isVisible()]
    if stack.more_label.isVisible():
        widgets.append(stack.more_label)  # type: ignore[arg-type]
    rects = [w.frameGeometry() for w in widgets]
    left = min(r.left() for r in rects) - 24
    top = min(r.top() for r in rects) - 24
    screen = app.primaryScreen()
    geo = screen.geometry()
    right, bottom = geo.right() + 1, geo.bottom() + 1
    pix = screen.grabWindow(0, left, top, right - left, bottom - top)
    path = OUT / name
    pix.save(str(path))
    print("saved", path)
    return path


def scenario(app: QApplication, suffix: str = "") -> None:
    def make(clock: Clock) -> PopStack:
        stack = PopStack(
            "JAS", call_settings=CallSettings(), line_names=LINES, clock=clock,
            url_opener=lambda url: True,
        )
        stack.set_negotiator_names(NAMES)
        return stack

    jane = Contact("RPT22000123", "Jane Cooper", ("07123 456789",))
    shots = []

    clock = Clock()
    stack = make(clock)
    stack.on_event(ev("in", "c1", "07123 456789"))
    stack.set_contacts("c1", [jane])
    clock.now = NOW + 7
    stack.tick()
    for card in stack.pops.values():
        card.refresh_timer()
    shots.append((stack, "pop-ringing"))

    clock = Clock()
    stack2 = make(clock)
    stack2.on_event(ev("in", "c2", "+33 1 42 68 53 00", dest="01234 567891", hunt=True))
    clock.now = NOW + 12
    for card in stack2.pops.values():
        card.refresh_timer()
    shots.append((stack2, "pop-hunt-group"))

    clock = Clock()
    stack3 = make(clock)
    stack3.on_event(ev("in", "c3", "07700 900123", hunt=True))
    stack3.set_contacts("c3", [Contact("LET01", "Tom Baker"), Contact("LET02", "Tina Baker")])
    clock.now = NOW + 9
    stack3.on_event(ev("ans", "c3", "07700 900123", hunt=True, by="RPT", at=NOW + 9))
    shots.append((stack3, "pop-answered-elsewhere"))

    clock = Clock()
    stack4 = make(clock)
    stack4.on_event(ev("in", "c4", "07123 456789"))
    stack4.set_contacts("c4", [jane])
    clock.now = NOW + 4
    stack4.on_event(ev("ans", "c4", "07123 456789", by="JAS", at=NOW + 4))
    clock.now = NOW + 4 + 83
    for card in stack4.pops.values():
        card.refresh_timer()
    shots.append((stack4, "pop-in-call"))

    clock = Clock()
    stack5 = make(clock)
    stack5.on_event(ev("in", "c5", "07123 456789"))
    stack5.set_contacts("c5", [jane])
    clock.now = NOW + 5
    stack5.on_event(ev("ans", "c5", "07123 456789", by="JAS", at=NOW + 5))
    clock.now = NOW + 5 + 184
    stack5.on_event(ev("end", "c5", "07123 456789", by="JAS", at=clock.now))
    shots.append((stack5, "pop-ended"))

    clock = Clock()
    stack6 = make(clock)
    callers = ["07123 456789", "", "020 7946 0018", "07700 900456", "0161 496 0000"]
    for i, caller in enumerate(callers):
        clock.now = NOW + 4 * i
        stack6.on_event(ev("in", f"s{i}", caller, hunt=i % 2 == 1, at=NOW + 4 * i))
    stack6.set_contacts("s0", [jane])
    stack6.set_contacts("s2", [Contact("OFF9", "Harbour Lettings Ltd")])
    clock.now = NOW + 21
    for card in stack6.pops.values():
        card.refresh_timer()
    shots.append((stack6, "pop-stacked"))

    # One stack at a time on screen, so each shot shows only its own pops.
    everything = [s for s, _ in shots]
    for stack, name in shots:
        for other in everything:
            if other is not stack:
                for card in other.pops.values():
                    card.hide()
                other.more_label.hide()
        stack._relayout()
        if not suffix or name == "pop-ringing" or name == "pop-stacked":
            shoot(app, stack, f"{name}{suffix}.png")


def main() -> int:
    scale = os.environ.get("QT_SCALE_FACTOR")
    app = QApplication(sys.argv)
    background = desktop(app)
    settle(app)
    suffix = f"-{round(float(scale) * 100)}" if scale else ""
    scenario(app, suffix)
    background.close()
    if not scale and "--no-scaled" not in sys.argv:
        for factor in ("1.5", "2"):
            env = {**os.environ, "QT_SCALE_FACTOR": factor}
            subprocess.run([sys.executable, __file__, "--no-scaled"], env=env, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
