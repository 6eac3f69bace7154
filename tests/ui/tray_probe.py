"""Run the real Tray on a real X display with a system tray and report what happened as JSON.

Used by test_tray_xvfb.py (in a subprocess, because the test process itself is offscreen) and by
docs/screenshots/make_tray_menu.py (`--screenshot PATH`). Needs DISPLAY and QT_QPA_PLATFORM=xcb.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from tapi_agent.core.calls import HistoryEntry
from tapi_agent.core.connection import ConnectionStatus, ConnState
from tapi_agent.core.missed import MissedCall
from tapi_agent.ui.tray import SIGNAL_NAMES, Tray


def sample_data() -> tuple[list[HistoryEntry], list[MissedCall]]:
    """A believable morning: recent calls and two missed ones."""
    now = datetime.now(UTC)
    history = [
        HistoryEntry("h1", "c1", "07700 900123", "01234 567890",
                     (now - timedelta(minutes=4)).timestamp(), "answered", "JAS"),
        HistoryEntry("h2", "c2", "020 7946 0958", "01234 567890",
                     (now - timedelta(minutes=19)).timestamp(), "answered_elsewhere", "RPT"),
        HistoryEntry("h3", "c3", "07700 900456", "01234 567891",
                     (now - timedelta(minutes=42)).timestamp(), "missed", None),
    ]
    missed = [
        MissedCall("d1", "m1", "07700 900789", "01234 567890", now - timedelta(minutes=7)),
        MissedCall("d2", "m2", "0161 496 0321", "01234 567891", now - timedelta(minutes=55)),
    ]
    return history, missed


def main() -> int:
    """Show the tray, check it is embedded, trigger every action, optionally screenshot."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args()

    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    report: dict[str, Any] = {}

    # trayer may still be claiming _NET_SYSTEM_TRAY_S0 when we start: wait for it.
    deadline = time.monotonic() + 15
    while not QSystemTrayIcon.isSystemTrayAvailable() and time.monotonic() < deadline:
        app.processEvents()
    report["available"] = QSystemTrayIcon.isSystemTrayAvailable()

    tray = Tray()
    # What run_gui does: build the rest once the icon is docked (bounded wait).
    docked_call: dict[str, Any] = {}

    def on_docked() -> None:
        g = tray.icon.geometry()
        docked_call.update(docked=tray.docked, geometry=[g.x(), g.y(), g.width(), g.height()])

    tray.when_docked(on_docked, limit_ms=15000)
    history, missed = sample_data()
    tray.set_status(ConnectionStatus(ConnState.CONNECTED, 1, None), "Jane Smith (JAS)")
    tray.set_history(history, labels={"h1": "Ann Buyer", "h2": "Bob Landlord"},
                     record_urls={"h1": "agencycloud://contacts/RPT20000001"},
                     log_retry={"h1": "call-h1"})
    tray.set_missed(missed)
    tray.set_autostart(True)
    tray.show()
    report["tray_available_property"] = tray.available

    def embedded() -> bool:
        # Until trayer has reparented the icon into its panel (top right), it sits at 0,0.
        geo = tray.icon.geometry()
        return tray.icon.isVisible() and geo.width() > 0 and geo.x() > 0

    deadline = time.monotonic() + 15
    while not embedded() and time.monotonic() < deadline:
        app.processEvents()
    deadline = time.monotonic() + 15
    while not docked_call and time.monotonic() < deadline:
        app.processEvents()
    report["when_docked"] = docked_call
    geo = tray.icon.geometry()
    report["visible"] = tray.icon.isVisible()
    report["geometry"] = [geo.x(), geo.y(), geo.width(), geo.height()]
    report["tooltip"] = tray.icon.toolTip()

    # A real right click on the icon, as the negotiator would do it.
    menu_opened = False
    if embedded():
        cx, cy = geo.center().x(), geo.center().y()
        subprocess.run(["xdotool", "mousemove", str(cx), str(cy), "click", "3"], check=True,
                       timeout=10)
        deadline = time.monotonic() + 10
        while not tray.menu.isVisible() and time.monotonic() < deadline:
            app.processEvents()
        menu_opened = tray.menu.isVisible()
    report["menu_opened_by_click"] = menu_opened

    if args.screenshot is not None and menu_opened:
        # Reopen the menu just under the panel so the icon and its badge stay in the picture.
        tray.menu.hide()
        tray.menu.popup(geo.bottomRight() + QPoint(0, 6))
        deadline = time.monotonic() + 5
        while not tray.menu.isVisible() and time.monotonic() < deadline:
            app.processEvents()
        # Hover "Missed calls" so Qt opens the submenu where it belongs (left of the menu here).
        action = tray.tray_menu.missed_menu.menuAction()
        at = tray.menu.mapToGlobal(tray.menu.actionGeometry(action).center())
        subprocess.run(["xdotool", "mousemove", str(at.x()), str(at.y())], check=True,
                       timeout=10)
        deadline = time.monotonic() + 5
        while not tray.tray_menu.missed_menu.isVisible() and time.monotonic() < deadline:
            app.processEvents()
        end = time.monotonic() + 2
        while time.monotonic() < end:  # let the compositor-free X server paint both menus
            app.processEvents()
        menu_geo = tray.menu.geometry().united(tray.tray_menu.missed_menu.geometry())
        menu_geo = menu_geo.united(geo).adjusted(-16, -8, 16, 16)
        raw = args.screenshot.with_suffix(".raw.png")
        subprocess.run(["import", "-window", "root", str(raw)], check=True, timeout=30)
        x, y = max(0, menu_geo.x()), max(0, menu_geo.y())
        crop = f"{menu_geo.width()}x{menu_geo.height()}+{x}+{y}"
        subprocess.run(["convert", str(raw), "-crop", crop, "+repage", str(args.screenshot)],
                       check=True, timeout=30)
        raw.unlink()
        report["screenshot"] = str(args.screenshot)
    tray.menu.hide()
    tray.tray_menu.missed_menu.hide()

    # Every menu action emits its signal.
    emitted: dict[str, list[Any]] = {}
    for name in SIGNAL_NAMES:
        getattr(tray, name).connect(lambda *a, n=name: emitted.setdefault(n, list(a)))
    tray.set_status(ConnectionStatus(ConnState.DISCONNECTED, 2, 3000), "Jane Smith (JAS)")
    for action in ("signOut", "doNotDisturb", "settings", "openLogFolder", "exportDiagnostics",
                   "autostart", "reconnect", "markSeen", "copy:h1", "open:h1", "retry:h1",
                   "quit"):
        tray.tray_menu.action(action).trigger()
    tray.set_status(ConnectionStatus(ConnState.SIGNED_OUT, 0, None), None)
    tray.tray_menu.action("signIn").trigger()
    app.processEvents()
    report["emitted"] = emitted
    report["icon_after_sign_out"] = tray.tray_menu.icon_name
    tray.hide()
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
