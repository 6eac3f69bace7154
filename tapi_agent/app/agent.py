"""`Agent`: the running tray agent's parts, built on the GUI thread and wired together.

The behaviour lives in the units it builds (`session_flow`, `missed_flow`, `contacts`,
`journal_flow`, `recent_calls`, `demo_backend`, `desktop`); Agent connects their results to the
pops and the tray. The worker thread reaches the GUI only through `Bridge` signals (DESIGN.md
section 3).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from tapi_agent.app import desktop
from tapi_agent.app.desktop import launch_command
from tapi_agent.config import Paths, Settings

if TYPE_CHECKING:
    import concurrent.futures

    from tapi_agent.app.bridge import Bridge
    from tapi_agent.app.contacts import ContactCache
    from tapi_agent.app.journal_flow import JournalFlow
    from tapi_agent.app.missed_flow import MissedFlow
    from tapi_agent.app.session_flow import SessionFlow
    from tapi_agent.core.backoff import Backoff
    from tapi_agent.core.calls import CallEvent, CallView
    from tapi_agent.core.connection import ConnectionStatus
    from tapi_agent.core.directory import Contact, Negotiator
    from tapi_agent.core.journal import JournalQueue
    from tapi_agent.core.missed import DeferredCall, MissedCalls
    from tapi_agent.mock.server import MockServer
    from tapi_agent.net.api import ApiClient
    from tapi_agent.net.auth import Identity, Session
    from tapi_agent.net.session import TokenSource
    from tapi_agent.net.stream import Delivery, StreamClient
    from tapi_agent.ui.popstack import PopStack
    from tapi_agent.ui.status_window import StatusWindow
    from tapi_agent.ui.tray import Tray

__all__ = ["Agent", "launch_command"]

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
        tokens: TokenSource | None = None,
        negotiator_id: str | None = None,
        with_tray: bool = True,
        tray: Tray | None = None,
        journal_backoff: Backoff | None = None,
    ) -> None:
        from PySide6.QtCore import QTimer

        from tapi_agent.app.bridge import make_bridge
        from tapi_agent.app.contacts import ContactCache
        from tapi_agent.app.journal_flow import JournalFlow
        from tapi_agent.app.missed_flow import MissedFlow
        from tapi_agent.app.session_flow import SessionFlow
        from tapi_agent.core.calls import CallEvent, CallSettings
        from tapi_agent.core.links import Links
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
        self._CallEvent: type[CallEvent] = CallEvent
        self.worker = AsyncWorker()
        self.bridge: Bridge = make_bridge()
        b = self.bridge
        self.mock: MockServer | None = None
        self.stream: StreamClient | None = None
        self.api: ApiClient | None = None
        self.tray: Tray | StatusWindow | None = None
        self.signin: SessionFlow = SessionFlow(settings, notice=b.notice.emit,
                                               identity=b.identity.emit)
        self.contacts: ContactCache = ContactCache()
        self.missed_flow: MissedFlow = MissedFlow(
            paths.data_dir / "missed.json", submit=self.worker.submit,
            deliver=b.deferred.emit, deleted=b.deleted.emit)
        # Calls logged to the journal (issue 17): a queue on disk, posted from the worker.
        self._journal_timer = QTimer()
        self._journal_timer.setSingleShot(True)
        self._journal_timer.timeout.connect(self._flush_journal)
        self.journal_flow: JournalFlow = JournalFlow(
            paths.data_dir / "journal.json", backoff=journal_backoff, submit=self.worker.submit,
            report=b.journal.emit, show=self._show_journal_status,
            notify=lambda title, text: self._notify(title, text),  # tests replace _notify
            arm=self._arm_journal_at)
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
        self.pops: PopStack = PopStack(
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
        self._status: ConnectionStatus | None = None
        self._identity: Identity | None = None
        self._poller: concurrent.futures.Future[None] | None = None

    @property
    def session(self) -> Session | None:
        """The signed-in session (None before a sign-in, and in the demo)."""
        return self.signin.session

    @property
    def missed(self) -> MissedCalls:
        """The missed-call list the tray shows."""
        return self.missed_flow.calls

    @property
    def journal(self) -> JournalQueue:
        """The journal entries waiting, posted or refused."""
        return self.journal_flow.queue

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

    def _start_demo_backend(self) -> None:
        from tapi_agent.app.demo_backend import start_demo

        self.mock, self._tokens, player = start_demo(
            self._demo_negotiator, calls=self._demo_calls, gap=self._demo_gap)
        self._me = self._demo_negotiator
        self.pops.set_me(self._demo_negotiator)
        self.worker.submit(player.run())

    # -- connection ----------------------------------------------------------------------

    def _connect(self, server: str, tokens: TokenSource) -> None:
        from tapi_agent.net.api import ApiClient
        from tapi_agent.net.stream import StreamClient

        self._tokens = tokens
        api = ApiClient(server, tokens, proxy=self.settings["network.proxy"],
                        platform_url=self.settings["platform.url"] or None)
        self.api = api
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
        interval = 15.0 if self.demo else float(self.settings["missed.poll_interval_s"])
        self._poller = self.worker.submit(self.missed_flow.poll(api, interval))

    def _status_in_loop(self, status: ConnectionStatus) -> None:
        """Runs in the worker: a connect is the moment to refresh names and missed calls."""
        self.bridge.status.emit(status)
        if getattr(status.state, "value", status.state) == "connected":
            self.worker.submit(self._after_connect())

    async def _after_connect(self) -> None:
        api = self.api
        if api is None:
            return
        try:
            names = await api.negotiators()
            self.bridge.negotiators.emit(names)
        except Exception as exc:
            log.warning("could not load negotiator names: %s", exc)
        await self.missed_flow.fetch(api)

    async def _sign_in_then_connect(self, server: str) -> None:
        session = await self.signin.sign_in(server)
        if session is not None:
            self._connect(server, session)

    def sign_out(self) -> None:
        """End the session (the tray's Sign out, or `tapi-agent sign-out`); the stream stops."""
        if self.session is None:
            return

        async def out() -> None:
            from tapi_agent.core.connection import ConnectionStatus, ConnState

            if self._poller is not None:
                self._poller.cancel()
            if self.stream is not None:
                await self.stream.stop()
            await self.signin.sign_out()
            self.bridge.status.emit(ConnectionStatus(ConnState.SIGNED_OUT, 0, None, "Signed out"))

        self.worker.submit(out())

    def sign_in(self) -> None:
        """Sign in again after a sign-out (the tray's Sign in); nothing in the demo."""
        if self.demo or self.signin.signed_in:
            return
        self.worker.submit(self._sign_in_then_connect(self.settings["server.url"]))

    def reconnect_now(self) -> None:
        """Reconnect the stream at once (the tray's Reconnect)."""
        if self.stream is not None:
            self.worker.call_soon(self.stream.reconnect_now)

    # -- calls ---------------------------------------------------------------------------

    def _on_delivery(self, delivery: Delivery) -> None:
        if self.tray is not None and hasattr(self.tray, "icon"):
            self.pops.set_tray_geometry(self.tray.icon.geometry())  # the taskbar may have moved
        self.pops.on_event(self._CallEvent.from_frame(delivery.frame))

    def _lookup_contacts(self, key: str, number: str) -> None:
        cached = self.contacts.cached(number)
        if cached is not None:
            self.pops.set_contacts(key, cached)
            return
        api = self.api
        if api is None or not number:
            return

        async def lookup() -> None:
            found = await self.contacts.find(api, number)
            if found is not None:
                self.bridge.contacts.emit(key, (number, found))

        self.worker.submit(lookup())

    def _on_contacts(self, key: str, result: tuple[str, list[Contact]]) -> None:
        number, found = result
        self.contacts.remember(number, found)
        self.pops.set_contacts(key, found)

    def _on_negotiators(self, negotiators: dict[str, Negotiator]) -> None:
        self._names = {k: n.name for k, n in negotiators.items()}
        self.pops.set_negotiator_names(self._names)

    # -- the journal (issue 17) ---------------------------------------------------------

    def log_call(self, view: CallView, contact: Contact, note: str) -> None:
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
        if self.journal_flow.add(entry, view.key):
            self._show_history()
            self._flush_journal()

    def retry_journal(self, call_id: str) -> None:
        """Post a call's refused (or waiting) entry again now (the user asked)."""
        if self.journal_flow.retry(call_id):
            self._flush_journal()

    def _retry_pop_journal(self, key: str) -> None:
        view = self.pops.book.get(key)
        if view is not None:
            self.retry_journal(view.log_id)

    def _flush_journal(self) -> None:
        """Post every due entry (in the worker); arm the timer for the next retry."""
        if self.api is None or self._stopped:
            return
        self.journal_flow.flush(self.api)

    def _arm_journal_at(self, due: float | None) -> None:
        if due is None:
            self._journal_timer.stop()
        else:
            self._journal_timer.start(max(0, int((due - time.time()) * 1000)) + 1)

    def _show_journal_status(self, key: str, status: str, reason: str) -> None:
        self.pops.set_journal_status(key, status, reason)

    def _on_journal_result(self, entry_id: str, status: int, reason: str) -> None:
        self.journal_flow.result(entry_id, status, reason)
        self._show_history()
        self._arm_journal_at(self.journal.next_due())

    # -- missed calls --------------------------------------------------------------------

    def _on_deferred(self, calls: list[DeferredCall]) -> None:
        new = self.missed_flow.merge(calls, self.api)
        if new:
            self._notify("Missed call" if len(new) == 1 else f"{len(new)} missed calls",
                         ", ".join(c.caller or "Withheld" for c in new[:3]))
        if self.tray is not None:
            self.tray.set_missed(self.missed.calls)

    def mark_missed_seen(self) -> None:
        """The user has seen the missed calls: delete them on the backend, keep them locally."""
        self.missed_flow.mark_all_seen(self.api)
        if self.tray is not None:
            self.tray.set_missed(self.missed.calls)

    def _on_deleted(self, ids: list[str]) -> None:
        self.missed_flow.confirm_deleted(ids)

    # -- tray and user actions -----------------------------------------------------------

    def _build_tray(self) -> None:
        from tapi_agent.ui.tray import Tray

        tray: Tray | StatusWindow
        icon = self._early_tray or Tray()
        if icon.available:
            self.pops.set_tray_geometry(icon.icon.geometry())
            tray = icon
        else:
            log.warning("this desktop has no system tray: showing a status window instead")
            # imported only here: an agent with a tray never loads it (issue 14)
            from tapi_agent.ui.status_window import StatusWindow

            tray = StatusWindow()
            tray.show()
        self.tray = tray
        settings, paths = self.settings, self.paths
        tray.quit_requested.connect(desktop.quit_app)
        tray.reconnect_requested.connect(self.reconnect_now)
        tray.do_not_disturb_toggled.connect(self.pops.set_do_not_disturb)
        tray.missed_seen_requested.connect(self.mark_missed_seen)
        tray.sign_out_requested.connect(self.sign_out)
        tray.sign_in_requested.connect(self.sign_in)
        tray.settings_requested.connect(
            lambda: desktop.open_settings(settings, paths, self._apply_saved_settings))
        tray.open_log_folder_requested.connect(lambda: desktop.open_log_folder(paths))
        tray.export_diagnostics_requested.connect(self.export_diagnostics)
        tray.autostart_toggled.connect(lambda on: desktop.set_autostart(settings, on))
        tray.history_copy_requested.connect(desktop.copy_text)
        tray.history_open_requested.connect(desktop.open_url)
        tray.history_log_retry_requested.connect(self.retry_journal)
        self.pops.history_changed.connect(self._show_history)
        tray.set_missed(self.missed.calls)
        tray.set_do_not_disturb(bool(settings["app.do_not_disturb"]))
        try:
            shown, locked = desktop.autostart_shown(settings)
            tray.set_autostart(shown, locked=locked)
        except Exception:
            log.debug("autostart state unknown", exc_info=True)

    def _show_history(self) -> None:
        """Recent calls in the tray, named and linked when a contact matched the caller."""
        if self.tray is None:
            return
        from tapi_agent.app.recent_calls import recent_labels

        entries = self.pops.book.history
        shown = recent_labels(entries, contacts=self.contacts.cached, journal=self.journal,
                              links=self.links)
        self.tray.set_history(entries, labels=shown.labels, record_urls=shown.record_urls,
                              log_retry=shown.log_retry)

    def _on_status(self, status: ConnectionStatus) -> None:
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

    def _on_identity(self, identity: Identity | None) -> None:
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

    def _apply_saved_settings(self, changes: dict[str, Any]) -> None:
        """Do not disturb applies at once; other settings take effect at the next start."""
        if "app.do_not_disturb" in changes:
            on = bool(changes["app.do_not_disturb"])
            self.pops.set_do_not_disturb(on)
            if self.tray is not None:
                self.tray.set_do_not_disturb(on)
        if set(changes) - {"app.do_not_disturb"}:
            self._notify("Settings saved", "Some changes take effect when TAPI Agent restarts.")

    def export_diagnostics(self) -> None:
        """Ask where, then write the diagnostics zip (in the worker) and say where it went."""
        from tapi_agent.diagnostics import export_diagnostics

        target = desktop.ask_diagnostics_target()
        if target is None:
            return
        server = self.mock.base_url if self.mock is not None else self.settings["server.url"]

        async def export() -> None:
            path = await export_diagnostics(target, settings=self.settings, paths=self.paths,
                                            server_url=server, tokens=self._tokens)
            self.bridge.notice.emit("Diagnostics exported", str(path))

        self.worker.submit(export())
