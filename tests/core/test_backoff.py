"""Backoff policy: instant first retry, jittered doubling, a cap, a suspended pace."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tapi_agent.core.backoff import Backoff


def test_first_retry_after_a_drop_is_immediate() -> None:
    assert Backoff().next_delay(1) == 0.0


def test_delays_double_from_one_second_and_stop_at_thirty() -> None:
    backoff = Backoff(jitter=0.0)
    assert [backoff.next_delay(n) for n in range(1, 9)] == [0, 1, 2, 4, 8, 16, 30, 30]


def test_jitter_only_shortens_the_delay_within_its_fraction() -> None:
    backoff = Backoff(jitter=0.2, rng=random.Random(7))
    for attempt in range(2, 12):
        nominal = min(2.0 ** (attempt - 2), 30.0)
        samples = [backoff.next_delay(attempt) for _ in range(200)]
        assert all(nominal * 0.8 <= s <= nominal for s in samples)
        assert len(set(samples)) > 100  # agents do not come back in lock-step


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert Backoff(jitter=0.0).next_delay(10_000) == 30.0


def test_two_minutes_offline_switches_to_the_suspended_pace() -> None:
    backoff = Backoff(jitter=0.0)
    assert backoff.delay(3, offline_for_s=119.0) == (2.0, False)
    assert backoff.delay(3, offline_for_s=120.0) == (30.0, True)


@pytest.mark.parametrize(
    "kwargs", [{"base_s": -1}, {"factor": 0.5}, {"cap_s": 0.5}, {"jitter": 1.0}]
)
def test_nonsense_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)
