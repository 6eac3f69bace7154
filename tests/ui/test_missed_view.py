"""The missed-calls list dialog."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pytestqt.qtbot import QtBot

from tapi_agent.core.missed import MissedCall
from tapi_agent.ui.missed_view import MissedCallsDialog

pytestmark = pytest.mark.qt_log_ignore("propagateSizeHints")


def _call(i: int, caller: str, seen: bool = False) -> MissedCall:
    return MissedCall(deferred_id=f"d{i}", call_id=f"c{i}", caller=caller,
                      destination="01234 567890",
                      created=datetime(2026, 11, 30, 9, i, tzinfo=UTC), seen=seen)


@pytest.fixture
def dialog(qtbot: QtBot) -> MissedCallsDialog:
    d = MissedCallsDialog()
    qtbot.addWidget(d)
    d.show()
    return d


def test_lists_newest_first_and_marks_the_new_ones(dialog: MissedCallsDialog) -> None:
    dialog.set_calls([_call(1, "07700 900001", seen=True), _call(5, "07700 900005"),
                      _call(3, "07700 900003")])
    callers = [dialog.tree.topLevelItem(i).text(2) for i in range(3)]
    assert callers == ["07700 900005", "07700 900003", "07700 900001"]
    assert [dialog.tree.topLevelItem(i).text(0) for i in range(3)] == ["new", "new", ""]
    assert dialog.tree.topLevelItem(0).font(2).bold()
    assert not dialog.tree.topLevelItem(2).font(2).bold()
    assert dialog.summary.text() == "3 missed calls, 2 new."
    assert dialog.mark_button.isEnabled()


def test_mark_all_seen_asks_and_is_disabled_when_nothing_is_new(
    dialog: MissedCallsDialog, qtbot: QtBot
) -> None:
    dialog.set_calls([_call(1, "07700 900001")])
    with qtbot.waitSignal(dialog.mark_all_seen, timeout=1000):
        dialog.mark_button.click()
    dialog.set_calls([_call(1, "07700 900001", seen=True)])
    assert not dialog.mark_button.isEnabled()
    dialog.set_calls([])
    assert dialog.summary.text() == "No missed calls."


def test_double_click_asks_to_copy_the_number(dialog: MissedCallsDialog, qtbot: QtBot) -> None:
    dialog.set_calls([_call(1, "07700 900001")])
    item = dialog.tree.topLevelItem(0)
    with qtbot.waitSignal(dialog.copy_requested, timeout=1000) as sig:
        dialog.tree.itemDoubleClicked.emit(item, 2)
    assert sig.args == ["07700 900001"]


def test_caller_text_is_shown_as_typed_not_as_markup(dialog: MissedCallsDialog) -> None:
    dialog.set_calls([_call(1, "<b>07700</b>")])
    assert dialog.tree.topLevelItem(0).text(2) == "<b>07700</b>"
