"""PopStack, offscreen: CallBook changes become cards, timers close them, stacking, open-record."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import shiboken6
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from tapi_agent.core.calls import CallEvent, CallSettings
from tapi_agent.core.directory import Contact
from tapi_agent.ui.popstack import PopStack
from tests.helpers import events
from tests.ui.test_popup import Opener

pytestmark = pytest.mark.qt_log_ignore(
    r"This plugin does not support (raise\(\)|grabbing the keyboard|propagateSizeHints)"
)

JANE = Contact("RPT22000123", "Jane Cooper")
TOM = Contact("LET01", "Tom Baker")
FAST = CallSettings(answered_elsewhere_close_s=0.05, linger_s=0.05, ring_timeout_s=0.2)


def ev(sub: str, call_id: str | None = "c1", *, by: str | None = None, caller: str = "07123 456789",
       hunt: bool = False, sent: float | None = None) -> CallEvent:
    sub_type = {"in": "incomingCall", "ans": "answeredCall", "end": "endedCall"}[sub]
    return CallEvent(sub_type, call_id, caller, "01234 567890", hunt, by,
                     datetime(2026, 11, 30, 10, 0), sent if sent is not None else time.time())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now






MakeStack = Callable[..., PopStack]


@pytest.fixture
def make_stack(qtbot: QtBot) -> Iterator[MakeStack]:
    """Build PopStacks (fast timings unless told) and hide their pops afterwards."""
    made: list[PopStack] = []

    def make(**kw: Any) -> PopStack:
        kw.setdefault("call_settings", FAST)
        stack = PopStack("JAS", **kw)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.close_all()


def test_hunt_group_pop_closes_when_colleague_answers(
    qtbot: QtBot, make_stack: MakeStack, log: pytest.LogCaptureFixture
) -> None:
    stack = make_stack()
    stack.set_negotiator_names({"RPT": "Rachel Taylor"})
    stack.on_event(ev("in", hunt=True))
    card = stack.pops["c1"]
    qtbot.waitUntil(lambda: card.painted)
    assert card.isVisible() and card.badge_label.isVisible()
    stack.on_event(ev("ans", by="RPT", hunt=True))
    assert card.status_label.text() == "Answered by Rachel Taylor"
    qtbot.waitUntil(lambda: "c1" not in stack.pops, timeout=3000)
    assert not shiboken6.isValid(card) or not card.isVisible()
    assert events(log, "pop.updated") == [{"callId": "c1", "state": "answered_elsewhere"}]
    assert events(log, "pop.closed") == [{"callId": "c1", "reason": "answered_elsewhere"}]
    shown = events(log, "pop.shown")
    assert len(shown) == 1 and shown[0]["state"] == "ringing" and shown[0]["huntGroup"] is True
    assert isinstance(shown[0]["latencyMs"], int) and shown[0]["latencyMs"] >= 0
    assert [h.outcome for h in stack.book.history] == ["answered_elsewhere"]


def test_ended_call_lingers_then_closes(
    qtbot: QtBot, make_stack: MakeStack, log: pytest.LogCaptureFixture
) -> None:
    stack = make_stack()
    stack.on_event(ev("in"))
    stack.on_event(ev("ans", by="JAS"))
    assert stack.pops["c1"].status_label.text() == "In call"
    stack.on_event(ev("end", by="JAS"))
    assert stack.pops["c1"].status_label.text() == "Call ended"
    qtbot.waitUntil(lambda: not stack.pops, timeout=3000)
    assert events(log, "pop.closed") == [{"callId": "c1", "reason": "ended"}]


def test_unanswered_pop_closes_at_ring_timeout(
    qtbot: QtBot, make_stack: MakeStack, log: pytest.LogCaptureFixture
) -> None:
    stack = make_stack()
    with qtbot.waitSignal(stack.history_changed, timeout=3000):
        stack.on_event(ev("in"))
    assert not stack.pops
    assert events(log, "pop.closed") == [{"callId": "c1", "reason": "ring_timeout"}]
    assert [h.outcome for h in stack.book.history] == ["missed"]


def test_an_idle_stack_runs_no_timers(qtbot: QtBot, make_stack: MakeStack) -> None:
    clock = FakeClock()
    stack = make_stack(clock=clock, call_settings=CallSettings())
    assert not stack.tick_timer.isActive() and not stack.clock_timer.isActive()
    stack.on_event(ev("in", sent=clock.now))
    # Armed for the ring timeout, not polling; the clock label ticks while a pop shows.
    assert stack.tick_timer.isActive() and stack.tick_timer.isSingleShot()
    assert 59_000 <= stack.tick_timer.interval() <= 60_001
    assert stack.clock_timer.isActive()
    stack.on_event(ev("ans", by="JAS", sent=clock.now))
    assert not stack.tick_timer.isActive()  # in a call: nothing is due
    stack.on_event(ev("end", by="JAS", sent=clock.now))
    clock.now += 5
    stack.tick()
    assert not stack.pops
    assert not stack.tick_timer.isActive() and not stack.clock_timer.isActive()


def test_no_card_is_built_before_the_first_call(qtbot: QtBot, make_stack: MakeStack) -> None:
    """An agent that has had no call holds no card (issue 14: idle memory): the first call
    builds its own, and nothing lays text out while nothing is shown."""
    stack = make_stack()
    stack.set_tray_geometry(QRect(1800, 1040, 24, 24))  # the tray docked: a relayout, idle
    probe = make_stack()
    probe.on_event(ev("in", "p1"))
    probe.on_event(ev("end", "p1"))
    probe.tick()  # closes p1 (fast timings): its spare comes on a later turn of the loop
    qtbot.waitUntil(lambda: probe.spare_card is not None)  # the event loop has turned since
    assert stack.spare_card is None
    assert not stack.more_label.isVisible() and not stack.clock_timer.isActive()
    stack.on_event(ev("in"))
    card = stack.pops["c1"]
    qtbot.waitUntil(lambda: card.painted)
    assert card.isVisible() and card.title_label.text() == "07123 456789"


def test_a_card_built_ahead_after_a_call_is_the_next_calls_pop(
    qtbot: QtBot, make_stack: MakeStack, log: pytest.LogCaptureFixture
) -> None:
    stack = make_stack()
    stack.set_negotiator_names({"RPT": "Rachel Taylor"})
    stack.on_event(ev("in", "c0"))
    first = stack.pops["c0"]
    stack.dismiss("c0")
    # The pop closed: the next card is built ahead on a later turn, once, with no timer left.
    qtbot.waitUntil(lambda: stack.spare_card is not None)
    spare = stack.spare_card
    assert spare is not None and spare is not first and not spare.isVisible()
    assert spare.testAttribute(Qt.WidgetAttribute.WA_WState_Created)  # its native window
    assert not stack.pops  # built ahead, but not a pop
    stack.on_event(ev("in", hunt=True, caller="+447123456789"))
    card = stack.pops["c1"]
    assert card is spare and stack.spare_card is None
    qtbot.waitUntil(lambda: card.painted)
    assert card.isVisible() and card.title_label.text() == "07123 456789"
    assert card.badge_label.isVisible()
    assert [e["callId"] for e in events(log, "pop.shown")] == ["c1"]  # c0 closed unpainted
    stack.on_event(ev("ans", by="RPT", hunt=True))
    assert card.status_label.text() == "Answered by Rachel Taylor"
    qtbot.waitUntil(lambda: "c1" not in stack.pops and stack.spare_card is not None,
                    timeout=3000)
    assert stack.spare_card is not card
    assert not stack.tick_timer.isActive() and not stack.clock_timer.isActive()


def test_a_second_call_while_the_first_rings_gets_a_card_of_its_own(
    qtbot: QtBot, make_stack: MakeStack
) -> None:
    stack = make_stack(call_settings=CallSettings())
    stack.on_event(ev("in", "c1"))
    stack.on_event(ev("in", "c2", caller="01865 000100"))
    assert set(stack.pops) == {"c1", "c2"} and stack.pops["c1"] is not stack.pops["c2"]
    assert stack.pops["c2"].title_label.text() == "01865 000100"


def test_no_card_is_built_ahead_after_the_pops_closed_for_good(
    qtbot: QtBot, make_stack: MakeStack
) -> None:
    stack = make_stack(call_settings=CallSettings())
    stack.on_event(ev("in", "c1"))
    stack.close_all()
    stack.dismiss("c1")  # a call ending after the quit asks for no card either
    probe = make_stack()
    probe.on_event(ev("in", "p1"))
    probe.dismiss("p1")
    qtbot.waitUntil(lambda: probe.spare_card is not None)  # the event loop has turned since
    assert stack.spare_card is None


def test_timer_label_counts_with_the_clock(qtbot: QtBot, make_stack: MakeStack) -> None:
    clock = FakeClock()
    stack = make_stack(clock=clock, call_settings=CallSettings())
    stack.on_event(ev("in", sent=clock.now))
    card = stack.pops["c1"]
    assert card.timer_label.text() == "0:00"
    clock.now += 1
    with qtbot.waitSignal(stack.clock_timer.timeout, timeout=3000):
        pass
    assert card.timer_label.text() == "0:01"


def test_lookup_is_requested_and_contacts_fill_in_without_delaying_the_pop(
    qtbot: QtBot, make_stack: MakeStack
) -> None:
    stack = make_stack()
    asked: list[tuple[str, str]] = []
    stack.lookup_requested.connect(lambda key, number: asked.append((key, number)))
    stack.on_event(ev("in"))
    card = stack.pops["c1"]
    assert card.isVisible() and card.title_label.text() == "07123 456789"
    assert asked == [("c1", "07123 456789")]
    bottom = card.geometry().bottom()
    stack.set_contacts("c1", [JANE])
    assert card.title_label.text() == "Jane Cooper"
    # The card grew a line: it is re-stacked so it still sits in the corner, whole.
    assert card.geometry().bottom() == bottom
    assert QGuiApplication.primaryScreen().availableGeometry().contains(card.geometry())


def test_no_lookup_for_a_withheld_number(qtbot: QtBot, make_stack: MakeStack) -> None:
    stack = make_stack()
    asked: list[tuple[str, str]] = []
    stack.lookup_requested.connect(lambda key, number: asked.append((key, number)))
    stack.on_event(ev("in", caller="anonymous"))
    assert stack.pops["c1"].title_label.text() == "Withheld"
    assert asked == []


def test_several_calls_stack_up_to_the_limit_then_a_more_line(
    qtbot: QtBot, make_stack: MakeStack
) -> None:
    stack = make_stack(max_stacked=2, call_settings=CallSettings())
    for i in range(4):
        stack.on_event(ev("in", f"c{i}", caller=f"07123 45678{i}"))
    visible = {k for k, c in stack.pops.items() if c.isVisible()}
    assert visible == {"c2", "c3"}  # the newest two
    assert stack.more_label.isVisible() and stack.more_label.text() == "+2 more"
    area = QGuiApplication.primaryScreen().availableGeometry()
    rects = [c.geometry() for c in stack.pops.values() if c.isVisible()]
    assert all(area.contains(r) for r in rects)
    assert not rects[0].intersects(rects[1])
    assert area.contains(stack.more_label.geometry())
    newest = stack.pops["c3"].geometry()
    assert newest.bottom() > stack.pops["c2"].geometry().bottom()  # nearest the corner
    stack.dismiss("c3")
    assert {k for k, c in stack.pops.items() if c.isVisible()} == {"c1", "c2"}
    assert stack.more_label.text() == "+1 more"
    stack.dismiss("c2")
    stack.dismiss("c1")
    assert not stack.more_label.isVisible()


def test_pops_use_the_configured_corner(qtbot: QtBot, make_stack: MakeStack) -> None:
    stack = make_stack(corner="top-left", call_settings=CallSettings())
    stack.on_event(ev("in"))
    area = QGuiApplication.primaryScreen().availableGeometry()
    geo = stack.pops["c1"].geometry()
    assert geo.left() < area.center().x() and geo.top() < area.center().y()


def test_tray_geometry_outside_every_screen_falls_back_to_the_primary(
    qtbot: QtBot, make_stack: MakeStack
) -> None:
    stack = make_stack(call_settings=CallSettings())
    stack.set_tray_geometry(QRect(-9000, -9000, 20, 20))
    stack.on_event(ev("in"))
    assert QGuiApplication.primaryScreen().availableGeometry().contains(
        stack.pops["c1"].geometry())


def test_dismiss_button_closes_the_pop_into_history(
    qtbot: QtBot, make_stack: MakeStack, log: pytest.LogCaptureFixture
) -> None:
    stack = make_stack(call_settings=CallSettings())
    stack.on_event(ev("in"))
    card = stack.pops["c1"]
    qtbot.mouseClick(card.close_button, Qt.MouseButton.LeftButton)
    assert "c1" not in stack.pops
    assert events(log, "pop.closed") == [{"callId": "c1", "reason": "dismissed"}]
    assert [h.outcome for h in stack.book.history] == ["dismissed"]
    stack.on_event(ev("ans", by="JAS"))  # a later event does not bring it back
    assert not stack.pops


def test_esc_dismisses_a_pop_the_user_clicked(qtbot: QtBot, make_stack: MakeStack) -> None:
    stack = make_stack(call_settings=CallSettings())
    stack.on_event(ev("in"))
    card = stack.pops["c1"]
    qtbot.mouseClick(card, Qt.MouseButton.LeftButton)
    qtbot.keyClick(card, Qt.Key.Key_Escape)
    assert not stack.pops


def test_resync_closes_every_pop(
    qtbot: QtBot, make_stack: MakeStack, log: pytest.LogCaptureFixture
) -> None:
    stack = make_stack(call_settings=CallSettings())
    stack.on_event(ev("in", "a"))
    stack.on_event(ev("in", "b"))
    stack.resync()
    assert not stack.pops
    assert sorted(e["callId"] for e in events(log, "pop.closed")) == ["a", "b"]
    assert {e["reason"] for e in events(log, "pop.closed")} == {"resync"}


def test_do_not_disturb_shows_no_pops_but_keeps_history(
    qtbot: QtBot, make_stack: MakeStack
) -> None:
    stack = make_stack(call_settings=CallSettings())
    stack.set_do_not_disturb(True)
    stack.on_event(ev("in", "a"))
    assert not stack.pops
    with qtbot.waitSignal(stack.history_changed):
        stack.on_event(ev("end", "a"))
        stack.book.tick(time.time() + 10)
        stack.tick()
    stack.on_event(ev("in", "b"))
    stack.set_do_not_disturb(False)
    assert list(stack.pops) == ["b"] and stack.pops["b"].isVisible()


def test_stale_event_goes_to_history_without_a_pop(qtbot: QtBot, make_stack: MakeStack) -> None:
    stack = make_stack(call_settings=CallSettings())
    with qtbot.waitSignal(stack.history_changed):
        stack.on_event(ev("in", sent=time.time() - 600))
    assert not stack.pops
    assert [h.outcome for h in stack.book.history] == ["stale"]


def test_set_me_decides_who_is_in_the_call(qtbot: QtBot, make_stack: MakeStack) -> None:
    stack = make_stack(call_settings=CallSettings())
    stack.set_me("RPT")
    stack.on_event(ev("in"))
    stack.on_event(ev("ans", by="RPT"))
    assert stack.pops["c1"].status_label.text() == "In call"


def test_open_record_on_ring_opens_the_single_match_once(
    qtbot: QtBot, make_stack: MakeStack
) -> None:
    opener = Opener()
    stack = make_stack(open_record="ring", url_opener=opener, call_settings=CallSettings())
    stack.on_event(ev("in"))
    assert opener.urls == []  # nothing to open until the lookup answers
    with qtbot.waitSignal(stack.record_opened) as sig:
        stack.set_contacts("c1", [JANE])
    assert sig.args == ["agencycloud://contacts/RPT22000123"]
    stack.set_contacts("c1", [JANE])
    stack.on_event(ev("ans", by="JAS"))
    assert opener.urls == ["agencycloud://contacts/RPT22000123"]


def test_open_record_on_ring_skips_an_ambiguous_match(qtbot: QtBot, make_stack: MakeStack) -> None:
    opener = Opener()
    stack = make_stack(open_record="ring", url_opener=opener, call_settings=CallSettings())
    stack.on_event(ev("in"))
    stack.set_contacts("c1", [JANE, TOM])
    assert opener.urls == []


def test_open_record_on_answer_waits_for_my_answer(qtbot: QtBot, make_stack: MakeStack) -> None:
    opener = Opener()
    stack = make_stack(open_record="answer", url_opener=opener, call_settings=CallSettings())
    stack.on_event(ev("in", "a"))
    stack.set_contacts("a", [JANE])
    assert opener.urls == []
    stack.on_event(ev("ans", "a", by="JAS"))
    assert opener.urls == ["agencycloud://contacts/RPT22000123"]
    # A colleague's answer opens nothing.
    stack.on_event(ev("in", "b"))
    stack.set_contacts("b", [TOM])
    stack.on_event(ev("ans", "b", by="RPT"))
    assert opener.urls == ["agencycloud://contacts/RPT22000123"]


def test_open_record_off_never_opens_by_itself(qtbot: QtBot, make_stack: MakeStack) -> None:
    opener = Opener()
    stack = make_stack(url_opener=opener, call_settings=CallSettings())
    stack.on_event(ev("in"))
    stack.set_contacts("c1", [JANE])
    stack.on_event(ev("ans", by="JAS"))
    assert opener.urls == []
    with qtbot.waitSignal(stack.record_opened):
        qtbot.mouseClick(stack.pops["c1"].open_button, Qt.MouseButton.LeftButton)
    assert opener.urls == ["agencycloud://contacts/RPT22000123"]


def test_bad_settings_are_refused(qtbot: QtBot) -> None:
    with pytest.raises(ValueError, match="corner"):
        PopStack("JAS", corner="middle")
    with pytest.raises(ValueError, match="open_record"):
        PopStack("JAS", open_record="always")
