"""CallBook: the call state machine, table-driven over event sequences (DESIGN.md section 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tapi_agent.core.calls import CallBook, CallEvent, CallSettings
from tapi_agent.protocol import parse_server_frame

T0 = 1_800_000_000.0  # a fixed "now" in epoch seconds
CALLER = "07123 456789"
LINE = "01234 567890"


def ev(
    sub: str,
    call_id: str | None = "c1",
    *,
    by: str | None = None,
    at: float = T0,
    caller: str = CALLER,
    dest: str = LINE,
    hunt: bool = False,
    created: datetime | None = None,
    sent: float | str | None = "at",
) -> CallEvent:
    """An event sent at `at` (sentAt defaults to `at`; `sent=None` means unknown)."""
    sub_type = {"in": "incomingCall", "ans": "answeredCall", "end": "endedCall"}.get(sub, sub)
    return CallEvent(
        sub_type=sub_type, call_id=call_id, caller=caller, destination=dest, hunt_group=hunt,
        answered_by=by, created=created or datetime(2026, 11, 30, 10, 0, 0),
        sent_at=at if sent == "at" else sent,  # type: ignore[arg-type]
    )


def run(book: CallBook, steps: list[tuple[float, CallEvent | str]]) -> list[tuple[str, str, str]]:
    """Apply (offset, event | "tick") steps; return (action, state, reason) of every change."""
    out = []
    for offset, step in steps:
        now = T0 + offset
        changes = book.tick(now) if step == "tick" else book.apply(step, now)  # type: ignore[arg-type]
        out.extend((c.action, c.call.state, c.reason) for c in changes)
    return out


S = CallSettings(answered_elsewhere_close_s=3, linger_s=5, ring_timeout_s=60, stale_after_s=90)

TABLE = [
    pytest.param(
        [(0, ev("in")), (2, ev("ans", by="ME", at=T0 + 2)), (30, ev("end", at=T0 + 30)),
         (35, "tick")],
        [("open", "ringing", "incoming"), ("update", "in_call", "in_call"),
         ("update", "ended", "ended"), ("close", "ended", "ended")],
        ["answered"],
        id="ring-answer-by-me-end-linger-close",
    ),
    pytest.param(
        [(0, ev("in", hunt=True)), (2, ev("ans", by="RPT", at=T0 + 2, hunt=True)),
         (4.9, "tick"), (5, "tick")],
        [("open", "ringing", "incoming"), ("update", "answered_elsewhere", "answered_elsewhere"),
         ("close", "answered_elsewhere", "answered_elsewhere")],
        ["answered_elsewhere"],
        id="hunt-group-colleague-answers-closes-after-delay",
    ),
    pytest.param(
        [(0, ev("in")), (1, ev("ans", at=T0 + 1)), (200, "tick"), (300, ev("end", at=T0 + 300)),
         (305, "tick")],
        [("open", "ringing", "incoming"), ("update", "answered", "answered"),
         ("update", "ended", "ended"), ("close", "ended", "ended")],
        ["ended"],
        id="answered-by-nobody-named-stays-until-ended",
    ),
    pytest.param(
        [(0, ev("in")), (59, "tick"), (60, "tick")],
        [("open", "ringing", "incoming"), ("close", "ringing", "ring_timeout")],
        ["missed"],
        id="ring-timeout-is-missed",
    ),
    pytest.param(
        [(0, ev("in")), (10, ev("end", at=T0 + 10)), (15, "tick")],
        [("open", "ringing", "incoming"), ("update", "ended", "ended"),
         ("close", "ended", "ended")],
        ["missed"],
        id="ended-without-answer-is-missed",
    ),
    pytest.param(
        [(0, ev("in")), (1, ev("in")), (2, ev("ans", by="ME", at=T0 + 2)),
         (3, ev("ans", by="ME", at=T0 + 2)), (4, ev("in"))],
        [("open", "ringing", "incoming"), ("update", "in_call", "in_call")],
        [],
        id="duplicates-ignored",
    ),
    pytest.param(
        [(0, ev("in")), (1, ev("end", at=T0 + 1)), (6, "tick"), (7, ev("in")),
         (8, ev("ans", by="ME", at=T0 + 0.5))],
        [("open", "ringing", "incoming"), ("update", "ended", "ended"),
         ("close", "ended", "ended")],
        ["missed"],
        id="late-events-never-resurrect-a-finished-call",
    ),
    pytest.param(
        [(0, ev("ans", by="RPT")), (1, ev("in")), (2, ev("end", at=T0 + 2))],
        [],
        ["answered_elsewhere"],
        id="answered-elsewhere-before-incoming-opens-nothing",
    ),
    pytest.param(
        [(0, ev("ans", by="ME")), (1, ev("in")), (9, ev("end", at=T0 + 9)), (14, "tick")],
        [("open", "in_call", "answered"), ("update", "ended", "ended"),
         ("close", "ended", "ended")],
        ["answered"],
        id="answered-by-me-before-incoming-opens-in-call",
    ),
    pytest.param(
        [(0, ev("end")), (1, ev("in")), (2, ev("ans", by="ME", at=T0 + 2))],
        [],
        ["missed"],
        id="ended-before-incoming-only-records-history",
    ),
    pytest.param(
        [(0, ev("in", sent=T0 - 120))],
        [],
        ["stale"],
        id="stale-by-sent-at-goes-to-history",
    ),
    pytest.param(
        [(0, ev("in", sent=None,
                created=datetime.fromtimestamp(T0 - 3600, UTC)))],
        [],
        ["stale"],
        id="stale-by-zoned-created-goes-to-history",
    ),
    pytest.param(
        [(0, ev("in", sent=None, created=datetime(2001, 1, 1, 9, 0))), (60, "tick")],
        [("open", "ringing", "incoming"), ("close", "ringing", "ring_timeout")],
        ["missed"],
        id="naive-created-never-makes-a-call-stale",
    ),
    pytest.param(
        [(0, ev("in", sent=T0 - 70))],
        [],
        ["missed"],
        id="replayed-ring-older-than-ring-timeout-is-missed-without-a-pop",
    ),
    pytest.param(
        [(0, ev("in")), (5, ev("end", by="RPT", at=T0 + 5)), (8, "tick")],
        [("open", "ringing", "incoming"),
         ("update", "answered_elsewhere", "answered_elsewhere"),
         ("close", "answered_elsewhere", "answered_elsewhere")],
        ["answered_elsewhere"],
        id="end-naming-a-colleague-when-answer-was-lost",
    ),
    pytest.param(
        [(0, ev("in")), (1, ev("ans", at=T0 + 1)), (2, ev("ans", by="me", at=T0 + 2))],
        [("open", "ringing", "incoming"), ("update", "answered", "answered"),
         ("update", "in_call", "in_call")],
        [],
        id="a-named-answer-refines-an-anonymous-one-case-insensitively",
    ),
    pytest.param(
        [(0, ev("in", None)), (1, ev("in", None)), (2, ev("ans", None, by="ME", at=T0 + 2)),
         (40, ev("end", None, at=T0 + 40)), (45, "tick"), (46, ev("in", None, at=T0 + 1)),
         (50, ev("in", None, at=T0 + 50))],
        [("open", "ringing", "incoming"), ("update", "in_call", "in_call"),
         ("update", "ended", "ended"), ("close", "ended", "ended"),
         ("open", "ringing", "incoming")],
        ["answered"],
        id="without-id-correlate-by-caller-and-destination",
    ),
]


@pytest.mark.parametrize(("steps", "expected", "history"), TABLE)
def test_call_book_sequences(
    steps: list[tuple[float, CallEvent | str]],
    expected: list[tuple[str, str, str]],
    history: list[str],
) -> None:
    book = CallBook("ME", S)
    assert run(book, steps) == expected
    assert [h.outcome for h in book.history] == history


def test_several_calls_ring_at_once_and_close_independently() -> None:
    book = CallBook("ME", S)
    book.apply(ev("in", "a"), T0)
    book.apply(ev("in", "b", caller="07000 000001"), T0 + 1)
    book.apply(ev("in", "c", hunt=True), T0 + 2)
    assert [v.key for v in book.live] == ["a", "b", "c"]
    book.apply(ev("ans", "c", by="RPT", at=T0 + 3), T0 + 3)
    book.apply(ev("ans", "a", by="ME", at=T0 + 3), T0 + 3)
    closed = book.tick(T0 + 6)
    assert [(c.call.key, c.reason) for c in closed] == [("c", "answered_elsewhere")]
    assert {v.key: v.state for v in book.live} == {"a": "in_call", "b": "ringing"}
    closed = book.tick(T0 + 61)
    assert [(c.call.key, c.reason) for c in closed] == [("b", "ring_timeout")]


def test_next_deadline_is_the_earliest_scheduled_close_and_none_when_idle() -> None:
    book = CallBook("ME", S)
    assert book.next_deadline() is None
    book.apply(ev("in", "a"), T0)
    assert book.next_deadline() == T0 + 60
    book.apply(ev("ans", "a", by="RPT", at=T0 + 10), T0 + 10)
    assert book.next_deadline() == T0 + 13
    book.tick(T0 + 13)
    assert book.next_deadline() is None


def test_in_call_has_no_deadline_so_an_idle_timer_sleeps() -> None:
    book = CallBook("ME", S)
    book.apply(ev("in"), T0)
    book.apply(ev("ans", by="ME", at=T0 + 1), T0 + 1)
    assert book.next_deadline() is None


def test_dismiss_closes_the_pop_and_later_events_stay_quiet() -> None:
    book = CallBook("ME", S)
    book.apply(ev("in"), T0)
    changes = book.dismiss("c1", T0 + 1)
    assert [(c.action, c.reason) for c in changes] == [("close", "dismissed")]
    assert book.apply(ev("ans", by="ME", at=T0 + 2), T0 + 2) == []
    assert book.dismiss("c1", T0 + 3) == []
    assert [h.outcome for h in book.history] == ["dismissed"]


def test_resync_closes_every_live_pop_with_reason_resync() -> None:
    book = CallBook("ME", S)
    book.apply(ev("in", "a"), T0)
    book.apply(ev("in", "b"), T0)
    book.apply(ev("ans", "b", by="ME", at=T0), T0)
    changes = book.resync(T0 + 1)
    assert {(c.call.key, c.action, c.reason) for c in changes} == {
        ("a", "close", "resync"), ("b", "close", "resync")}
    assert book.live == []
    assert book.apply(ev("in", "a"), T0 + 2) == []


def test_history_keeps_the_newest_entries_first_up_to_its_size() -> None:
    book = CallBook("ME", CallSettings(history_size=50))
    for i in range(60):
        book.apply(ev("end", f"c{i}", at=T0 + i), T0 + i)
    history = book.history
    assert len(history) == 50
    assert history[0].call_id == "c59" and history[-1].call_id == "c10"


def test_tombstones_expire_after_their_time() -> None:
    book = CallBook("ME", CallSettings(tombstone_s=100))
    book.apply(ev("end"), T0)
    assert book.apply(ev("in", at=T0 + 50), T0 + 50) == []
    assert [c.action for c in book.apply(ev("in", at=T0 + 101), T0 + 101)] == ["open"]


def test_tombstones_beyond_the_limit_are_forgotten_once_older_than_the_stale_limit() -> None:
    settings = CallSettings(tombstone_s=900, tombstone_limit=10, stale_after_s=90)
    book = CallBook("ME", settings)
    for i in range(200):  # a burst: one finished call a second
        book.apply(ev("end", f"c{i}", at=T0 + i), T0 + i)
    now = T0 + 199
    # Calls buried within the stale limit are all kept, older ones only up to the limit.
    assert len(book._tomb_ids) == len(book._tomb_order) == 91
    assert "c108" not in book._tomb_ids and "c109" in book._tomb_ids
    # A ring re-sent now for a call buried 90 s ago still finds its tombstone: no pop, and
    # no second history entry.
    assert book.apply(ev("in", "c109", at=now), now) == []
    assert book.apply(ev("ans", "c150", by="ME", at=now), now) == []
    assert book.history[0].call_id == "c199" and len(book.history) == 50
    later = T0 + 400
    book.tick(later)
    assert len(book._tomb_ids) == 10  # quiet again: down to the limit


def test_a_long_soak_of_calls_keeps_the_tombstones_bounded() -> None:
    settings = CallSettings(ring_timeout_s=60, stale_after_s=90, tombstone_limit=100)
    book = CallBook("ME", settings)
    for i in range(5000):  # ten calls a second
        now = T0 + i / 10
        book.apply(ev("in", f"c{i}", at=now), now)
        book.apply(ev("end", f"c{i}", at=now), now)
        book.tick(now + settings.linger_s)
    assert len(book.live) == 0
    assert len(book._tomb_ids) <= 100 + 10 * 91
    assert book.apply(ev("in", "c4999", at=T0 + 499.9), T0 + 506) == []  # never reopens


def test_calls_buried_in_the_same_second_share_one_expiry() -> None:
    book = CallBook("ME", CallSettings(tombstone_s=100))
    for i in range(100):
        book.apply(ev("end", f"c{i}", at=T0 + 0.2 + i / 1000), T0 + 0.2 + i / 1000)
    expiries = list(book._tomb_ids.values())
    assert len({id(t) for t in expiries}) == 1 and expiries[0] == T0 + 101
    assert book.apply(ev("in", "c0", at=T0 + 100.5), T0 + 100.5) == []  # never early
    assert [c.action for c in book.apply(ev("in", "c0", at=T0 + 101), T0 + 101)] == ["open"]


def test_me_can_change_after_sign_in() -> None:
    book = CallBook("", S)
    book.me = "JAS"
    book.apply(ev("in"), T0)
    changes = book.apply(ev("ans", by="JAS", at=T0 + 1), T0 + 1)
    assert changes[0].call.state == "in_call" and changes[0].call.answered_by_me


def test_event_from_a_stream_frame() -> None:
    sent = datetime.fromtimestamp(T0, UTC)
    frame = parse_server_frame(
        '{"type":"notification","seq":7,"sentAt":"'
        + sent.isoformat().replace("+00:00", "Z")
        + '","notification":{"type":"telephony","subType":"answeredCall",'
        '"products":["AgencyCloud"],"targets":{"negotiatorId":["JAS"]},'
        '"payload":{"id":"ax2","created":"2023-11-01T10:28:00","callerId":"07123 456789",'
        '"destinationId":"01234 567890","huntGroup":true,"answeredById":"TST"}}}'
    )
    event = CallEvent.from_frame(frame)  # type: ignore[arg-type]
    assert event == CallEvent(
        sub_type="answeredCall", call_id="ax2", caller="07123 456789",
        destination="01234 567890", hunt_group=True, answered_by="TST",
        created=datetime(2023, 11, 1, 10, 28), sent_at=T0, seq=7,
    )


def test_ring_time_counts_from_sent_at_for_a_replayed_ring() -> None:
    book = CallBook("ME", S)
    changes = book.apply(ev("in", at=T0 - 20), T0)
    assert changes[0].call.rang_at == T0 - 20
    assert book.next_deadline() == T0 - 20 + 60
    # A sentAt in the future (clock skew) never pushes the ring time past now.
    book2 = CallBook("ME", S)
    assert book2.apply(ev("in", at=T0 + 30), T0)[0].call.rang_at == T0


def test_created_with_zone_within_the_limit_is_not_stale() -> None:
    book = CallBook("ME", S)
    created = datetime.fromtimestamp(T0, UTC) - timedelta(seconds=30)
    assert book.apply(ev("in", sent=None, created=created), T0)[0].action == "open"


def test_an_ended_pop_is_kept_open_while_a_note_is_written_then_closes() -> None:
    from tapi_agent.core.calls import CallBook, CallEvent, CallSettings

    def ev(sub: str, by: str | None = None) -> CallEvent:
        return CallEvent(sub, "k1", "07123 456789", "01234 567890", False, by,
                         datetime(2026, 1, 5, 9, 0), 100.0)

    book = CallBook("JAS", CallSettings(linger_s=5))
    book.apply(ev("incomingCall"), 100.0)
    assert not book.keep_open("k1", None)  # only an ended call's pop
    book.apply(ev("answeredCall", "JAS"), 101.0)
    book.apply(ev("endedCall", "JAS"), 110.0)
    assert book.keep_open("k1", None)
    assert book.tick(1000.0) == [] and book.next_deadline() is None  # held: never closes
    assert book.keep_open("k1", 1002.0)
    assert book.tick(1001.0) == []
    [change] = book.tick(1002.0)
    assert change.action == "close" and change.reason == "ended"
    assert not book.keep_open("k1", None)  # gone
