"""Pace ASR writes under ARM's write budget.

A sliding window in real (monotonic) time, shared by every activity of one worker. ARM throttles
writes per subscription; the limit per worker is ``ASR_WRITES_PER_SECOND`` (default 8), so the
deployment caps workers to keep workers x rate under the subscription's budget (docs/DEPLOY.md).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeVar

from migration.ports import AsrGateway, AsrJob, DiscoveredMachine, ReplicationPlan, ReplicationState

T = TypeVar("T")


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


class PacedAsrGateway:
    """An AsrGateway whose writes (begin_*, create_recovery_plan) take a token first; reads pass."""

    def __init__(self, inner: AsrGateway, limiter: WriteLimiter) -> None:
        self.inner = inner
        self.limiter = limiter

    def _write(self, call: Callable[[], T]) -> T:
        self.limiter.acquire()
        return call()

    def find_machine_by_ip(self, private_ip: str) -> DiscoveredMachine:
        return self.inner.find_machine_by_ip(private_ip)

    def ensure_os_supported(self, machine: DiscoveredMachine) -> None:
        self.inner.ensure_os_supported(machine)

    def get_replication_state(self, protected_item_name: str) -> ReplicationState:
        return self.inner.get_replication_state(protected_item_name)

    def get_job(self, job_id: str) -> AsrJob:
        return self.inner.get_job(job_id)

    def begin_enable_replication(self, machine: DiscoveredMachine, plan: ReplicationPlan) -> str:
        return self._write(lambda: self.inner.begin_enable_replication(machine, plan))

    def begin_test_failover(self, protected_item_name: str) -> str:
        return self._write(lambda: self.inner.begin_test_failover(protected_item_name))

    def begin_test_failover_cleanup(self, protected_item_name: str) -> str:
        return self._write(lambda: self.inner.begin_test_failover_cleanup(protected_item_name))

    def begin_unplanned_failover(self, protected_item_name: str) -> str:
        return self._write(lambda: self.inner.begin_unplanned_failover(protected_item_name))

    def begin_commit(self, protected_item_name: str) -> str:
        return self._write(lambda: self.inner.begin_commit(protected_item_name))

    def begin_complete_migration(self, protected_item_name: str) -> str:
        return self._write(lambda: self.inner.begin_complete_migration(protected_item_name))

    def begin_disable_replication(self, protected_item_name: str) -> str:
        return self._write(lambda: self.inner.begin_disable_replication(protected_item_name))

    def create_recovery_plan(self, plan_name: str, protected_item_names: Sequence[str]) -> None:
        self._write(lambda: self.inner.create_recovery_plan(plan_name, protected_item_names))

    def begin_recovery_plan_failover(self, plan_name: str) -> str:
        return self._write(lambda: self.inner.begin_recovery_plan_failover(plan_name))

    def begin_recovery_plan_commit(self, plan_name: str) -> str:
        return self._write(lambda: self.inner.begin_recovery_plan_commit(plan_name))
