"""What the tray's menu asks of the desktop: settings, log folder, links, clipboard, autostart."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tapi_agent.config import Paths, Settings, default_registry

log = logging.getLogger("tapi_agent.app")


def launch_command() -> list[str]:
    """How to start this agent again (the autostart entries): the frozen exe or this Python."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "tapi_agent"]


def autostart_shown(settings: Settings) -> tuple[bool, bool]:
    """What "Start at login" shows: on or off (the entries reconciled with app.autostart first)
    and whether a policy locks it."""
    from tapi_agent import autostart

    locked = settings.is_locked("app.autostart")
    shown = autostart.reconcile(
        bool(settings["app.autostart"]), locked, command=launch_command(),
        machine=autostart.machine_entry(default_registry()))
    return shown, locked


def set_autostart(settings: Settings, enabled: bool) -> None:
    """The user's "Start at login": saved as app.autostart in the user's settings file
    (what the machine-wide Run entry obeys), and the per-user entry where there is no
    machine entry (tapi_agent/autostart.py)."""
    from tapi_agent import autostart
    from tapi_agent.config import save_user_settings

    autostart.choose(enabled, command=launch_command(),
                     machine=autostart.machine_entry(default_registry()))
    if settings.user_file is not None:
        for problem in save_user_settings(settings.user_file, {"app.autostart": enabled}):
            log.warning("settings: %s", problem)


def open_settings(settings: Settings, paths: Paths,
                  saved: Callable[[dict[str, Any]], None]) -> None:
    """The settings dialog (modal); `saved` gets the changes written to the user's file."""
    from tapi_agent.config import save_user_settings
    from tapi_agent.ui.settings_dialog import SettingsDialog

    user_file = settings.user_file or paths.user_config
    dialog = SettingsDialog(settings, lambda changes: save_user_settings(user_file, changes))
    dialog.saved.connect(saved)
    dialog.exec()


def open_log_folder(paths: Paths) -> None:
    """Show the log folder in the file manager (created first if need be)."""
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QDesktopServices

    paths.log_dir.mkdir(parents=True, exist_ok=True)
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(paths.log_dir)))


def ask_diagnostics_target() -> Path | None:
    """Where the user wants the diagnostics zip saved; None when they cancelled."""
    from PySide6.QtWidgets import QFileDialog

    target, _ = QFileDialog.getSaveFileName(
        None, "Export diagnostics", str(Path.home() / "tapi-agent-diagnostics.zip"),
        "Zip files (*.zip)")
    return Path(target) if target else None


def copy_text(text: str) -> None:
    """Put `text` on the clipboard."""
    from PySide6.QtGui import QGuiApplication

    QGuiApplication.clipboard().setText(text)


def open_url(url: str) -> None:
    """Open `url` in the user's browser."""
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QDesktopServices

    QDesktopServices.openUrl(QUrl(url))


def quit_app() -> None:
    """End the Qt event loop (the agent's shutdown runs from aboutToQuit)."""
    from PySide6.QtWidgets import QApplication

    QApplication.quit()
