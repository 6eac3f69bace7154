"""The tray icon and its menu: connection state at a glance, missed calls, recent calls, actions.

`TrayMenu` is the menu and its signals; `Tray` puts it on a `QSystemTrayIcon`, and
`StatusWindow` (status_window.py) puts the same menu in a small window when there is no tray.
The UI never talks to the network: every action is a signal that the app wires to the core.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QPoint, QTimer, Signal
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QMenu, QMessageBox, QSystemTrayIcon

from tapi_agent.core.connection import ConnectionStatus
from tapi_agent.ui import icons

if TYPE_CHECKING:
    # Types only: at run time the tray must not wait for the protocol models (core.missed
    # imports them), so it can show before the rest of the agent loads.
    from tapi_agent.core.calls import HistoryEntry
    from tapi_agent.core.missed import MissedCall
    from tapi_agent.ui.missed_view import MissedCallsDialog

RECENT_LIMIT = 20
MISSED_MENU_LIMIT = 10

# The signals a tray front end offers; Tray and StatusWindow re-emit TrayMenu's.
SIGNAL_NAMES = (
    "sign_in_requested",
    "sign_out_requested",
    "reconnect_requested",
    "quit_requested",
    "do_not_disturb_toggled",
    "settings_requested",
    "open_log_folder_requested",
    "export_diagnostics_requested",
    "autostart_toggled",
    "missed_seen_requested",
    "history_copy_requested",
    "history_open_requested",
    "history_log_retry_requested",
)


def menu_text(text: str) -> str:
    """Payload text made safe for a QAction: '&' is not a mnemonic, a tab is not a shortcut."""
    return " ".join(text.replace("&", "&&").split())


def status_line(status: ConnectionStatus, negotiator: str | None) -> str:
    """One line for the menu, the tooltip and the status window: "Connected as Jane (JAS)"."""
    state = str(status.state)  # ConnState is a StrEnum
    retry = status.retry_in_ms
    retry_text = f"; retrying in {max(1, round(retry / 1000))} s" if retry else ""
    who = f" as {negotiator}" if negotiator else ""
    if state == "connected":
        return f"Connected{who}"
    if state == "connecting":
        attempt = f" (attempt {status.attempt})" if status.attempt > 1 else ""
        return f"Connecting{who}…{attempt}"
    if state == "disconnected":
        return f"Offline{retry_text}"
    if state == "suspended":
        return f"Paused while the PC sleeps or the network is away{retry_text}"
    if state == "signed_out":
        return "Signed out: calls will not pop"
    if state == "failed":
        return "Not connected: " + (status.detail or "the server refused the connection")
    return state


_OUTCOMES = {
    "answered": "answered",
    "answered_elsewhere": "answered elsewhere",
    "missed": "missed",
    "ended": "ended",
    "stale": "not shown (late)",
    "dismissed": "dismissed",
    "ring_timeout": "no answer",
}


def history_line(entry: HistoryEntry, label: str | None = None) -> str:
    """"10:28  Jane Doe  · answered by RPT" for the Recent calls submenu."""
    when = datetime.fromtimestamp(entry.at).strftime("%H:%M")
    outcome = _OUTCOMES.get(entry.outcome, entry.outcome.replace("_", " "))
    if entry.answered_by and entry.outcome in ("answered", "answered_elsewhere"):
        outcome = f"answered by {entry.answered_by}"
    return f"{when}  {label or entry.caller or 'unknown caller'}  · {outcome}"


def missed_line(call: MissedCall) -> str:
    """"• 10:28  07123 456789" (the dot marks one not yet seen)."""
    created = call.created
    when = created.astimezone().strftime("%a %H:%M") if created.tzinfo else created.strftime(
        "%a %H:%M")
    return f"{'• ' if not call.seen else ''}{when}  {call.caller or 'unknown caller'}"


def plain_toast_text(text: str) -> str:
    """Toast text that no notification server can read as markup (Linux servers may)."""
    if sys.platform == "win32":  # Windows balloons are plain text already
        return text
    return text.replace("&", "＆").replace("<", "‹").replace(">", "›")


class TrayMenu(QObject):
    """The menu of issue 6 and the signals its actions emit; shared by Tray and StatusWindow."""

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
    history_log_retry_requested = Signal(str)  # call id whose refused journal entry to retry
    changed = Signal()  # the status, icon or badge changed: front ends refresh

    def __init__(self, *, app_name: str = "TAPI Agent", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.app_name = app_name
        self.state = "signed_out"
        self.status_text = "Signed out: calls will not pop"
        self.negotiator: str | None = None
        self.do_not_disturb = False
        self.missed: list[MissedCall] = []
        self.history: list[HistoryEntry] = []
        self._missed_dialog: MissedCallsDialog | None = None
        self._about: QMessageBox | None = None

        m = self.menu = QMenu()
        m.setObjectName("trayMenu")
        self.status_action = self._action("Signed out", enabled=False, name="status")
        bold = self.status_action.font()
        bold.setBold(True)
        self.status_action.setFont(bold)
        m.addSeparator()
        self.sign_in_action = self._action("Sign in…", self.sign_in_requested.emit, "signIn")
        self.sign_out_action = self._action("Sign out", self.sign_out_requested.emit, "signOut")
        self.dnd_action = self._action("Do not disturb", None, "doNotDisturb", checkable=True)
        self.dnd_action.toggled.connect(self._dnd_toggled)
        m.addSeparator()
        self.recent_menu = m.addMenu("Recent calls")
        self.recent_menu.setObjectName("recentMenu")
        self._recent_pool: list[tuple[QMenu, QAction, QAction, QAction]] = []
        # (number, record URL, call id of a refused journal entry) per slot
        self._history_targets: list[tuple[str, str, str]] = []
        self._no_calls_action = QAction("No calls yet", self)
        self._no_calls_action.setEnabled(False)
        self.missed_menu = m.addMenu("Missed calls")
        self.missed_menu.setObjectName("missedMenu")
        self.show_missed_action = QAction("Show missed calls…", self)
        self.show_missed_action.setObjectName("showMissed")
        self.show_missed_action.triggered.connect(self.show_missed_dialog)
        self.mark_seen_action = QAction("Mark all as seen", self)
        self.mark_seen_action.setObjectName("markSeen")
        self.mark_seen_action.triggered.connect(self.missed_seen_requested.emit)
        m.addSeparator()
        self._action("Settings…", self.settings_requested.emit, "settings")
        self._action("Open log folder", self.open_log_folder_requested.emit, "openLogFolder")
        self._action("Export diagnostics…", self.export_diagnostics_requested.emit,
                     "exportDiagnostics")
        self.autostart_action = self._action("Start at login", None, "autostart", checkable=True)
        self.autostart_action.toggled.connect(self._autostart_toggled)
        self.reconnect_action = self._action("Reconnect now", self.reconnect_requested.emit,
                                             "reconnect")
        m.addSeparator()
        self._action(f"About {app_name}", self.show_about, "about")
        self._action("Quit", self.quit_requested.emit, "quit")
        self._sync_setters = False
        self.set_history([])
        self.set_missed([])
        self._refresh()

    def _action(self, text: str, slot: Callable[[], Any] | None = None, name: str = "",
                *, enabled: bool = True, checkable: bool = False) -> QAction:
        action = self.menu.addAction(text)
        action.setObjectName(name)
        action.setEnabled(enabled)
        action.setCheckable(checkable)
        if slot is not None:
            action.triggered.connect(lambda _checked=False: slot())
        return action

    def action(self, name: str) -> QAction:
        """The action with object name `name` (tests and the screenshot script trigger them)."""
        for a in self.menu.findChildren(QAction) + self.findChildren(QAction):
            if a.objectName() == name:
                return a
        raise KeyError(name)

    # -- user toggles (setters below block these so a programmatic change emits nothing) --

    def _dnd_toggled(self, on: bool) -> None:
        self.do_not_disturb = on
        self._refresh()
        if not self._sync_setters:
            self.do_not_disturb_toggled.emit(on)

    def _autostart_toggled(self, on: bool) -> None:
        if not self._sync_setters:
            self.autostart_toggled.emit(on)

    # -- setters ---------------------------------------------------------------------------------

    def set_status(self, status: ConnectionStatus, negotiator: str | None) -> None:
        """Show a connection status: status line, icon, which of Sign in / Sign out is offered."""
        self.state = str(status.state)  # ConnState is a StrEnum
        self.negotiator = negotiator
        self.status_text = status_line(status, negotiator)
        signed_out = self.state == "signed_out"
        self.sign_in_action.setVisible(signed_out)
        self.sign_out_action.setVisible(not signed_out)
        self.reconnect_action.setEnabled(self.state in ("disconnected", "suspended", "failed"))
        self._refresh()

    def set_do_not_disturb(self, on: bool) -> None:
        """Reflect the do-not-disturb setting without emitting `do_not_disturb_toggled`."""
        self._sync_setters = True
        try:
            self.dnd_action.setChecked(on)
            self.do_not_disturb = on
        finally:
            self._sync_setters = False
        self._refresh()

    def set_autostart(self, on: bool, *, locked: bool = False) -> None:
        """Reflect whether the agent starts at login, without emitting `autostart_toggled`;
        `locked` (app.autostart set by policy) greys the item out and says why."""
        self._sync_setters = True
        try:
            self.autostart_action.setChecked(on)
        finally:
            self._sync_setters = False
        self.autostart_action.setEnabled(not locked)
        self.autostart_action.setText(
            "Start at login (set by your administrator)" if locked else "Start at login")

    def set_history(self, entries: Sequence[HistoryEntry], labels: Mapping[str, str] | None = None,
                    record_urls: Mapping[str, str] | None = None,
                    log_retry: Mapping[str, str] | None = None) -> None:
        """Fill Recent calls with the newest `RECENT_LIMIT` entries (newest first).

        `labels` (entry key -> contact name) and `record_urls` (entry key -> agencycloud:// link)
        are optional; an entry without a link offers only "Copy number". `log_retry` (entry key
        -> call id) marks calls whose journal entry the API refused: they offer "Try logging
        again", which stays possible after their pop has closed.

        The submenus are a fixed set of `RECENT_LIMIT`, built once and filled in again on each
        call: `QMenu.clear()` deletes a menu's own actions but not the submenus `addMenu` made,
        so rebuilding them leaked 20 menus per finished call (issue 14).
        """
        self.history = list(entries)[:RECENT_LIMIT]
        self._history_targets = []
        menu = self.recent_menu
        for action in menu.actions():
            menu.removeAction(action)  # none is deleted: the pool and the placeholder stay ours
        for _sub, copy, open_rec, retry in self._recent_pool[len(self.history):]:
            copy.setObjectName("")  # unused slots answer to no entry's name
            open_rec.setObjectName("")
            retry.setObjectName("")
        if not self.history:
            menu.addAction(self._no_calls_action)
            return
        for slot, entry in enumerate(self.history):
            sub, copy, open_rec, retry = self._recent_slot(slot)
            label = (labels or {}).get(entry.key)
            sub.setTitle(menu_text(history_line(entry, label)))
            number = entry.caller
            copy.setText(menu_text(f"Copy number {number}" if number else "Copy number"))
            copy.setObjectName(f"copy:{entry.key}")
            copy.setEnabled(bool(number))
            url = (record_urls or {}).get(entry.key) or ""
            open_rec.setObjectName(f"open:{entry.key}")
            open_rec.setEnabled(bool(url))
            call_id = (log_retry or {}).get(entry.key) or ""
            retry.setObjectName(f"retry:{entry.key}")
            retry.setVisible(bool(call_id))
            self._history_targets.append((number, url, call_id))
            menu.addMenu(sub)

    def _recent_slot(self, slot: int) -> tuple[QMenu, QAction, QAction, QAction]:
        """The `slot`-th Recent calls submenu with its actions, built on first use."""
        while len(self._recent_pool) <= slot:
            i = len(self._recent_pool)
            sub = QMenu(self.recent_menu)
            copy = sub.addAction("Copy number")
            copy.triggered.connect(lambda _c=False, i=i: self._copy(self._history_targets[i][0]))
            open_rec = sub.addAction("Open record")
            open_rec.triggered.connect(lambda _c=False, i=i: self._open_history(i))
            retry = sub.addAction("Try logging the call again")
            retry.triggered.connect(lambda _c=False, i=i: self._retry_history_log(i))
            self._recent_pool.append((sub, copy, open_rec, retry))
        return self._recent_pool[slot]

    def _retry_history_log(self, slot: int) -> None:
        call_id = self._history_targets[slot][2]
        if call_id:
            self.history_log_retry_requested.emit(call_id)

    def _open_history(self, slot: int) -> None:
        url = self._history_targets[slot][1]
        if url:
            self.history_open_requested.emit(url)

    def _copy(self, number: str) -> None:
        # The app owns the clipboard (it also logs the action); the menu only asks.
        self.history_copy_requested.emit(number)

    def set_missed(self, calls: Sequence[MissedCall]) -> None:
        """Fill Missed calls and the badge (the badge counts the ones not seen yet)."""
        self.missed = list(calls)
        unseen = self.unseen_count
        menu = self.missed_menu
        menu.clear()
        menu.setTitle(f"Missed calls ({unseen} new)" if unseen else "Missed calls")
        if not self.missed:
            menu.addAction("No missed calls").setEnabled(False)
        for call in self.missed[:MISSED_MENU_LIMIT]:
            item = menu.addAction(menu_text(missed_line(call)))
            item.triggered.connect(lambda _c=False, n=call.caller: self._copy(n))
        if len(self.missed) > MISSED_MENU_LIMIT:
            menu.addAction(f"… and {len(self.missed) - MISSED_MENU_LIMIT} more").setEnabled(False)
        menu.addSeparator()
        menu.addAction(self.show_missed_action)
        menu.addAction(self.mark_seen_action)
        self.mark_seen_action.setEnabled(unseen > 0)
        if self._missed_dialog is not None:
            self._missed_dialog.set_calls(self.missed)
        self._refresh()

    @property
    def unseen_count(self) -> int:
        """Missed calls the user has not marked as seen."""
        return sum(1 for c in self.missed if not c.seen)

    @property
    def icon_name(self) -> str:
        """Which tray icon the current state shows (see icons.TRAY_STATES)."""
        return icons.icon_name_for(self.state, do_not_disturb=self.do_not_disturb)

    def current_icon(self) -> QIcon:
        """The tray icon for the current state, with the missed-call badge."""
        return icons.tray_icon(self.icon_name, self.unseen_count)

    def tooltip(self) -> str:
        """Tooltip text: app name, status line, do-not-disturb and missed calls."""
        lines = [self.app_name, self.status_text]
        if self.do_not_disturb:
            lines.append("Do not disturb: calls go to Recent calls without a pop")
        if self.unseen_count:
            n = self.unseen_count
            lines.append(f"{n} missed call{'s' if n != 1 else ''}")
        return "\n".join(lines)

    def _refresh(self) -> None:
        self.status_action.setText(menu_text(self.status_text))
        self.changed.emit()

    # -- windows the tray opens by itself ------------------------------------------------------

    def show_missed_dialog(self) -> None:
        """Open (or raise) the missed-calls list; its "Mark all as seen" emits our signal."""
        if self._missed_dialog is None:
            from tapi_agent.ui.missed_view import MissedCallsDialog  # only when first opened

            dialog = MissedCallsDialog()
            dialog.mark_all_seen.connect(self.missed_seen_requested.emit)
            dialog.copy_requested.connect(self._copy)
            self._missed_dialog = dialog
        dialog = self._missed_dialog
        dialog.set_calls(self.missed)
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()

    @property
    def missed_dialog(self) -> MissedCallsDialog | None:
        """The missed-calls dialog once it was opened."""
        return self._missed_dialog

    def show_about(self) -> None:
        """A small non-modal About box."""
        from tapi_agent import __version__

        box = self._about or QMessageBox()
        self._about = box
        box.setWindowTitle(f"About {self.app_name}")
        box.setIconPixmap(icons.app_icon().pixmap(64, 64))
        box.setText(f"{self.app_name} {__version__}\n\nScreen pops for incoming calls from "
                    "Reapit's Notifications API.")
        box.setModal(False)
        box.show()


def forward_signals(src: QObject, dst: QObject) -> None:
    """Re-emit every TrayMenu signal of `src` as the same-named signal of `dst`."""
    for name in SIGNAL_NAMES:
        getattr(src, name).connect(getattr(dst, name))


class MenuFrontEnd:
    """What Tray and StatusWindow both do with their TrayMenu: show it and pass state on to it
    (the icon, tooltip, badge or labels follow through TrayMenu.changed)."""

    tray_menu: TrayMenu

    @property
    def menu(self) -> QMenu:
        """The TAPI Agent menu."""
        return self.tray_menu.menu

    def set_status(self, status: ConnectionStatus, negotiator: str | None) -> None:
        """Icon, tooltip and status line for a connection status."""
        self.tray_menu.set_status(status, negotiator)

    def set_do_not_disturb(self, on: bool) -> None:
        """Tick Do not disturb (no signal)."""
        self.tray_menu.set_do_not_disturb(on)

    def set_autostart(self, on: bool, *, locked: bool = False) -> None:
        """Tick Start at login (no signal); greyed out when set by policy."""
        self.tray_menu.set_autostart(on, locked=locked)

    def set_history(self, entries: Sequence[HistoryEntry], labels: Mapping[str, str] | None = None,
                    record_urls: Mapping[str, str] | None = None,
                    log_retry: Mapping[str, str] | None = None) -> None:
        """Recent calls submenu (last 20)."""
        self.tray_menu.set_history(entries, labels, record_urls, log_retry)

    def set_missed(self, calls: Sequence[MissedCall]) -> None:
        """Missed calls submenu, count and badge."""
        self.tray_menu.set_missed(calls)


class Tray(QObject, MenuFrontEnd):
    """The system tray icon with the TAPI Agent menu."""

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
    history_log_retry_requested = Signal(str)  # call id whose refused journal entry to retry

    def __init__(self, *, app_name: str = "TAPI Agent", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tray_menu = TrayMenu(app_name=app_name, parent=self)
        forward_signals(self.tray_menu, self)
        self._icon = QSystemTrayIcon(self)
        self._icon.setContextMenu(self.tray_menu.menu)
        self._icon.activated.connect(self._activated)
        self.tray_menu.changed.connect(self._refresh)
        self._refresh()
        if self.available:
            self._icon.show()  # a tray app is its icon: visible from the start

    @property
    def available(self) -> bool:
        """Whether the desktop has a system tray (if not, the app shows StatusWindow)."""
        return QSystemTrayIcon.isSystemTrayAvailable()

    @property
    def icon(self) -> QSystemTrayIcon:
        """The QSystemTrayIcon."""
        return self._icon

    @property
    def docked(self) -> bool:
        """Whether the tray has given the icon its place.

        Until then the geometry is empty, and on X11 it is first the icon's own window at the
        screen's origin, before the tray reparents it into its panel; no tray puts an icon at
        the very corner of the screen (on Windows the Start button is there).
        """
        geo = self._icon.geometry()
        return self._icon.isVisible() and not geo.isEmpty() and not geo.topLeft().isNull()

    def when_docked(
        self, callback: Callable[[], None], *, limit_ms: int = 1000, step_ms: int = 5
    ) -> None:
        """Call `callback` on the event loop once the icon is docked, or after `limit_ms`.

        The agent builds everything else only after this, so the icon is not kept waiting:
        on X11 the tray embeds the icon (XEmbed) over several event-loop turns, and a build
        started on the first turn would hold them all up (BENCHMARKS.md, "Agent footprint").
        On Windows the icon is registered inside show(), so this fires on the first turn. The
        wait is a short chain of single-shot checks that ends at `limit_ms` at the latest, so
        a tray that never embeds the icon delays the agent by that much, never more, and no
        timer outlives start-up.
        """
        deadline = time.monotonic() + limit_ms / 1000

        def check() -> None:
            if self.docked or time.monotonic() >= deadline:
                callback()
            else:
                QTimer.singleShot(step_ms, check)

        QTimer.singleShot(0, check)

    def show(self) -> None:
        """Put the icon in the tray."""
        self._icon.show()

    def hide(self) -> None:
        """Take the icon out of the tray (before quitting)."""
        self._icon.hide()

    def toast(self, title: str, text: str) -> None:
        """A notification balloon from the tray (plain text)."""
        self._icon.showMessage(plain_toast_text(title), plain_toast_text(text),
                               QSystemTrayIcon.MessageIcon.Information, 10_000)

    def show_menu(self) -> None:
        """Open the menu next to the icon (a second launch asked us to show ourselves)."""
        geo = self._icon.geometry()
        at = geo.center() if geo.isValid() and not geo.isEmpty() else QPoint(0, 0)
        if at.isNull():
            from PySide6.QtGui import QCursor

            at = QCursor.pos()
        self.menu.popup(at)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        # A left click on Windows only "activates" the icon; open the menu as a right click would.
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.show_menu()

    def _refresh(self) -> None:
        self._icon.setIcon(self.tray_menu.current_icon())
        self._icon.setToolTip(self.tray_menu.tooltip())
