"""Calls logged to the journal through the whole agent (issue 17), against the real mock's
POST /journalEntries: a note from the pop, auto mode, an entry made while the mock is down (posted
once it is back, also across a restart of the agent), and a 422 shown once, not retried."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PySide6.QtCore import Qt

from tapi_agent.app import Agent
from tapi_agent.config import Paths, load_settings
from tapi_agent.core.backoff import Backoff
from tapi_agent.core.directory import Contact
from tapi_agent.net.session import CallableTokenSource
from tests.app.test_end_to_end import call, connected, post
from tests.helpers import events

pytestmark = pytest.mark.qt_log_ignore(
    r"This plugin does not support (raise\(\)|grabbing the keyboard|propagateSizeHints)"
)
EMMA = "OXF20000001"  # the mock's contact with mobile 07123 456789


def build(server: Any, tmp_path: Path, mode: str = "ask") -> Agent:
    settings = load_settings(environ={}, cli={"server.url": server.base_url,
                                              "calls.linger_s": "0", "calls.journal": mode})
    paths = Paths(machine_config=tmp_path / "machine.toml", user_config=tmp_path / "user.toml",
                  data_dir=tmp_path / "data", log_dir=tmp_path / "logs")

    async def mint() -> tuple[str, float]:
        return server.mint_token("JAS"), time.time() + 3600

    return Agent(settings, paths, tokens=CallableTokenSource(mint), negotiator_id="JAS",
                 with_tray=False, journal_backoff=Backoff(base_s=0.2, cap_s=0.5))


def entries(server: Any, contact: str = EMMA) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.base_url}/journalEntries", params={"associatedId": contact},
                  headers={"Authorization": f"Bearer {server.mint_token('JAS')}"})
    r.raise_for_status()
    return list(r.json()["_embedded"])






def answer_and_end(qtbot: Any, agent: Agent, server: Any, call_id: str,
                   wait: bool = True) -> Any:
    """A call from Emma that JAS answers and ends; returns its pop once it offers Log call."""
    assert post(server, call("incomingCall", call_id, ["JAS"])).status_code == 202
    qtbot.waitUntil(lambda: bool(call_id in agent.pops.pops
                                 and agent.pops.pops[call_id].contacts), timeout=10_000)
    assert post(server, call("answeredCall", call_id, ["JAS"], answeredById="JAS")
                ).status_code == 202
    assert post(server, call("endedCall", call_id, ["JAS"], answeredById="JAS")
                ).status_code == 202
    if not wait:
        return None
    qtbot.waitUntil(lambda: agent.pops.pops[call_id].view.state == "ended", timeout=10_000)
    return agent.pops.pops[call_id]


def log_with_note(qtbot: Any, card: Any, note: str) -> None:
    qtbot.waitUntil(lambda: card.log_button.isVisibleTo(card), timeout=5000)
    card.log_button.click()
    qtbot.keyClicks(card.note_edit, note)
    qtbot.keyClick(card.note_edit, Qt.Key.Key_Return)


def test_log_call_with_a_note_posts_exactly_one_entry_for_the_contact(
    qtbot: Any, mock_server: Any, tmp_path: Path, log: pytest.LogCaptureFixture,
) -> None:
    agent = build(mock_server, tmp_path)
    agent.start()
    try:
        qtbot.waitUntil(lambda: connected(agent), timeout=10_000)
        card = answer_and_end(qtbot, agent, mock_server, "j-1")
        log_with_note(qtbot, card, "Wants a viewing on Friday")
        qtbot.waitUntil(lambda: bool(events(log, "journal.logged")), timeout=10_000)
        [entry] = entries(mock_server)
        assert entry["description"].startswith(
            "Incoming call from 07123 456789 to 01234 567890, answered by James Smith, ")
        assert entry["description"].endswith(". Note: Wants a viewing on Friday")
        assert entry["associatedType"] == "contact" and entry["negotiatorId"] == "JAS"
        assert events(log, "journal.logged") == [{"callId": "j-1", "contactId": EMMA}]
        assert agent.journal.entries == [] and agent.journal.status("j-1") == "logged"
        assert card.notice_label.text() == "Logged to the journal"
    finally:
        agent.shutdown()


def test_auto_mode_logs_an_answered_call_without_a_prompt(
    qtbot: Any, mock_server: Any, tmp_path: Path, log: pytest.LogCaptureFixture,
) -> None:
    agent = build(mock_server, tmp_path, mode="auto")
    agent.start()
    try:
        qtbot.waitUntil(lambda: connected(agent), timeout=10_000)
        answer_and_end(qtbot, agent, mock_server, "j-auto", wait=False)
        qtbot.waitUntil(lambda: bool(events(log, "journal.logged")), timeout=10_000)
        [entry] = entries(mock_server)
        assert "Note:" not in entry["description"]
    finally:
        agent.shutdown()


def test_an_entry_made_while_the_mock_is_down_is_posted_once_after_it_is_back(
    qtbot: Any, mock_server: Any, tmp_path: Path, log: pytest.LogCaptureFixture,
) -> None:
    agent = build(mock_server, tmp_path)
    agent.start()
    try:
        qtbot.waitUntil(lambda: connected(agent), timeout=10_000)
        card = answer_and_end(qtbot, agent, mock_server, "j-down")
        mock_server.stop()
        log_with_note(qtbot, card, "Call back Monday")
        qtbot.waitUntil(lambda: len(events(log, "journal.failed")) >= 2, timeout=10_000)
        assert all(e["retry"] and e["callId"] == "j-down" and e["contactId"] == EMMA
                   for e in events(log, "journal.failed"))
        assert agent.journal.status("j-down") == "pending"
        mock_server.start()  # the same port, the same state
        qtbot.waitUntil(lambda: bool(events(log, "journal.logged")), timeout=15_000)
        assert [e["description"].endswith("Note: Call back Monday")
                for e in entries(mock_server)] == [True]
    finally:
        agent.shutdown()


def test_an_entry_queued_when_the_agent_stops_is_posted_once_by_the_next_start(
    qtbot: Any, mock_server: Any, tmp_path: Path, log: pytest.LogCaptureFixture,
) -> None:
    agent = build(mock_server, tmp_path)
    agent.start()
    try:
        qtbot.waitUntil(lambda: connected(agent), timeout=10_000)
        card = answer_and_end(qtbot, agent, mock_server, "j-restart")
        mock_server.stop()
        log_with_note(qtbot, card, "Sent the brochure")
        qtbot.waitUntil(lambda: bool(events(log, "journal.failed")), timeout=10_000)
    finally:
        agent.shutdown()
    assert "Sent the brochure" in (tmp_path / "data" / "journal.json").read_text()

    mock_server.start()
    again = build(mock_server, tmp_path)
    again.start()
    try:
        qtbot.waitUntil(lambda: bool(events(log, "journal.logged")), timeout=15_000)
        [entry] = entries(mock_server)
        assert entry["description"].endswith("Note: Sent the brochure")
        assert again.journal.entries == []
    finally:
        again.shutdown()


def test_a_422_is_shown_once_and_not_retried(
    qtbot: Any, mock_server: Any, tmp_path: Path, log: pytest.LogCaptureFixture,
) -> None:
    agent = build(mock_server, tmp_path)
    shown: list[tuple[str, str]] = []
    agent._notify = lambda title, text: shown.append((title, text))  # type: ignore[method-assign]
    agent.start()
    try:
        qtbot.waitUntil(lambda: connected(agent), timeout=10_000)
        view = answer_and_end(qtbot, agent, mock_server, "j-422").view
        agent.log_call(view, Contact("NOPE", "Nobody"), "")
        qtbot.waitUntil(lambda: bool(events(log, "journal.failed")), timeout=10_000)
        [failed] = events(log, "journal.failed")
        assert failed["contactId"] == "NOPE" and not failed["retry"]
        assert "associatedId: no contact has the id 'NOPE'" in failed["reason"]
        assert [t for t, _ in shown] == ["Call not logged"]
        assert "associatedId" in shown[0][1]
        assert agent.journal.status("j-422") == "rejected" and agent.journal.next_due() is None
        agent._flush_journal()  # a reconnect or a timer posts nothing refused
        agent.journal.retry_all_now(time.time())
        agent._flush_journal()
        qtbot.wait(300)  # give a wrong retry the time to happen
        assert len(events(log, "journal.failed")) == 1 and len(shown) == 1
        assert entries(mock_server, "NOPE") == []
    finally:
        agent.shutdown()


def test_a_refused_entry_is_offered_again_in_recent_calls_after_its_pop_closed(
    qtbot: Any, mock_server: Any, tmp_path: Path, log: pytest.LogCaptureFixture,
) -> None:
    agent = build(mock_server, tmp_path)
    agent._notify = lambda title, text: None  # type: ignore[method-assign]

    class Recents:
        """Records what the agent gives the tray's Recent calls."""

        retry: dict[str, str] = {}

        def set_history(self, entries: Any, labels: Any = None, record_urls: Any = None,
                        log_retry: Any = None) -> None:
            Recents.retry = dict(log_retry or {})

    agent.start()
    try:
        qtbot.waitUntil(lambda: connected(agent), timeout=10_000)
        card = answer_and_end(qtbot, agent, mock_server, "j-again")
        agent.log_call(card.view, Contact("NOPE", "Nobody"), "")
        qtbot.waitUntil(lambda: bool(events(log, "journal.failed")), timeout=10_000)
        agent.pops.dismiss("j-again")  # the negotiator closes the pop: the call goes to history
        qtbot.waitUntil(lambda: any(e.call_id == "j-again" for e in agent.pops.book.history),
                        timeout=5000)
        agent.tray = Recents()  # type: ignore[assignment]
        agent._show_history()
        assert list(Recents.retry.values()) == ["j-again"]  # "Try logging the call again"
        agent.retry_journal("j-again")  # what that menu action asks for
        qtbot.waitUntil(lambda: len(events(log, "journal.failed")) == 2, timeout=10_000)
    finally:
        agent.tray = None
        agent.shutdown()
