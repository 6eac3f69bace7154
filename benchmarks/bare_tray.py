"""The footprint floor: a bare PySide6 tray app with one icon and one menu, nothing else.

    python benchmarks/bare_tray.py

Prints `{"event": "harness.tray_visible", "t"}` once the icon is shown and the tray gave it a
place on screen (the same test `agent_harness.py --tray` uses), then idles until stdin closes.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon


class Control(QObject):
    """stdin EOF reaches the GUI thread as a queued signal."""

    quit = Signal()


def main() -> int:
    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    pixmap = QPixmap(32, 32)
    pixmap.fill(QColor("#0067C0"))
    tray = QSystemTrayIcon(QIcon(pixmap))
    menu = QMenu()
    menu.addAction("Quit", app.quit)
    tray.setContextMenu(menu)
    tray.setToolTip("bare tray")
    tray.show()

    def check() -> None:
        # Docked: the same test as the agent's `Tray.docked` (on X11 the icon's window is at
        # the screen's origin until the tray reparents it into its panel).
        geo = tray.geometry()
        if tray.isVisible() and not geo.isEmpty() and not geo.topLeft().isNull():
            print(json.dumps({"t": time.time(), "event": "harness.tray_visible"}), flush=True)
        else:
            QTimer.singleShot(5, check)

    QTimer.singleShot(0, check)
    control = Control()
    control.quit.connect(app.quit)

    def read_stdin() -> None:
        for _line in sys.stdin:
            pass
        control.quit.emit()

    threading.Thread(target=read_stdin, name="harness-stdin", daemon=True).start()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
