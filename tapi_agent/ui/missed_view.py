"""The missed-calls list: every missed call kept locally, new ones marked, "Mark all as seen"."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tapi_agent.ui import icons

if TYPE_CHECKING:
    # Types only, so that importing the tray does not load the protocol models (see ui/tray.py).
    from tapi_agent.core.missed import MissedCall

COLUMNS = ("", "When", "Caller", "To")


def _when(created: datetime) -> str:
    local = created.astimezone() if created.tzinfo else created
    return local.strftime("%a %d %b %H:%M")


class MissedCallsDialog(QDialog):
    """A list of missed calls (newest first); the app marks them seen when asked."""

    mark_all_seen = Signal()
    copy_requested = Signal(str)  # a double-click copies the caller's number

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Missed calls")
        self.setWindowIcon(icons.app_icon())
        self.setMinimumWidth(460)
        layout = QVBoxLayout(self)
        self.summary = QLabel()
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.summary)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        layout.addWidget(self.tree)
        hint = QLabel("Double-click a call to copy the number.")
        hint.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(hint)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.mark_button = QPushButton("Mark all as seen")
        self.mark_button.setObjectName("markAllSeen")
        buttons.addButton(self.mark_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.mark_button.clicked.connect(self.mark_all_seen.emit)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)
        self.set_calls([])

    def set_calls(self, calls: Sequence[MissedCall]) -> None:
        """Show `calls`, newest first, the unseen ones in bold."""
        self.tree.clear()
        ordered = sorted(calls, key=lambda c: c.created.timestamp(), reverse=True)
        unseen = 0
        for call in ordered:
            # QTreeWidgetItem text is never interpreted as markup: payload strings stay plain.
            item = QTreeWidgetItem(["new" if not call.seen else "", _when(call.created),
                                    call.caller or "unknown caller",
                                    call.destination or ""])
            item.setData(2, Qt.ItemDataRole.UserRole, call.caller)
            if not call.seen:
                unseen += 1
                font = item.font(2)
                font.setBold(True)
                for col in range(len(COLUMNS)):
                    item.setFont(col, font)
            self.tree.addTopLevelItem(item)
        for col in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(col)
        total = len(ordered)
        if not total:
            self.summary.setText("No missed calls.")
        else:
            self.summary.setText(f"{total} missed call{'s' if total != 1 else ''}, {unseen} new.")
        self.mark_button.setEnabled(unseen > 0)

    def _double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        number = item.data(2, Qt.ItemDataRole.UserRole)
        if number:
            self.copy_requested.emit(str(number))
