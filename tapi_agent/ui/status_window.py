"""The small status window the app shows instead of the tray when the desktop has no tray."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from tapi_agent.ui import icons
from tapi_agent.ui.tray import (
    MenuFrontEnd,
    TrayMenu,
    forward_signals,
    plain_toast_text,
)

NO_TRAY_NOTE = ("This desktop has no system tray, so TAPI Agent runs in this window. "
                "Closing it minimises it; use the menu to quit.")


class StatusWindow(QWidget, MenuFrontEnd):
    """Status line, missed-call count and the tray's menu, in a window."""

    sign_in_requested = Signal()
    sign_out_requested = Signal()
    reconnect_requested = Signal()
    quit_requested = Signal()
    do_not_disturb_toggled = Signal(bool)
    settings_requested = Signal()
    open_log_folder_requested = Signal()
    export_diagnostics_requested = Signal()
    autostart_toggled = Signal(bool)
    missed_seen_requested = Signal()
    history_copy_requested = Signal(str)
    history_open_requested = Signal(str)
    history_log_retry_requested = Signal(str)

    def __init__(self, *, app_name: str = "TAPI Agent", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tray_menu = TrayMenu(app_name=app_name, parent=self)
        forward_signals(self.tray_menu, self)
        self._quitting = False
        self.quit_requested.connect(self._allow_close)
        self.setWindowTitle(app_name)
        self.setWindowIcon(icons.app_icon())
        self.setObjectName("statusWindow")

        self.state_icon = QLabel()
        self.status_label = QLabel()
        self.status_label.setObjectName("statusLine")
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)  # holds the negotiator's name
        self.status_label.setWordWrap(True)
        self.missed_label = QLabel()
        self.missed_label.setObjectName("missedCount")
        self.missed_label.setTextFormat(Qt.TextFormat.PlainText)
        note = QLabel(NO_TRAY_NOTE)
        note.setTextFormat(Qt.TextFormat.PlainText)
        note.setWordWrap(True)
        note.setStyleSheet("color: palette(mid);")
        self.toast_label = QLabel()
        self.toast_label.setObjectName("toast")
        self.toast_label.setTextFormat(Qt.TextFormat.PlainText)
        self.toast_label.setWordWrap(True)

        self.sign_in_button = QPushButton("Sign in…")
        self.sign_in_button.clicked.connect(self.tray_menu.sign_in_action.trigger)
        self.missed_button = QPushButton("Missed calls…")
        self.missed_button.clicked.connect(self.tray_menu.show_missed_dialog)
        self.menu_button = QToolButton()
        self.menu_button.setText("Menu")
        self.menu_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.menu_button.setMenu(self.tray_menu.menu)

        top = QHBoxLayout()
        top.addWidget(self.state_icon)
        top.addWidget(self.status_label, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.sign_in_button)
        buttons.addWidget(self.missed_button)
        buttons.addStretch(1)
        buttons.addWidget(self.menu_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.missed_label)
        layout.addWidget(self.toast_label)
        layout.addLayout(buttons)
        layout.addWidget(note)
        self.setMinimumWidth(360)
        self.tray_menu.changed.connect(self._refresh)
        self._refresh()

    def toast(self, title: str, text: str) -> None:
        """Without a tray there are no balloons: show the message in the window."""
        self.toast_label.setText(f"{plain_toast_text(title)}: {plain_toast_text(text)}")

    def bring_to_front(self) -> None:
        """Show, un-minimise and raise the window (a second launch asked us to)."""
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def _allow_close(self) -> None:
        self._quitting = True

    def closeEvent(self, event: QCloseEvent) -> None:
        # Closing the only window must not leave the agent running unseen: minimise instead.
        if self._quitting:
            event.accept()
            return
        event.ignore()
        self.showMinimized()

    def _refresh(self) -> None:
        m = self.tray_menu
        self.state_icon.setPixmap(m.current_icon().pixmap(32, 32))
        self.status_label.setText(m.status_text + ("  (do not disturb)" if m.do_not_disturb
                                                   else ""))
        n = m.unseen_count
        self.missed_label.setText(f"{n} new missed call{'s' if n != 1 else ''}" if n else
                                  "No new missed calls")
        self.sign_in_button.setVisible(m.state == "signed_out")
        self.setToolTip(m.tooltip())
