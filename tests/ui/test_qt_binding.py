"""Guards against known-bad Qt binding releases that would crash a long-running agent."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    ping = Signal()


def test_emitting_signals_does_not_leak_references_to_true() -> None:
    # PySide6 6.12.0's Signal.emit() returned True without a reference: after a few thousand
    # emits the interpreter aborts ("bool_dealloc"). The agent emits all day long.
    emitter = _Emitter()
    before = sys.getrefcount(True)
    for _ in range(1000):
        emitter.ping.emit()
    assert abs(sys.getrefcount(True) - before) < 50
