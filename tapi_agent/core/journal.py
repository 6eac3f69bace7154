"""Calls logged to AgencyCloud's journal: the entry's text, and a queue that loses nothing.

Pure logic (DESIGN.md section 3): no Qt, no sockets, no threads. The app builds a
`JournalEntry` when the user logs a call (or, with `calls.journal = auto`, when an answered
call with one matched contact ends), `add`s it to the `JournalQueue`, and posts what
`take_due` hands out; each answer goes back as `posted` or `failed`.

Decisions (the README says the same):

- An entry that could not be posted (no answer, 5xx, 401 or a refresh that failed, 408, 429)
  stays `pending` and is retried with backoff (about 5 s doubling to 10 minutes, jittered);
  any other refusal (422 with the API's message, 400, 403, 404) is `rejected`: kept, shown to
  the user once, never retried by itself, and posted again only when the user asks.
- The queue lives in a JSON file written atomically (temp file + `os.replace`) in the agent's
  data directory, saved on every change: an entry survives a crash or a restart. After a
  restart every pending entry is due at once (a restart is a natural retry point); an entry
  that was being posted when the agent stopped is posted again. The Platform API has no
  idempotency key, so an entry whose 201 was lost on the way back may be logged twice; that is
  the rare cost of never losing one.
- One entry per call and contact: logging a call that already has an entry (pending, logged or
  rejected) does nothing.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from tapi_agent.core.backoff import Backoff

JOURNAL_MODES = ("off", "ask", "auto")
MAX_NOTE = 1000  # characters of the user's note kept (the Platform API takes 4000 in all)
MAX_DESCRIPTION = 4000
MAX_LOGGED_KEPT = 200  # calls remembered as logged, for the tray's Recent calls

Status = Literal["pending", "sending", "logged", "rejected"]
RETRYABLE_STATUSES = frozenset({0, 401, 408, 429})


def is_retryable(status: int) -> bool:
    """True when a POST that ended with HTTP `status` (0: no answer) should be tried again."""
    return status in RETRYABLE_STATUSES or status >= 500


def spoken_duration(seconds: float) -> str:
    """`3 min 12 s`, `45 s`, `1 h 2 min` (as a person writes it in a note)."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h} h {m} min" if m else f"{h} h"
    if m:
        return f"{m} min {s} s" if s else f"{m} min"
    return f"{s} s"


def clean_note(note: str) -> str:
    """The user's note on one line, trimmed, at most `MAX_NOTE` characters."""
    text = " ".join(note.split())
    return text[:MAX_NOTE]


def call_description(
    *, caller: str, line: str, answered_by: str, duration_s: float | None, note: str = "",
) -> str:
    """"Incoming call from 07123 456789 to Sales line, answered by Jane Smith, 3 min 12 s.
    Note: ..." (`caller` and `line` as the pop shows them; an empty part is left out)."""
    text = f"Incoming call from {caller or 'an unknown number'}"
    if line:
        text += f" to {line}"
    if answered_by:
        text += f", answered by {answered_by}"
    if duration_s is not None:
        text += f", {spoken_duration(duration_s)}"
    text += "."
    note = clean_note(note)
    if note:
        text += f" Note: {note}"
    return text[:MAX_DESCRIPTION]


@dataclass(frozen=True)
class JournalEntry:
    """One call to log against one contact, with its place in the queue."""

    id: str  # the agent's own id of the entry (the Platform API gives none back)
    call_id: str  # the call's id as logged (CallView.log_id)
    contact_id: str
    description: str
    negotiator_id: str = ""
    created: float = 0.0  # epoch seconds the user logged it
    status: Status = "pending"
    attempts: int = 0  # failed posts so far
    next_try: float = 0.0  # epoch seconds of the next post (pending entries)
    error: str = ""  # the last failure, as the API or the network said it

    @classmethod
    def new(cls, *, call_id: str, contact_id: str, description: str, negotiator_id: str = "",
            now: float) -> JournalEntry:
        """A fresh pending entry, due at once."""
        return cls(uuid.uuid4().hex, call_id, contact_id, description, negotiator_id, now,
                   next_try=now)

    def body(self) -> dict[str, str]:
        """The `CreateJournalEntryModel` for `POST /journalEntries`."""
        out = {"associatedType": "contact", "associatedId": self.contact_id,
               "description": self.description}
        if self.negotiator_id:
            out["negotiatorId"] = self.negotiator_id
        return out


class Store(Protocol):
    """Where the queue keeps its text (a file in the app, memory in tests)."""

    def load(self) -> str | None:
        """The saved text, or None when nothing was saved."""
        ...

    def save(self, text: str) -> None:
        """Replace the saved text (atomically: a crash leaves the old or the new text)."""
        ...


class MemoryStore:
    """A Store in memory."""

    def __init__(self, text: str | None = None) -> None:
        self.text = text
        self.saves = 0

    def load(self) -> str | None:
        return self.text

    def save(self, text: str) -> None:
        self.text = text
        self.saves += 1


class JsonFileStore:
    """A Store in a file, written to a temp file beside it and moved over it (`os.replace`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except OSError:
            return None

    def save(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)


@dataclass(frozen=True)
class Failure:
    """What `failed` did with an entry: kept for a retry (`retry_at`) or rejected."""

    entry: JournalEntry
    rejected: bool
    retry_at: float | None


class JournalQueue:
    """Entries to post, in the order they were logged; saved to the store on every change."""

    def __init__(self, store: Store, *, backoff: Backoff | None = None,
                 now: float = 0.0) -> None:
        self._store = store
        self._backoff = backoff or Backoff(base_s=5.0, cap_s=600.0)
        self._entries: dict[str, JournalEntry] = {}
        self._logged: dict[str, str] = {}  # call id -> contact id, oldest first
        self.load_error = ""
        self._load(now)

    # -- queries ---------------------------------------------------------------------------------

    @property
    def entries(self) -> list[JournalEntry]:
        """Entries not posted yet (pending, being posted, rejected), oldest first."""
        return list(self._entries.values())

    def get(self, entry_id: str) -> JournalEntry | None:
        """The entry with this id, if it is still in the queue."""
        return self._entries.get(entry_id)

    def status(self, call_id: str) -> Status | None:
        """How the call stands: logged, pending (or sending), rejected; None: never logged."""
        found = [e.status for e in self._entries.values() if e.call_id == call_id]
        if "rejected" in found:
            return "rejected"
        if found:
            return "pending" if "pending" in found else found[0]
        return "logged" if call_id in self._logged else None

    def has_entry(self, call_id: str, contact_id: str) -> bool:
        """True when the call was already logged (or is queued) for this contact."""
        if self._logged.get(call_id) == contact_id:
            return True
        return any(e.call_id == call_id and e.contact_id == contact_id
                   for e in self._entries.values())

    def next_due(self) -> float | None:
        """When the next pending entry is due, or None."""
        times = [e.next_try for e in self._entries.values() if e.status == "pending"]
        return min(times) if times else None

    # -- changes ---------------------------------------------------------------------------------

    def add(self, entry: JournalEntry) -> bool:
        """Queue an entry; False (and nothing queued) when the call already has one."""
        if self.has_entry(entry.call_id, entry.contact_id):
            return False
        self._entries[entry.id] = entry
        self._save()
        return True

    def take_due(self, now: float) -> list[JournalEntry]:
        """The pending entries due by `now`, marked as being posted (never handed out twice)."""
        due = [e for e in self._entries.values() if e.status == "pending" and e.next_try <= now]
        for e in due:
            self._entries[e.id] = replace(e, status="sending")
        return [self._entries[e.id] for e in due]

    def posted(self, entry_id: str) -> JournalEntry | None:
        """The Platform API took the entry: it leaves the queue; the call counts as logged."""
        entry = self._entries.pop(entry_id, None)
        if entry is None:
            return None
        self._logged.pop(entry.call_id, None)
        self._logged[entry.call_id] = entry.contact_id
        while len(self._logged) > MAX_LOGGED_KEPT:
            del self._logged[next(iter(self._logged))]
        self._save()
        return replace(entry, status="logged")

    def failed(self, entry_id: str, *, status: int, reason: str, now: float) -> Failure | None:
        """The post failed with HTTP `status` (0: no answer): retry later, or reject."""
        entry = self._entries.get(entry_id)
        if entry is None:
            return None
        attempts = entry.attempts + 1
        if is_retryable(status):
            delay = self._backoff.next_delay(attempts + 1)  # ~base, then doubling
            entry = replace(entry, status="pending", attempts=attempts, next_try=now + delay,
                            error=reason)
            result = Failure(entry, rejected=False, retry_at=entry.next_try)
        else:
            entry = replace(entry, status="rejected", attempts=attempts, error=reason)
            result = Failure(entry, rejected=True, retry_at=None)
        self._entries[entry_id] = entry
        self._save()
        return result

    def retry(self, call_id: str, now: float) -> list[JournalEntry]:
        """The user asked to post the call's rejected (or waiting) entries again, now."""
        again = [e for e in self._entries.values()
                 if e.call_id == call_id and e.status in ("rejected", "pending")]
        for e in again:
            self._entries[e.id] = replace(e, status="pending", next_try=now)
        if again:
            self._save()
        return [self._entries[e.id] for e in again]

    def retry_all_now(self, now: float) -> None:
        """Make every pending entry due now (the connection came back)."""
        changed = False
        for e in list(self._entries.values()):
            if e.status == "pending" and e.next_try > now:
                self._entries[e.id] = replace(e, next_try=now)
                changed = True
        if changed:
            self._save()

    # -- persistence -----------------------------------------------------------------------------

    def to_json(self) -> str:
        """The queue as the store keeps it."""
        return json.dumps({
            "version": 1,
            "entries": [asdict(e) for e in self._entries.values()],
            "logged": [[c, k] for c, k in self._logged.items()],
        }, indent=1)

    def _save(self) -> None:
        self._store.save(self.to_json())

    def _load(self, now: float) -> None:
        text = self._store.load()
        if not text:
            return
        try:
            data = json.loads(text)
            entries = [_entry(e, now) for e in data.get("entries", [])]
            logged = [(str(c), str(k)) for c, k in data.get("logged", [])]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # Unreadable: start empty but say so; the damaged text is not overwritten until
            # the next change, so nothing is lost silently.
            self.load_error = f"the journal queue could not be read: {exc}"
            return
        self._entries = {e.id: e for e in entries}
        self._logged = dict(logged[-MAX_LOGGED_KEPT:])


def _entry(data: dict[str, Any], now: float) -> JournalEntry:
    fields = {k: data[k] for k in ("id", "call_id", "contact_id", "description")}
    entry = JournalEntry(
        **{k: str(v) for k, v in fields.items()},
        negotiator_id=str(data.get("negotiator_id", "")),
        created=float(data.get("created", 0.0)),
        status=data.get("status", "pending") if data.get("status") == "rejected" else "pending",
        attempts=int(data.get("attempts", 0)),
        next_try=now,  # a restart is a retry point
        error=str(data.get("error", "")),
    )
    return entry

