"""`Bridge`: the signals that carry the worker thread's results to the GUI thread.

Imports Qt, so only the tray agent imports this module (inside `Agent.__init__`): `diagnose`,
`sign-out` and `--version` never load Qt's widgets for it."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal


class Bridge(QObject):
    """Signals from the worker thread to the GUI thread (queued across threads by Qt)."""

    delivery = Signal(object)  # net.stream.Delivery
    status = Signal(object)  # core.connection.ConnectionStatus
    resync = Signal(str)
    contacts = Signal(str, object)  # call key, (number, list[Contact])
    negotiators = Signal(object)  # dict[str, Negotiator]
    deferred = Signal(object)  # list of deferred calls from the backend
    identity = Signal(object)  # net.auth.Identity | None
    journal = Signal(str, int, str)  # journal entry id, HTTP status (201: posted), reason
    notice = Signal(str, str)  # title, text for the user
    deleted = Signal(object)  # deferred ids the backend confirmed deleted


def make_bridge() -> Bridge:
    """A new Bridge, created on the GUI thread (its signals are delivered there)."""
    return Bridge()
