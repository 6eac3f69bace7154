"""Calls logged to the journal (issue 17): queued on disk, posted from the worker, retried."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tapi_agent.core.journal import JournalQueue, JsonFileStore
from tapi_agent.core.log import log_event

if TYPE_CHECKING:
    from tapi_agent.core.backoff import Backoff
    from tapi_agent.core.journal import JournalEntry
    from tapi_agent.net.api import ApiClient

log = logging.getLogger("tapi_agent.app")


class JournalFlow:
    """The journal queue and its round trips; results come back through `report` (a signal to
    the GUI thread), the pop learns its entry's state through `show`, the next retry is `arm`ed."""

    def __init__(self, file: Path, *, backoff: Backoff | None,
                 submit: Callable[[Coroutine[Any, Any, None]], object],
                 report: Callable[[str, int, str], None],
                 show: Callable[[str, str, str], None],
                 notify: Callable[[str, str], None],
                 arm: Callable[[float | None], None]) -> None:
        self.queue = JournalQueue(JsonFileStore(file), backoff=backoff, now=time.time())
        if self.queue.load_error:
            log.warning("%s", self.queue.load_error)
        self._keys: dict[str, str] = {}  # entry id -> call key of its pop
        self._submit = submit
        self._report = report
        self._show = show
        self._notify = notify
        self._arm = arm

    def add(self, entry: JournalEntry, key: str) -> bool:
        """Queue a new entry for the pop `key`; False (the pop told) when the call has one."""
        if not self.queue.add(entry):
            self._show(key, self.queue.status(entry.call_id) or "logged", "")
            return False
        self._keys[entry.id] = key
        return True

    def retry(self, call_id: str) -> bool:
        """Make a call's refused (or waiting) entry due now; True when there was one."""
        return bool(self.queue.retry(call_id, time.time()))

    def flush(self, api: ApiClient) -> None:
        """Post every due entry (in the worker); arm the timer for the next retry."""
        for entry in self.queue.take_due(time.time()):
            self._submit(self.post(api, entry))
        self._arm(self.queue.next_due())

    async def post(self, api: ApiClient, entry: JournalEntry) -> None:
        """POST one entry (in the worker) and report how it went: 201, the API's status, or 0."""
        from tapi_agent.net.api import ApiError

        try:
            await api.post_journal_entry(entry.body())
        except ApiError as exc:
            self._report(entry.id, exc.status, exc.description)
        except Exception as exc:  # a refresh that failed, a session gone: retried later
            self._report(entry.id, 0, f"{type(exc).__name__}: {exc}")
        else:
            self._report(entry.id, 201, "")

    def result(self, entry_id: str, status: int, reason: str) -> None:
        """A post's outcome (on the GUI thread): logged, queued for a retry, or refused (the
        caller then re-arms the timer: `arm(queue.next_due())`)."""
        key = self._keys.get(entry_id, "")
        if status == 201:
            entry = self.queue.posted(entry_id)
            if entry is not None:
                log_event("journal.logged", callId=entry.call_id, contactId=entry.contact_id)
                self._show(key, "logged", "")
                self._keys.pop(entry_id, None)
        else:
            failure = self.queue.failed(entry_id, status=status, reason=reason, now=time.time())
            if failure is not None:
                e = failure.entry
                log_event("journal.failed", callId=e.call_id, contactId=e.contact_id,
                          reason=reason, status=status, retry=not failure.rejected)
                if failure.rejected:  # shown once; kept for a retry the user asks for
                    self._show(key, "rejected", reason)
                    self._notify("Call not logged", f"The journal entry was refused: {reason}")
                else:
                    self._show(key, "queued", "")
