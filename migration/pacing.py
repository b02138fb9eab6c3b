"""Pace ASR writes under ARM's write budget.

A sliding window in real (monotonic) time, shared by every activity of one worker; the ASR
client's pipeline takes a slot just before it sends each write (functions/adapters/asr.py). ARM throttles
writes per subscription; the limit per worker is ``ASR_WRITES_PER_SECOND`` (default 8), so the
deployment caps workers to keep workers x rate under the subscription's budget (docs/DEPLOY.md).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class WriteLimiter:
    """At most ``rate_per_second`` writes in any rolling one-second window (ARM's budget is counted so).

    A sliding window rather than a token bucket: a bucket lets ``rate + burst`` through in some
    one-second windows. ``margin`` keeps a little headroom for network jitter between here and ARM.
    """

    def __init__(self, rate_per_second: float, *, margin_s: float = 0.02,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.limit = max(1, int(rate_per_second))
        self.window = 1.0 + margin_s
        self._recent: deque[float] = deque()
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until one more write fits in the window; returns the seconds waited."""
        waited = 0.0
        with self._lock:
            now = self._monotonic()
            while self._recent and now - self._recent[0] >= self.window:
                self._recent.popleft()
            if len(self._recent) >= self.limit:
                waited = self._recent[0] + self.window - now
                self._sleep(waited)
                now = self._monotonic()
                self._recent.popleft()
            self._recent.append(now)
        return waited
