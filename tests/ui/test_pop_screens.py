"""Pops on real Qt screens: two monitors, the tray's monitor, per-monitor scaling.

Qt's offscreen platform takes a screen layout from a JSON file, but only when the application
starts, so each layout runs in a child process that prints where the pops went.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PROBE = r"""
import json, sys
from datetime import datetime
from PySide6.QtCore import QRect
from PySide6.QtWidgets import QApplication

app = QApplication([])
from tapi_agent.core.calls import CallEvent
from tapi_agent.ui.popstack import PopStack

args = json.loads(sys.argv[1])
stack = PopStack("JAS", screen=args["screen"], corner=args.get("corner", "bottom-right"),
                 max_stacked=args.get("max_stacked", 3))
if args.get("tray"):
    stack.set_tray_geometry(QRect(*args["tray"]))
for i in range(args.get("calls", 1)):
    stack.on_event(CallEvent("incomingCall", f"c{i}", "07123 45678" + str(i), "01234 567890",
                             False, None, datetime(2026, 11, 30, 10, 0), None))
cards = []
for key, card in stack.pops.items():
    g = card.geometry()
    cards.append({"key": key, "visible": card.isVisible(), "rect": [g.x(), g.y(), g.width(),
                  g.height()], "screen": card.screen().name(),
                  "dpr": card.devicePixelRatio(), "screen_dpr": card.screen().devicePixelRatio()})
m = stack.more_label
print(json.dumps({"cards": cards, "more": m.text() if m.isVisible() else None,
                  "screens": [s.name() for s in app.screens()]}))
stack.close_all()
"""

LEFT = {"name": "LEFT", "x": 0, "y": 0, "width": 1920, "height": 1080, "logicalDpi": 96,
        "dpr": 1.0}
# A 4K monitor at 150 %: Qt sees it as 2560x1440 logical pixels with a pixel ratio of 1.5.
RIGHT_150 = {"name": "RIGHT", "x": 1920, "y": 0, "width": 2560, "height": 1440,
             "logicalDpi": 96, "dpr": 1.5}


def run(tmp_path: Path, screens: list[dict[str, Any]], **args: Any) -> dict[str, Any]:
    config = tmp_path / "screens.json"
    config.write_text(json.dumps({"screens": screens, "windowFrameMargins": False}))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}"}
    args.setdefault("screen", "tray")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)], env=env, capture_output=True,
        text=True, timeout=60, cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["screens"] == [s["name"] for s in screens]
    return result


def inside(rect: list[int], screen: dict[str, Any]) -> bool:
    x, y, w, h = rect
    return (x >= screen["x"] and y >= screen["y"] and x + w <= screen["x"] + screen["width"]
            and y + h <= screen["y"] + screen["height"])


def test_pop_goes_to_the_monitor_that_holds_the_tray(tmp_path: Path) -> None:
    tray = [1920 + 2400, 1440 - 30, 24, 24]  # the tray sits on the right-hand 150 % monitor
    result = run(tmp_path, [LEFT, RIGHT_150], tray=tray)
    (card,) = result["cards"]
    assert card["visible"] and card["screen"] == "RIGHT"
    assert inside(card["rect"], RIGHT_150)
    x, y, w, h = card["rect"]
    assert w == 360 and card["screen_dpr"] == 1.5  # 360 logical px, drawn at 1.5x there
    assert x + w == 1920 + 2560 - 12 and y + h == 1440 - 12  # bottom-right corner


def test_a_configured_screen_number_overrides_the_tray(tmp_path: Path) -> None:
    result = run(tmp_path, [LEFT, RIGHT_150], tray=[4300, 1410, 24, 24], screen="1")
    (card,) = result["cards"]
    assert card["screen"] == "LEFT" and inside(card["rect"], LEFT)


def test_a_monitor_with_a_high_logical_dpi_gets_a_card_scaled_to_match(tmp_path: Path) -> None:
    # 144 DPI (150 %) reported as DPI: Qt turns it into a pixel ratio of 1.5 over a logical
    # 1920x1080 desktop, so the 360 px card is 540 device pixels wide, like the text in it.
    big = {"name": "BIG", "x": 0, "y": 0, "width": 2880, "height": 1620, "logicalDpi": 144,
           "dpr": 1.0}
    (card,) = run(tmp_path, [big])["cards"]
    assert card["dpr"] == 1.5
    assert card["rect"][2] == 360 and card["rect"][2] * card["dpr"] == 540
    x, y, w, h = card["rect"]
    assert x + w == 1920 - 12 and y + h == 1080 - 12


def test_a_short_monitor_stacks_what_fits_and_counts_the_rest(tmp_path: Path) -> None:
    small = {"name": "SMALL", "x": 0, "y": 0, "width": 1024, "height": 400, "logicalDpi": 96,
             "dpr": 1.0}
    result = run(tmp_path, [small], calls=5, max_stacked=4, corner="top-left")
    shown = [c for c in result["cards"] if c["visible"]]
    assert 1 <= len(shown) < 4
    assert all(inside(c["rect"], small) for c in shown)
    assert result["more"] == f"+{5 - len(shown)} more"
