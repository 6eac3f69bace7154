"""Quit cleanly when Windows asks: Windows Installer's Restart Manager during an upgrade, or the
end of the user's session; and be restarted after an upgrade.

How an upgrade with agents running goes (docs/IT-DEPLOYMENT.md, "Upgrades with agents running"):

1. At start-up the agent calls `RegisterApplicationRestart`, so Restart Manager may restart it
   (after an update only: not after a crash, a hang or a reboot, where the Run entry starts it).
2. The MSI's InstallValidate finds `tapi-agent.exe` in use; a silent install always lets
   Restart Manager close such applications (`MSIRMSHUTDOWN=1` in the package: one that does not
   answer is closed by force instead of leaving the files to a reboot, exit code 3010).
3. Restart Manager sends `WM_QUERYENDSESSION` with `ENDSESSION_CLOSEAPP` and then
   `WM_ENDSESSION` to the agent's top-level windows. Qt answers "yes", emits `aboutToQuit` (the
   agent's shutdown: the websocket closes, the worker thread joins) and quits. A tray agent may
   have no top-level window at all (the tray icon's is a message-only window, which never gets
   these), so `install` creates a hidden one.
4. After the files are replaced, Restart Manager starts the registered agents again, in the
   sessions they ran in.

A sign-out or shutdown is the same pair of messages without `ENDSESSION_CLOSEAPP`. The agent logs
`app.session_end` with the reason either way. Nothing here runs on other platforms: `install`
returns None there, and the pure parts (`end_reason`, `restart_flags`) are tested everywhere.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from tapi_agent.core.log import log_event

log = logging.getLogger("tapi_agent.winsession")

WM_QUERYENDSESSION = 0x0011
WM_ENDSESSION = 0x0016
ENDSESSION_CLOSEAPP = 0x00000001
ENDSESSION_CRITICAL = 0x40000000
ENDSESSION_LOGOFF = 0x80000000
RESTART_NO_CRASH = 1
RESTART_NO_HANG = 2
RESTART_NO_PATCH = 4
RESTART_NO_REBOOT = 8
RESTART_ARGUMENTS = ""  # restarted as it was started by the user: no --at-sign-in


def end_reason(lparam: int) -> str:
    """Why Windows asks the agent to quit, from the lParam of WM_(QUERY)ENDSESSION:
    `installer` (Restart Manager, e.g. an MSI upgrade), `sign-out` or `shutdown`."""
    lparam &= 0xFFFFFFFF
    if lparam & ENDSESSION_CLOSEAPP:
        return "installer"
    if lparam & ENDSESSION_LOGOFF:
        return "sign-out"
    return "shutdown"


def restart_flags() -> int:
    """RegisterApplicationRestart flags: restart after an update only."""
    return RESTART_NO_CRASH | RESTART_NO_HANG | RESTART_NO_REBOOT


def on_message(message: int, wparam: int, lparam: int) -> str | None:
    """Log what a WM_QUERYENDSESSION / WM_ENDSESSION means; return the reason, None for any
    other message. Qt itself answers the query ("yes") and quits on the end message."""
    if message == WM_QUERYENDSESSION:
        reason = end_reason(lparam)
        log_event("app.session_end", phase="query", reason=reason)
        return reason
    if message == WM_ENDSESSION:
        reason = end_reason(lparam)
        log_event("app.session_end", phase="end" if wparam else "cancelled", reason=reason)
        return reason
    return None


def register_restart() -> bool:
    """Ask Windows to restart the agent after an update closed it; False where it cannot."""
    if sys.platform != "win32":
        return False
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined,unused-ignore]
    result = kernel32.RegisterApplicationRestart(ctypes.c_wchar_p(RESTART_ARGUMENTS),
                                                 restart_flags())
    if result != 0:  # S_OK
        log.warning("RegisterApplicationRestart failed (HRESULT 0x%08X)", result & 0xFFFFFFFF)
        return False
    return True


class _Hooks:
    """What must live as long as the QApplication: the filter and the hidden window."""

    def __init__(self, event_filter: Any, window: Any) -> None:
        self.event_filter = event_filter
        self.window = window


def install(app: Any) -> _Hooks | None:
    """On Windows: register for restart, give Restart Manager a top-level window to talk to, and
    log its requests. Returns the objects to keep alive; None on other platforms."""
    if sys.platform != "win32":
        return None
    from ctypes import wintypes

    from PySide6.QtCore import QAbstractNativeEventFilter
    from PySide6.QtWidgets import QWidget

    class SessionEndFilter(QAbstractNativeEventFilter):
        def nativeEventFilter(self, event_type: Any, message: Any) -> Any:  # Qt names it
            if bytes(event_type) == b"windows_generic_MSG":
                msg = wintypes.MSG.from_address(int(message))
                if msg.message in (WM_QUERYENDSESSION, WM_ENDSESSION):
                    on_message(msg.message, int(msg.wParam or 0), int(msg.lParam or 0))
            return False, 0  # let Qt answer and quit as it does

    register_restart()
    event_filter = SessionEndFilter()
    app.installNativeEventFilter(event_filter)
    window = QWidget()  # never shown: a hidden top-level HWND for Restart Manager
    window.setWindowTitle("TAPI Agent")
    window.winId()  # creates the native window without showing it
    return _Hooks(event_filter, window)
