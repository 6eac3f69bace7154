"""The call journal's pure parts: the entry text, the links, and the queue that loses nothing."""

from __future__ import annotations

import json
import random

import pytest

from tapi_agent.core.backoff import Backoff
from tapi_agent.core.journal import (
    JournalEntry,
    JournalQueue,
    JsonFileStore,
    MemoryStore,
    call_description,
    is_retryable,
    spoken_duration,
)
from tapi_agent.core.links import Links, fill, search_digits


def test_the_description_reads_like_a_note_a_person_would_write() -> None:
    text = call_description(caller="07123 456789", line="Sales line", answered_by="Jane Smith",
                            duration_s=192, note="  Wants a viewing\n on Friday ")
    assert text == ("Incoming call from 07123 456789 to Sales line, answered by Jane Smith, "
                    "3 min 12 s. Note: Wants a viewing on Friday")
    assert call_description(caller="", line="", answered_by="", duration_s=None) == \
        "Incoming call from an unknown number."
    assert len(call_description(caller="1", line="", answered_by="", duration_s=1,
                                note="x" * 9000)) < 4000


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (45, "45 s"), (60, "1 min"), (192, "3 min 12 s"), (3600, "1 h"),
    (3720, "1 h 2 min"),
])
def test_spoken_duration(seconds: float, text: str) -> None:
    assert spoken_duration(seconds) == text


def test_links_fill_the_templates_percent_encoded() -> None:
    links = Links()
    assert links.record_url("OXF20000001") == "agencycloud://contacts/OXF20000001"
    assert links.journal_url("OXF20000001") == "agencycloud://contacts/OXF20000001/journal"
    assert links.search_url("07123 456789") == "agencycloud://contacts?communication=07123456789"
    assert links.search_url("+44 7123 456789") == (
        "agencycloud://contacts?communication=%2B447123456789")
    # an id or number from a payload cannot add a path, a query or a scheme
    assert fill("x://c/{id}", id="a/b?c=d&e") == "x://c/a%2Fb%3Fc%3Dd%26e"
    assert search_digits("anonymous") == "anonymous"


def test_which_failures_are_retried() -> None:
    assert all(is_retryable(s) for s in (0, 401, 408, 429, 500, 502, 503))
    assert not any(is_retryable(s) for s in (400, 403, 404, 409, 422))


def _queue(store: MemoryStore | None = None, now: float = 1000.0) -> JournalQueue:
    backoff = Backoff(base_s=5, cap_s=60, jitter=0, rng=random.Random(1))
    return JournalQueue(store or MemoryStore(), backoff=backoff, now=now)


def _entry(call: str = "c-1", contact: str = "OXF20000001", now: float = 1000.0) -> JournalEntry:
    return JournalEntry.new(call_id=call, contact_id=contact, description="Incoming call.",
                            negotiator_id="JAS", now=now)


def test_an_entry_is_handed_out_once_and_leaves_the_queue_when_posted() -> None:
    store = MemoryStore()
    q = _queue(store)
    e = _entry()
    assert q.add(e)
    assert not q.add(_entry())  # one entry per call and contact
    assert q.status("c-1") == "pending" and store.saves == 1
    [taken] = q.take_due(1000.0)
    assert taken.status == "sending"
    assert q.take_due(1000.0) == []  # in flight: not handed out again
    assert q.posted(e.id) is not None
    assert q.entries == [] and q.status("c-1") == "logged"
    assert not q.add(_entry())  # logged already
    assert e.body() == {"associatedType": "contact", "associatedId": "OXF20000001",
                        "description": "Incoming call.", "negotiatorId": "JAS"}


def test_a_failed_post_is_retried_with_growing_delays_and_a_422_is_kept_not_retried() -> None:
    q = _queue()
    e = _entry()
    q.add(e)
    q.take_due(1000.0)
    first = q.failed(e.id, status=503, reason="down", now=1000.0)
    assert first is not None and not first.rejected and first.retry_at == 1005.0
    assert q.take_due(1004.0) == [] and q.next_due() == 1005.0
    q.take_due(1005.0)
    second = q.failed(e.id, status=0, reason="no answer", now=1005.0)
    assert second is not None and second.retry_at == 1015.0  # doubled

    other = _entry("c-2")
    q.add(other)
    q.take_due(1015.0)
    q.failed(other.id, status=422, reason="associatedId: no contact", now=1015.0)
    assert q.status("c-2") == "rejected"
    assert all(x.id != other.id for x in q.take_due(10_000.0))  # never retried by itself
    [again] = q.retry("c-2", now=20_000.0)
    assert again.status == "pending" and q.take_due(20_000.0)[0].id == other.id


def test_the_queue_survives_a_restart_through_its_file(tmp_path) -> None:
    store = JsonFileStore(tmp_path / "data" / "journal.json")
    q = JournalQueue(store, backoff=Backoff(base_s=5, cap_s=60, jitter=0), now=1000.0)
    a, b, c = _entry("a"), _entry("b"), _entry("c")
    for e in (a, b, c):
        q.add(e)
    q.take_due(1000.0)  # all three in flight when the agent stops
    q.failed(b.id, status=422, reason="bad", now=1000.0)
    q.posted(c.id)
    assert not (tmp_path / "data" / "journal.tmp").exists()

    again = JournalQueue(JsonFileStore(tmp_path / "data" / "journal.json"), now=5000.0)
    assert {e.call_id: e.status for e in again.entries} == {"a": "pending", "b": "rejected"}
    assert [e.id for e in again.take_due(5000.0)] == [a.id]  # due at once after a restart
    assert again.status("c") == "logged"


def test_a_damaged_file_starts_empty_and_says_so() -> None:
    q = _queue(MemoryStore("{not json"))
    assert q.entries == [] and "could not be read" in q.load_error
    q2 = _queue(MemoryStore(json.dumps({"entries": [{"id": "x"}]})))
    assert q2.entries == [] and q2.load_error
