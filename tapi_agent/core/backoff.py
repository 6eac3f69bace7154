"""Reconnect timing: retry at once, then jittered exponential backoff, then a slow suspended pace.

Modelled on Ably's client spec, but faster at the start because a phone rings for only ~20 s.
Pure: callers pass the attempt number and how long they have been offline; nothing sleeps here.
"""

from __future__ import annotations

import random


class Backoff:
    """Delay before each reconnect attempt: 0, ~1, ~2, ~4, ~8, ~16, then ~30 s at most.

    `attempt` counts consecutive attempts since the last good connection, starting at 1: the
    first retry after a drop is immediate. Jitter only shortens a delay (never above the cap), so
    many agents that lost the same backend do not come back in lock-step.
    """

    def __init__(
        self,
        base_s: float = 1.0,
        factor: float = 2.0,
        cap_s: float = 30.0,
        jitter: float = 0.2,
        suspend_after_s: float = 120.0,
        rng: random.Random | None = None,
        *,
        stable_after_s: float = 5.0,
        restart_retry_s: float = 0.5,
        restart_window_s: float = 30.0,
    ) -> None:
        if base_s < 0 or factor < 1 or cap_s < base_s or not 0 <= jitter < 1:
            raise ValueError("backoff needs 0 <= base_s <= cap_s, factor >= 1, 0 <= jitter < 1")
        self.base_s = base_s
        self.factor = factor
        self.cap_s = cap_s
        self.jitter = jitter
        self.suspend_after_s = suspend_after_s
        # A connection that lives shorter than this does not earn instant retries again: a
        # backend that accepts and then drops every connection must not be hammered.
        self.stable_after_s = stable_after_s
        # After a close 1012 (backend restarting) a short restart is expected: poll at a quick
        # pace for a while so the agent is back within a second or so of the backend, instead
        # of sleeping through the moment it returns on a doubling backoff.
        self.restart_retry_s = restart_retry_s
        self.restart_window_s = restart_window_s
        self._rng = rng or random.Random()

    def next_delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (1 = the first retry: no wait)."""
        if attempt <= 1:
            return 0.0
        # Exponent capped so a long outage cannot overflow the float.
        raw = self.base_s * self.factor ** min(attempt - 2, 64)
        return self._jittered(min(raw, self.cap_s))

    def is_suspended(self, offline_for_s: float) -> bool:
        """True once the agent has been without a connection for `suspend_after_s` or more."""
        return offline_for_s >= self.suspend_after_s

    def suspended_delay(self) -> float:
        """Seconds between attempts while suspended (about the cap)."""
        return self._jittered(self.cap_s)

    def restart_delay(self) -> float:
        """Seconds between attempts while a restarting backend is expected back."""
        return self.restart_retry_s * (1.0 - 0.5 * self._rng.random())

    def delay(self, attempt: int, offline_for_s: float) -> tuple[float, bool]:
        """The wait before `attempt` and whether the connection now counts as suspended."""
        if self.is_suspended(offline_for_s):
            return self.suspended_delay(), True
        return self.next_delay(attempt), False

    def _jittered(self, value: float) -> float:
        return value * (1.0 - self.jitter * self._rng.random())
