"""Missed calls kept in step with the backend: polled, saved to disk, marked seen, deleted."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tapi_agent.core.log import log_event
from tapi_agent.core.missed import MissedCalls

if TYPE_CHECKING:
    from tapi_agent.core.missed import DeferredCall, MissedCall
    from tapi_agent.net.api import ApiClient

log = logging.getLogger("tapi_agent.app")

Submit = Callable[[Coroutine[Any, Any, None]], object]
"""Runs a coroutine in the worker thread (`AsyncWorker.submit`)."""


class MissedFlow:
    """The missed-call list and its file; the network half runs in the worker, whose results
    come back through `deliver` and `deleted` (signals that cross to the GUI thread)."""

    def __init__(self, file: Path, *, submit: Submit,
                 deliver: Callable[[list[DeferredCall]], None],
                 deleted: Callable[[list[str]], None]) -> None:
        self.file = file
        self.calls = MissedCalls()
        self._submit = submit
        self._deliver = deliver
        self._deleted = deleted
        self.load()

    # -- in the worker -------------------------------------------------------------------

    async def poll(self, api: ApiClient, interval_s: float) -> None:
        """Fetch the backend's deferred calls every `interval_s` seconds, until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            await self.fetch(api)

    async def fetch(self, api: ApiClient) -> None:
        """One poll; a failure is logged and waits for the next."""
        try:
            calls = await api.deferred()
        except Exception as exc:
            log.info("missed-call poll failed: %s", exc)
            return
        self._deliver(calls)

    # -- on the GUI thread ---------------------------------------------------------------

    def merge(self, deferred: list[DeferredCall], api: ApiClient | None) -> list[MissedCall]:
        """Merge a poll's result; return the calls it added (saved, and logged)."""
        new = self.calls.merge(deferred)
        self.delete(api, self.calls.pending_deletes())  # retry deletes that failed
        for call in new:
            log_event("missed.added", callId=call.call_id)
        if new:
            self.save()
        return new

    def mark_all_seen(self, api: ApiClient | None) -> None:
        """The user has seen them: delete them on the backend, keep them in the list."""
        unseen = {c.deferred_id: c for c in self.calls.unseen}
        ids = self.calls.mark_all_seen()
        for deferred_id in ids:
            if deferred_id in unseen:
                log_event("missed.cleared", callId=unseen[deferred_id].call_id)
        self.save()
        self.delete(api, ids)

    def delete(self, api: ApiClient | None, ids: list[str]) -> None:
        """DELETE these on the backend (in the worker); what failed is retried at the next poll."""
        if not ids or api is None:
            return

        async def delete() -> None:
            done: list[str] = []
            for deferred_id in ids:
                try:
                    await api.delete_deferred(deferred_id)
                    done.append(deferred_id)
                except Exception as exc:  # retried at the next poll
                    log.info("could not delete a missed call on the backend: %s", exc)
            self._deleted(done)

        self._submit(delete())

    def confirm_deleted(self, ids: list[str]) -> None:
        """The backend confirmed these deletes."""
        self.calls.confirm_deleted(ids)
        self.save()

    # -- the file ------------------------------------------------------------------------

    def load(self) -> None:
        """Read the saved list; a missing file is an empty list, an unreadable one is logged."""
        try:
            text = self.file.read_text(encoding="utf-8")
        except OSError:
            return
        try:
            self.calls = MissedCalls.from_json(text)
        except ValueError as exc:
            log.warning("ignoring unreadable %s: %s", self.file, exc)

    def save(self) -> None:
        """Write the list atomically (a temporary file replaced); a failure is logged."""
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_suffix(".tmp")
            tmp.write_text(self.calls.to_json(), encoding="utf-8")
            os.replace(tmp, self.file)
        except OSError as exc:
            log.warning("could not save missed calls: %s", exc)
