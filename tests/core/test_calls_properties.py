"""CallBook properties over any order of a call's events, duplicates included (hypothesis)."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from tapi_agent.core.calls import CallBook, CallEvent, CallSettings, Change

T0 = 1_800_000_000.0
S = CallSettings(answered_elsewhere_close_s=3, linger_s=5, ring_timeout_s=60, stale_after_s=90)

# The events a provider may send for one call; any subset, any order, any repeats.
KINDS = {
    "ring": ("incomingCall", None),
    "ans_me": ("answeredCall", "ME"),
    "ans_other": ("answeredCall", "RPT"),
    "ans_anon": ("answeredCall", None),
    "end": ("endedCall", None),
    "end_me": ("endedCall", "ME"),
    "end_other": ("endedCall", "RPT"),
}


def make(kind: str, call_id: str | None, sent: float, hunt: bool) -> CallEvent:
    sub_type, by = KINDS[kind]
    return CallEvent(
        sub_type=sub_type, call_id=call_id, caller="07123 456789", destination="01234 567890",
        hunt_group=hunt, answered_by=by, created=datetime(2026, 11, 30, 10, 0), sent_at=sent,
    )


steps = st.lists(
    st.tuples(
        st.sampled_from(sorted(KINDS)),
        st.floats(min_value=0, max_value=40, allow_nan=False),  # gap before this arrival
        st.booleans(),  # tick the book before applying
    ),
    min_size=1,
    max_size=12,
)


def play(
    seq: list[tuple[str, float, bool]], call_id: str | None, hunt: bool = True
) -> tuple[CallBook, list[tuple[float, Change]], float]:
    """Deliver events (sentAt = when they arrive, so none is stale) with ticks in between."""
    book = CallBook("ME", S)
    log: list[tuple[float, Change]] = []
    now = T0
    for kind, gap, tick in seq:
        now += gap
        if tick:
            log.extend((now, c) for c in book.tick(now))
        log.extend((now, c) for c in book.apply(make(kind, call_id, now, hunt), now))
    return book, log, now


@settings(max_examples=300, deadline=None)
@given(seq=steps, with_id=st.booleans())
def test_a_finished_call_never_reopens(seq: list[tuple[str, float, bool]], with_id: bool) -> None:
    _book, log, _ = play(seq, "c1" if with_id else None)
    closed: set[str] = set()
    for _now, change in log:
        assert change.call.key not in closed, f"{change} after the call was closed"
        if change.action == "close":
            closed.add(change.call.key)
    if with_id:
        assert sum(c.action == "open" for _, c in log) <= 1


@settings(max_examples=300, deadline=None)
@given(seq=steps, with_id=st.booleans())
def test_no_pop_outlives_its_time(seq: list[tuple[str, float, bool]], with_id: bool) -> None:
    book, log, end = play(seq, "c1" if with_id else None)
    # Ringing pops never outlive the ring timeout, ended pops never outlive the linger.
    opened = {c.call.key: now for now, c in log if c.action == "open"}
    book.tick(end)
    for view in book.live:
        if view.state == "ringing":
            assert end - opened[view.key] < S.ring_timeout_s
    # Only a call someone picked up without it ending can stay: everything else is gone once
    # ring timeout + linger have passed with no further events.
    book.tick(end + S.ring_timeout_s + S.linger_s)
    for view in book.live:
        assert view.state in ("in_call", "answered"), view


@settings(max_examples=300, deadline=None)
@given(seq=steps)
def test_a_call_that_is_never_answered_leaves_no_pop(seq: list[tuple[str, float, bool]]) -> None:
    unanswered = [(k, g, t) for k, g, t in seq if k in ("ring", "end")]
    if not unanswered:
        return
    book, _log, end = play(unanswered, "c1")
    book.tick(end + S.ring_timeout_s + S.linger_s)
    assert book.live == []


@settings(max_examples=300, deadline=None)
@given(
    before=st.lists(st.sampled_from(["ring", "ans_anon"]), max_size=4),
    after=st.lists(st.sampled_from(sorted(KINDS)), max_size=4),
    with_id=st.booleans(),
)
def test_hunt_group_pop_closes_when_colleague_answers(
    before: list[str], after: list[str], with_id: bool
) -> None:
    call_id = "c1" if with_id else None
    book = CallBook("ME", S)
    now = T0
    for kind in ["ring", *before]:
        # Extra rings are redeliveries: they keep the original sentAt.
        book.apply(make(kind, call_id, T0 if kind == "ring" else now, True), now)
        now += 1
    assert [v.state for v in book.live] in (["ringing"], ["answered"])
    book.apply(make("ans_other", call_id, now, True), now)
    assert [v.state for v in book.live] == ["answered_elsewhere"]
    # Whatever else arrives (duplicates, late rings, ends, even a late answer by me), the pop
    # is gone once the short delay has passed, and it never comes back.
    for kind in after:
        book.apply(make(kind, call_id, T0 if kind == "ring" else now, True), now)
    book.tick(now + S.answered_elsewhere_close_s)
    assert book.live == []
    for kind in after:
        late = make(kind, call_id, T0 if kind == "ring" else now, True)
        assert book.apply(late, now + 4) == []
