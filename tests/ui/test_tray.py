"""The tray menu (offscreen): status line, icon per state, badge, history, signals, plain text.

The real system tray under Xvfb + trayer is in test_tray_xvfb.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from PySide6.QtGui import QAction
from pytestqt.qtbot import QtBot

from tapi_agent.core.calls import HistoryEntry
from tapi_agent.core.connection import ConnectionStatus, ConnState
from tapi_agent.core.missed import MissedCall
from tapi_agent.ui.status_window import StatusWindow
from tapi_agent.ui.tray import RECENT_LIMIT, Tray, TrayMenu, menu_text, plain_toast_text

# The offscreen platform cannot propagate size hints or raise windows, and says so.
pytestmark = pytest.mark.qt_log_ignore("propagateSizeHints", "does not support raise")

AT = datetime(2026, 11, 30, 10, 28, tzinfo=UTC).timestamp()


def _status(state: ConnState, attempt: int = 1, retry: int | None = None,
            detail: str = "") -> ConnectionStatus:
    return ConnectionStatus(state, attempt, retry, detail)


def _history(n: int) -> list[HistoryEntry]:
    return [HistoryEntry(key=f"k{i}", call_id=f"c{i}", caller=f"07123 45{i:04d}",
                         destination="01234 567890", at=AT - i * 60, outcome="missed",
                         answered_by=None) for i in range(n)]


def _missed(n: int, seen: bool = False) -> list[MissedCall]:
    return [MissedCall(deferred_id=f"d{i}", call_id=f"c{i}", caller=f"07700 90{i:04d}",
                       destination="01234 567890", created=datetime(2026, 11, 30, 9, i,
                                                                    tzinfo=UTC), seen=seen)
            for i in range(n)]


@pytest.fixture
def menu(qtbot: QtBot) -> TrayMenu:
    return TrayMenu()


def test_status_line_says_who_is_connected(menu: TrayMenu) -> None:
    menu.set_status(_status(ConnState.CONNECTED), "Jane Smith (JAS)")
    assert menu.status_action.text() == "Connected as Jane Smith (JAS)"
    assert "Connected as Jane Smith (JAS)" in menu.tooltip()
    assert menu.tooltip().startswith("TAPI Agent")
    assert not menu.status_action.isEnabled()  # a label, not a button


@pytest.mark.parametrize(("state", "icon"), [
    (ConnState.CONNECTED, "connected"),
    (ConnState.CONNECTING, "connecting"),
    (ConnState.DISCONNECTED, "offline"),
    (ConnState.SUSPENDED, "offline"),
    (ConnState.SIGNED_OUT, "signed_out"),
    (ConnState.FAILED, "failed"),
])
def test_each_connection_state_has_its_icon(menu: TrayMenu, state: ConnState, icon: str) -> None:
    menu.set_status(_status(state), "Jane Smith (JAS)")
    assert menu.icon_name == icon
    assert not menu.current_icon().isNull()


def test_offline_status_says_when_it_retries_and_offers_reconnect(menu: TrayMenu) -> None:
    menu.set_status(_status(ConnState.DISCONNECTED, 3, 4200), "Jane")
    assert menu.status_text == "Offline; retrying in 4 s"
    assert menu.reconnect_action.isEnabled()
    menu.set_status(_status(ConnState.CONNECTED), "Jane")
    assert not menu.reconnect_action.isEnabled()


def test_failed_status_shows_the_reason(menu: TrayMenu) -> None:
    menu.set_status(_status(ConnState.FAILED, detail="Access denied (4003)"), None)
    assert menu.status_text == "Not connected: Access denied (4003)"


def test_sign_in_is_offered_only_when_signed_out(menu: TrayMenu) -> None:
    menu.set_status(_status(ConnState.SIGNED_OUT), None)
    assert menu.sign_in_action.isVisible() and not menu.sign_out_action.isVisible()
    menu.set_status(_status(ConnState.CONNECTED), "Jane")
    assert menu.sign_out_action.isVisible() and not menu.sign_in_action.isVisible()


def test_do_not_disturb_shows_its_own_icon_while_connected(menu: TrayMenu, qtbot: QtBot) -> None:
    menu.set_status(_status(ConnState.CONNECTED), "Jane")
    with qtbot.waitSignal(menu.do_not_disturb_toggled, timeout=1000) as sig:
        menu.dnd_action.trigger()
    assert sig.args == [True]
    assert menu.icon_name == "dnd"
    assert "Do not disturb" in menu.tooltip()
    menu.set_status(_status(ConnState.DISCONNECTED), "Jane")
    assert menu.icon_name == "offline"  # being offline matters more than a muted pop


def test_setters_reflect_state_without_emitting(menu: TrayMenu, qtbot: QtBot) -> None:
    with qtbot.assertNotEmitted(menu.do_not_disturb_toggled), \
            qtbot.assertNotEmitted(menu.autostart_toggled):
        menu.set_do_not_disturb(True)
        menu.set_autostart(True)
    assert menu.dnd_action.isChecked() and menu.autostart_action.isChecked()


def test_start_at_login_locked_by_policy_is_greyed_out_and_says_so(menu: TrayMenu) -> None:
    menu.set_autostart(True, locked=True)
    assert menu.autostart_action.isChecked()
    assert not menu.autostart_action.isEnabled()
    assert menu.autostart_action.text() == "Start at login (set by your administrator)"
    menu.set_autostart(False)
    assert menu.autostart_action.isEnabled()
    assert menu.autostart_action.text() == "Start at login"


@pytest.mark.parametrize(("name", "signal", "args"), [
    ("signIn", "sign_in_requested", []),
    ("signOut", "sign_out_requested", []),
    ("reconnect", "reconnect_requested", []),
    ("quit", "quit_requested", []),
    ("settings", "settings_requested", []),
    ("openLogFolder", "open_log_folder_requested", []),
    ("exportDiagnostics", "export_diagnostics_requested", []),
    ("autostart", "autostart_toggled", [True]),
    ("doNotDisturb", "do_not_disturb_toggled", [True]),
])
def test_menu_actions_emit_their_signals(qtbot: QtBot, name: str, signal: str,
                                         args: list[object]) -> None:
    tray = Tray()
    tray.set_status(_status(ConnState.DISCONNECTED), "Jane")
    with qtbot.waitSignal(getattr(tray, signal), timeout=1000) as sig:
        tray.tray_menu.action(name).trigger()
    assert sig.args == args


def test_recent_calls_keep_the_last_20_and_copy_or_open(menu: TrayMenu, qtbot: QtBot) -> None:
    entries = _history(25)
    menu.set_history(entries, labels={"k0": "Ann Buyer"},
                     record_urls={"k0": "agencycloud://contacts/RPT20000001"})
    subs = [a for a in menu.recent_menu.actions() if a.menu() is not None]
    assert len(subs) == RECENT_LIMIT
    assert "Ann Buyer" in subs[0].text() and "missed" in subs[0].text()
    with qtbot.waitSignal(menu.history_copy_requested, timeout=1000) as copied:
        menu.action("copy:k0").trigger()
    assert copied.args == ["07123 450000"]
    with qtbot.waitSignal(menu.history_open_requested, timeout=1000) as opened:
        menu.action("open:k0").trigger()
    assert opened.args == ["agencycloud://contacts/RPT20000001"]
    assert not menu.action("open:k1").isEnabled()  # no record matched: nothing to open


def test_a_refused_journal_entry_can_be_retried_from_recent_calls(
    menu: TrayMenu, qtbot: QtBot
) -> None:
    """After its pop has closed, a call whose journal entry the API refused still offers a
    retry; the others do not show the action."""
    menu.set_history(_history(3), log_retry={"k1": "call-k1"})
    assert menu.action("retry:k1").isVisible()
    assert not menu.action("retry:k0").isVisible()
    with qtbot.waitSignal(menu.history_log_retry_requested, timeout=1000) as retried:
        menu.action("retry:k1").trigger()
    assert retried.args == ["call-k1"]
    menu.set_history(_history(3))  # logged since: the action goes away
    assert not menu.action("retry:k1").isVisible()


def test_missed_calls_badge_counts_unseen_and_mark_all_seen_emits(
    menu: TrayMenu, qtbot: QtBot
) -> None:
    menu.set_status(_status(ConnState.CONNECTED), "Jane")
    plain = menu.current_icon().pixmap(32, 32).toImage()
    menu.set_missed(_missed(3) + _missed(2, seen=True))
    assert menu.unseen_count == 3
    assert menu.missed_menu.title() == "Missed calls (3 new)"
    assert "3 missed calls" in menu.tooltip()
    badged = menu.current_icon().pixmap(32, 32).toImage()
    assert badged != plain  # the badge is drawn on the icon
    assert menu.mark_seen_action.isEnabled()
    with qtbot.waitSignal(menu.missed_seen_requested, timeout=1000):
        menu.mark_seen_action.trigger()
    menu.set_missed(_missed(3, seen=True))
    assert menu.unseen_count == 0 and not menu.mark_seen_action.isEnabled()
    assert menu.current_icon().pixmap(32, 32).toImage() == plain


def test_payload_text_cannot_become_a_mnemonic_or_a_shortcut(menu: TrayMenu) -> None:
    assert menu_text("Smith & Sons\tCtrl+Q") == "Smith && Sons Ctrl+Q"
    menu.set_status(_status(ConnState.CONNECTED), "A&B <b>x</b>")
    assert menu.status_action.text() == "Connected as A&&B <b>x</b>"


def test_toast_text_cannot_be_read_as_markup() -> None:
    import sys

    text = plain_toast_text("<b>07123</b> & co")
    if sys.platform != "win32":
        assert "<" not in text and ">" not in text and "&" not in text
        assert "07123" in text


def test_show_missed_calls_opens_the_list_and_its_button_marks_seen(
    menu: TrayMenu, qtbot: QtBot
) -> None:
    menu.set_missed(_missed(2))
    menu.show_missed_action.trigger()
    dialog = menu.missed_dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.addWidget(dialog)
    assert dialog.tree.topLevelItemCount() == 2
    with qtbot.waitSignal(menu.missed_seen_requested, timeout=1000):
        dialog.mark_button.click()
    menu.set_missed(_missed(2, seen=True))  # the app answers with the updated list
    assert not dialog.mark_button.isEnabled()


def test_status_window_offers_the_same_menu_and_signals(qtbot: QtBot) -> None:
    window = StatusWindow()
    qtbot.addWidget(window)
    window.show()
    window.set_status(_status(ConnState.SIGNED_OUT), None)
    assert window.sign_in_button.isVisible()
    with qtbot.waitSignal(window.sign_in_requested, timeout=1000):
        window.sign_in_button.click()
    window.set_status(_status(ConnState.CONNECTED), "Jane Smith (JAS)")
    assert window.status_label.text() == "Connected as Jane Smith (JAS)"
    window.set_missed(_missed(1))
    assert window.missed_label.text() == "1 new missed call"
    window.toast("Missed call", "<i>07123 456789</i>")
    assert "07123 456789" in window.toast_label.text()
    actions = {a.objectName() for a in window.menu.actions() if isinstance(a, QAction)}
    assert {"settings", "quit", "about", "autostart", "reconnect"} <= actions
    with qtbot.waitSignal(window.quit_requested, timeout=1000):
        window.tray_menu.action("quit").trigger()


def test_closing_the_status_window_minimises_instead_of_hiding_the_agent(qtbot: QtBot) -> None:
    window = StatusWindow()
    qtbot.addWidget(window)
    window.show()
    window.close()
    assert window.isVisible()
    window.tray_menu.action("quit").trigger()
    window.close()
    assert not window.isVisible()


def test_when_docked_gives_up_waiting_after_its_limit_when_the_icon_never_docks(
    qtbot: QtBot,
) -> None:
    # Offscreen there is no tray: the icon never docks, so the agent is built after the limit.
    tray = Tray()
    calls: list[bool] = []
    tray.when_docked(lambda: calls.append(tray.docked), limit_ms=50)
    assert calls == []  # never synchronously: always from the event loop
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=5000)
    assert calls == [False]
