"""Connection state machine and continuity bookkeeping (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tapi_agent.core.backoff import Backoff
from tapi_agent.core.connection import (
    BoundedSet,
    CallKeys,
    ConnectionMachine,
    ConnState,
    Continuity,
    SeqWindow,
    Verdict,
)


def machine() -> ConnectionMachine:
    return ConnectionMachine(Backoff(jitter=0.0))


def test_unexpected_drop_retries_at_once_then_backs_off_1_2_4() -> None:
    m = machine()
    m.attempting(0.0)
    m.connected(1.0)
    first = m.lost(100.0)
    assert (first.state, first.retry_in_ms) == (ConnState.DISCONNECTED, 0)
    delays = []
    now = 100.0
    for _ in range(4):
        m.attempting(now)
        status = m.lost(now)
        delays.append(status.retry_in_ms)
        now += 0.1
    assert delays == [1000, 2000, 4000, 8000]
    assert m.status.detail.endswith("Reconnecting in 8 s")


def test_two_minutes_without_a_connection_is_suspended_with_thirty_second_retries() -> None:
    m = machine()
    m.attempting(0.0)
    m.connected(0.0)
    m.lost(10.0)
    now = 10.0
    while m.status.state is not ConnState.SUSPENDED:
        m.attempting(now)
        now += 20.0
        m.lost(now)
    assert now - 10.0 >= 120.0
    assert m.status.retry_in_ms == 30_000
    assert "Offline" in m.status.detail


def test_connected_resets_the_attempt_counter() -> None:
    m = machine()
    for t in range(5):
        m.attempting(float(t))
        m.lost(float(t))
    assert m.status.attempt == 5
    assert m.connected(10.0).attempt == 0
    assert m.attempting(20.0).attempt == 1


def test_immediate_reasons_skip_the_backoff() -> None:
    m = machine()
    for t in range(4):
        m.attempting(float(t))
        m.lost(float(t))
    assert m.lost(5.0, immediate=True, reason="woke from sleep").retry_in_ms == 0


def test_connections_that_keep_dying_young_stop_getting_instant_retries() -> None:
    m = machine()
    delays: list[int] = []
    now = 0.0
    for _ in range(5):
        m.attempting(now)
        m.connected(now)
        now += 0.5  # shorter than stable_after_s
        delays.append(m.lost(now, immediate=True).retry_in_ms or 0)
    assert delays[:2] == [0, 0]
    assert all(d > 0 for d in delays[2:])
    assert delays[2:] == sorted(delays[2:])


def test_failed_and_signed_out_stop_the_clock() -> None:
    m = machine()
    m.attempting(0.0)
    failed = m.failed("Forbidden: this negotiator may not receive notifications")
    assert (failed.state, failed.retry_in_ms) == (ConnState.FAILED, None)
    assert failed.detail.startswith("Forbidden")
    assert m.signed_out().state is ConnState.SIGNED_OUT


def test_first_welcome_starts_fresh_and_same_epoch_resumes_from_the_watermark() -> None:
    c = Continuity()
    first = c.on_welcome("e1")
    assert (first.resume_seq, first.epoch_changed) == (None, False)
    for seq in (1, 2, 3):
        assert c.accept("e1", seq, f"call{seq}", "incomingCall")
    again = c.on_welcome("e1")
    assert (again.resume_seq, again.epoch_changed) == (3, False)


def test_new_epoch_is_reported_and_restarts_the_sequence() -> None:
    c = Continuity()
    c.on_welcome("e1")
    assert c.accept("e1", 7, "a", "incomingCall")
    outcome = c.on_welcome("e2")
    # Resume the new run from 0: events posted while we reconnected are replayed.
    assert (outcome.resume_seq, outcome.epoch_changed, outcome.previous_epoch) == (
        0, True, "e1",
    )
    assert c.accept("e2", 1, "b", "incomingCall")
    assert c.last_seq == 1


def test_duplicates_by_seq_and_by_call_and_subtype_are_dropped() -> None:
    c = Continuity()
    c.on_welcome("e1")
    assert c.accept("e1", 1, "call", "incomingCall")
    assert not c.accept("e1", 1, "call", "incomingCall")
    assert not c.accept("e1", 2, "call", "incomingCall")  # same call re-sent with a new seq
    assert c.accept("e1", 3, "call", "answeredCall")
    assert c.accept("e1", 4, None, "incomingCall")
    assert c.accept("e1", 5, None, "incomingCall")  # no id: only the seq dedupes
    c.on_welcome("e2")
    assert not c.accept("e2", 1, "call", "incomingCall")  # same call across a backend restart


def test_watermark_never_passes_a_gap_so_a_resume_cannot_lose_the_missing_event() -> None:
    c = Continuity()
    c.on_welcome("e1")
    for seq in (1, 2, 4, 5):
        c.accept("e1", seq, None, "incomingCall")
    assert c.on_welcome("e1").resume_seq == 2
    assert c.accept("e1", 3, None, "incomingCall")
    assert c.last_seq == 5
    assert not c.accept("e1", 4, None, "incomingCall")


def test_a_gap_the_backend_reported_lost_is_skipped_and_never_moves_the_watermark_down() -> None:
    c = Continuity()
    c.on_welcome("e1")
    for seq in (1, 2, 9, 10, 12):  # 3-8 lost to the backend's retention, 11 still on its way
        c.accept("e1", seq, None, "incomingCall")
    assert c.on_welcome("e1").resume_seq == 2
    c.skip_lost(9)  # the incomplete replay started at 9
    assert c.last_seq == 10  # up to the next real gap, which a resume must still fill
    assert c.on_welcome("e1").resume_seq == 10
    c.skip_lost(4)  # an older report changes nothing
    assert c.last_seq == 10
    assert c.accept("e1", 11, None, "incomingCall")
    assert c.last_seq == 12


def test_frames_for_another_epoch_than_the_welcome_are_refused() -> None:
    c = Continuity()
    c.on_welcome("e1")
    assert not c.accept("old", 1, None, "incomingCall")


@given(st.permutations(list(range(1, 60))), st.integers(min_value=0, max_value=3))
def test_any_arrival_order_with_repeats_accepts_each_seq_exactly_once(
    order: list[int], repeats: int
) -> None:
    c = Continuity()
    c.on_welcome("e")
    accepted = [s for s in order + order[: repeats * 5] if c.accept("e", s, None, "x")]
    assert sorted(accepted) == list(range(1, 60))
    assert c.last_seq == 59


def test_joining_an_epoch_midway_anchors_on_the_first_event_and_accepts_stragglers() -> None:
    c = Continuity()
    c.on_welcome("e")
    assert c.accept("e", 42, None, "incomingCall")
    assert c.last_seq == 42
    assert c.accept("e", 41, None, "incomingCall")  # reordered just behind the first one
    assert not c.accept("e", 41, None, "incomingCall")
    assert c.on_welcome("e").resume_seq == 42


def test_memory_stays_bounded_when_a_gap_never_fills() -> None:
    c = Continuity(limit=100)
    c.on_welcome("e")
    c.accept("e", 1, None, "incomingCall")
    for seq in range(3, 5000):  # seq 2 never comes
        assert c.accept("e", seq, f"c{seq}", "incomingCall")
    assert len(c._ahead) <= 100
    assert len(c._seen) <= 100
    assert len(c._calls) <= 100
    assert c.last_seq >= 4999 - 101


def test_bounded_set_forgets_the_oldest() -> None:
    s = BoundedSet(3)
    for item in "abcd":
        s.add(item)
    assert "a" not in s
    assert all(x in s for x in "bcd")


def test_bounded_set_does_not_count_a_member_twice() -> None:
    s = BoundedSet(2)
    for item in "aab":
        s.add(item)
    assert len(s) == 2 and "a" in s and "b" in s


def test_after_many_events_the_dedupe_holds_its_limit_and_still_drops_a_recent_duplicate() -> (
    None
):
    c = Continuity(limit=64)
    c.on_welcome("e")
    for seq in range(1, 20_001):
        kind = ("incomingCall", "answeredCall", "endedCall")[seq % 3]
        assert c.accept("e", seq, f"call-{seq // 3}", kind)
    assert len(c._seen) <= 64
    assert len(c._calls) <= 64
    assert not c.accept("e", 19_990, "call-6663", "incomingCall")  # redelivered, inside
    assert not c.accept("e", 20_001, "call-6666", "endedCall")  # same call event, new seq
    assert c.accept("e", 20_002, "call-6667", "incomingCall")  # a new call still gets in
    assert c.last_seq == 20_002


def test_a_seq_far_below_the_window_is_dropped_as_a_repeat() -> None:
    c = Continuity(limit=64)
    c.on_welcome("e")
    for seq in range(1, 201):
        c.accept("e", seq, None, "incomingCall")
    # The backend retains far fewer events than the window: a seq this old was seen.
    assert not c.accept("e", 100, None, "incomingCall")


def test_a_new_epoch_restarts_the_seq_window_but_keeps_the_calls() -> None:
    c = Continuity(limit=64)
    c.on_welcome("e1")
    for seq in range(1, 101):
        c.accept("e1", seq, f"c{seq}", "incomingCall")
    c.on_welcome("e2")
    assert len(c._seen) == 0
    assert c.accept("e2", 1, "new", "incomingCall")  # seq 1 again, in the new run
    assert not c.accept("e2", 2, "c100", "incomingCall")  # a call seen before the restart


def test_seq_window_slides_up_and_remembers_only_its_width() -> None:
    w = SeqWindow(8)
    for seq in (5, 3, 9):
        w.add(seq)
    assert all(s in w for s in (3, 5, 9)) and 4 not in w and 10 not in w
    w.add(100)  # a jump wider than the window: only 100 is left
    assert 100 in w and 99 not in w and len(w) == 1
    assert 92 in w  # below the window: counted as seen
    w.clear()
    assert 100 not in w and len(w) == 0


def test_call_keys_keep_one_entry_per_call_and_forget_the_oldest_call() -> None:
    keys = CallKeys(2)
    assert keys.add("a", "incomingCall") and keys.add("a", "answeredCall")
    assert not keys.add("a", "incomingCall")
    assert keys.add("b", "incomingCall") and keys.add("c", "incomingCall")
    assert len(keys) == 2
    assert keys.add("a", "incomingCall")  # forgotten: the oldest call went first
    assert not keys.add("c", "incomingCall")


def test_call_keys_tell_unknown_sub_types_apart() -> None:
    keys = CallKeys(8)
    assert keys.add("a", "x") and keys.add("a", "y")
    assert not keys.add("a", "x") and not keys.add("a", "y")


def test_after_a_restart_close_retries_stay_quick_for_the_restart_window() -> None:
    m = machine()
    m.attempting(0.0)
    m.connected(0.0)
    assert m.lost(60.0, immediate=True, restarting=True).retry_in_ms == 0
    quick = []
    for t in range(61, 89, 2):  # inside the 30 s window: never the doubling backoff
        m.attempting(float(t))
        quick.append(m.lost(float(t)).retry_in_ms)
    assert all(q is not None and 250 <= q <= 500 for q in quick)
    m.attempting(95.0)
    assert m.lost(95.0).retry_in_ms == 30_000  # window over: the normal (capped) backoff
    m.connected(96.0)
    assert m.lost(200.0).retry_in_ms == 0
    m.attempting(200.0)
    assert m.lost(200.0).retry_in_ms == 1000  # a later ordinary drop backs off normally


def test_a_reconnect_the_restarting_backend_drops_again_keeps_retries_quick() -> None:
    # 1012, the agent reconnects at once, the old server (still going down) welcomes it and
    # drops it; the backend is then away for a while: retries must stay quick, not double.
    m = machine()
    m.attempting(0.0)
    m.connected(0.0)
    assert m.lost(60.0, immediate=True, restarting=True).retry_in_ms == 0
    m.attempting(60.0)
    m.connected(60.05)
    delays = [m.lost(60.1, reason="closed with code 1006").retry_in_ms]
    for t in (60.5, 61.0, 61.5, 62.0, 62.5, 63.0):
        m.attempting(t)
        delays.append(m.lost(t).retry_in_ms)
    assert all(d is not None and d <= 500 for d in delays), delays
    # Once a connection has lived long enough to be stable, that restart is over.
    m.attempting(64.0)
    m.connected(64.0)
    assert m.lost(80.0).retry_in_ms == 0  # first drop of a stable link: at once
    m.attempting(80.0)
    assert m.lost(80.0).retry_in_ms == 1000  # then the ordinary backoff


def test_a_seq_implausibly_far_ahead_never_becomes_the_high_water_mark() -> None:
    c = Continuity(limit=64)
    c.on_welcome("e")
    for seq in (1, 2, 3):
        assert c.accept("e", seq, None, "incomingCall")
    assert c.classify("e", 3 + 65, "x", "incomingCall") is Verdict.IMPLAUSIBLE
    assert c.classify("e", 3 + 64, "x", "incomingCall") is Verdict.NEW  # a gap within reach
    assert not c.accept("e", 10**9, "glitch", "incomingCall")
    assert c.highest == 3 and c.last_seq == 3
    assert c.accept("e", 4, None, "incomingCall")  # the next event is still new
    assert c.classify("e", 10**9 + 1, None, "incomingCall") is Verdict.IMPLAUSIBLE  # forgotten


def test_two_far_seqs_that_agree_mean_the_numbering_moved_and_nothing_retained_is_skipped(
) -> None:
    c = Continuity(limit=64)
    c.on_welcome("e")
    c.accept("e", 1, None, "incomingCall")
    c.suspect(500)
    assert c.classify("e", 501, None, "incomingCall") is Verdict.MOVED
    assert c.classify("e", 500, None, "incomingCall") is Verdict.IMPLAUSIBLE  # the same again
    # Up: resume from the watermark, so the backend replays all it still holds after it (a
    # stall that outran the backend's retention looks just like this).
    assert c.rebase() == 1
    assert c.on_welcome("e").resume_seq == 1
    assert c.classify("e", 500, None, "incomingCall") is Verdict.NEW
    assert c.accept("e", 300, None, "incomingCall")  # retained events of the gap still count


def test_numbering_that_moved_down_resumes_just_before_the_new_range() -> None:
    c = Continuity(limit=64)
    c.on_welcome("e")
    c.accept("e", 10**9, None, "incomingCall")  # a bogus first frame anchored the window
    assert not c.accept("e", 42, None, "incomingCall")
    assert not c.accept("e", 43, None, "incomingCall")  # moved: rebased
    assert c.on_welcome("e").resume_seq == 41


def test_classify_remembers_nothing_until_record() -> None:
    c = Continuity()
    c.on_welcome("e")
    assert c.classify("e", 1, "a", "incomingCall") is Verdict.NEW
    assert c.classify("e", 1, "a", "incomingCall") is Verdict.NEW
    c.record(1, "a", "incomingCall")
    assert c.classify("e", 1, None, "incomingCall") is Verdict.DUPLICATE
    assert c.classify("e", 2, "a", "incomingCall") is Verdict.DUPLICATE
    assert c.classify("other", 2, "b", "incomingCall") is Verdict.FOREIGN
