"""Every caller leads somewhere (issue 17), on the pop: the search and journal links, a link the
desktop cannot open, and "Log call" with its note (Enter saves, Esc cancels, held open)."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from tapi_agent.core.calls import CallSettings
from tapi_agent.core.links import Links
from tapi_agent.ui.popstack import LOG_OFFER_S, PopStack
from tests.ui.test_popstack import JANE, TOM, FakeClock, MakeStack, ev, make_stack
from tests.ui.test_popup import Opener

__all__ = ["make_stack"]  # the fixture, re-used

pytestmark = pytest.mark.qt_log_ignore(
    r"This plugin does not support (raise\(\)|grabbing the keyboard|propagateSizeHints)"
)

SLOW = CallSettings(linger_s=5, ring_timeout_s=60)


@pytest.fixture
def stacks(make_stack: MakeStack) -> MakeStack:
    """test_popstack's `make_stack`, with timings slow enough to act on an ended pop."""
    return lambda **kw: make_stack(**{"call_settings": SLOW, **kw})


def answered_and_ended(stack: PopStack, clock: FakeClock, contacts: list[Any]) -> None:
    stack.on_event(ev("in", sent=clock.now))
    stack.set_contacts("c1", contacts)
    clock.now += 3
    stack.on_event(ev("ans", by="JAS", sent=clock.now))
    clock.now += 192
    stack.on_event(ev("end", by="JAS", sent=clock.now))


def test_an_unknown_caller_offers_the_search_link_with_the_number(stacks: Any) -> None:
    opener = Opener()
    stack = stacks(url_opener=opener)
    stack.on_event(ev("in", caller="07123 456789"))
    stack.set_contacts("c1", [])
    card = stack.pops["c1"]
    assert card.search_button.isVisibleTo(card) and card.copy_button.isVisibleTo(card)
    assert not card.journal_button.isVisibleTo(card)
    card.search_button.click()
    assert opener.urls == ["agencycloud://contacts?communication=07123456789"]


def test_a_known_contact_offers_the_journal_link_and_the_templates_are_settings(
    stacks: Any,
) -> None:
    opener = Opener()
    stack = stacks(url_opener=opener, links=Links(record="crm://c/{id}",
                                                   journal="crm://c/{id}/notes"))
    stack.on_event(ev("in"))
    stack.set_contacts("c1", [JANE])
    card = stack.pops["c1"]
    assert card.journal_button.isVisibleTo(card) and not card.search_button.isVisibleTo(card)
    card.journal_button.click()
    card.open_button.click()
    assert opener.urls == [f"crm://c/{JANE.id}/notes", f"crm://c/{JANE.id}"]


def test_an_ambiguous_caller_offers_the_search_and_a_link_that_fails_says_so(
    stacks: Any,
) -> None:
    stack = stacks(url_opener=lambda url: False)  # no app takes agencycloud:// here
    stack.on_event(ev("in"))
    stack.set_contacts("c1", [JANE, TOM])
    card = stack.pops["c1"]
    assert card.search_button.isVisibleTo(card) and not card.copy_button.isVisibleTo(card)
    assert not card.notice_label.isVisibleTo(card)
    card.search_button.click()
    assert card.open_failed
    assert "could not be opened" in card.notice_label.text()
    assert card.notice_label.isVisibleTo(card) and card.copy_button.isVisibleTo(card)


def test_log_call_with_a_note_asks_for_one_entry_and_holds_the_pop_while_typing(
    stacks: Any, qtbot: QtBot,
) -> None:
    clock = FakeClock()
    stack = stacks(clock=clock, journal_mode="ask")
    answered_and_ended(stack, clock, [JANE])
    card = stack.pops["c1"]
    assert card.log_button.isVisibleTo(card) and not card.note_edit.isVisibleTo(card)
    wanted: list[tuple[Any, Any, str]] = []
    stack.log_requested.connect(lambda v, c, n: wanted.append((v, c, n)))

    card.log_button.click()
    assert card.editing and card.note_edit.isVisibleTo(card)
    clock.now += 3600  # an hour of typing: the pop stays
    stack.tick()
    assert "c1" in stack.pops
    qtbot.keyClicks(card.note_edit, "Wants a viewing <b>Friday</b>")
    qtbot.keyClick(card.note_edit, Qt.Key.Key_Return)
    [(view, contact, note)] = wanted
    assert contact == JANE and note == "Wants a viewing <b>Friday</b>"
    assert view.answered_by_me and view.ended_at is not None
    assert not card.editing and not card.log_button.isVisibleTo(card)
    assert card.notice_label.text() == "Saving to the journal…"
    stack.set_journal_status("c1", "logged")
    assert card.notice_label.text() == "Logged to the journal"
    clock.now += 10
    stack.tick()
    assert "c1" not in stack.pops  # closes a moment after saving


def test_an_answered_call_offering_log_call_enters_the_history_once_when_its_pop_closes(
    make_stack: MakeStack,
) -> None:
    """Even with no linger at all, the pop offering "Log call" stays LOG_OFFER_S, and the call
    enters the history only then, once (issue 14's soak waited for the history and so paused
    30 s; its quiet points now wait for the events instead)."""
    clock = FakeClock()
    stack = make_stack(clock=clock, journal_mode="ask",
                       call_settings=CallSettings(linger_s=0, ring_timeout_s=60))
    answered_and_ended(stack, clock, [JANE])
    ended_at = clock.now
    assert stack.pops["c1"].log_button.isVisibleTo(stack.pops["c1"])
    clock.now = ended_at + LOG_OFFER_S - 1
    stack.tick()
    assert "c1" in stack.pops and stack.book.history == []
    clock.now = ended_at + LOG_OFFER_S
    stack.tick()
    assert "c1" not in stack.pops
    assert [(e.call_id, e.outcome) for e in stack.book.history] == [("c1", "answered")]
    stack.on_event(ev("end", by="JAS", sent=clock.now))  # a late repeat adds nothing
    assert len(stack.book.history) == 1


def test_esc_in_the_note_cancels_and_logs_nothing(stacks: Any, qtbot: QtBot) -> None:
    clock = FakeClock()
    stack = stacks(clock=clock, journal_mode="ask")
    answered_and_ended(stack, clock, [JANE])
    card = stack.pops["c1"]
    wanted: list[Any] = []
    stack.log_requested.connect(lambda *a: wanted.append(a))
    card.log_button.click()
    qtbot.keyClicks(card.note_edit, "never mind")
    qtbot.keyClick(card.note_edit, Qt.Key.Key_Escape)
    assert wanted == [] and not card.editing and "c1" in stack.pops  # not dismissed
    assert card.log_button.isVisibleTo(card)  # still on offer


def test_auto_logs_without_a_prompt_and_off_offers_nothing(stacks: Any) -> None:
    clock = FakeClock()
    auto = stacks(clock=clock, journal_mode="auto")
    wanted: list[Any] = []
    auto.log_requested.connect(lambda *a: wanted.append(a))
    answered_and_ended(auto, clock, [JANE])
    [(view, contact, note)] = wanted
    assert contact == JANE and note == "" and view.key == "c1"
    assert not auto.pops["c1"].log_button.isVisibleTo(auto.pops["c1"])

    off = stacks(clock=clock, journal_mode="off")
    off.log_requested.connect(lambda *a: wanted.append(a))
    answered_and_ended(off, clock, [JANE])
    assert len(wanted) == 1 and not off.pops["c1"].log_button.isVisibleTo(off.pops["c1"])


def test_nothing_is_offered_for_a_call_answered_elsewhere_or_an_unknown_caller(
    stacks: Any,
) -> None:
    clock = FakeClock()
    stack = stacks(clock=clock, journal_mode="ask")
    answered_and_ended(stack, clock, [])
    assert not stack.pops["c1"].log_button.isVisibleTo(stack.pops["c1"])
    stack.on_event(ev("in", "c2", sent=clock.now))
    stack.set_contacts("c2", [JANE])
    stack.on_event(ev("end", "c2", by="RPT", sent=clock.now))
    card = stack.pops.get("c2")
    assert card is None or not card.log_button.isVisibleTo(card)


def test_a_card_that_was_never_clicked_does_not_take_the_focus(stacks: Any) -> None:
    clock = FakeClock()
    stack = stacks(clock=clock, journal_mode="ask", url_opener=lambda u: True)
    answered_and_ended(stack, clock, [JANE])
    card = stack.pops["c1"]
    assert card.testAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
    assert card.windowFlags() & Qt.WindowType.WindowDoesNotAcceptFocus
    assert not card.note_edit.hasFocus()


def test_a_refused_entry_says_why_and_offers_to_try_again(stacks: Any) -> None:
    clock = FakeClock()
    stack = stacks(clock=clock, journal_mode="auto")
    answered_and_ended(stack, clock, [JANE])
    retried: list[str] = []
    stack.log_retry_requested.connect(retried.append)
    stack.set_journal_status("c1", "rejected", "associatedId: no contact has the id 'X'")
    card = stack.pops["c1"]
    assert card.notice_label.text() == "Not logged: associatedId: no contact has the id 'X'"
    assert card.log_button.text() == "Try again"
    clock.now += 20
    stack.tick()
    assert "c1" in stack.pops  # stays long enough to be read
    card.log_button.click()
    assert retried == ["c1"] and card.notice_label.text() == "Saving to the journal…"
