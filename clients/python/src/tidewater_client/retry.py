"""When to retry a call and how long to wait: capped, jittered exponential backoff that honours
`Retry-After`, within a deadline. Pure: the caller sleeps, and passes the time it measured."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import httpx

# 503 is tidewater's "DynamoDB failed, nothing half-written"; 408, 429, 502 and 504 come from
# gateways and load balancers in front of it. 500 ("a stored item could not be read") is not
# transient, and every 4xx is the request's fault.
RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})


@dataclass
class RetryPolicy:
    """`max_attempts` tries at most, none started after `deadline` seconds; the n-th retry waits
    a random time in [0, min(max_backoff, initial_backoff * 2**(n-1))] (full jitter), and never
    less than the server's `Retry-After` (itself capped at `max_retry_after`)."""

    max_attempts: int = 8
    deadline: float = 30.0
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    max_retry_after: float = 30.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self, attempt: int, elapsed: float, retry_after: float | None) -> float | None:
        """The wait before attempt `attempt + 1`, or None to give up."""
        if attempt >= self.max_attempts:
            return None
        ceiling = min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1))
        delay = self.rng.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        if elapsed + delay > self.deadline:
            return None
        return delay


NO_RETRIES = RetryPolicy(max_attempts=1)


def retryable_exception(error: BaseException) -> bool:
    """Connection errors, timeouts and answers cut off: the request may or may not have applied."""
    return isinstance(error, httpx.TransportError)


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds; an HTTP date or garbage counts as absent."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
