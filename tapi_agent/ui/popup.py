"""The screen-pop card: one live call, shown in a screen corner without ever taking the focus.

Every string that comes from a payload is untrusted and shown as plain text.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable

import phonenumbers
from PySide6.QtCore import QEvent, QPoint, QRectF, Qt, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QDesktopServices,
    QFont,
    QGuiApplication,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QRegion,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from tapi_agent.core.calls import CallView
from tapi_agent.core.directory import Contact
from tapi_agent.core.journal import MAX_NOTE
from tapi_agent.core.links import Links
from tapi_agent.core.log import log_event

UrlOpener = Callable[[QUrl], bool]

WITHHELD = "Withheld"
_WITHHELD_WORDS = {"", "anonymous", "withheld", "private", "unknown", "restricted", "unavailable"}

# The state strip and header colours (Windows 11 palette: accent blue, success green, greys).
STATE_COLOURS = {
    "ringing": "#0067C0",
    "in_call": "#0F7B0F",
    "answered": "#0F7B0F",
    "answered_elsewhere": "#8A8A8A",
    "ended": "#C4C4C4",
}
_TEXT = "#1B1B1B"
_MUTED = "#5D5D5D"
_BACKGROUND = "#FBFBFB"
_BORDER = "#D5D5D5"
_RADIUS = 8.0


def is_withheld(number: str) -> bool:
    """True for an empty, anonymous or withheld caller id."""
    return number.strip().casefold() in _WITHHELD_WORDS


# Cached: a card formats the caller and the line on every render, and parsing a number costs
# about as much as the rest of the render (see BENCHMARKS.md, latency).
@functools.lru_cache(maxsize=512)
def format_number(number: str, region: str = "GB") -> str:
    """A caller id for people: national format for the region's numbers, international for the
    rest, "Withheld" for none; anything that is not a phone number comes back unchanged."""
    if is_withheld(number):
        return WITHHELD
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return number
    if not phonenumbers.is_possible_number(parsed):
        return number
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if phonenumbers.region_code_for_number(parsed) == region
        or (parsed.country_code == phonenumbers.country_code_for_region(region))
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(parsed, fmt)


@functools.lru_cache(maxsize=512)
def _number_key(number: str, region: str) -> str:
    try:
        parsed = phonenumbers.parse(number, region)
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        return "".join(ch for ch in number if ch.isdigit()) or number


def line_label(destination: str, line_names: dict[str, str], region: str = "GB") -> str:
    """The dialled line as "to Sales line" (friendly name from config) or "to 01234 567890"."""
    wanted = _number_key(destination, region)
    for number, name in line_names.items():
        if number == destination or _number_key(number, region) == wanted:
            return f"to {name}"
    return f"to {format_number(destination, region)}"


def format_duration(seconds: float) -> str:
    """`m:ss`, or `h:mm:ss` from an hour."""
    s = max(0, int(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _label(name: str, object_name: str) -> QLabel:
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)  # payload strings are never markup
    label.setAccessibleName(name)
    label.setObjectName(object_name)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
    return label


class NoteEdit(QLineEdit):
    """The note of "Log call": Enter saves (returnPressed), Esc cancels (never dismisses)."""

    cancelled = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Esc cancels the note; every other key types as usual."""
        if event.key() == Qt.Key.Key_Escape:
            self.cancelled.emit()
            event.accept()
            return
        super().keyPressEvent(event)


OPEN_FAILED = "AgencyCloud could not be opened from this PC. Copy the number instead."
JOURNAL_TEXT = {
    "pending": "Saving to the journal…",
    "queued": "Not logged yet: will try again",
    "logged": "Logged to the journal",
    "rejected": "Not logged",
}


class PopCard(QWidget):
    """A pop for one call: caller, matched records, line, state, timer and actions.

    Actions by what is known of the caller: one matched contact offers "Open record", "Journal"
    and "Copy number"; several offer "Open record…" (a menu) and "Search in AgencyCloud"; an
    unknown caller "Search in AgencyCloud" and "Copy number". A link the desktop cannot open
    says so on the card and offers "Copy number" (in place of the search, when space is short).
    After a call the user answered ends, `offer_log` adds "Log call": a note field (Enter saves,
    Esc cancels) that takes the keyboard only because the user clicked.
    """

    dismissed = Signal(str)  # call key
    record_opened = Signal(str)  # the agencycloud URL opened
    log_requested = Signal(object, object, str)  # CallView, Contact, note
    editing_changed = Signal(str, bool)  # call key, a note is being written
    log_retry_requested = Signal(str)  # call key: post the refused entry again

    def __init__(
        self,
        view: CallView,
        *,
        region: str = "GB",
        line_names: dict[str, str] | None = None,
        negotiator_names: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        url_opener: UrlOpener | None = None,
        width: int = 360,
        links: Links | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._links = links or Links()
        self._open_failed = False
        self._log_offered = False
        self._log_contact: Contact | None = None
        self._editing = False
        self._journal_status = ""
        self._journal_message = ""
        self._view = view
        self._region = region
        self._line_names = dict(line_names or {})
        self._names = dict(negotiator_names or {})
        self._clock = clock
        self._open_url: UrlOpener = url_opener or QDesktopServices.openUrl
        self._contacts: list[Contact] = []
        self._painted = False
        self._style_text: str | None = None
        self.shown_latency_ms: int | None = None

        # A notification: on top, no taskbar button, no frame, and never the active window.
        self.setWindowFlags(
            Qt.WindowType.Tool
            | Qt.WindowType.FramelessWindowHint
            | Qt.WindowType.WindowStaysOnTopHint
            | Qt.WindowType.WindowDoesNotAcceptFocus
        )
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, False)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setObjectName("popCard")
        self._build()
        self.setFixedWidth(width)
        self._render()

    # -- public ----------------------------------------------------------------------------------

    @property
    def key(self) -> str:
        """The call key this card shows."""
        return self._view.key

    @property
    def view(self) -> CallView:
        """The call as last rendered."""
        return self._view

    @property
    def contacts(self) -> list[Contact]:
        """The contacts matched to the caller so far."""
        return list(self._contacts)

    def update_call(self, view: CallView) -> None:
        """Show a new state of the call."""
        self._view = view
        self._render()

    def set_contacts(self, contacts: list[Contact]) -> None:
        """Fill in the matched contacts (the lookup finishes after the card is shown)."""
        self._contacts = list(contacts)
        self._render()

    def set_negotiator_names(self, names: dict[str, str]) -> None:
        """Colleague names by negotiator id, for "Answered by <name>"."""
        self._names = dict(names)
        self._render()

    def set_card_width(self, width: int) -> None:
        """Resize for a screen (the width follows its DPI); the height follows the content."""
        if width != self.width():
            self.setFixedWidth(width)
        self.resize(width, self.card_height())

    def card_height(self) -> int:
        """The height the content needs at the current width (labels wrap)."""
        lay = self.layout()
        if lay is None:
            return self.sizeHint().height()
        lay.activate()
        if lay.hasHeightForWidth():
            return lay.totalHeightForWidth(self.width())
        return lay.totalSizeHint().height()

    def refresh_timer(self) -> None:
        """Update the ringing time / call duration label."""
        v = self._view
        now = self._clock()
        if v.state == "ringing":
            seconds, name = now - v.rang_at, "Time ringing"
        elif v.state == "ended":
            start = v.answered_at if v.answered_at is not None else v.rang_at
            seconds, name = (v.ended_at or now) - start, "Call duration"
        else:
            start = v.answered_at if v.answered_at is not None else v.rang_at
            seconds, name = now - start, "Call duration"
        self.timer_label.setText(format_duration(seconds))
        self.timer_label.setAccessibleName(name)
        # Once a colleague has the call, a running clock means nothing to this user.
        self.timer_label.setVisible(v.state != "answered_elsewhere")

    def open_record(self, contact: Contact | None = None) -> bool:
        """Open `contact` (or the only match) in AgencyCloud; a menu when several match."""
        if contact is None:
            if len(self._contacts) == 1:
                contact = self._contacts[0]
            elif len(self._contacts) > 1:
                self._show_record_menu()
                return False
            else:
                return False
        return self._open_link(self._links.record_url(contact.id))

    def open_journal(self) -> bool:
        """Open the only matched contact's journal in AgencyCloud."""
        if len(self._contacts) != 1:
            return False
        return self._open_link(self._links.journal_url(self._contacts[0].id))

    def search_contacts(self) -> bool:
        """Search AgencyCloud's contacts for the caller's number."""
        if is_withheld(self._view.caller):
            return False
        return self._open_link(self._links.search_url(self._view.caller))

    def _open_link(self, url: str) -> bool:
        ok = bool(self._open_url(QUrl(url)))
        if ok:
            self.record_opened.emit(url)
        elif not self._open_failed:
            self._open_failed = True  # said on the card, with "Copy number" to fall back on
            self._render()
        return ok

    @property
    def open_failed(self) -> bool:
        """True once a link could not be opened (the card says so)."""
        return self._open_failed

    # -- logging the call ------------------------------------------------------------------------

    def offer_log(self, on: bool) -> None:
        """Offer "Log call" (the call ended, I answered it, a contact matched)."""
        if on != self._log_offered:
            self._log_offered = on
            self._render()

    @property
    def editing(self) -> bool:
        """True while the note of "Log call" is open."""
        return self._editing

    def start_log(self, contact: Contact | None = None) -> bool:
        """Open the note field for `contact` (or the only match; a menu when several match).
        The user clicked: the card may take the keyboard now, for the note."""
        if contact is None:
            if len(self._contacts) == 1:
                contact = self._contacts[0]
            elif len(self._contacts) > 1:
                self._show_contact_menu(self.log_menu, self.log_button)
                return False
            else:
                return False
        self._log_contact = contact
        self._editing = True
        self.note_edit.clear()
        self.note_edit.setPlaceholderText(
            f"Note for {contact.name or contact.id} (optional): Enter saves, Esc cancels")
        self._render()
        self.editing_changed.emit(self.key, True)
        handle = self.windowHandle()
        if handle is not None:
            handle.setFlag(Qt.WindowType.WindowDoesNotAcceptFocus, False)
        self.activateWindow()
        self.note_edit.setFocus(Qt.FocusReason.MouseFocusReason)
        return True

    def save_log(self) -> None:
        """Enter (or Save): ask for the entry, with the note as typed."""
        contact = self._log_contact
        if not self._editing or contact is None:
            return
        note = self.note_edit.text()
        self._editing = False
        self._journal_status = "pending"
        self._render()
        self.log_requested.emit(self._view, contact, note)
        self.editing_changed.emit(self.key, False)

    def cancel_log(self) -> None:
        """Esc in the note: nothing is logged; "Log call" stays on offer."""
        if not self._editing:
            return
        self._editing = False
        self._log_contact = None
        self._render()
        self.editing_changed.emit(self.key, False)

    def set_journal_status(self, status: str, message: str = "") -> None:
        """How the entry stands: pending, queued (retrying), logged, rejected (with why)."""
        self._journal_status = status
        self._journal_message = message
        self._render()

    def copy_number(self) -> None:
        """Put the caller's number on the clipboard (as shown, formatted for the region)."""
        if is_withheld(self._view.caller):
            return
        QGuiApplication.clipboard().setText(format_number(self._view.caller, self._region))

    def dismiss(self) -> None:
        """The user closed the card (button or Esc)."""
        self.dismissed.emit(self.key)

    # -- building and rendering ------------------------------------------------------------------

    def _build(self) -> None:
        self.status_label = _label("Call state", "status")
        self.timer_label = _label("Time ringing", "timer")
        self.title_label = _label("Caller", "title")
        self.detail_label = _label("Caller number and matched records", "detail")
        self.line_label = _label("Dialled line", "line")
        self.badge_label = _label("Hunt group", "badge")
        for label in (self.title_label, self.detail_label):
            # Long payload strings wrap or clip; they never widen the card off the screen.
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setWordWrap(True)
        self.badge_label.setText("Hunt group")
        self.badge_label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

        self.close_button = QPushButton("✕")
        self.close_button.setAccessibleName("Dismiss")
        self.close_button.setToolTip("Dismiss (Esc)")
        self.open_button = QPushButton("Open record")
        self.open_button.setAccessibleName("Open record in AgencyCloud")
        self.copy_button = QPushButton("Copy number")
        self.copy_button.setAccessibleName("Copy number")
        self.journal_button = QPushButton("Journal")
        self.journal_button.setAccessibleName("Open the contact's journal in AgencyCloud")
        self.search_button = QPushButton("Search in AgencyCloud")
        self.search_button.setAccessibleName("Search in AgencyCloud for the caller's number")
        self.log_button = QPushButton("Log call")
        self.log_button.setAccessibleName("Log the call to the contact's journal")
        self.save_button = QPushButton("Save")
        self.save_button.setAccessibleName("Save the call to the journal")
        for button, name in (
            (self.close_button, "closeButton"),
            (self.open_button, "openButton"),
            (self.copy_button, "copyButton"),
            (self.journal_button, "journalButton"),
            (self.search_button, "searchButton"),
            (self.log_button, "logButton"),
            (self.save_button, "saveButton"),
        ):
            button.setObjectName(name)
            button.setFlat(True)
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            # Clicking a button must not take the keyboard from the user's window.
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.close_button.clicked.connect(self.dismiss)
        self.open_button.clicked.connect(self._on_open_clicked)
        self.copy_button.clicked.connect(self.copy_number)
        self.journal_button.clicked.connect(self.open_journal)
        self.search_button.clicked.connect(self.search_contacts)
        self.log_button.clicked.connect(self._on_log_clicked)
        self.save_button.clicked.connect(self.save_log)
        self.record_menu = QMenu(self)
        self.record_menu.setAccessibleName("Choose a record to open")
        self.record_menu.triggered.connect(self._on_record_chosen)
        self.log_menu = QMenu(self)
        self.log_menu.setAccessibleName("Choose the record to log the call to")
        self.log_menu.triggered.connect(self._on_log_chosen)
        self.note_edit = NoteEdit()
        self.note_edit.setObjectName("note")
        self.note_edit.setAccessibleName("Note for the journal")
        self.note_edit.setMaxLength(MAX_NOTE)
        self.note_edit.returnPressed.connect(self.save_log)
        self.note_edit.cancelled.connect(self.cancel_log)
        self.notice_label = _label("Notice", "notice")
        self.notice_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.notice_label.setWordWrap(True)

        base = QFont(self.font())
        pt = base.pointSizeF() if base.pointSizeF() > 0 else 9.0
        fonts = {
            self.status_label: (pt * 0.95, QFont.Weight.DemiBold),
            self.timer_label: (pt * 1.05, QFont.Weight.Normal),
            self.title_label: (pt * 1.6, QFont.Weight.DemiBold),
            self.detail_label: (pt * 1.05, QFont.Weight.Normal),
            self.notice_label: (pt * 0.95, QFont.Weight.Normal),
            self.line_label: (pt * 0.95, QFont.Weight.Normal),
            self.badge_label: (pt * 0.85, QFont.Weight.DemiBold),
        }
        for label, (size, weight) in fonts.items():
            f = QFont(base)
            f.setPointSizeF(size)
            f.setWeight(weight)
            label.setFont(f)

        header = QHBoxLayout()
        header.setSpacing(8)
        header.addWidget(self.status_label)
        header.addStretch(1)
        header.addWidget(self.timer_label)
        header.addWidget(self.close_button)

        line_row = QHBoxLayout()
        line_row.setSpacing(8)
        line_row.addWidget(self.line_label)
        line_row.addWidget(self.badge_label)
        line_row.addStretch(1)

        buttons = QHBoxLayout()
        buttons.setSpacing(8)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.journal_button)
        buttons.addWidget(self.search_button)
        buttons.addWidget(self.copy_button)
        buttons.addStretch(1)

        log_row = QHBoxLayout()
        log_row.setSpacing(8)
        log_row.addWidget(self.log_button)
        log_row.addWidget(self.note_edit, 1)
        log_row.addWidget(self.save_button)
        log_row.addStretch(0)

        box = QVBoxLayout(self)
        strip = 6
        box.setContentsMargins(strip + 14, 10, 12, 12)
        box.setSpacing(4)
        box.addLayout(header)
        box.addWidget(self.title_label)
        box.addWidget(self.detail_label)
        box.addLayout(line_row)
        box.addWidget(self.notice_label)
        box.addSpacing(6)
        box.addLayout(buttons)
        box.addLayout(log_row)
        self._strip_width = strip

    def _status_text(self) -> str:
        v = self._view
        if v.state == "ringing":
            return "Incoming call"
        if v.state == "in_call":
            return "In call"
        if v.state == "answered":
            return "Answered"
        if v.state == "answered_elsewhere":
            who = v.answered_by or ""
            return f"Answered by {self._names.get(who, who)}" if who else "Answered elsewhere"
        if v.answered_at is None and not v.answered_by:
            return "Missed call"
        return "Call ended"

    def _render(self) -> None:
        v = self._view
        number = format_number(v.caller, self._region)
        withheld = number == WITHHELD
        names = [c.name for c in self._contacts if c.name]
        if len(names) == 1:
            title, detail = names[0], number
        elif names:
            title = f"{names[0]} +{len(names) - 1}"
            detail = f"{number} · {len(names)} matching records"
        else:
            title, detail = number, ""
        self.title_label.setText(title)
        self.detail_label.setText(detail)
        self.detail_label.setVisible(bool(detail))
        self.line_label.setText(line_label(v.destination, self._line_names, self._region))
        self.badge_label.setVisible(v.hunt_group)
        self.status_label.setText(self._status_text())
        known = len(self._contacts)
        self.open_button.setVisible(bool(known))
        self.open_button.setText("Open record…" if known > 1 else "Open record")
        self.journal_button.setVisible(known == 1)
        # Several matches: the search lists them all; it makes way for "Copy number" only
        # when a link could not be opened (three buttons do not fit a card's width).
        self.search_button.setVisible(not withheld and (
            known == 0 or (known > 1 and not self._open_failed)))
        self.copy_button.setVisible(not withheld and (known <= 1 or self._open_failed))
        self._render_log()
        self.refresh_timer()
        self.setAccessibleName(f"{self._status_text()}: {title}")
        self._apply_style()
        self.resize(self.width(), self.card_height())
        self.update()

    def _render_log(self) -> None:
        offered = self._log_offered and bool(self._contacts)
        shown = offered and not self._editing and not self._journal_status
        retry = self._journal_status == "rejected"
        self.log_button.setVisible(shown or retry)
        self.log_button.setText("Try again" if retry else
                                "Log call…" if len(self._contacts) > 1 else "Log call")
        self.note_edit.setVisible(self._editing)
        self.save_button.setVisible(self._editing)
        notices = []
        if self._open_failed:
            notices.append(OPEN_FAILED)
        if self._journal_status:
            text = JOURNAL_TEXT.get(self._journal_status, self._journal_status)
            if self._journal_message:
                text += f": {self._journal_message}"
            notices.append(text)
        self.notice_label.setText("\n".join(notices))
        self.notice_label.setVisible(bool(notices))

    def _apply_style(self) -> None:
        colour = STATE_COLOURS.get(self._view.state, STATE_COLOURS["ringing"])
        ended = self._view.state == "ended"
        text = _MUTED if ended else _TEXT
        sheet = f"""
            QLabel {{ color: {text}; background: transparent; }}
            QLabel#status {{ color: {colour if not ended else _MUTED}; }}
            QLabel#detail, QLabel#line, QLabel#timer, QLabel#notice {{ color: {_MUTED}; }}
            QLineEdit#note {{ color: {_TEXT}; background: #FFFFFF; border: 1px solid #C8C8C8;
                              border-radius: 4px; padding: 4px 6px; }}
            QLabel#badge {{ color: #FFFFFF; background: {STATE_COLOURS['ringing']};
                            border-radius: 3px; padding: 1px 6px; }}
            QPushButton {{ color: {_TEXT}; background: #EFEFEF; border: 1px solid #DCDCDC;
                           border-radius: 4px; padding: 5px 14px; }}
            QPushButton:hover {{ background: #E4E4E4; }}
            QPushButton:pressed {{ background: #D8D8D8; }}
            QPushButton#closeButton {{ background: transparent; border: none; padding: 2px 6px;
                                       color: {_MUTED}; }}
            QPushButton#closeButton:hover {{ background: #E4E4E4; }}
            """
        if sheet == self._style_text:
            return  # the same sheet again would make Qt re-polish every child for nothing
        self._style_text = sheet
        self.setStyleSheet(sheet)

    # -- Qt events -------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw the card (solid, rounded, with the state strip); log the first paint."""
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        path = QPainterPath()
        path.addRoundedRect(rect, _RADIUS, _RADIUS)
        p.fillPath(path, QColor(_BACKGROUND))
        p.save()
        p.setClipPath(path)
        colour = STATE_COLOURS.get(self._view.state, STATE_COLOURS["ringing"])
        p.fillRect(QRectF(0, 0, self._strip_width, self.height()), QColor(colour))
        p.restore()
        p.setPen(QPen(QColor(_BORDER), 1))
        p.drawPath(path)
        p.end()
        if not self._painted:
            self._painted = True
            self._log_shown()

    def _log_shown(self) -> None:
        v = self._view
        latency = None
        if v.sent_at is not None:
            latency = max(0, round((self._clock() - v.sent_at) * 1000))
        self.shown_latency_ms = latency
        log_event(
            "pop.shown", callId=v.log_id, state=v.state, huntGroup=v.hunt_group,
            latencyMs=latency,
        )

    @property
    def painted(self) -> bool:
        """True once the card has been drawn on screen (and `pop.shown` logged)."""
        return self._painted

    def reuse(self, view: CallView) -> None:
        """Show another call in this (hidden) card: as good as a new one, without building
        widgets and a native window again."""
        self._contacts = []
        self._painted = False
        self.shown_latency_ms = None
        self._open_failed = False
        self._log_offered = False
        self._log_contact = None
        self._editing = False
        self._journal_status = ""
        self._journal_message = ""
        self.note_edit.clear()
        self.record_menu.clear()
        self.log_menu.clear()
        handle = self.windowHandle()
        if handle is not None:  # a click may have let it take the focus: never for a new call
            handle.setFlag(Qt.WindowType.WindowDoesNotAcceptFocus, True)
        self.update_call(view)

    def mark_shown(self) -> None:
        """The call was on screen before (in an earlier card): do not log `pop.shown` again."""
        self._painted = True

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Keep the rounded shape: a window mask, so corners look right with no compositor."""
        super().resizeEvent(event)
        self._update_shape()

    def showEvent(self, event: QEvent) -> None:  # type: ignore[override]
        """Ask Windows 11 for native rounded corners and shadow when available."""
        super().showEvent(event)  # type: ignore[arg-type]
        if sys.platform == "win32":
            _win11_round_corners(int(self.winId()))
        self._update_shape()

    def _update_shape(self) -> None:
        if sys.platform == "win32" and _WIN11_ROUNDING:
            self.clearMask()
            return
        if QGuiApplication.platformName() in ("offscreen", "minimal"):
            return  # no window shapes there (and Qt warns if asked)
        path = QPainterPath()
        path.addRoundedRect(QRectF(self.rect()), _RADIUS, _RADIUS)
        self.setMask(QRegion(path.toFillPolygon().toPolygon()))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """A click into the card lets it take the keyboard (so Esc can dismiss it)."""
        handle = self.windowHandle()
        if handle is not None:
            handle.setFlag(Qt.WindowType.WindowDoesNotAcceptFocus, False)
        self.activateWindow()
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        super().mousePressEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Esc dismisses (or, while a note is open, cancels the note); no other key does
        anything (a pop never acts on stray typing)."""
        if event.key() == Qt.Key.Key_Escape:
            if self._editing:
                self.cancel_log()
            else:
                self.dismiss()
            event.accept()
            return
        event.ignore()

    def _on_open_clicked(self) -> None:
        self.open_record()

    def _on_record_chosen(self, action: QAction) -> None:
        i = action.data()
        if isinstance(i, int) and 0 <= i < len(self._contacts):
            self.open_record(self._contacts[i])

    def _show_record_menu(self) -> None:
        self._show_contact_menu(self.record_menu, self.open_button)

    def _show_contact_menu(self, menu: QMenu, under: QPushButton) -> None:
        menu.clear()
        for i, contact in enumerate(self._contacts):
            action = menu.addAction(contact.name or contact.id)
            action.setData(i)
        menu.popup(under.mapToGlobal(QPoint(0, under.height())))

    def _on_log_clicked(self) -> None:
        if self._journal_status == "rejected":
            self._journal_status, self._journal_message = "pending", ""
            self._render()
            self.log_retry_requested.emit(self.key)
            return
        self.start_log()

    def _on_log_chosen(self, action: QAction) -> None:
        i = action.data()
        if isinstance(i, int) and 0 <= i < len(self._contacts):
            self.start_log(self._contacts[i])


_WIN11_ROUNDING = False


def _win11_round_corners(hwnd: int) -> None:
    """DWMWA_WINDOW_CORNER_PREFERENCE = DWMWCP_ROUND: native rounding and shadow (Windows 11)."""
    global _WIN11_ROUNDING
    try:
        import ctypes

        pref = ctypes.c_int(2)
        dwm = ctypes.windll.dwmapi  # type: ignore[attr-defined]
        ok = dwm.DwmSetWindowAttribute(hwnd, 33, ctypes.byref(pref), ctypes.sizeof(pref)) == 0
    except (OSError, AttributeError):
        ok = False
    _WIN11_ROUNDING = ok
