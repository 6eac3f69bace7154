"""Quitting when Windows asks (Restart Manager during an upgrade, a sign-out, a shutdown): the
message decoding, the restart registration flags and the `app.session_end` event. The Win32
calls themselves run on Windows only (the workflow's smoke test upgrades with the agent
running); here `install` must stay out of the way."""

from __future__ import annotations

import logging
import sys

import pytest

from tapi_agent import winsession
from tests.helpers import capturing_events


class _Events(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, dict[str, object]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append((record.event, record.fields))  # type: ignore[attr-defined]


@pytest.mark.parametrize(("lparam", "reason"), [
    (0x00000001, "installer"),  # ENDSESSION_CLOSEAPP: Restart Manager
    (0x40000001, "installer"),  # ... critical
    (0x80000000, "sign-out"),
    (0x00000000, "shutdown"),
    (-0x80000000, "sign-out"),  # a signed LPARAM as some bindings hand it over
])
def test_end_reason_reads_the_lparam(lparam: int, reason: str) -> None:
    assert winsession.end_reason(lparam) == reason


def test_restart_is_registered_for_updates_only() -> None:
    flags = winsession.restart_flags()
    assert not flags & winsession.RESTART_NO_PATCH  # restarted after an update closed it
    assert flags & winsession.RESTART_NO_CRASH and flags & winsession.RESTART_NO_HANG
    assert flags & winsession.RESTART_NO_REBOOT  # after a reboot the Run entry starts it


def test_session_end_messages_are_logged_with_their_reason() -> None:
    with capturing_events(_Events()) as handler:
        assert winsession.on_message(winsession.WM_QUERYENDSESSION, 0, 0x1) == "installer"
        assert winsession.on_message(winsession.WM_ENDSESSION, 1, 0x1) == "installer"
        assert winsession.on_message(winsession.WM_ENDSESSION, 0, 0x80000000) == "sign-out"
        assert winsession.on_message(0x0010, 0, 0) is None  # WM_CLOSE: not ours to log
    assert handler.events == [
        ("app.session_end", {"phase": "query", "reason": "installer"}),
        ("app.session_end", {"phase": "end", "reason": "installer"}),
        ("app.session_end", {"phase": "cancelled", "reason": "sign-out"}),
    ]


@pytest.mark.skipif(sys.platform == "win32", reason="checks the non-Windows path")
def test_install_does_nothing_off_windows() -> None:
    assert winsession.install(object()) is None
    assert winsession.register_restart() is False
