"""MissedCalls: merge polls by deferred id, count unseen, delete only after seen, persist."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tapi_agent.core.missed import DeferredCall, MissedCalls
from tapi_agent.protocol import validate_envelope

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def deferred(did: str, minutes: int = 0, call_id: str | None = "c-1",
             caller: str = "07123 456789") -> DeferredCall:
    payload = {"created": "2026-01-05T09:00:00", "callerId": caller,
               "destinationId": "01865 000100"}
    if call_id:
        payload["id"] = call_id
    env = validate_envelope({
        "type": "telephony", "subType": "missedCall", "products": ["AgencyCloud"],
        "targets": {"negotiatorId": ["JAS"]}, "payload": payload,
    })
    return DeferredCall(did, T0 + timedelta(minutes=minutes), env)


def test_merge_returns_only_new_calls_newest_first() -> None:
    book = MissedCalls()
    first = book.merge([deferred("d1", 0, "a"), deferred("d2", 5, "b")])
    assert [c.deferred_id for c in first] == ["d2", "d1"]
    again = book.merge([deferred("d1", 0, "a"), deferred("d2", 5, "b"), deferred("d3", 1, "c")])
    assert [c.call_id for c in again] == ["c"]
    assert book.unseen_count == 3
    assert [c.deferred_id for c in book.calls] == ["d2", "d3", "d1"]


def test_merge_keeps_payload_fields_and_reads_id_less_calls() -> None:
    book = MissedCalls()
    (call,) = book.merge([deferred("d9", call_id=None, caller="01632 960123")])
    assert call.call_id is None
    assert call.caller == "01632 960123"
    assert call.destination == "01865 000100"
    assert call.created == T0
    assert call.seen is False


def test_mark_all_seen_clears_badge_and_hands_out_ids_to_delete() -> None:
    book = MissedCalls()
    book.merge([deferred("d1", 0, "a"), deferred("d2", 1, "b")])
    ids = book.mark_all_seen()
    assert sorted(ids) == ["d1", "d2"]
    assert book.unseen_count == 0
    assert all(c.seen for c in book.calls)  # still listed, now as seen


def test_seen_call_is_not_re_added_while_backend_still_lists_it() -> None:
    book = MissedCalls()
    book.merge([deferred("d1")])
    book.mark_all_seen()
    # the DELETE has not gone through yet: the next poll still returns d1
    assert book.merge([deferred("d1")]) == []
    book.confirm_deleted(["d1"])
    assert book.merge([deferred("d1")]) == []
    assert book.unseen_count == 0


def test_unconfirmed_delete_is_handed_out_again() -> None:
    book = MissedCalls()
    book.merge([deferred("d1")])
    assert book.mark_all_seen() == ["d1"]
    # the delete failed (offline); a later mark-seen retries it with the new ones
    book.merge([deferred("d2", 3, "x")])
    assert sorted(book.mark_all_seen()) == ["d1", "d2"]
    book.confirm_deleted(["d1", "d2"])
    assert book.pending_deletes() == []
    assert book.mark_all_seen() == []


def test_json_round_trip_keeps_seen_state_and_tombstones() -> None:
    book = MissedCalls()
    book.merge([deferred("d1", 0, "a"), deferred("d2", 2, "b")])
    book.mark_all_seen()
    book.confirm_deleted(["d1"])
    book.merge([deferred("d3", 4, "c")])

    loaded = MissedCalls.from_json(book.to_json())
    assert [(c.deferred_id, c.seen) for c in loaded.calls] == [
        ("d3", False), ("d2", True), ("d1", True)]
    assert loaded.unseen_count == 1
    assert loaded.pending_deletes() == ["d2"]
    assert loaded.merge([deferred("d1"), deferred("d2")]) == []


@pytest.mark.parametrize("text", ["", "not json", "[]", json.dumps({"calls": [{"x": 1}]})])
def test_damaged_file_loads_as_empty_list(text: str) -> None:
    book = MissedCalls.from_json(text)
    assert book.calls == []
    assert book.unseen_count == 0


def test_seen_list_is_trimmed_after_deletes() -> None:
    book = MissedCalls()
    book.merge([deferred(f"d{i}", i, f"c{i}") for i in range(80)])
    book.confirm_deleted(book.mark_all_seen())
    assert len(book.calls) == 50
    assert book.calls[0].deferred_id == "d79"  # the newest are kept
