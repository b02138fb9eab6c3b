"""Which requests get a fault: deterministic draws keyed by the request, not by arrival order.

The n-th request to the same method and path draws the same number in every run with the same seed,
so concurrent callers interleaving differently still see the same faults per resource.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Literal

from devstack.asr_sim.arm import unit_fraction
from devstack.asr_sim.contract import FaultPlan, FaultRule

RequestKind = Literal["read", "write"]


@dataclass(frozen=True)
class FaultDecision:
    slow_ms: int = 0
    status: int | None = None
    retry_after_seconds: int | None = None
    after_effect: bool = False
    label: str | None = None


class FaultInjector:
    def __init__(self) -> None:
        self._seen: Counter[tuple[str, str]] = Counter()
        self._recent_writes: deque[float] = deque()

    def reset(self) -> None:
        self._seen.clear()
        self._recent_writes.clear()

    def decide(
        self, plan: FaultPlan, machine_rule: FaultRule | None, *, method: str, path: str, kind: RequestKind, wall: float
    ) -> FaultDecision:
        self._seen[(method, path)] += 1
        n = self._seen[(method, path)]
        rules = [r for r in (plan.run, machine_rule) if r is not None and r.scope in ("all", f"{kind}s")]
        slow = max((r.slow_response_ms for r in rules), default=0)
        throttle = max(rules, key=lambda r: r.throttle_rate, default=None)
        if throttle is not None and unit_fraction(plan.seed, "throttle", method, path, n) < throttle.throttle_rate:
            return FaultDecision(slow, 429, throttle.throttle_retry_after_seconds, label="throttle")
        if kind == "write" and plan.max_writes_per_second is not None:
            while self._recent_writes and wall - self._recent_writes[0] >= 1.0:
                self._recent_writes.popleft()
            if len(self._recent_writes) >= plan.max_writes_per_second:
                return FaultDecision(slow, 429, plan.write_budget_retry_after_seconds, label="write-budget")
        broken = max(rules, key=lambda r: r.server_error_rate, default=None)
        if (
            broken is not None
            and broken.server_error_statuses
            and unit_fraction(plan.seed, "5xx", method, path, n) < broken.server_error_rate
        ):
            status = broken.server_error_statuses[n % len(broken.server_error_statuses)]
            after = broken.server_errors_after_effect and kind == "write"
            return FaultDecision(slow, status, after_effect=after, label=f"{status}")
        if kind == "write":
            self._recent_writes.append(wall)
        return FaultDecision(slow, label="slow" if slow else None)
