"""Qt objects per call (issue 14): what a call builds is gone once it has left the screen and
the history, and a flood of ringing calls builds a bounded number of cards.

Counts live Qt objects, not RSS: a count is exact, RSS is not. The calls go through the real
window classes (PopStack and its PopCards, Tray and StatusWindow with their TrayMenu), wired the
way the app wires them (history_changed -> set_history with contact labels and record links).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QObject
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from tapi_agent.core.calls import CallEvent, CallSettings
from tapi_agent.core.directory import Contact
from tapi_agent.ui.popstack import PopStack
from tapi_agent.ui.popup import PopCard
from tapi_agent.ui.status_window import StatusWindow
from tapi_agent.ui.tray import Tray

pytestmark = pytest.mark.qt_log_ignore(
    r"This plugin does not support (raise\(\)|grabbing the keyboard|propagateSizeHints)"
)

JANE = Contact("RPT22000123", "Jane Cooper")
TOM = Contact("LET01", "Tom Baker")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _event(sub_type: str, call_id: str, clock: FakeClock, *, by: str | None = None,
           hunt: bool = False) -> CallEvent:
    return CallEvent(sub_type, call_id, f"07123 4{int(call_id[1:]) % 100000:05d}",
                     "01234 567890", hunt, by, datetime(2026, 11, 30, 10, 0), clock.now)


def _flush_deletes() -> None:
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def _qt_objects(roots: list[QObject]) -> int:
    """Every widget of the application plus every QObject under the given roots."""
    _flush_deletes()
    return len(QApplication.allWidgets()) + sum(
        1 + len(root.findChildren(QObject)) for root in roots)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stack(qtbot: QtBot, clock: FakeClock) -> Iterator[PopStack]:
    s = PopStack("JAS", call_settings=CallSettings(), clock=clock, url_opener=lambda _u: True)
    yield s
    s.close_all()
    _flush_deletes()


def _one_call(stack: PopStack, clock: FakeClock, i: int) -> None:
    """One call of a varied day: rings, maybe a contact or two, answered or not, ends, closes."""
    key = f"c{i}"
    stack.on_event(_event("incomingCall", key, clock, hunt=i % 4 == 0))
    clock.now += 1
    if i % 3:
        stack.set_contacts(key, [JANE] if i % 3 == 1 else [JANE, TOM])
    if i % 5 == 0:
        stack.on_event(_event("answeredCall", key, clock, by="RPT", hunt=True))
    elif i % 2:
        stack.on_event(_event("answeredCall", key, clock, by="JAS"))
    clock.now += 2
    stack.on_event(_event("endedCall", key, clock))
    clock.now += 10  # past the linger: the pop closes
    stack.tick()
    assert stack.pops == {}


@pytest.mark.parametrize("front_end", ["tray", "status_window"])
def test_qt_objects_stay_flat_over_200_calls_through_the_real_windows(
    qtbot: QtBot, stack: PopStack, clock: FakeClock, front_end: str
) -> None:
    window = Tray() if front_end == "tray" else StatusWindow()
    if isinstance(window, StatusWindow):
        qtbot.addWidget(window)
    contacts: dict[str, list[Contact]] = {}

    def show_history() -> None:  # as Agent._show_history does
        entries = stack.book.history
        labels = {e.key: contacts[e.key][0].name for e in entries if contacts.get(e.key)}
        urls = {e.key: contacts[e.key][0].record_url for e in entries if contacts.get(e.key)}
        window.set_history(entries, labels=labels, record_urls=urls)

    stack.history_changed.connect(show_history)
    stack.lookup_requested.connect(lambda key, _n: contacts.__setitem__(key, [JANE]))
    roots: list[QObject] = [window, stack, window.tray_menu.menu]
    for i in range(60):  # warm-up: the history (50 entries, 20 in the menu) fills up
        _one_call(stack, clock, i)
    warm = _qt_objects(roots)
    for i in range(60, 260):
        _one_call(stack, clock, i)
    assert _qt_objects(roots) == warm
    recent = window.tray_menu.recent_menu
    assert len([a for a in recent.actions() if a.menu() is not None]) == 20
    assert "Jane Cooper" in recent.actions()[0].text()
    if isinstance(window, Tray):
        window.hide()


def test_a_flood_of_ringing_calls_builds_at_most_the_stacked_cards(
    qtbot: QtBot, stack: PopStack, clock: FakeClock
) -> None:
    def cards() -> int:
        _flush_deletes()
        return sum(isinstance(w, PopCard) for w in QApplication.allWidgets())

    for i in range(500):
        stack.on_event(_event("incomingCall", f"f{i}", clock))
    assert len(stack.book.live) == 500
    assert len(stack.pops) == 3 and cards() <= 4  # three shown, one spare built ahead
    assert stack.more_label.text() == "+497 more"
    assert {k for k, c in stack.pops.items() if c.isVisible()} == {"f499", "f498", "f497"}
    # The newest calls end: the next ones down get their cards.
    for i in (499, 498):
        stack.dismiss(f"f{i}")
    assert set(stack.pops) == {"f497", "f496", "f495"}
    assert stack.more_label.text() == "+495 more"
    for i in range(498):
        stack.on_event(_event("endedCall", f"f{i}", clock))
    clock.now += 10
    stack.tick()
    # What stays: the card built ahead and the two kept for reuse, all hidden.
    assert stack.pops == {} and not stack.more_label.isVisible() and cards() <= 3


def test_a_card_pushed_down_is_reused_for_the_newest_call_and_carries_nothing_over(
    qtbot: QtBot, stack: PopStack, clock: FakeClock
) -> None:
    for i in range(3):
        stack.on_event(_event("incomingCall", f"r{i}", clock))
    stack.set_contacts("r0", [JANE])
    old = stack.pops["r0"]
    assert old.open_button.isVisibleTo(old)
    stack.on_event(_event("incomingCall", "r3", clock))  # r0 makes room: its card is reused
    assert "r0" not in stack.pops and stack.pops["r3"] is old
    assert old.key == "r3" and old.contacts == [] and not old.open_button.isVisibleTo(old)
    assert old.title_label.text() == "07123 400003" and not old.painted
    qtbot.waitUntil(lambda: old.painted)  # and its first paint logs pop.shown for r3
    stack.dismiss("r3")  # r0 comes back, in a card of its own, with its contact
    assert stack.pops["r0"].title_label.text() == "Jane Cooper"
