"""Missed calls: the list the tray shows, kept by deferred id, merged from polls of the backend.

Pure logic (DESIGN.md section 6): the net layer fetches `GET /notifications/deferred` and hands
the result to `MissedCalls.merge`; the user marks them seen, and only then are their ids handed
back for `DELETE`. A call the user has seen is never re-added, even while the backend still lists
it (its delete may be pending or may have failed and be retried). The caller logs
`missed.added` / `missed.cleared` for what `merge` and `mark_all_seen` return.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from tapi_agent.protocol.wire import Envelope

MAX_SEEN_KEPT = 50
"""Seen calls kept for the list after they are deleted on the backend (newest first)."""

MAX_TOMBSTONES = 1000
"""Ids of deleted calls remembered so that a slow backend cannot bring them back."""


@dataclass(frozen=True)
class DeferredCall:
    """One item of `GET /notifications/deferred`: its id, when it was stored, the notification."""

    id: str
    created: datetime
    notification: Envelope


@dataclass(frozen=True)
class MissedCall:
    """A missed call as the tray lists it."""

    deferred_id: str
    call_id: str | None
    caller: str
    destination: str
    created: datetime
    seen: bool = False

    @classmethod
    def from_deferred(cls, item: DeferredCall) -> MissedCall:
        """Build the list entry from a deferred notification."""
        payload = item.notification.payload
        return cls(
            deferred_id=item.id,
            call_id=payload.id,
            caller=payload.callerId,
            destination=payload.destinationId,
            created=_aware(item.created),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the data file)."""
        return {
            "deferredId": self.deferred_id,
            "callId": self.call_id,
            "caller": self.caller,
            "destination": self.destination,
            "created": self.created.isoformat(),
            "seen": self.seen,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MissedCall:
        """Inverse of `as_dict`; raises KeyError/ValueError/TypeError on a bad entry."""
        call_id = data.get("callId")
        return cls(
            deferred_id=str(data["deferredId"]),
            call_id=None if call_id is None else str(call_id),
            caller=str(data["caller"]),
            destination=str(data["destination"]),
            created=_aware(datetime.fromisoformat(str(data["created"]))),
            seen=bool(data.get("seen", False)),
        )


def _aware(t: datetime) -> datetime:
    # The backend sends UTC with a zone; a naive time (older data) is read as UTC so sorting
    # never compares naive with aware.
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


class MissedCalls:
    """Missed calls by deferred id: merge polls, count unseen, hand out ids to delete."""

    def __init__(self) -> None:
        self._calls: dict[str, MissedCall] = {}
        self._to_delete: list[str] = []  # seen, DELETE not yet confirmed
        self._deleted: list[str] = []  # tombstones, oldest first

    @property
    def calls(self) -> list[MissedCall]:
        """All kept calls, newest first."""
        return sorted(self._calls.values(), key=lambda c: c.created, reverse=True)

    @property
    def unseen(self) -> list[MissedCall]:
        """Calls the user has not seen yet, newest first."""
        return [c for c in self.calls if not c.seen]

    @property
    def unseen_count(self) -> int:
        """How many calls the badge shows."""
        return sum(not c.seen for c in self._calls.values())

    def merge(self, deferred: list[DeferredCall]) -> list[MissedCall]:
        """Add the calls not known yet; return them (newest first) for the toast."""
        added: list[MissedCall] = []
        gone = set(self._deleted) | set(self._to_delete)
        for item in deferred:
            if item.id in self._calls or item.id in gone:
                continue
            call = MissedCall.from_deferred(item)
            self._calls[call.deferred_id] = call
            added.append(call)
        added.sort(key=lambda c: c.created, reverse=True)
        return added

    def mark_all_seen(self) -> list[str]:
        """Mark every call seen; return the deferred ids to DELETE on the backend now.

        Ids whose earlier delete was not confirmed are returned again (a retry).
        """
        for key, call in list(self._calls.items()):
            if not call.seen:
                self._calls[key] = replace(call, seen=True)
                self._to_delete.append(key)
        return list(self._to_delete)

    def pending_deletes(self) -> list[str]:
        """Seen calls whose DELETE on the backend has not been confirmed yet."""
        return list(self._to_delete)

    def confirm_deleted(self, deferred_ids: list[str]) -> None:
        """Record that the backend deleted these ids (remember them, trim the seen list)."""
        done = set(deferred_ids)
        self._to_delete = [i for i in self._to_delete if i not in done]
        known = set(self._deleted)
        self._deleted.extend(i for i in deferred_ids if i not in known)
        del self._deleted[:-MAX_TOMBSTONES]
        seen = [c for c in self.calls if c.seen and c.deferred_id not in self._to_delete]
        for old in seen[MAX_SEEN_KEPT:]:
            del self._calls[old.deferred_id]

    def to_json(self) -> str:
        """Serialise the list for the data file."""
        return json.dumps(
            {
                "version": 1,
                "calls": [c.as_dict() for c in self.calls],
                "toDelete": self._to_delete,
                "deleted": self._deleted,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> MissedCalls:
        """Load what `to_json` wrote; a damaged file gives an empty list (never an error)."""
        book = cls()
        try:
            data = json.loads(text)
            calls = [MissedCall.from_dict(c) for c in data.get("calls", [])]
            to_delete = [str(i) for i in data.get("toDelete", [])]
            deleted = [str(i) for i in data.get("deleted", [])]
        except (ValueError, TypeError, KeyError, AttributeError):
            return book
        book._calls = {c.deferred_id: c for c in calls}
        book._to_delete = to_delete
        book._deleted = deleted[-MAX_TOMBSTONES:]
        return book
