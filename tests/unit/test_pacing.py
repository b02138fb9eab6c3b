from __future__ import annotations

import pytest

from migration.pacing import PacedAsrGateway, WriteLimiter
from migration.ports import ReplicationPlan
from tests.fakes import FakeAsr


class FakeTime:
    """A monotonic clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def peak_in_any_second(stamps: list[float]) -> int:
    return max(sum(1 for other in stamps if start <= other < start + 1.0) for start in stamps)


def test_no_one_second_window_ever_holds_more_than_the_rate() -> None:
    clock = FakeTime()
    limiter = WriteLimiter(8, monotonic=clock.monotonic, sleep=clock.sleep)
    stamps = []
    for _ in range(100):
        limiter.acquire()
        stamps.append(clock.now)
    assert peak_in_any_second(stamps) == 8
    # 100 writes at 8 per second take about twelve seconds, not less.
    assert stamps[-1] - stamps[0] >= 12.0


def test_writes_spread_out_in_time_do_not_wait() -> None:
    clock = FakeTime()
    limiter = WriteLimiter(2, monotonic=clock.monotonic, sleep=clock.sleep)
    waits = []
    for _ in range(5):
        waits.append(limiter.acquire())
        clock.now += 0.6
    assert waits == [0.0] * 5


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        WriteLimiter(0)


def test_only_writes_are_paced() -> None:
    clock = FakeTime()
    asr = FakeAsr()
    machine = asr.add_machine("10.0.0.1")
    paced = PacedAsrGateway(asr, WriteLimiter(1, monotonic=clock.monotonic, sleep=clock.sleep))
    plan = ReplicationPlan(target_vm_name="vm", target_subnet="s")
    paced.begin_enable_replication(machine, plan)
    for _ in range(5):
        paced.get_replication_state(machine.name)  # reads pass straight through
    start = clock.now
    asr.protect(machine.name)
    paced.begin_test_failover(machine.name)
    assert clock.now - start >= 1.0  # the second write waited for the window
