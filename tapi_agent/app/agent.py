"""`Agent`: the running tray agent's parts, built on the GUI thread and wired together."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from tapi_agent.app.bridge import make_bridge
from tapi_agent.app.connect import make_connect, process_lock
from tapi_agent.config import Paths, Settings, default_registry

log = logging.getLogger("tapi_agent.app")


class Agent:
    """Everything the running agent is made of, wired together; built on the GUI thread."""

    def __init__(
        self,
        settings: Settings,
        paths: Paths,
        *,
        demo: bool = False,
        demo_negotiator: str = "JAS",
        demo_calls: int = 0,
        demo_gap: float = 1.0,
        tokens: Any = None,
        negotiator_id: str | None = None,
        with_tray: bool = True,
        tray: Any = None,
        journal_backoff: Any = None,
    ) -> None:
        from tapi_agent.core.calls import CallEvent, CallSettings
        from tapi_agent.core.journal import JournalQueue, JsonFileStore
        from tapi_agent.core.links import Links
        from tapi_agent.core.missed import MissedCalls
        from tapi_agent.ui.popstack import PopStack
        from tapi_agent.worker import AsyncWorker

        self.settings = settings
        self.paths = paths
        self.demo = demo
        self._demo_negotiator = demo_negotiator
        self._demo_calls = demo_calls
        self._demo_gap = demo_gap
        self._tokens = tokens
        self._me = negotiator_id or (demo_negotiator if demo else "")
        self._with_tray = with_tray
        self._early_tray = tray
        self._stopped = False
        self._CallEvent = CallEvent
        self.worker = AsyncWorker()
        self.bridge = make_bridge()
        self.mock: Any = None
        self.session: Any = None
        self.stream: Any = None
        self.api: Any = None
        self.tray: Any = None
        self._contact_cache: dict[str, list[Any]] = {}
        self.missed = MissedCalls()
        self._missed_file = paths.data_dir / "missed.json"
        self._load_missed()
        # Calls logged to the journal (issue 17): a queue on disk, posted from the worker.
        self.journal = JournalQueue(JsonFileStore(paths.data_dir / "journal.json"),
                                    backoff=journal_backoff, now=time.time())
        if self.journal.load_error:
            log.warning("%s", self.journal.load_error)
        self._journal_keys: dict[str, str] = {}  # entry id -> call key of its pop
        self._names: dict[str, str] = {}
        self.links = Links(record=settings["calls.record_link"],
                           journal=settings["calls.journal_link"],
                           search=settings["calls.search_link"])

        line_names = dict(settings["calls.lines"])
        if demo:
            from tapi_agent.demo import DEMO_LINES

            line_names = {**DEMO_LINES, **line_names}
        call_settings = CallSettings(
            answered_elsewhere_close_s=settings["calls.answered_elsewhere_close_s"],
            linger_s=settings["calls.linger_s"],
            ring_timeout_s=settings["calls.ring_timeout_s"],
            stale_after_s=settings["calls.stale_after_s"],
            timezone=settings["calls.timezone"],
        )
        self.pops = PopStack(
            self._me,
            call_settings=call_settings,
            region=settings["calls.region"],
            line_names=line_names,
            corner=settings["popup.corner"],
            screen=settings["popup.screen"],
            max_stacked=settings["popup.max_stacked"],
            open_record=settings["calls.open_record"],
            links=self.links,
            journal_mode=settings["calls.journal"],
        )
        self._line_names = line_names
        self.pops.set_do_not_disturb(bool(settings["app.do_not_disturb"]))
        b = self.bridge
        b.delivery.connect(self._on_delivery)
        b.resync.connect(lambda _reason: self.pops.resync())
        b.contacts.connect(self._on_contacts)
        b.negotiators.connect(self._on_negotiators)
        b.deferred.connect(self._on_deferred)
        b.status.connect(self._on_status)
        b.identity.connect(self._on_identity)
        b.notice.connect(self._notify)
        b.deleted.connect(self._on_deleted)
        self.pops.lookup_requested.connect(self._lookup_contacts)
        self.pops.log_requested.connect(self.log_call)
        self.pops.log_retry_requested.connect(self._retry_pop_journal)
        b.journal.connect(self._on_journal_result)
        from PySide6.QtCore import QTimer

        self._journal_timer = QTimer()
        self._journal_timer.setSingleShot(True)
        self._journal_timer.timeout.connect(self._flush_journal)
        self._status: Any = None
        self._identity: Any = None
        self._poller: Any = None

    # -- start and stop ------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread, the backend connection and (if wanted) the tray."""
        self.worker.start()
        if self._with_tray:
            self._build_tray()
        if self.demo:
            self._start_demo_backend()
        server = self.settings["server.url"] if self.mock is None else self.mock.base_url
        if self._tokens is None:
            self.worker.submit(self._sign_in_then_connect(server))
        else:
            self._connect(server, self._tokens)

    def shutdown(self) -> None:
        """Stop the stream and the worker thread (joined), then the embedded backend."""
        if self._stopped:
            return
        self._stopped = True
        if self.stream is not None:
            fut = self.worker.submit(self.stream.stop())
            try:
                fut.result(3)
            except Exception:
                log.debug("stream did not stop cleanly", exc_info=True)
        self.worker.stop()
        if self.mock is not None:
            self.mock.stop()
        self.pops.close_all()

    # -- connection ----------------------------------------------------------------------

    def _connect(self, server: str, tokens: Any) -> None:
        from tapi_agent.net.api import ApiClient
        from tapi_agent.net.stream import StreamClient

        self._tokens = tokens
        self.api = ApiClient(server, tokens, proxy=self.settings["network.proxy"],
                             platform_url=self.settings["platform.url"] or None)
        b = self.bridge
        self.stream = StreamClient(
            server,
            tokens,
            product=self.settings["stream.product"],
            on_delivery=b.delivery.emit,
            on_status=self._status_in_loop,
            on_resync=b.resync.emit,
            proxy=self.settings["network.proxy"],
        )
        self.worker.submit(self.stream.run())
        if self._poller is not None:
            self._poller.cancel()  # a new sign-in replaces the old session's poller
        self._poller = self.worker.submit(self._poll_missed())

    def _status_in_loop(self, status: Any) -> None:
        """Runs in the worker: a connect is the moment to refresh names and missed calls."""
        self.bridge.status.emit(status)
        if getattr(status.state, "value", status.state) == "connected":
            self.worker.submit(self._after_connect())

    async def _after_connect(self) -> None:
        try:
            names = await self.api.negotiators()
            self.bridge.negotiators.emit(names)
        except Exception as exc:
            log.warning("could not load negotiator names: %s", exc)
        await self._fetch_deferred()

    async def _sign_in_then_connect(self, server: str) -> None:
        from tapi_agent.config import redirect_ports
        from tapi_agent.net.auth import Session
        from tapi_agent.net.tokens import MemoryTokenStore, TokenStore

        store: Any = TokenStore()
        if not store.available:
            store = MemoryTokenStore()
            self.bridge.notice.emit(
                "No credential store",
                "No working credential store was found: you will have to sign in again after "
                "a restart.",
            )
        self.session = Session(make_connect(self.settings, server), store,
                               process_lock=process_lock())
        # a refresh refused mid-session (the stream sees SessionGone) must reach the tray
        self.session.add_listener(
            lambda state, ident: self.bridge.identity.emit(None) if state == "signed_out"
            else None
        )
        try:
            restored = await self.session.restore()
            if not restored:
                await self.session.sign_in(port=redirect_ports(self.settings))
        except Exception as exc:
            log.warning("sign-in failed: %s", exc)
            self.bridge.notice.emit("Sign-in failed", str(exc))
            self.bridge.identity.emit(None)
            return
        if self.session.store_problem:
            self.bridge.notice.emit("Credential store problem", self.session.store_problem)
        if self.session.expiry_notice:
            self.bridge.notice.emit("Session cannot be renewed", self.session.expiry_notice)
        self.bridge.identity.emit(self.session.identity)
        self._connect(server, self.session)

    # -- calls ---------------------------------------------------------------------------

    def _on_delivery(self, delivery: Any) -> None:
        if self.tray is not None and hasattr(self.tray, "icon"):
            self.pops.set_tray_geometry(self.tray.icon.geometry())  # the taskbar may have moved
        self.pops.on_event(self._CallEvent.from_frame(delivery.frame))

    def _lookup_contacts(self, key: str, number: str) -> None:
        cached = self._contact_cache.get(number)
        if cached is not None:
            self.pops.set_contacts(key, cached)
            return
        if self.api is None or not number:
            return

        async def lookup() -> None:
            try:
                found = await self.api.find_contacts(number)
            except Exception as exc:
                log.info("contact look-up failed: %s", exc)
                return
            self.bridge.contacts.emit(key, (number, found))

        self.worker.submit(lookup())

    def _on_negotiators(self, negotiators: Any) -> None:
        self._names = {k: n.name for k, n in negotiators.items()}
        self.pops.set_negotiator_names(self._names)

    # -- the journal (issue 17) ---------------------------------------------------------

    def log_call(self, view: Any, contact: Any, note: str) -> None:
        """Queue a journal entry for a call I answered (its pop's "Log call", or auto)."""
        from tapi_agent.core.journal import JournalEntry, call_description
        from tapi_agent.ui.popup import format_number, line_label

        region = self.settings["calls.region"]
        me = self._me
        name = self._names.get(me) or (self._identity.name if self._identity else "") or me
        duration = None
        if view.ended_at is not None and view.answered_at is not None:
            duration = view.ended_at - view.answered_at
        line = line_label(view.destination, self._line_names, region).removeprefix("to ")
        text = call_description(caller=format_number(view.caller, region), line=line,
                                answered_by=name, duration_s=duration, note=note)
        entry = JournalEntry.new(call_id=view.log_id, contact_id=contact.id, description=text,
                                 negotiator_id=me, now=time.time())
        if not self.journal.add(entry):
            self.pops.set_journal_status(view.key, self.journal.status(view.log_id) or "logged")
            return
        self._journal_keys[entry.id] = view.key
        self._show_history()
        self._flush_journal()

    def retry_journal(self, call_id: str) -> None:
        """Post a call's refused (or waiting) entry again now (the user asked)."""
        if self.journal.retry(call_id, time.time()):
            self._flush_journal()

    def _retry_pop_journal(self, key: str) -> None:
        view = self.pops.book.get(key)
        if view is not None:
            self.retry_journal(view.log_id)

    def _flush_journal(self) -> None:
        """Post every due entry (in the worker); arm the timer for the next retry."""
        if self.api is None or self._stopped:
            return
        api = self.api
        for entry in self.journal.take_due(time.time()):
            self.worker.submit(self._post_journal(api, entry))
        self._arm_journal()

    def _arm_journal(self) -> None:
        due = self.journal.next_due()
        if due is None:
            self._journal_timer.stop()
        else:
            self._journal_timer.start(max(0, int((due - time.time()) * 1000)) + 1)

    async def _post_journal(self, api: Any, entry: Any) -> None:
        from tapi_agent.net.api import ApiError

        try:
            await api.post_journal_entry(entry.body())
        except ApiError as exc:
            self.bridge.journal.emit(entry.id, exc.status, exc.description)
        except Exception as exc:  # a refresh that failed, a session gone: retried later
            self.bridge.journal.emit(entry.id, 0, f"{type(exc).__name__}: {exc}")
        else:
            self.bridge.journal.emit(entry.id, 201, "")

    def _on_journal_result(self, entry_id: str, status: int, reason: str) -> None:
        from tapi_agent.core.log import log_event

        key = self._journal_keys.get(entry_id, "")
        if status == 201:
            entry = self.journal.posted(entry_id)
            if entry is not None:
                log_event("journal.logged", callId=entry.call_id, contactId=entry.contact_id)
                self.pops.set_journal_status(key, "logged")
                self._journal_keys.pop(entry_id, None)
        else:
            failure = self.journal.failed(entry_id, status=status, reason=reason,
                                          now=time.time())
            if failure is not None:
                e = failure.entry
                log_event("journal.failed", callId=e.call_id, contactId=e.contact_id,
                          reason=reason, status=status, retry=not failure.rejected)
                if failure.rejected:  # shown once; kept for a retry the user asks for
                    self.pops.set_journal_status(key, "rejected", reason)
                    self._notify("Call not logged", f"The journal entry was refused: {reason}")
                else:
                    self.pops.set_journal_status(key, "queued")
        self._show_history()
        self._arm_journal()

    def _on_contacts(self, key: str, result: Any) -> None:
        number, found = result
        if len(self._contact_cache) > 500:
            self._contact_cache.clear()
        self._contact_cache[number] = found
        self.pops.set_contacts(key, found)

    # -- missed calls --------------------------------------------------------------------

    async def _poll_missed(self) -> None:
        interval = 15.0 if self.demo else float(self.settings["missed.poll_interval_s"])
        while True:
            await asyncio.sleep(interval)
            await self._fetch_deferred()

    async def _fetch_deferred(self) -> None:
        try:
            calls = await self.api.deferred()
        except Exception as exc:
            log.info("missed-call poll failed: %s", exc)
            return
        self.bridge.deferred.emit(calls)

    def _on_deferred(self, calls: Any) -> None:
        from tapi_agent.core.log import log_event

        new = self.missed.merge(calls)
        self._delete_deferred(self.missed.pending_deletes())  # retry deletes that failed
        for call in new:
            log_event("missed.added", callId=call.call_id)
        if new:
            self._save_missed()
            self._notify("Missed call" if len(new) == 1 else f"{len(new)} missed calls",
                         ", ".join(c.caller or "Withheld" for c in new[:3]))
        if self.tray is not None:
            self.tray.set_missed(self.missed.calls)

    def mark_missed_seen(self) -> None:
        """The user has seen the missed calls: delete them on the backend, keep them locally."""
        from tapi_agent.core.log import log_event

        unseen = {c.deferred_id: c for c in self.missed.unseen}
        ids = self.missed.mark_all_seen()
        for deferred_id in ids:
            if deferred_id in unseen:
                log_event("missed.cleared", callId=unseen[deferred_id].call_id)
        self._save_missed()
        if self.tray is not None:
            self.tray.set_missed(self.missed.calls)
        self._delete_deferred(ids)

    def _delete_deferred(self, ids: list[str]) -> None:
        if not ids or self.api is None:
            return

        async def delete() -> None:
            done: list[str] = []
            for deferred_id in ids:
                try:
                    await self.api.delete_deferred(deferred_id)
                    done.append(deferred_id)
                except Exception as exc:  # retried at the next poll
                    log.info("could not delete a missed call on the backend: %s", exc)
            self.bridge.deleted.emit(done)

        self.worker.submit(delete())

    def _on_deleted(self, ids: list[str]) -> None:
        self.missed.confirm_deleted(ids)
        self._save_missed()

    def _load_missed(self) -> None:
        try:
            text = self._missed_file.read_text(encoding="utf-8")
        except OSError:
            return
        try:
            self.missed = type(self.missed).from_json(text)
        except ValueError as exc:
            log.warning("ignoring unreadable %s: %s", self._missed_file, exc)

    def _save_missed(self) -> None:
        try:
            self._missed_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._missed_file.with_suffix(".tmp")
            tmp.write_text(self.missed.to_json(), encoding="utf-8")
            os.replace(tmp, self._missed_file)
        except OSError as exc:
            log.warning("could not save missed calls: %s", exc)

    # -- tray and user actions -----------------------------------------------------------

    def _build_tray(self) -> None:
        from tapi_agent.ui.status_window import StatusWindow
        from tapi_agent.ui.tray import Tray

        tray: Tray | StatusWindow
        icon = self._early_tray or Tray()
        if icon.available:
            self.pops.set_tray_geometry(icon.icon.geometry())
            tray = icon
        else:
            log.warning("this desktop has no system tray: showing a status window instead")
            tray = StatusWindow()
            tray.show()
        self.tray = tray
        tray.quit_requested.connect(self._quit)
        tray.reconnect_requested.connect(self.reconnect_now)
        tray.do_not_disturb_toggled.connect(self.pops.set_do_not_disturb)
        tray.missed_seen_requested.connect(self.mark_missed_seen)
        tray.sign_out_requested.connect(self.sign_out)
        tray.sign_in_requested.connect(self.sign_in)
        tray.settings_requested.connect(self.open_settings)
        tray.open_log_folder_requested.connect(self.open_log_folder)
        tray.export_diagnostics_requested.connect(self.export_diagnostics)
        tray.autostart_toggled.connect(self.set_autostart)
        tray.history_copy_requested.connect(self._copy_text)
        tray.history_open_requested.connect(self._open_url)
        tray.history_log_retry_requested.connect(self.retry_journal)
        self.pops.history_changed.connect(self._show_history)
        tray.set_missed(self.missed.calls)
        tray.set_do_not_disturb(bool(self.settings["app.do_not_disturb"]))
        try:
            from tapi_agent import autostart

            locked = self.settings.is_locked("app.autostart")
            shown = autostart.reconcile(
                bool(self.settings["app.autostart"]), locked, command=launch_command(),
                machine=autostart.machine_entry(default_registry()))
            tray.set_autostart(shown, locked=locked)
        except Exception:
            log.debug("autostart state unknown", exc_info=True)

    def _show_history(self) -> None:
        """Recent calls in the tray, named and linked when a contact matched the caller."""
        if self.tray is None:
            return
        entries = self.pops.book.history
        labels: dict[str, str] = {}
        urls: dict[str, str] = {}
        retry: dict[str, str] = {}  # refused journal entries: retried from Recent calls
        for entry in entries:
            found = self._contact_cache.get(entry.caller) or []
            if found:
                labels[entry.key] = found[0].name
                urls[entry.key] = self.links.record_url(found[0].id)
            status = self.journal.status(entry.call_id or entry.key) or ""
            logged = _JOURNAL_MARKS.get(status)
            if logged:
                labels[entry.key] = f"{labels.get(entry.key) or entry.caller} ({logged})"
            if status == "rejected":
                retry[entry.key] = entry.call_id or entry.key
        self.tray.set_history(entries, labels=labels, record_urls=urls, log_retry=retry)

    def _on_status(self, status: Any) -> None:
        self._status = status
        if getattr(status.state, "value", status.state) == "connected":
            self.journal.retry_all_now(time.time())  # the network is back: post what waits
            self._flush_journal()
        if self.tray is not None:
            name = None
            if self._identity is not None:
                name = f"{self._identity.name} ({self._identity.negotiator_id})"
            elif self._me:
                name = self._me
            self.tray.set_status(status, name)

    def _on_identity(self, identity: Any) -> None:
        self._identity = identity
        if identity is not None:
            self._me = identity.negotiator_id
            self.pops.set_me(identity.negotiator_id)

    def _notify(self, title: str, text: str) -> None:
        if self.tray is not None:
            self.tray.toast(title, text)
        log.info("%s: %s", title, text)

    def show_status(self) -> None:
        """A second launch asked us to show ourselves: open the tray menu (or the window)."""
        log.info("a second launch asked this agent to show itself")
        if self.tray is None:
            return
        if hasattr(self.tray, "bring_to_front"):
            self.tray.bring_to_front()
        else:
            self.tray.show_menu()

    def reconnect_now(self) -> None:
        if self.stream is not None:
            self.worker.call_soon(self.stream.reconnect_now)

    def sign_out(self) -> None:
        if self.session is None:
            return

        async def out() -> None:
            from tapi_agent.core.connection import ConnectionStatus, ConnState

            if self._poller is not None:
                self._poller.cancel()
            if self.stream is not None:
                await self.stream.stop()
            await self.session.sign_out()
            self.bridge.identity.emit(None)
            self.bridge.status.emit(ConnectionStatus(ConnState.SIGNED_OUT, 0, None, "Signed out"))

        self.worker.submit(out())

    def sign_in(self) -> None:
        if self.demo or (self.session is not None and self.session.signed_in):
            return
        server = self.settings["server.url"]
        self.worker.submit(self._sign_in_then_connect(server))

    def open_settings(self) -> None:
        from tapi_agent.config import save_user_settings
        from tapi_agent.ui.settings_dialog import SettingsDialog

        user_file = self.settings.user_file or self.paths.user_config
        dialog = SettingsDialog(self.settings, lambda changes: save_user_settings(user_file,
                                                                                  changes))
        dialog.saved.connect(self._apply_saved_settings)
        dialog.exec()

    def _apply_saved_settings(self, changes: dict[str, Any]) -> None:
        """Do not disturb applies at once; other settings take effect at the next start."""
        if "app.do_not_disturb" in changes:
            on = bool(changes["app.do_not_disturb"])
            self.pops.set_do_not_disturb(on)
            if self.tray is not None:
                self.tray.set_do_not_disturb(on)
        if set(changes) - {"app.do_not_disturb"}:
            self._notify("Settings saved", "Some changes take effect when TAPI Agent restarts.")

    def open_log_folder(self) -> None:
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        self.paths.log_dir.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.paths.log_dir)))

    def export_diagnostics(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        from tapi_agent.diagnostics import export_diagnostics

        target, _ = QFileDialog.getSaveFileName(
            None, "Export diagnostics", str(Path.home() / "tapi-agent-diagnostics.zip"),
            "Zip files (*.zip)")
        if not target:
            return
        server = self.mock.base_url if self.mock is not None else self.settings["server.url"]

        async def export() -> None:
            path = await export_diagnostics(Path(target), settings=self.settings,
                                            paths=self.paths, server_url=server,
                                            tokens=self._tokens)
            self.bridge.notice.emit("Diagnostics exported", str(path))

        self.worker.submit(export())

    def set_autostart(self, enabled: bool) -> None:
        """The user's "Start at login": saved as app.autostart in the user's settings file
        (what the machine-wide Run entry obeys), and the per-user entry where there is no
        machine entry (tapi_agent/autostart.py)."""
        from tapi_agent import autostart
        from tapi_agent.config import save_user_settings

        autostart.choose(enabled, command=launch_command(),
                         machine=autostart.machine_entry(default_registry()))
        if self.settings.user_file is not None:
            for problem in save_user_settings(self.settings.user_file,
                                              {"app.autostart": enabled}):
                log.warning("settings: %s", problem)

    def _copy_text(self, text: str) -> None:
        from PySide6.QtGui import QGuiApplication

        QGuiApplication.clipboard().setText(text)

    def _open_url(self, url: str) -> None:
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        QDesktopServices.openUrl(QUrl(url))

    def _quit(self) -> None:
        from PySide6.QtWidgets import QApplication

        QApplication.quit()

    # -- demo ----------------------------------------------------------------------------

    def _start_demo_backend(self) -> None:
        from tapi_agent.demo import DemoPlayer, start_demo_backend
        from tapi_agent.net.session import CallableTokenSource

        self.mock = start_demo_backend(self._demo_negotiator)
        mock = self.mock
        neg = self._demo_negotiator

        async def mint() -> tuple[str, float]:
            return mock.mint_token(neg), time.time() + 3600

        self._tokens = CallableTokenSource(mint)
        self._me = neg
        self.pops.set_me(neg)
        player = DemoPlayer(mock, neg, calls=self._demo_calls, gap=self._demo_gap)
        self.worker.submit(player.run())

_JOURNAL_MARKS = {"logged": "logged", "pending": "logging…", "sending": "logging…",
                  "rejected": "not logged"}


def launch_command() -> list[str]:
    """How to start this agent again (the autostart entries): the frozen exe or this Python."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "tapi_agent"]
