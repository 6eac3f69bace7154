"""The pops controller: owns the CallBook, renders its Changes as stacked PopCards, runs the timers.

Lives on the GUI thread; the app feeds it CallEvents from the stream (through a queued signal).
The tick timer is single-shot and armed only for `CallBook.next_deadline()`, and the one-second
clock refresh runs only while a pop is visible: an idle agent uses no CPU.

Back-pressure: only the newest `max_stacked` live calls have a card (widgets, native window);
older live calls wait without one, counted in the "+N more" line, and get a card when one above
them closes. A flood of thousands of ringing calls therefore holds a handful of cards, each call
costs the same, and memory returns once the flood has passed (issue 14). A card that closes is
deleted (`deleteLater`): nothing Qt outlives the call's time on screen. A card pushed down by a
newer call is kept (at most `_POOL` of them) for the next call that needs one: a flood then
builds no new native windows, which is most of a card's cost.

The spare card: once a call's pop has closed, one card is built ahead on a quiet turn of the
event loop (widgets, style, native window), so the next call only fills it in. It is not built
at start-up: an agent that has not had a call yet holds no card and has not loaded the fonts
(1.4 MiB of idle memory, issue 14). The first pop after start-up builds its own card instead,
about 9 ms more (20 against 11 ms from event to paint, offscreen; BENCHMARKS.md); every later
one finds the spare.

Logging calls (`journal_mode`, the setting `calls.journal`): when a call the user answered ends
and one contact matched, `auto` asks the app for a journal entry at once (`log_requested`, no
prompt); `ask` (or `auto` with several matches) offers "Log call" on the pop, which then stays
at least `LOG_OFFER_S` so there is time to click it, and stays open for as long as a note is
being written. Nothing is offered for a call answered elsewhere, a missed call, or a caller no
contact matched.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QRect, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QScreen
from PySide6.QtWidgets import QLabel

from tapi_agent.core.calls import CallBook, CallEvent, CallSettings, CallView, Change
from tapi_agent.core.directory import Contact
from tapi_agent.core.journal import JOURNAL_MODES
from tapi_agent.core.links import Links
from tapi_agent.core.log import log_event
from tapi_agent.ui.placement import (
    CORNERS,
    Rect,
    ScreenInfo,
    card_width,
    choose_screen,
    stack_layout,
)
from tapi_agent.ui.popup import PopCard, UrlOpener, is_withheld

OPEN_RECORD_MODES = ("off", "ring", "answer")
_POOL = 2  # cards pushed down by newer calls, kept hidden for reuse
LOG_OFFER_S = 30.0  # an ended call's pop offering "Log call" stays at least this long
LOG_SAVED_S = 3.0  # after Enter, the pop stays this long (or the linger time) to say how it went


def _rect(r: QRect) -> Rect:
    return Rect(r.x(), r.y(), r.width(), r.height())


def _screen_info(screen: QScreen, primary: QScreen | None) -> ScreenInfo:
    return ScreenInfo(
        name=screen.name(),
        geometry=_rect(screen.geometry()),
        available=_rect(screen.availableGeometry()),
        device_pixel_ratio=screen.devicePixelRatio(),
        logical_dpi=screen.logicalDotsPerInch(),
        primary=screen is primary,
    )


class PopStack(QObject):
    """Screen pops for the signed-in negotiator: CallEvents in, stacked cards out."""

    lookup_requested = Signal(str, str)  # (call key, caller number): the app looks contacts up
    record_opened = Signal(str)  # agencycloud URL that was opened
    history_changed = Signal()
    log_requested = Signal(object, object, str)  # CallView, Contact, note: post a journal entry
    log_retry_requested = Signal(str)  # call key: post its refused entry again (user asked)

    def __init__(
        self,
        me: str,
        *,
        call_settings: CallSettings | None = None,
        region: str = "GB",
        line_names: dict[str, str] | None = None,
        corner: str = "bottom-right",
        screen: str = "tray",
        max_stacked: int = 3,
        open_record: str = "off",
        clock: Callable[[], float] = time.time,
        url_opener: Callable[[QUrl], bool] | None = None,
        links: Links | None = None,
        journal_mode: str = "off",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        if corner not in CORNERS:
            raise ValueError(f"corner must be one of {', '.join(CORNERS)}")
        if open_record not in OPEN_RECORD_MODES:
            raise ValueError(f"open_record must be one of {', '.join(OPEN_RECORD_MODES)}")
        if journal_mode not in JOURNAL_MODES:
            raise ValueError(f"journal_mode must be one of {', '.join(JOURNAL_MODES)}")
        self._links = links or Links()
        self._journal_mode = journal_mode
        self._log_state: dict[str, tuple[str, str]] = {}  # key -> (journal status, message)
        self._log_offered: set[str] = set()
        self._book = CallBook(me, call_settings)
        self._region = region
        self._line_names = dict(line_names or {})
        self._corner = corner
        self._screen = screen
        self._max_stacked = max(1, max_stacked)
        self._open_record = open_record
        self._clock = clock
        self._url_opener: UrlOpener = url_opener or QDesktopServices.openUrl
        self._names: dict[str, str] = {}
        self._contacts: dict[str, list[Contact]] = {}
        self._auto_opened: set[str] = set()
        self._cards: dict[str, PopCard] = {}  # the newest calls' cards, newest first
        self._announced: set[str] = set()  # live calls whose pop was painted (pop.shown logged)
        self._dnd = False
        self._tray: Rect | None = None
        self._history_mark = 0
        # One card built ahead (widgets, style, native window) after a call, so the next call
        # only fills it in: building a card is most of the time from event to paint. Not at
        # start-up (see the module doc).
        self._spare: PopCard | None = None
        self._spare_pending = False
        self._pool: list[PopCard] = []
        self._quitting = False

        self._tick_timer = QTimer(self)
        self._tick_timer.setSingleShot(True)
        self._tick_timer.timeout.connect(self.tick)
        self._clock_timer = QTimer(self)
        self._clock_timer.setInterval(1000)
        self._clock_timer.timeout.connect(self._refresh_clocks)

        self._more = QLabel()
        self._more.setTextFormat(Qt.TextFormat.PlainText)
        self._more.setAccessibleName("More calls")
        self._more.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._more.setWindowFlags(
            Qt.WindowType.Tool
            | Qt.WindowType.FramelessWindowHint
            | Qt.WindowType.WindowStaysOnTopHint
            | Qt.WindowType.WindowDoesNotAcceptFocus
        )
        self._more.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self._more.setStyleSheet(
            "QLabel { background: #FBFBFB; color: #1B1B1B; border: 1px solid #D5D5D5;"
            " border-radius: 6px; padding: 4px 10px; }"
        )

        app = QGuiApplication.instance()
        if isinstance(app, QGuiApplication):
            # Monitors come and go (docking, projector): put the stack back on a real screen.
            # (Each layout reads screen geometry afresh, so a moved taskbar is followed at the
            # next change; per-QScreen connections crash PySide6 6.12 at interpreter exit.)
            app.screenAdded.connect(self._on_screens_changed)
            app.screenRemoved.connect(self._on_screens_changed)
            app.primaryScreenChanged.connect(self._on_screens_changed)

    # -- properties ------------------------------------------------------------------------------

    @property
    def book(self) -> CallBook:
        """The call state machine (history, live calls)."""
        return self._book

    @property
    def pops(self) -> dict[str, PopCard]:
        """Cards by call key, newest call first: the newest `max_stacked` live calls (none
        while do-not-disturb is on); older live calls have no card until one above closes."""
        return dict(self._cards)

    @property
    def more_label(self) -> QLabel:
        """The "+N more" line (hidden when every card fits)."""
        return self._more

    @property
    def spare_card(self) -> PopCard | None:
        """The card built ahead for the next call (None until a pop has closed and the event
        loop has had a turn since)."""
        return self._spare

    @property
    def tick_timer(self) -> QTimer:
        """The single-shot timer armed for the book's next deadline."""
        return self._tick_timer

    @property
    def clock_timer(self) -> QTimer:
        """The one-second refresh of ringing times (runs only while a pop is visible)."""
        return self._clock_timer

    # -- inputs ----------------------------------------------------------------------------------

    def on_event(self, event: CallEvent) -> None:
        """Feed one telephony event from the stream."""
        self._render(self._book.apply(event, self._clock()))

    def tick(self) -> None:
        """Run due timeouts (the timer calls this; tests with a fake clock may too)."""
        self._render(self._book.tick(self._clock()))

    def resync(self) -> None:
        """The stream lost events: close every live pop (reason resync)."""
        self._render(self._book.resync(self._clock()))

    def dismiss(self, key: str) -> None:
        """Close the pop of `key` as the user would."""
        self._render(self._book.dismiss(key, self._clock()))

    def set_contacts(self, key: str, contacts: list[Contact]) -> None:
        """Contacts matched to the caller of call `key` (arrives after the pop showed)."""
        if self._book.get(key) is None:
            return  # the call is over already
        self._contacts[key] = list(contacts)
        card = self._cards.get(key)
        if card is not None:
            card.set_contacts(contacts)
        self._maybe_open_record(key)
        self._maybe_offer_log(key)
        if card is not None:
            self._relayout()
        self._arm()

    def set_negotiator_names(self, names: dict[str, str]) -> None:
        """Colleague names by negotiator id (from the cached GET /negotiators)."""
        self._names = dict(names)
        for card in self._cards.values():
            card.set_negotiator_names(self._names)
        for idle in [*self._pool, *([self._spare] if self._spare is not None else [])]:
            idle.set_negotiator_names(self._names)
        if self._cards:
            self._relayout()

    def set_me(self, negotiator_id: str) -> None:
        """The signed-in negotiator changed."""
        self._book.me = negotiator_id

    def set_do_not_disturb(self, on: bool) -> None:
        """No pops while on (calls still go to history); live calls pop again when turned off."""
        if on == self._dnd:
            return
        self._dnd = on
        if on:
            for key in list(self._cards):
                self._drop_card(key, "do_not_disturb")
        self._relayout()

    def set_tray_geometry(self, rect: QRect | None) -> None:
        """Where the tray icon is, so the pops go to that screen."""
        self._tray = _rect(rect) if rect is not None and rect.isValid() else None
        self._relayout()

    # -- rendering -------------------------------------------------------------------------------

    def _on_screens_changed(self, *_args: object) -> None:
        self._relayout()

    def _render(self, changes: list[Change]) -> None:
        for change in changes:
            view = change.call
            if change.action == "open":
                if not is_withheld(view.caller):
                    self.lookup_requested.emit(view.key, view.caller)
                self._maybe_open_record(view.key)
            elif change.action == "update":
                card = self._cards.get(view.key)
                if card is not None:
                    card.update_call(view)
                    log_event("pop.updated", callId=view.log_id, state=view.state)
                self._maybe_open_record(view.key)
                self._maybe_offer_log(view.key)
            else:
                self._log_state.pop(view.key, None)
                self._log_offered.discard(view.key)
                self._contacts.pop(view.key, None)
                self._auto_opened.discard(view.key)
                if not self._drop_card(view.key, change.reason) and not self._dnd:
                    # A call waiting in "+N more" (no card yet) closed: still logged.
                    log_event("pop.closed", callId=view.log_id, reason=change.reason)
                self._announced.discard(view.key)
        self._relayout()
        self._arm()
        if self._book.history_count != self._history_mark:
            self._history_mark = self._book.history_count
            self.history_changed.emit()

    def _new_card(self, view: CallView) -> PopCard:
        card = PopCard(
            view, region=self._region, line_names=self._line_names,
            negotiator_names=self._names, clock=self._clock, url_opener=self._url_opener,
            links=self._links,
        )
        # The card says which call (its key): the same connections serve it when reused.
        card.dismissed.connect(self.dismiss)
        card.record_opened.connect(self.record_opened)
        card.log_requested.connect(self._on_log_requested)
        card.editing_changed.connect(self._on_editing_changed)
        card.log_retry_requested.connect(self.log_retry_requested)
        return card

    def _prepare_spare(self) -> None:
        """Build the spare card on the next idle turn of the event loop (once, not periodic)."""
        if self._spare is None and not self._spare_pending and not self._quitting:
            self._spare_pending = True
            QTimer.singleShot(0, self, self._build_spare)

    def _build_spare(self) -> None:
        self._spare_pending = False
        if self._spare is not None or self._quitting:
            return
        placeholder = CallView(
            key="", call_id=None, state="ringing", caller="", destination="",
            hunt_group=False, answered_by=None, rang_at=self._clock(), answered_at=None,
            ended_at=None, sent_at=None,
        )
        card = self._new_card(placeholder)
        card.winId()  # the native window now, not while a call rings
        self._spare = card

    def _open_card(self, view: CallView) -> PopCard:
        if self._pool:
            card = self._pool.pop()
            card.reuse(view)
        elif self._spare is not None:
            card, self._spare = self._spare, None
            card.update_call(view)
        else:
            card = self._new_card(view)
        contacts = self._contacts.get(view.key)
        if contacts:
            card.set_contacts(contacts)
        if view.key in self._announced:
            card.mark_shown()  # it was on screen before it made room for newer calls
        if view.key in self._log_offered:
            card.offer_log(True)
        if view.key in self._log_state:
            card.set_journal_status(*self._log_state[view.key])
        return card

    def _sync_cards(self) -> list[PopCard]:
        """Give the newest `max_stacked` live calls a card and take the others' away; return
        the cards newest first."""
        wanted = [] if self._dnd else self._book.newest(self._max_stacked)
        keys = {v.key for v in wanted}
        for key in [k for k in self._cards if k not in keys]:
            # Pushed down by newer calls: the call waits in "+N more" without widgets.
            self._retire(self._cards.pop(key), keep=True)
        cards: dict[str, PopCard] = {}
        for view in wanted:
            card = self._cards.get(view.key)
            cards[view.key] = card if card is not None else self._open_card(view)
        self._cards = cards
        return list(cards.values())

    def _retire(self, card: PopCard, *, keep: bool = False) -> None:
        if card.painted:
            self._announced.add(card.key)
        card.hide()
        if keep and len(self._pool) < _POOL and not self._quitting:
            self._pool.append(card)
        else:
            card.deleteLater()

    def _drop_card(self, key: str, reason: str) -> bool:
        card = self._cards.pop(key, None)
        if card is None:
            return False
        log_event("pop.closed", callId=card.view.log_id, reason=reason)
        self._retire(card)
        self._prepare_spare()  # a call just ended: a quiet moment to build the next card
        return True

    def _maybe_open_record(self, key: str) -> None:
        """Open-record mode: the single matched record, once, on ring or on my answer."""
        view = self._book.get(key)
        contacts = self._contacts.get(key) or []
        if view is None or key in self._auto_opened or len(contacts) != 1:
            return
        wanted = (self._open_record == "ring" and view.state == "ringing") or (
            self._open_record == "answer" and view.state == "in_call" and view.answered_by_me
        )
        if not wanted:
            return
        self._auto_opened.add(key)
        url = self._links.record_url(contacts[0].id)
        if self._url_opener(QUrl(url)):
            self.record_opened.emit(url)

    # -- logging calls ---------------------------------------------------------------------------

    def _maybe_offer_log(self, key: str) -> None:
        """A call I answered ended with a contact matched: log it (auto) or offer to (ask)."""
        view = self._book.get(key)
        contacts = self._contacts.get(key) or []
        if (self._journal_mode == "off" or view is None or view.state != "ended"
                or not view.answered_by_me or not contacts
                or key in self._log_offered or key in self._log_state):
            return
        if self._journal_mode == "auto" and len(contacts) == 1:
            self._on_log_requested(view, contacts[0], "")
            return
        self._log_offered.add(key)
        card = self._cards.get(key)
        if card is not None:
            card.offer_log(True)
        until = self._clock() + LOG_OFFER_S
        if view.closes_at is not None and view.closes_at < until:
            self._book.keep_open(key, until)

    def _on_log_requested(self, view: CallView, contact: Contact, note: str) -> None:
        self.set_journal_status(view.key, "pending")
        self.log_requested.emit(view, contact, note)

    def _on_editing_changed(self, key: str, editing: bool) -> None:
        """Keep the pop while a note is written; then let it close a little later."""
        if editing:
            self._book.keep_open(key, None)
        else:
            linger = self._book.settings.linger_s
            done = key in self._log_state
            stay = max(linger, LOG_SAVED_S) if done else max(linger, LOG_OFFER_S)
            self._book.keep_open(key, self._clock() + stay)
        self._arm()

    def set_journal_status(self, key: str, status: str, message: str = "") -> None:
        """How the journal entry of call `key` stands (pending, queued, logged, rejected)."""
        if self._book.get(key) is None:
            return
        self._log_state[key] = (status, message)
        if status == "rejected":  # time to read why, and to try again
            self._book.keep_open(key, self._clock() + LOG_OFFER_S)
            self._arm()
        card = self._cards.get(key)
        if card is not None:
            card.set_journal_status(status, message)
            self._relayout()

    def _arm(self) -> None:
        deadline = self._book.next_deadline()
        if deadline is None:
            self._tick_timer.stop()
            return
        delay_ms = max(0, int((deadline - self._clock()) * 1000) + 1)
        self._tick_timer.start(delay_ms)

    def _refresh_clocks(self) -> None:
        for card in self._cards.values():
            if card.isVisible():
                card.refresh_timer()

    def _target_screen(self) -> ScreenInfo | None:
        screens = QGuiApplication.screens()
        if not screens:
            return None
        primary = QGuiApplication.primaryScreen()
        infos = [_screen_info(s, primary) for s in screens]
        return infos[choose_screen(infos, self._screen, self._tray)]

    def _relayout(self) -> None:
        newest_first = self._sync_cards()
        if not newest_first and not self._more.isVisible():
            # Nothing to place (an idle agent whose tray moved, a screen plugged in): no text
            # layout, so an agent that has had no call yet never loads the fonts.
            self._clock_timer.stop()
            return
        screen = self._target_screen()
        if screen is None:
            return
        width = card_width(screen)
        for card in newest_first:
            card.set_card_width(width)
        more_h = max(24, self._more.sizeHint().height())
        sizes = [(c.width(), c.card_height()) for c in newest_first]
        # The calls waiting without a card count as cards that did not fit.
        waiting = 0 if self._dnd else self._book.live_count - len(newest_first)
        layout = stack_layout(
            screen.available, sizes + [sizes[-1]] * min(waiting, 1) if sizes else [],
            corner=self._corner, max_stacked=self._max_stacked, more_height=more_h,
        )
        more = layout.more + max(0, waiting - 1) if waiting else layout.more
        for card, rect in zip(newest_first, layout.cards[:len(newest_first)], strict=True):
            if rect is None:
                card.hide()
                continue
            card.setGeometry(rect.x, rect.y, rect.w, rect.h)
            if not card.isVisible():
                card.show()
        if more and layout.more_rect is not None:
            r = layout.more_rect
            self._more.setText(f"+{more} more")
            self._more.setGeometry(r.x, r.y, r.w, r.h)
            self._more.show()
        else:
            self._more.hide()
        if any(c.isVisible() for c in self._cards.values()):
            if not self._clock_timer.isActive():
                self._clock_timer.start()
        else:
            self._clock_timer.stop()

    def close_all(self) -> None:
        """Hide every pop without touching the calls (on quit)."""
        self._quitting = True  # no card is built ahead once the pops are closed for good
        for key in list(self._cards):
            card = self._cards.pop(key)
            card.hide()
            card.deleteLater()
        if self._spare is not None:
            self._spare.deleteLater()
            self._spare = None
        for card in self._pool:
            card.deleteLater()
        self._pool.clear()
        self._more.hide()
        self._tick_timer.stop()
        self._clock_timer.stop()
