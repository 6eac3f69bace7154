"""What Recent calls shows for each call: the contact's name and record, the journal's state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tapi_agent.core.calls import HistoryEntry
    from tapi_agent.core.directory import Contact
    from tapi_agent.core.journal import JournalQueue
    from tapi_agent.core.links import Links

JOURNAL_MARKS = {"logged": "logged", "pending": "logging…", "sending": "logging…",
                 "rejected": "not logged"}
"""The journal state shown after a call's label."""


@dataclass
class RecentLabels:
    """Per call key: the label, the record's URL and (refused entries) the call id to retry."""

    labels: dict[str, str] = field(default_factory=dict)
    record_urls: dict[str, str] = field(default_factory=dict)
    log_retry: dict[str, str] = field(default_factory=dict)


def recent_labels(entries: Sequence[HistoryEntry], *,
                  contacts: Callable[[str], list[Contact] | None],
                  journal: JournalQueue, links: Links) -> RecentLabels:
    """Name and link each call when a contact matched its caller; mark its journal state."""
    out = RecentLabels()
    for entry in entries:
        found = contacts(entry.caller) or []
        if found:
            out.labels[entry.key] = found[0].name
            out.record_urls[entry.key] = links.record_url(found[0].id)
        status = journal.status(entry.call_id or entry.key) or ""
        logged = JOURNAL_MARKS.get(status)
        if logged:
            out.labels[entry.key] = f"{out.labels.get(entry.key) or entry.caller} ({logged})"
        if status == "rejected":
            out.log_retry[entry.key] = entry.call_id or entry.key
    return out
