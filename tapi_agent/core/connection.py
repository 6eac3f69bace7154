"""The stream connection's state machine and its continuity bookkeeping (pure, no sockets).

`ConnectionMachine` decides the state shown in the tray and how long to wait before the next
attempt; `Continuity` remembers the backend's epoch and the events already seen, so the stream
client can resume after a drop and drop duplicates. Time comes in as `now` (monotonic seconds).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum

from tapi_agent.core.backoff import Backoff


class ConnState(StrEnum):
    """Where the stream connection is (DESIGN.md section 7, `connection.state`)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    SUSPENDED = "suspended"
    SIGNED_OUT = "signed_out"
    FAILED = "failed"


@dataclass(frozen=True)
class ConnectionStatus:
    """A snapshot for the tray: the state, the attempt number, the wait before the next try."""

    state: ConnState
    attempt: int
    retry_in_ms: int | None
    detail: str = ""


def _seconds_text(delay_s: float) -> str:
    return f"{max(1, math.ceil(delay_s))} s"


class ConnectionMachine:
    """Connection states and retry timing: instant retry, then backoff, then `suspended`.

    The caller reports what happened (`attempting`, `connected`, `lost`, `failed`,
    `signed_out`) and gets the new status back; `lost` also says how long to wait.
    """

    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()
        self._status = ConnectionStatus(ConnState.DISCONNECTED, 0, None, "Not connected yet")
        self._attempt = 0  # attempts since the last successful connection
        self._quick_drops = 0  # consecutive connections that died before being stable
        self._connected_at: float | None = None
        self._offline_since: float | None = None
        self._restart_until: float | None = None  # a restarting backend is expected back

    @property
    def status(self) -> ConnectionStatus:
        """The current status."""
        return self._status

    @property
    def retry_delay_s(self) -> float | None:
        """Seconds to wait before the next attempt, as decided by the last `lost`."""
        ms = self._status.retry_in_ms
        return None if ms is None else ms / 1000.0

    def attempting(self, now: float) -> ConnectionStatus:
        """A connection attempt starts."""
        if self._offline_since is None:
            self._offline_since = now
        self._attempt += 1
        detail = "Connecting" if self._attempt <= 1 else f"Connecting (attempt {self._attempt})"
        return self._set(ConnState.CONNECTING, self._attempt, None, detail)

    def connected(self, now: float) -> ConnectionStatus:
        """The backend welcomed us."""
        self._attempt = 0
        # The restart window (close 1012) stays open until this connection proves stable:
        # a backend on its way down can still welcome a reconnect and then drop it.
        self._connected_at = now
        self._offline_since = None
        return self._set(ConnState.CONNECTED, 0, None, "Connected")

    def lost(
        self, now: float, *, immediate: bool = False, restarting: bool = False, reason: str = ""
    ) -> ConnectionStatus:
        """The connection (or an attempt) ended; decide the wait before the next attempt.

        `immediate` asks for an instant retry (backend restarting, token refreshed, wake from
        sleep); it is granted unless connections keep dying young, which then back off.
        `restarting` (close 1012) keeps retries quick for `Backoff.restart_window_s`.
        """
        if self._connected_at is not None:
            lived = now - self._connected_at
            stable = lived >= self.backoff.stable_after_s
            self._quick_drops = 0 if stable else self._quick_drops + 1
            if stable:
                self._restart_until = None  # that restart is over
            self._connected_at = None
        if restarting:
            self._restart_until = now + self.backoff.restart_window_s
        if self._offline_since is None:
            self._offline_since = now
        offline_for = now - self._offline_since
        upcoming = max(self._attempt + 1, self._quick_drops)
        if immediate and self._quick_drops < 3:
            delay, suspended = 0.0, False
        elif self._restart_until is not None and now < self._restart_until:
            delay, suspended = self.backoff.restart_delay(), False
        else:
            delay, suspended = self.backoff.delay(upcoming, offline_for)
        prefix = f"Connection lost ({reason}). " if reason else ""
        if suspended:
            return self._set(
                ConnState.SUSPENDED, self._attempt, round(delay * 1000),
                f"{prefix}Offline, retrying in {_seconds_text(delay)}",
            )
        wait = "Reconnecting now" if delay <= 0 else f"Reconnecting in {_seconds_text(delay)}"
        return self._set(ConnState.DISCONNECTED, self._attempt, round(delay * 1000), prefix + wait)

    def failed(self, detail: str) -> ConnectionStatus:
        """Retrying cannot help (forbidden, insecure URL): stop until the user acts."""
        self._connected_at = None
        return self._set(ConnState.FAILED, self._attempt, None, detail)

    def signed_out(self, detail: str = "Signed out: sign in again") -> ConnectionStatus:
        """The session is gone: no token, no connection, until the user signs in again."""
        self._connected_at = None
        return self._set(ConnState.SIGNED_OUT, self._attempt, None, detail)

    def restart(self) -> None:
        """Forget the attempt count (the user asked to try again after `failed`/`signed_out`)."""
        self._attempt = 0
        self._quick_drops = 0
        self._restart_until = None

    def _set(
        self, state: ConnState, attempt: int, retry_in_ms: int | None, detail: str
    ) -> ConnectionStatus:
        self._status = ConnectionStatus(state, attempt, retry_in_ms, detail)
        return self._status


class BoundedSet:
    """A set that forgets its oldest members beyond `limit` (memory stays flat for months).

    A plain set plus a deque of insertion order (a few pointers per member, far less than an
    ordered dict's node); adding a member it already holds changes nothing.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: set[Hashable] = set()
        self._order: deque[Hashable] = deque()

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: Hashable) -> None:
        """Remember `item`, forgetting the oldest one when full."""
        if item in self._items:
            return
        self._items.add(item)
        self._order.append(item)
        while len(self._order) > self.limit:
            self._items.discard(self._order.popleft())

    def clear(self) -> None:
        """Forget everything."""
        self._items.clear()
        self._order.clear()


class SeqWindow:
    """The seqs seen among the newest `size` by value (one bit each, in one int).

    A seq more than `size` below the highest seen counts as seen: the backend retains far
    fewer unacknowledged events than that (DESIGN.md section 4), so it can only be a repeat.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._top: int | None = None
        self._bits = 0  # bit i set: seq `_top - i` was seen
        self._mask = (1 << size) - 1

    def __len__(self) -> int:
        """How many seqs in the window were seen."""
        return self._bits.bit_count()

    @property
    def top(self) -> int | None:
        """The highest seq seen (None before the first)."""
        return self._top

    def __contains__(self, seq: int) -> bool:
        top = self._top
        if top is None or seq > top:
            return False
        age = top - seq
        return age >= self.size or bool(self._bits >> age & 1)

    def add(self, seq: int) -> None:
        """Remember `seq` (the window slides up when it is the highest so far)."""
        top = self._top
        if top is None or seq > top:
            shift = 0 if top is None else seq - top
            self._bits = ((self._bits << shift) | 1) & self._mask if shift < self.size else 1
            self._top = seq
        elif top - seq < self.size:
            self._bits |= 1 << (top - seq)

    def clear(self) -> None:
        """Forget everything (a new epoch numbers from 1 again)."""
        self._top = None
        self._bits = 0


# One bit per subType in the per-call dedupe (masks stay small ints, which Python shares).
_SUB_TYPE_BITS = {"incomingCall": 1, "answeredCall": 2, "endedCall": 4, "missedCall": 8}
_MAX_SUB_TYPE_BITS = 62


class CallKeys:
    """The (callId, subType) pairs seen, for the newest `limit` calls: one entry per call.

    A call id maps to a bit mask of its subTypes, so a call costs one dict slot (and its id,
    which the CallBook holds anyway) instead of one tuple per event.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._masks: dict[str, int] = {}
        self._order: deque[str] = deque()
        self._bits = dict(_SUB_TYPE_BITS)

    def __len__(self) -> int:
        """How many calls are remembered."""
        return len(self._masks)

    def _bit(self, sub_type: str) -> int:
        bit = self._bits.get(sub_type)
        if bit is None:
            # Envelope validation admits only a handful of subTypes; anything else shares
            # the last bit rather than letting the table grow.
            bit = 1 << min(len(self._bits), _MAX_SUB_TYPE_BITS)
            if len(self._bits) < _MAX_SUB_TYPE_BITS:
                self._bits[sub_type] = bit
        return bit

    def seen(self, call_id: str, sub_type: str) -> bool:
        """Whether the pair is remembered (nothing changes)."""
        bit = self._bits.get(sub_type, 1 << _MAX_SUB_TYPE_BITS)
        return bool(self._masks.get(call_id, 0) & bit)

    def add(self, call_id: str, sub_type: str) -> bool:
        """Remember the pair; False when it was already there (a duplicate)."""
        bit = self._bit(sub_type)
        mask = self._masks.get(call_id)
        if mask is None:
            self._masks[call_id] = bit
            self._order.append(call_id)
            while len(self._order) > self.limit:
                del self._masks[self._order.popleft()]
            return True
        if mask & bit:
            return False
        self._masks[call_id] = mask | bit
        return True


@dataclass(frozen=True)
class WelcomeOutcome:
    """What to do after a `welcome`: resume from `resume_seq` (None: fresh) and/or resync."""

    resume_seq: int | None
    epoch_changed: bool
    previous_epoch: str | None


class Verdict(StrEnum):
    """What `Continuity.classify` makes of a notification's epoch and seq."""

    NEW = "new"  # hand it over, then `record` it
    DUPLICATE = "duplicate"  # seen before (by seq, or the same call event under a new seq)
    FOREIGN = "foreign"  # not the epoch of this connection's welcome
    IMPLAUSIBLE = "implausible"  # a seq too far from the others to trust: a continuity break
    MOVED = "moved"  # a second far seq agrees with the first: the numbering really moved


class Continuity:
    """The backend epoch and the events seen: the resume point and the duplicate filter.

    `last_seq` is a watermark: every seq from the start of our view of the epoch up to it was
    seen, so resuming from it cannot skip an event that arrived out of order. Events are
    deduplicated by seq within the epoch (a window of the newest `limit` seqs, one bit each)
    and by (callId, subType) across epochs (the newest `limit` calls).

    `limit` only needs to cover what can come again: the backend retains at most 1,000
    unacknowledged events (DESIGN.md section 4), and a finished call's late events are also
    stopped by the CallBook's tombstones; the default is twice the retention.

    A seq more than `limit` above or below the highest seen is implausible (issue 14): it never
    becomes the high-water mark (one bad frame would otherwise make every later event look like
    a repeat). The stream client rejects such a frame unacknowledged and resyncs. Only when the
    next far frame agrees with it (within `limit`) has the numbering really moved: `rebase`
    forgets the old window and resumes from the watermark or from just before the first far
    seq, whichever is lower, and a reconnect has the backend replay what it still holds from
    there (a long stall that outran the backend's retention looks like this too: the replay
    then says it is incomplete, and the pops resync).

    `classify` only looks; `record` remembers an event once it was handled, so an event that
    fails on the way to the GUI is not marked seen and comes again.
    """

    def __init__(self, limit: int = 2048) -> None:
        self.limit = limit
        self.epoch: str | None = None
        self.last_seq = 0
        self._based = False  # whether last_seq is anchored in this epoch yet
        self._ahead: set[int] = set()  # seen seqs above the watermark, current epoch
        # Seqs of the current epoch only: frames of any other epoch are refused before this.
        self._seen = SeqWindow(limit)
        self._calls = CallKeys(limit)  # survives a new epoch: a restart may resend a call
        self._suspect: int | None = None  # the last implausible seq, until a plausible one

    def on_welcome(self, epoch: str) -> WelcomeOutcome:
        """A connection was welcomed in `epoch`: resume if we know it, note when it changed.

        After a backend restart (new epoch) we resume from 0 as well: events posted while we
        were reconnecting are retained by the new run but would otherwise never reach us.
        """
        previous = self.epoch
        if previous == epoch:
            return WelcomeOutcome(self.last_seq, False, previous)
        self.epoch = epoch
        self.last_seq = 0
        self._ahead.clear()
        self._seen.clear()
        self._suspect = None
        if previous is None:
            # First contact: we join the epoch mid-way; anchor on the first event we see.
            self._based = False
            return WelcomeOutcome(None, False, None)
        self._based = True
        return WelcomeOutcome(0, True, previous)

    @property
    def highest(self) -> int | None:
        """The highest seq seen in this epoch (None before the first)."""
        return self._seen.top

    def classify(self, epoch: str, seq: int, call_id: str | None, sub_type: str) -> Verdict:
        """What the event is, without remembering anything."""
        if epoch != self.epoch:
            # Frames only come after the welcome that set the epoch; anything else is foreign.
            return Verdict.FOREIGN
        top = self._seen.top
        if top is not None and not top - self.limit < seq <= top + self.limit:
            s = self._suspect
            if s is not None and s != seq and abs(seq - s) <= self.limit:
                return Verdict.MOVED
            return Verdict.IMPLAUSIBLE
        if seq in self._seen:
            return Verdict.DUPLICATE
        if call_id is not None and self._calls.seen(call_id, sub_type):
            return Verdict.DUPLICATE
        return Verdict.NEW

    def suspect(self, seq: int) -> None:
        """Note an implausible seq: a next far seq near it means the numbering moved."""
        self._suspect = seq

    def rebase(self) -> int:
        """The numbering moved to around the suspect seq: forget the seq window and return the
        resume point, the watermark or just before the suspect, whichever is lower, so that a
        reconnect replays the suspect and whatever the backend still holds after the
        watermark (nothing retained is skipped)."""
        assert self._suspect is not None
        if self._suspect - 1 < self.last_seq:
            self.last_seq = max(0, self._suspect - 1)
            self._ahead.clear()
        self._seen.clear()
        self._based = True
        self._suspect = None
        return self.last_seq

    def skip_lost(self, lowest: int) -> None:
        """The backend said events after the watermark were lost to its retention (an
        incomplete replay) and replayed from `lowest`: nothing below it can come again (it was
        lost, or acknowledged already), so the watermark moves up to just before it. The next
        resume then starts after the loss, and the backend does not report it again (each
        report makes the pops resync)."""
        if lowest - 1 <= self.last_seq:
            return
        self.last_seq = lowest - 1
        self._based = True
        self._ahead = {s for s in self._ahead if s > self.last_seq}
        self._advance()

    def record(self, seq: int, call_id: str | None, sub_type: str) -> None:
        """Remember a handled event (idempotent)."""
        self._suspect = None  # a plausible seq: the last far one was a glitch
        if seq not in self._seen:
            self._seen.add(seq)
            if not self._based:
                self.last_seq = seq - 1
                self._based = True
            if seq > self.last_seq:
                self._ahead.add(seq)
                self._advance()
        if call_id is not None:
            self._calls.add(call_id, sub_type)

    def accept(self, epoch: str, seq: int, call_id: str | None, sub_type: str) -> bool:
        """True when the event is new (and remember it); False for anything else."""
        verdict = self.classify(epoch, seq, call_id, sub_type)
        if verdict is Verdict.NEW:
            self.record(seq, call_id, sub_type)
        elif verdict is Verdict.DUPLICATE:
            self.record(seq, None, sub_type)
        elif verdict is Verdict.IMPLAUSIBLE:
            self.suspect(seq)
        elif verdict is Verdict.MOVED:
            self.rebase()
        return verdict is Verdict.NEW

    def _advance(self) -> None:
        while self.last_seq + 1 in self._ahead:
            self.last_seq += 1
            self._ahead.discard(self.last_seq)
        if len(self._ahead) > self.limit:
            # A gap that never fills (an event acknowledged by another of our connections, or
            # not for our product): jump the watermark to the oldest seq we hold so memory
            # stays bounded. Reordering is never thousands of frames wide.
            self.last_seq = min(self._ahead)
            self._ahead.discard(self.last_seq)
            self._advance()
