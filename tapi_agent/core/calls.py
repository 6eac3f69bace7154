"""Call correlation: `CallBook` turns telephony events into pop Changes and a recent-call history.

Pure logic (DESIGN.md sections 3 and 6): time comes in as `now` (epoch seconds), results go out
as `Change`s that the UI renders. Per call: ringing -> answered -> ended; duplicates and late
events never move a call backwards or reopen a finished one (tombstones); events without an `id`
correlate by caller + destination; stale events go to history, never to a pop.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tapi_agent.protocol.wire import NotificationFrame

State = Literal["ringing", "in_call", "answered", "answered_elsewhere", "ended"]
SUB_TYPES = ("incomingCall", "answeredCall", "endedCall")

# How far along a call each state is: an event never moves a call to a lower rank.
_RANK = {"ringing": 0, "in_call": 1, "answered": 1, "answered_elsewhere": 1, "ended": 2}


@dataclass(frozen=True)
class CallEvent:
    """One telephony event as the CallBook sees it."""

    sub_type: str  # incomingCall | answeredCall | endedCall
    call_id: str | None
    caller: str
    destination: str
    hunt_group: bool
    answered_by: str | None
    created: datetime  # naive or aware, from the payload
    sent_at: float | None  # epoch seconds of the frame's sentAt (None if unknown)
    seq: int | None = None

    @classmethod
    def from_frame(cls, frame: NotificationFrame) -> CallEvent:
        """Build the event from a stream notification frame."""
        env = frame.notification
        p = env.payload
        return cls(
            sub_type=env.subType,
            call_id=p.id,
            caller=p.callerId,
            destination=p.destinationId,
            hunt_group=bool(p.huntGroup),
            answered_by=p.answered_by,
            created=p.created,
            sent_at=frame.sent_at_utc.timestamp(),
            seq=frame.seq,
        )


@dataclass
class CallSettings:
    """Timings of the call state machine (seconds) and the zone of naive payload times."""

    answered_elsewhere_close_s: float = 3.0
    linger_s: float = 5.0
    ring_timeout_s: float = 60.0
    stale_after_s: float = 90.0
    correlation_window_s: float = 30.0
    tombstone_s: float = 900.0
    # Finished calls older than `stale_after_s` are forgotten beyond this many (a burst of
    # calls must not keep 15 minutes of them); younger ones are always kept (see `_prune`).
    tombstone_limit: int = 1024
    history_size: int = 50
    timezone: str = "Europe/London"


@dataclass(frozen=True)
class CallView:
    """What a pop shows about one live call."""

    key: str
    call_id: str | None
    state: State
    caller: str
    destination: str
    hunt_group: bool
    answered_by: str | None
    rang_at: float
    answered_at: float | None
    ended_at: float | None
    sent_at: float | None
    closes_at: float | None = None  # when the pop will close by itself, if scheduled
    answered_by_me: bool = False

    @property
    def log_id(self) -> str:
        """The id to log: the provider's call id, or our key for calls without one."""
        return self.call_id or self.key


@dataclass(frozen=True)
class Change:
    """An instruction to the UI: open, update or close the pop of `call`, and why."""

    action: Literal["open", "update", "close"]
    call: CallView
    reason: str


@dataclass(frozen=True)
class HistoryEntry:
    """One finished (or never shown) call in the recent-call history."""

    key: str
    call_id: str | None
    caller: str
    destination: str
    at: float  # epoch seconds the call started ringing (as best known)
    outcome: str  # answered | answered_elsewhere | missed | ended | stale | dismissed | ...
    answered_by: str | None
    hunt_group: bool = False


@dataclass
class _Call:
    view: CallView
    last_event_at: float
    ring_deadline: float | None
    born: int = 0  # order of first sight (tick closes due calls oldest first)


class CallBook:
    """The state machine of every call the negotiator `me` sees; renders nothing itself."""

    def __init__(self, me: str, settings: CallSettings | None = None) -> None:
        self.me = me
        self.settings = settings or CallSettings()
        self._zone: tzinfo | None = None  # settings.timezone, loaded when first needed
        self._live: dict[str, _Call] = {}
        # Finished calls: call id -> when the tombstone expires, and the ids oldest burial
        # first (expiry order, as the tombstone time is fixed); id-less calls: key ->
        # (caller + destination, expiry, time of the call's last event).
        self._tomb_ids: dict[str, float] = {}
        self._tomb_order: deque[str] = deque()
        self._expiry = 0.0  # the last tombstone expiry, shared by calls buried in one second
        self._tomb_pairs: dict[str, tuple[tuple[str, str], float, float]] = {}
        self._history: deque[HistoryEntry] = deque(maxlen=self.settings.history_size)
        self.history_count = 0  # entries ever added (the history changed when this moved)
        self._anon = itertools.count(1)
        self._born = itertools.count()
        # Deadlines of live calls, (when, born, key), soonest first. An entry goes stale when
        # its call closes or gets another deadline; stale ones are skipped when they come up.
        # So an event or a tick costs O(log n), never a walk over every live call: a flood of
        # thousands of ringing calls keeps a constant cost per call (issue 14).
        self._deadlines: list[tuple[float, int, str]] = []

    # -- queries ---------------------------------------------------------------------------------

    @property
    def history(self) -> list[HistoryEntry]:
        """Recent calls, newest first (at most `history_size`)."""
        return list(reversed(self._history))

    @property
    def live(self) -> list[CallView]:
        """Calls that have a pop right now, oldest first."""
        return [c.view for c in self._live.values()]

    @property
    def live_count(self) -> int:
        """How many calls have a pop right now."""
        return len(self._live)

    def newest(self, n: int) -> list[CallView]:
        """The `n` newest live calls, newest first (O(n), whatever the number of live calls)."""
        return [c.view for c in itertools.islice(reversed(self._live.values()), max(0, n))]

    def get(self, key: str) -> CallView | None:
        """The live call with this key, if any."""
        call = self._live.get(key)
        return call.view if call else None

    def next_deadline(self) -> float | None:
        """When `tick` next has work to do, or None when nothing is scheduled."""
        heap = self._deadlines
        while heap and not self._due_entry(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def _due_entry(self, entry: tuple[float, int, str]) -> bool:
        """True while the heap entry still is a deadline of its live call."""
        when, born, key = entry
        call = self._live.get(key)
        return (call is not None and call.born == born
                and (when == call.view.closes_at or when == call.ring_deadline))

    def _schedule(self, call: _Call) -> None:
        for when in (call.view.closes_at, call.ring_deadline):
            if when is not None:
                heapq.heappush(self._deadlines, (when, call.born, call.view.key))

    def is_me(self, negotiator_id: str | None) -> bool:
        """True when `negotiator_id` is the signed-in negotiator (compared case-insensitively)."""
        return bool(negotiator_id) and str(negotiator_id).casefold() == self.me.casefold()

    # -- inputs ----------------------------------------------------------------------------------

    def apply(self, event: CallEvent, now: float) -> list[Change]:
        """Feed one event; return the pop changes it causes (often none)."""
        if event.sub_type not in SUB_TYPES:
            return []
        self._prune(now)
        call = self._find_live(event, now)
        if call is not None:
            return self._advance(call, event, now)
        if self._is_tombstoned(event, now):
            return []  # a duplicate or late event of a finished call: never resurrect it
        return self._first_sight(event, now)

    def tick(self, now: float) -> list[Change]:
        """Close pops whose time is up (ring timeout, linger, answered elsewhere)."""
        changes: list[Change] = []
        due: dict[str, _Call] = {}
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if self._due_entry(entry):
                due[entry[2]] = self._live[entry[2]]
        for call in sorted(due.values(), key=lambda c: c.born):
            v = call.view
            if v.closes_at is not None and now >= v.closes_at:
                reason = "answered_elsewhere" if v.state == "answered_elsewhere" else "ended"
                changes.append(self._close(call, reason, self._outcome(v), now))
            elif call.ring_deadline is not None and now >= call.ring_deadline:
                changes.append(self._close(call, "ring_timeout", "missed", now))
        self._prune(now)
        return changes

    def dismiss(self, key: str, now: float) -> list[Change]:
        """The user closed the pop of `key`."""
        call = self._live.get(key)
        if call is None:
            return []
        v = call.view
        outcome = "dismissed" if v.state == "ringing" else self._outcome(v)
        return [self._close(call, "dismissed", outcome, now)]

    def keep_open(self, key: str, until: float | None) -> bool:
        """Move when the ended call `key`'s pop closes: `until` (epoch seconds), or never while
        None (the user is writing a note to log the call). Only for ended calls; True if moved."""
        call = self._live.get(key)
        if call is None or call.view.state != "ended":
            return False
        call.view = replace(call.view, closes_at=until)
        self._schedule(call)
        return True

    def resync(self, now: float) -> list[Change]:
        """The event history can't be trusted (events were lost): close every live pop."""
        changes = []
        for call in list(self._live.values()):
            v = call.view
            outcome = "unknown" if v.state == "ringing" else self._outcome(v)
            changes.append(self._close(call, "resync", outcome, now))
        return changes

    # -- internals -------------------------------------------------------------------------------

    def _is_stale(self, event: CallEvent, now: float) -> bool:
        limit = self.settings.stale_after_s
        if event.sent_at is not None and now - event.sent_at > limit:
            return True
        # A naive `created` is in an unknown zone (the platform's own example has none): only a
        # zoned one may judge staleness.
        return event.created.tzinfo is not None and now - event.created.timestamp() > limit

    def _event_time(self, event: CallEvent, now: float) -> float:
        """When the event happened as best known: sentAt, else our clock (never the future)."""
        if event.sent_at is not None and event.sent_at <= now:
            return event.sent_at
        return now

    def _created_epoch(self, event: CallEvent) -> float:
        created = event.created
        if created.tzinfo is None:
            created = created.replace(tzinfo=self._timezone())
        return created.timestamp()

    def _timezone(self) -> tzinfo:
        """`settings.timezone`, loaded the first time a payload time comes without a zone:
        an agent that has seen no such call does not keep `zoneinfo` (and the `sysconfig` it
        imports), ~0.25 MiB (issue 14)."""
        if self._zone is None:
            from zoneinfo import ZoneInfo

            self._zone = ZoneInfo(self.settings.timezone)
        return self._zone

    def _find_live(self, event: CallEvent, now: float) -> _Call | None:
        if event.call_id is not None:
            return self._live.get(event.call_id)
        pair = (event.caller, event.destination)
        window = self.settings.correlation_window_s
        for call in reversed(list(self._live.values())):
            v = call.view
            if v.call_id is not None or (v.caller, v.destination) != pair:
                continue
            if event.sub_type == "incomingCall":
                # Another ring from the same pair while one rings is a duplicate, and so is a
                # redelivered ring (sent before the live call's latest event); a ring sent
                # after the first call was answered is the caller ringing again.
                latest = max(t for t in (v.rang_at, v.answered_at) if t is not None)
                if v.state == "ringing" and now - call.last_event_at <= window:
                    return call
                if event.sent_at is not None and event.sent_at <= latest:
                    return call
                if event.sent_at is None and now - call.last_event_at <= window:
                    return call
                continue
            # An answer or end may come long after the ring (a long call): match any live one.
            return call
        return None

    def _is_tombstoned(self, event: CallEvent, now: float) -> bool:
        if event.call_id is not None:
            return event.call_id in self._tomb_ids
        pair = (event.caller, event.destination)
        for p, _expiry, last in self._tomb_pairs.values():
            if p != pair:
                continue
            if event.sub_type != "incomingCall" or event.sent_at is None:
                return True
            # A ring sent after the finished call's last event is the caller ringing again, not
            # a redelivered duplicate.
            if event.sent_at <= last:
                return True
        return False

    def _prune(self, now: float) -> None:
        # Runs on every event and tick: only the oldest tombstones are looked at (amortised
        # O(1)), never the whole table.
        ids, order, s = self._tomb_ids, self._tomb_order, self.settings
        while order:
            expiry = ids[order[0]]
            # Over the limit, a tombstone may go once older than the stale limit: any event
            # sent before its call was buried is stale by then (history, never a pop).
            old = now - (expiry - s.tombstone_s) > s.stale_after_s
            if expiry <= now or (len(order) > s.tombstone_limit and old):
                del ids[order.popleft()]
            else:
                break
        if self._tomb_pairs:
            self._tomb_pairs = {k: v for k, v in self._tomb_pairs.items() if v[1] > now}

    def _tombstone(
        self, key: str, call_id: str | None, pair: tuple[str, str], last: float, now: float
    ) -> None:
        if call_id is not None:
            if call_id not in self._tomb_ids:
                self._tomb_order.append(call_id)
            # (Buried again: the later expiry holds; its place in the order stays, which
            # only delays pruning the ones behind it.) Rounded up to a whole second so that
            # a burst of calls shares one float instead of keeping one each.
            expiry = float(math.ceil(now + self.settings.tombstone_s))
            if expiry != self._expiry:
                self._expiry = expiry
            self._tomb_ids[call_id] = self._expiry
        else:
            self._tomb_pairs[key] = (pair, now + self.settings.correlation_window_s, last)

    def _new_key(self, event: CallEvent) -> str:
        # Id-less keys carry no phone number: keys end up in logs.
        return event.call_id if event.call_id is not None else f"anon-{next(self._anon)}"

    def _record(
        self, event: CallEvent, key: str, outcome: str, at: float, answered_by: str | None
    ) -> None:
        self._history.append(
            HistoryEntry(key, event.call_id, event.caller, event.destination, at, outcome,
                         answered_by, event.hunt_group)
        )
        self.history_count += 1

    def _first_sight(self, event: CallEvent, now: float) -> list[Change]:
        """An event for a call we have no pop for and have not finished."""
        key = self._new_key(event)
        pair = (event.caller, event.destination)
        stale = self._is_stale(event, now)
        by = event.answered_by
        if stale:
            at = event.sent_at if event.sent_at is not None else self._created_epoch(event)
            self._record(event, key, "stale", at, by)
            self._tombstone(key, event.call_id, pair, at, now)
            return []
        t = self._event_time(event, now)
        if event.sub_type == "incomingCall" and now >= t + self.settings.ring_timeout_s:
            # Delivered late (a replay) after it would already have timed out: missed, no pop.
            self._record(event, key, "missed", t, None)
            self._tombstone(key, event.call_id, pair, t, now)
            return []
        if event.sub_type == "incomingCall":
            view = CallView(
                key=key, call_id=event.call_id, state="ringing", caller=event.caller,
                destination=event.destination, hunt_group=event.hunt_group, answered_by=None,
                rang_at=t, answered_at=None, ended_at=None, sent_at=event.sent_at,
            )
            call = _Call(view, now, t + self.settings.ring_timeout_s, next(self._born))
            self._live[key] = call
            self._schedule(call)
            return [Change("open", view, "incoming")]
        if event.sub_type == "answeredCall" and self.is_me(by):
            # We missed the ring but the user picked the call up: show the call in progress.
            view = CallView(
                key=key, call_id=event.call_id, state="in_call", caller=event.caller,
                destination=event.destination, hunt_group=event.hunt_group, answered_by=by,
                rang_at=t, answered_at=t, ended_at=None, sent_at=event.sent_at,
                answered_by_me=True,
            )
            self._live[key] = _Call(view, now, None, next(self._born))
            return [Change("open", view, "answered")]
        # Answered by someone else / by nobody named, or ended, before we saw it ring: nothing
        # to pop; remember it so a late incomingCall does not ring.
        if event.sub_type == "answeredCall":
            outcome = "answered" if by is None else "answered_elsewhere"
        else:
            outcome = self._ended_outcome(by, answered=by is not None)
        self._record(event, key, outcome, t, by)
        self._tombstone(key, event.call_id, pair, t, now)
        return []

    def _advance(self, call: _Call, event: CallEvent, now: float) -> list[Change]:
        v = call.view
        t = self._event_time(event, now)
        by = event.answered_by or None
        if event.sub_type == "incomingCall":
            return []  # duplicate ring, or a late one after the answer
        if event.sub_type == "answeredCall":
            if _RANK[v.state] > 1:
                return []
            if _RANK[v.state] == 1 and not (v.answered_by is None and by is not None):
                return []  # duplicate answer; only a first named answerer adds anything
            call.last_event_at = now
            call.ring_deadline = None
            answered_at = v.answered_at if v.answered_at is not None else t
            if self.is_me(by):
                new = replace(v, state="in_call", answered_by=by, answered_at=answered_at,
                              answered_by_me=True, closes_at=None)
            elif by is not None:
                new = replace(v, state="answered_elsewhere", answered_by=by,
                              answered_at=answered_at,
                              closes_at=now + self.settings.answered_elsewhere_close_s)
            else:
                new = replace(v, state="answered", answered_at=answered_at, closes_at=None)
            call.view = new
            self._schedule(call)
            return [Change("update", new, new.state)]
        # endedCall
        if v.state in ("ended", "answered_elsewhere"):
            return []  # already closing; an answered-elsewhere pop closes on its own soon
        call.last_event_at = now
        call.ring_deadline = None
        answered_by = v.answered_by or by
        me = v.answered_by_me or self.is_me(answered_by)
        if v.state == "ringing" and by is not None and not me:
            # The answer event was lost; the end says a colleague had it.
            new = replace(v, state="answered_elsewhere", answered_by=by,
                          closes_at=now + self.settings.answered_elsewhere_close_s)
            call.view = new
            self._schedule(call)
            return [Change("update", new, "answered_elsewhere")]
        new = replace(v, state="ended", answered_by=answered_by, answered_by_me=me, ended_at=t,
                      closes_at=now + self.settings.linger_s)
        call.view = new
        self._schedule(call)
        return [Change("update", new, "ended")]

    def _ended_outcome(self, answered_by: str | None, answered: bool) -> str:
        if self.is_me(answered_by):
            return "answered"
        if answered_by is not None:
            return "answered_elsewhere"
        return "answered" if answered else "missed"

    def _outcome(self, v: CallView) -> str:
        if v.state == "ended":
            if v.answered_by_me:
                return "answered"
            if v.answered_by is not None:
                return "answered_elsewhere"
            return "ended" if v.answered_at is not None else "missed"
        if v.state == "answered_elsewhere":
            return "answered_elsewhere"
        if v.state in ("in_call", "answered"):
            return "answered"
        return "missed"

    def _close(self, call: _Call, reason: str, outcome: str, now: float) -> Change:
        v = call.view
        del self._live[v.key]
        last = max(t for t in (v.rang_at, v.answered_at, v.ended_at) if t is not None)
        self._tombstone(v.key, v.call_id, (v.caller, v.destination), last, now)
        self._history.append(
            HistoryEntry(v.key, v.call_id, v.caller, v.destination, v.rang_at, outcome,
                         v.answered_by, v.hunt_group)
        )
        self.history_count += 1
        return Change("close", replace(v, closes_at=None), reason)
