"""The pop card, offscreen: each state, each action, plain text, and never taking the focus."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel, QPushButton, QWidget
from pytestqt.qtbot import QtBot

from tapi_agent.core.calls import CallView
from tapi_agent.core.directory import Contact
from tapi_agent.core.log import EVENTS_LOGGER
from tapi_agent.ui.popup import PopCard, format_duration, format_number, line_label
from tests.helpers import events

# Limits of Qt's offscreen platform (it cannot raise windows, grab the keyboard for a menu or
# pass size hints to a window manager); on a real display these calls work.
pytestmark = pytest.mark.qt_log_ignore(
    r"This plugin does not support (raise\(\)|grabbing the keyboard|propagateSizeHints)"
)

T0 = 1_800_000_000.0
JANE = Contact("RPT22000123", "Jane Cooper")
TOM = Contact("LET01", "Tom Baker")


def view(**kw: Any) -> CallView:
    base = CallView(
        key="c1", call_id="c1", state="ringing", caller="07123 456789",
        destination="01234 567890", hunt_group=False, answered_by=None, rang_at=T0,
        answered_at=None, ended_at=None, sent_at=T0,
    )
    return replace(base, **kw)


class Opener:
    """Records the URLs the card asks the desktop to open."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, url: QUrl) -> bool:
        self.urls.append(url.toString())
        return True


@pytest.fixture
def opener() -> Opener:
    return Opener()


def make(qtbot: QtBot, v: CallView | None = None, now: float = T0 + 7, **kw: Any) -> PopCard:
    kw.setdefault("line_names", {"01234 567890": "Sales line"})
    kw.setdefault("negotiator_names", {"RPT": "Rachel Taylor"})
    card = PopCard(v or view(), clock=lambda: now, **kw)
    qtbot.addWidget(card)
    return card




# -- states --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("v", "status", "timer"),
    [
        (view(), "Incoming call", "0:07"),
        (view(state="in_call", answered_by="ME", answered_at=T0 + 2, answered_by_me=True),
         "In call", "0:05"),
        (view(state="answered", answered_at=T0 + 1), "Answered", "0:06"),
        (view(state="answered_elsewhere", answered_by="RPT", answered_at=T0 + 1),
         "Answered by Rachel Taylor", None),
        (view(state="answered_elsewhere", answered_by="XYZ", answered_at=T0 + 1),
         "Answered by XYZ", None),
        (view(state="ended", answered_by="ME", answered_at=T0 + 1, ended_at=T0 + 62),
         "Call ended", "1:01"),
        (view(state="ended", ended_at=T0 + 4), "Missed call", "0:04"),
    ],
    ids=["ringing", "in-call", "answered", "answered-by-colleague", "answered-by-unknown-id",
         "ended", "ended-unanswered"],
)
def test_each_state_shows_its_status_and_timer(
    qtbot: QtBot, v: CallView, status: str, timer: str | None
) -> None:
    card = make(qtbot, v)
    card.show()
    assert card.status_label.text() == status
    if timer is None:
        assert not card.timer_label.isVisible()
    else:
        assert card.timer_label.isVisible() and card.timer_label.text() == timer


def test_update_moves_the_card_to_the_new_state(qtbot: QtBot) -> None:
    card = make(qtbot)
    card.update_call(view(state="in_call", answered_by="ME", answered_at=T0 + 3,
                          answered_by_me=True))
    assert card.status_label.text() == "In call"
    assert card.timer_label.accessibleName() == "Call duration"
    assert card.timer_label.text() == "0:04"


def test_caller_line_and_hunt_group_badge(qtbot: QtBot) -> None:
    card = make(qtbot, view(caller="+447123456789", destination="01234567890", hunt_group=True))
    card.show()
    assert card.title_label.text() == "07123 456789"
    assert card.line_label.text() == "to Sales line"
    assert card.badge_label.isVisible() and card.badge_label.text() == "Hunt group"
    plain = make(qtbot, view(destination="020 7946 0000"))
    plain.show()
    assert plain.line_label.text() == "to 020 7946 0000"
    assert not plain.badge_label.isVisible()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("07123 456789", "07123 456789"),
        ("+447123456789", "07123 456789"),
        ("+33142685300", "+33 1 42 68 53 00"),
        ("", "Withheld"),
        ("anonymous", "Withheld"),
        ("Withheld", "Withheld"),
        ("12", "12"),
    ],
)
def test_number_formatting_for_the_region(raw: str, shown: str) -> None:
    assert format_number(raw, "GB") == shown


def test_the_same_number_is_formatted_from_the_cache_for_other_regions_too() -> None:
    # The cache is keyed by region as well: one region's answer never leaks into another's.
    assert format_number("+33142685300", "GB") == "+33 1 42 68 53 00"
    assert format_number("+33142685300", "FR") == "01 42 68 53 00"
    assert format_number("+33142685300", "GB") == "+33 1 42 68 53 00"
    assert format_number.cache_info().hits >= 1


def test_a_render_in_the_same_state_does_not_reset_the_style_sheet(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    sheets: list[str] = []

    def set_style_sheet(widget: QWidget, text: str) -> None:
        sheets.append(text)
        QWidget.setStyleSheet(widget, text)

    monkeypatch.setattr(PopCard, "setStyleSheet", set_style_sheet)
    card = make(qtbot)
    assert len(sheets) == 1
    card.set_contacts([JANE])
    card.refresh_timer()
    card.update_call(view())
    assert len(sheets) == 1  # re-rendering a ringing card keeps its sheet
    card.update_call(view(state="ended", ended_at=T0 + 4))
    assert len(sheets) == 2 and card.styleSheet() == sheets[-1] != sheets[0]


def test_line_names_match_however_the_number_is_written() -> None:
    assert line_label("+44 1234 567890", {"01234 567890": "Sales line"}) == "to Sales line"
    assert line_label("01234 567899", {"01234 567890": "Sales line"}) == "to 01234 567899"


def test_durations_read_as_minutes_and_hours() -> None:
    assert [format_duration(s) for s in (0, 9.9, 75, 3725)] == ["0:00", "0:09", "1:15", "1:02:05"]


def test_withheld_caller_has_no_copy_button(qtbot: QtBot) -> None:
    card = make(qtbot, view(caller=""))
    card.show()
    assert card.title_label.text() == "Withheld"
    assert not card.copy_button.isVisible()


# -- plain text and accessibility ----------------------------------------------------------------


def test_markup_in_caller_id_is_shown_literally(qtbot: QtBot) -> None:
    markup = "<b>x</b><img src=x>"
    card = make(qtbot, view(caller=markup, destination="<i>line</i>"))
    card.set_contacts([Contact("X1", "<a href='x'>evil</a>")])
    card.show()
    assert card.title_label.text() == "<a href='x'>evil</a>"
    assert card.detail_label.text() == markup
    assert card.line_label.text() == "to <i>line</i>"
    for label in card.findChildren(QLabel):
        assert label.textFormat() == Qt.TextFormat.PlainText, label.objectName()


def test_caller_markup_without_contacts_is_the_literal_title(qtbot: QtBot) -> None:
    markup = "<b>x</b><img src=x>"
    card = make(qtbot, view(caller=markup))
    assert card.title_label.text() == markup
    assert card.title_label.textFormat() == Qt.TextFormat.PlainText


def test_every_label_and_button_has_an_accessible_name(qtbot: QtBot) -> None:
    card = make(qtbot)
    for widget in [*card.findChildren(QLabel), *card.findChildren(QPushButton)]:
        assert widget.accessibleName(), widget.objectName()
    assert card.accessibleName() == "Incoming call: 07123 456789"


# -- contacts and actions ------------------------------------------------------------------------


def test_contacts_fill_in_after_the_card_shows(qtbot: QtBot) -> None:
    card = make(qtbot)
    card.show()
    assert card.title_label.text() == "07123 456789"
    assert not card.open_button.isVisible()
    card.set_contacts([JANE])
    assert card.title_label.text() == "Jane Cooper"
    assert card.detail_label.text() == "07123 456789"
    assert card.open_button.isVisible()


def test_open_record_with_one_contact_opens_it(qtbot: QtBot, opener: Opener) -> None:
    card = make(qtbot, url_opener=opener)
    card.set_contacts([JANE])
    card.show()
    with qtbot.waitSignal(card.record_opened) as sig:
        qtbot.mouseClick(card.open_button, Qt.MouseButton.LeftButton)
    assert opener.urls == ["agencycloud://contacts/RPT22000123"]
    assert sig.args == ["agencycloud://contacts/RPT22000123"]


def test_open_record_with_several_contacts_offers_a_choice(
    qtbot: QtBot, opener: Opener
) -> None:
    card = make(qtbot, url_opener=opener)
    card.set_contacts([JANE, TOM])
    card.show()
    assert card.title_label.text() == "Jane Cooper +1"
    assert card.detail_label.text() == "07123 456789 · 2 matching records"
    qtbot.mouseClick(card.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(card.record_menu.isVisible)
    assert opener.urls == []  # nothing opens until the user chooses
    actions = card.record_menu.actions()
    assert [a.text() for a in actions] == ["Jane Cooper", "Tom Baker"]
    actions[1].trigger()
    assert opener.urls == ["agencycloud://contacts/LET01"]
    card.record_menu.hide()


def test_copy_number_puts_it_on_the_clipboard(qtbot: QtBot) -> None:
    card = make(qtbot, view(caller="+447123456789"))
    card.show()
    QGuiApplication.clipboard().clear()
    qtbot.mouseClick(card.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "07123 456789"


def test_dismiss_button_asks_to_close(qtbot: QtBot) -> None:
    card = make(qtbot)
    card.show()
    with qtbot.waitSignal(card.dismissed) as sig:
        qtbot.mouseClick(card.close_button, Qt.MouseButton.LeftButton)
    assert sig.args == ["c1"]


def test_esc_dismisses_after_the_user_clicked_into_the_card(qtbot: QtBot) -> None:
    card = make(qtbot)
    card.show()
    qtbot.waitExposed(card)
    fired: list[str] = []
    card.dismissed.connect(fired.append)
    # Stray typing does nothing.
    for key in (Qt.Key.Key_Return, Qt.Key.Key_Space, Qt.Key.Key_A):
        qtbot.keyClick(card, key)
    assert fired == []
    qtbot.mouseClick(card, Qt.MouseButton.LeftButton, pos=QPoint(200, 60))
    qtbot.keyClick(card, Qt.Key.Key_Escape)
    assert fired == ["c1"]


# -- focus ---------------------------------------------------------------------------------------


def test_showing_a_pop_keeps_the_keyboard_in_the_users_window(qtbot: QtBot) -> None:
    # The real focus check is on an X server (test_pop_focus.py): the offscreen platform
    # activates every window it shows. Here: the card is built to never be activated.
    card = make(qtbot)
    assert card.windowFlags() & Qt.WindowType.WindowDoesNotAcceptFocus
    assert card.testAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
    for button in card.findChildren(QPushButton):
        assert button.focusPolicy() == Qt.FocusPolicy.NoFocus


def test_the_card_is_a_frameless_on_top_tool_window(qtbot: QtBot) -> None:
    flags = make(qtbot).windowFlags()
    for flag in (Qt.WindowType.Tool, Qt.WindowType.FramelessWindowHint,
                 Qt.WindowType.WindowStaysOnTopHint):
        assert flags & flag == flag


# -- logging -------------------------------------------------------------------------------------


def test_pop_shown_is_logged_once_at_first_paint_with_latency(
    qtbot: QtBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=EVENTS_LOGGER)
    card = make(qtbot, view(sent_at=T0, hunt_group=True), now=T0 + 0.25)
    assert events(caplog, "pop.shown") == []  # not before it is on screen
    card.show()
    qtbot.waitUntil(lambda: card.painted)
    card.repaint()
    assert events(caplog, "pop.shown") == [
        {"callId": "c1", "state": "ringing", "huntGroup": True, "latencyMs": 250}
    ]
