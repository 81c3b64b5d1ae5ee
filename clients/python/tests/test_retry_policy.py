"""The backoff arithmetic alone (pure: no stack needed)."""

from __future__ import annotations

import random

from tidewater_client.retry import RetryPolicy, parse_retry_after


def policy(**kwargs: float) -> RetryPolicy:
    return RetryPolicy(rng=random.Random(1), **kwargs)  # type: ignore[arg-type]


def test_backoff_is_jittered_and_capped() -> None:
    retry = policy(initial_backoff=0.1, max_backoff=1.0, deadline=1000, max_attempts=100)
    delays = [retry.next_delay(attempt, 0, None) for attempt in range(1, 40)]
    assert all(d is not None and 0 <= d <= 1.0 for d in delays)
    assert all(d is not None and d <= 0.1 for d in delays[:1])
    assert len(set(delays)) > 30


def test_retry_after_is_a_floor_and_is_capped() -> None:
    retry = policy(max_retry_after=5, deadline=100)
    assert retry.next_delay(1, 0, 2.0) == 2.0
    assert retry.next_delay(1, 0, 60.0) == 5.0


def test_gives_up_at_the_deadline_and_after_the_attempts() -> None:
    retry = policy(deadline=10, max_attempts=3)
    assert retry.next_delay(1, 9.9, 1.0) is None
    assert retry.next_delay(3, 0, None) is None
    assert retry.next_delay(2, 0, None) is not None


def test_retry_after_parsing() -> None:
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after("-1") is None
    assert parse_retry_after(None) is None
