"""Pace ASR writes under ARM's write budget.

A sliding window in real (monotonic) time, shared by every activity of one worker; the ASR
client's pipeline takes a slot just before it sends each write (functions/adapters/asr.py). ARM throttles
writes per subscription; the limit per worker is ``ASR_WRITES_PER_SECOND`` (default 8), so the
deployment caps workers to keep workers x rate under the subscription's budget (docs/DEPLOY.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class WriteLimiter:
    """At most ``rate_per_second`` writes in any one-second window, evenly spaced.

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
