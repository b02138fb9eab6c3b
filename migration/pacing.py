"""Pace ASR writes under ARM's write budget.

ARM throttles writes with a token bucket per subscription, region and security principal: 200 tokens, refilled
at 10 per second (Learn, "Understand how Azure Resource Manager throttles requests",
https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling). A Function
App on Flex Consumption runs many workers with one managed identity, so they all draw on that one bucket.

Two limiters, one interface (``acquire()``, called by the ASR client's pipeline just before each write):

- ``SharedWriteBudget``: one token bucket for the whole app, kept in a store every worker reaches (Azure Table
  Storage, ETag optimistic concurrency: functions/adapters/write_budget.py). Its capacity and refill stay under
  ARM's, so the app never spends the principal's whole bucket. This is the production limiter.
- ``WriteLimiter``: even spacing inside one process (the local host, tests); no shared state.

The bucket arithmetic is pure (``refill``/``take``) and unit-tested; the shared one retries on a lost ETag race.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class WriteLimiterLike(Protocol):
    def acquire(self) -> float:
        """Block until a write may be sent; returns the seconds waited."""
        ...


class WriteLimiter:
    """At most ``rate_per_second`` writes in any one-second window, evenly spaced (one process only).

    Writes are spaced ``1 / rate`` apart (plus a small margin) rather than let through in bursts: a
    burst that the network or the server delays unevenly arrives compressed, and a token bucket or a
    plain sliding window lets ``rate + 1`` or more land in one second at ARM. Measured at the ASR
    simulator, bursts of 8 arrived as 11 in a second under load; even spacing does not.
    """

    def __init__(self, rate_per_second: float, *, margin: float = 0.15,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.interval = (1.0 + margin) / rate_per_second
        self._next_slot = float("-inf")
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for the next free slot; returns the seconds waited."""
        with self._lock:
            now = self._monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
        waited = slot - now
        if waited > 0:
            self._sleep(waited)
        return waited


# --------------------------------------------------------------------------------------------------
# One token bucket for every worker
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BucketState:
    tokens: float
    updated_at: float  # epoch seconds (wall clock, shared by every worker)


def refill(state: BucketState, *, now: float, capacity: float, rate_per_second: float) -> BucketState:
    elapsed = max(0.0, now - state.updated_at)
    return BucketState(min(capacity, state.tokens + elapsed * rate_per_second), max(now, state.updated_at))


def take(state: BucketState, *, now: float, capacity: float, rate_per_second: float) -> tuple[BucketState, float]:
    """Take one token: (new state, 0) if one is there, else (refilled state, seconds until one is)."""
    current = refill(state, now=now, capacity=capacity, rate_per_second=rate_per_second)
    if current.tokens >= 1.0:
        return BucketState(current.tokens - 1.0, current.updated_at), 0.0
    return current, (1.0 - current.tokens) / rate_per_second


class BucketStore(Protocol):
    """Where the shared bucket lives. ``read`` returns (state or None, etag); ``write`` stores the state if the
    etag is still current (None: create) and returns False when another worker got there first."""

    def read(self) -> tuple[BucketState | None, str | None]: ...

    def write(self, state: BucketState, etag: str | None) -> bool: ...


class SharedWriteBudget:
    """A token bucket shared by every worker through a ``BucketStore`` (optimistic concurrency).

    Any window of T seconds sees at most ``capacity + rate * T`` writes taken, whatever the number of workers.
    """

    def __init__(self, store: BucketStore, *, capacity: float, rate_per_second: float,
                 wall: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 max_attempts: int = 1000) -> None:  # fmt: skip
        if capacity < 1 or rate_per_second <= 0:
            raise ValueError("capacity must be at least 1 and rate_per_second positive")
        self.store, self.capacity, self.rate = store, capacity, rate_per_second
        self._wall, self._sleep, self._max_attempts = wall, sleep, max_attempts

    def acquire(self) -> float:
        waited = 0.0
        for _ in range(self._max_attempts):
            state, etag = self.store.read()
            now = self._wall()
            current = state or BucketState(self.capacity, now)
            after, wait = take(current, now=now, capacity=self.capacity, rate_per_second=self.rate)
            if wait > 0:
                self._sleep(wait)
                waited += wait
                continue
            if self.store.write(after, etag):
                return waited
            # Another worker took a token between our read and write: read again at once.
        raise RuntimeError(f"could not take a write token after {self._max_attempts} attempts")
