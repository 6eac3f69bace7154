"""Screenshots of issue 17's pops: an unknown caller (Search in AgencyCloud) and Log call.

    xvfb-run -a -s "-screen 0 1280x800x24" env QT_QPA_PLATFORM=xcb \
        .venv/bin/python docs/screenshots/make_journal_screenshots.py

Writes pop-unknown-caller.png and pop-log-call.png next to this file, over the same stand-in
desktop as make_screenshots.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_screenshots import LINES, NAMES, NOW, Clock, desktop, ev, settle, shoot

from tapi_agent.core.calls import CallSettings
from tapi_agent.core.directory import Contact
from tapi_agent.ui.popstack import PopStack


def main() -> int:
    app = QApplication(sys.argv)
    background = desktop(app)
    settle(app)

    clock = Clock()
    stack = PopStack("JAS", call_settings=CallSettings(), line_names=LINES, clock=clock,
                     url_opener=lambda url: True)
    stack.set_negotiator_names(NAMES)
    stack.on_event(ev("in", "u1", "07700 900777"))
    stack.set_contacts("u1", [])
    clock.now = NOW + 5
    stack.pops["u1"].refresh_timer()
    shoot(app, stack, "pop-unknown-caller.png")
    stack.close_all()

    clock = Clock()
    stack = PopStack("JAS", call_settings=CallSettings(), line_names=LINES, clock=clock,
                     url_opener=lambda url: True, journal_mode="ask")
    stack.set_negotiator_names(NAMES)
    emma = Contact("OXF20000001", "Mrs Emma Thompson", ("07123 456789",))
    stack.on_event(ev("in", "k1", "07123 456789"))
    stack.set_contacts("k1", [emma])
    clock.now = NOW + 4
    stack.on_event(ev("ans", "k1", "07123 456789", by="JAS", at=clock.now))
    clock.now = NOW + 196
    stack.on_event(ev("end", "k1", "07123 456789", by="JAS", at=clock.now))
    card = stack.pops["k1"]
    card.log_button.click()
    card.note_edit.setText("Wants a second viewing on Friday")
    card.note_edit.setCursorPosition(len(card.note_edit.text()))
    assert card.editing and card.windowFlags() & Qt.WindowType.WindowDoesNotAcceptFocus
    shoot(app, stack, "pop-log-call.png")
    stack.close_all()
    background.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
