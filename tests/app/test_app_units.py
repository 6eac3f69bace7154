"""The composition root's units without Qt: missed calls against the real mock backend, the
contact cache's bound, and the import rules that keep `tapi-agent diagnose` free of Qt."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from tapi_agent.app.contacts import MAX_CACHED_NUMBERS, ContactCache
from tapi_agent.app.journal_flow import JournalFlow
from tapi_agent.app.missed_flow import MissedFlow
from tapi_agent.app.recent_calls import recent_labels
from tapi_agent.core.calls import HistoryEntry
from tapi_agent.core.directory import Contact
from tapi_agent.core.journal import JournalEntry, JournalQueue, MemoryStore
from tapi_agent.core.links import Links
from tapi_agent.net.api import ApiClient
from tapi_agent.net.session import CallableTokenSource
from tests.app.test_end_to_end import call, post

PACKAGE = Path(__file__).resolve().parents[2] / "tapi_agent"


def test_missed_flow_polls_saves_and_deletes_only_what_was_seen(mock_server, tmp_path):
    assert post(mock_server, call("missedCall", "u-1", ["JAS"])).status_code == 202
    delivered: list[Any] = []
    deleted: list[list[str]] = []
    work: list[Coroutine[Any, Any, None]] = []
    file = tmp_path / "data" / "missed.json"
    flow = MissedFlow(file, submit=work.append, deliver=delivered.append,
                      deleted=deleted.append)

    async def mint() -> tuple[str, float]:
        return mock_server.mint_token("JAS"), time.time() + 3600

    async def scenario() -> None:
        api = ApiClient(mock_server.base_url, CallableTokenSource(mint), proxy="none")
        try:
            await flow.fetch(api)
            [calls] = delivered
            [new] = flow.merge(calls, api)
            assert new.call_id == "u-1" and file.is_file()
            assert work == []  # nothing seen: nothing deleted
            flow.mark_all_seen(api)
            await work.pop()
            assert deleted == [[new.deferred_id]]
            flow.confirm_deleted(deleted[0])
            assert await api.deferred() == []
        finally:
            await api.aclose()

    asyncio.run(scenario())
    again = MissedFlow(file, submit=work.append, deliver=delivered.append,
                       deleted=deleted.append)
    assert [(c.call_id, c.seen) for c in again.calls.calls] == [("u-1", True)]


def test_journal_flow_posts_reports_and_keeps_a_refused_entry_for_a_retry(mock_server, tmp_path):
    work: list[Coroutine[Any, Any, None]] = []
    reports: list[tuple[str, int, str]] = []
    shown: list[tuple[str, str, str]] = []
    notices: list[str] = []
    armed: list[float | None] = []
    flow = JournalFlow(tmp_path / "journal.json", backoff=None, submit=work.append,
                       report=lambda *r: reports.append(r), show=lambda *s: shown.append(s),
                       notify=lambda title, text: notices.append(title), arm=armed.append)
    good = JournalEntry.new(call_id="u-ok", contact_id="OXF20000001", description="Call",
                            now=time.time())
    bad = JournalEntry.new(call_id="u-bad", contact_id="NOPE", description="Call",
                           now=time.time())
    assert flow.add(good, "pop-ok") and flow.add(bad, "pop-bad")
    assert not flow.add(good, "pop-ok")  # the call has its entry already

    async def mint() -> tuple[str, float]:
        return mock_server.mint_token("JAS"), time.time() + 3600

    async def post_all() -> None:
        api = ApiClient(mock_server.base_url, CallableTokenSource(mint), proxy="none")
        try:
            flow.flush(api)
            for job in work:
                await job
        finally:
            await api.aclose()

    asyncio.run(post_all())
    assert {(r[0], r[1]) for r in reports} == {(good.id, 201), (bad.id, 422)}
    for report in reports:
        flow.result(*report)
    assert ("pop-ok", "logged", "") in shown
    assert [s[:2] for s in shown if s[0] == "pop-bad"] == [("pop-bad", "rejected")]
    assert notices == ["Call not logged"]
    assert flow.queue.status("u-bad") == "rejected" and flow.queue.next_due() is None
    assert flow.retry("u-bad") and not flow.retry("u-never-logged")


def test_recent_calls_name_link_and_mark_the_journal_state():
    journal = JournalQueue(MemoryStore(), now=0.0)
    journal.add(JournalEntry.new(call_id="c-ann", contact_id="C1", description="", now=0.0))
    journal.add(JournalEntry.new(call_id="c-new", contact_id="C9", description="", now=0.0))
    [refused] = [e for e in journal.take_due(0.0) if e.call_id == "c-new"]
    journal.failed(refused.id, status=422, reason="no such contact", now=0.0)
    entries = [HistoryEntry("k-ann", "c-ann", "0100", "line", 0.0, "answered", "JAS"),
               HistoryEntry("k-new", "c-new", "0200", "line", 0.0, "answered", "JAS"),
               HistoryEntry("k-odd", None, "0300", "line", 0.0, "missed", None)]
    contacts = {"0100": [Contact("C1", "Ann Example")]}
    shown = recent_labels(entries, contacts=contacts.get, journal=journal, links=Links())
    assert shown.labels == {"k-ann": "Ann Example (logging…)", "k-new": "0200 (not logged)"}
    assert shown.record_urls == {"k-ann": Links().record_url("C1")}
    assert shown.log_retry == {"k-new": "c-new"}


def test_missed_flow_starts_empty_from_a_damaged_file_and_leaves_it_alone(tmp_path):
    file = tmp_path / "missed.json"
    file.write_text("{not json", encoding="utf-8")
    flow = MissedFlow(file, submit=lambda coro: coro.close(), deliver=lambda calls: None,
                      deleted=lambda ids: None)
    assert flow.calls.calls == []
    assert file.read_text(encoding="utf-8") == "{not json"  # only a change writes the file


def test_contact_cache_starts_again_past_its_bound():
    cache = ContactCache()
    found = [Contact("C1", "Ann Example")]
    cache.remember("0100", found)
    assert cache.cached("0100") == found and cache.cached("0200") is None
    for n in range(MAX_CACHED_NUMBERS + 1):
        cache.remember(f"07{n:09d}", [])
    assert cache.cached("0100") is None  # emptied once, so memory stays bounded


def test_the_cli_and_diagnose_modules_load_without_qt():
    code = ("import sys, tapi_agent.app, tapi_agent.app.commands, tapi_agent.app.missed_flow, "
            "tapi_agent.app.contacts, tapi_agent.app.journal_flow, tapi_agent.app.session_flow; "
            "print(sorted(m for m in sys.modules if m.startswith('PySide6')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_nothing_outside_app_imports_app_and_core_imports_neither_qt_nor_net():
    """DESIGN.md section 3: imports point one way."""
    for path in PACKAGE.rglob("*.py"):
        room = path.relative_to(PACKAGE).parts[0]
        imported = _imports(path)
        if room not in ("app", "__main__.py"):  # the entry point runs app.main
            assert not any(n == "tapi_agent.app" or n.startswith("tapi_agent.app.")
                           for n in imported), path
        if room == "core":
            assert not any(n.startswith(("PySide6", "tapi_agent.net", "tapi_agent.ui", "socket"))
                           for n in imported), path
        if room in ("ui", "net"):
            other = "tapi_agent.net" if room == "ui" else "tapi_agent.ui"
            assert not any(n.startswith(other) for n in imported), path
