"""`Bridge`: the signals that carry the worker thread's results to the GUI thread."""

from __future__ import annotations

from typing import Any


def make_bridge() -> Any:
    """Create the Bridge class lazily so `tapi-agent diagnose` never imports Qt."""
    from PySide6.QtCore import QObject, Signal

    class Bridge(QObject):
        """Signals from the worker thread to the GUI thread (queued across threads by Qt)."""

        delivery = Signal(object)  # net.stream.Delivery
        status = Signal(object)  # core.connection.ConnectionStatus
        resync = Signal(str)
        contacts = Signal(str, object)  # call key, list[Contact]
        negotiators = Signal(object)  # dict[str, Negotiator]
        deferred = Signal(object)  # list of deferred calls from the backend
        identity = Signal(object)  # net.auth.Identity | None
        journal = Signal(str, int, str)  # journal entry id, HTTP status (201: posted), reason
        notice = Signal(str, str)  # title, text for the user
        deleted = Signal(object)  # deferred ids the backend confirmed deleted

    return Bridge()
