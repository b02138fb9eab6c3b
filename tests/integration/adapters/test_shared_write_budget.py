"""Finding 9: one ASR write budget across worker processes (a token bucket in Table Storage, ETag-guarded).

Four worker processes, each with its own SDK client and pipeline policy, write to one simulator at once. The
busiest second the simulator saw (its own request log) stays within the budget. The only timing figure asserted
is the budget itself.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableServiceClient

from devstack.app_env import function_app_environment
from devstack.asr_sim.control import SimulatorControl
from devstack.launcher import Stack
from devstack.settings import StackSettings
from functions.adapters.asr import build_asr_credential, build_site_recovery_client
from functions.adapters.write_budget import build_shared_write_budget
from functions.settings import FunctionSettings
from migration.pacing import BucketState, WriteLimiter, refill, take

pytestmark = pytest.mark.integration

WORKERS = 4
WRITES_PER_WORKER = 8
BUDGET_PER_SECOND = 6  # what the subscription may take in any second (ARM's would be 200 + 10/s)
CAPACITY, REFILL = 3.0, 2.5  # the shared bucket, set under the budget as the deployment's is under ARM's


def _worker(env: dict[str, str], key: str, count: int) -> int:
    settings = FunctionSettings.from_environment(env)
    budget = build_shared_write_budget(
        TableServiceClient.from_connection_string(env["STATE_STORAGE"]),
        table_name="asrwritebudget", key=key, capacity=CAPACITY, rate_per_second=REFILL,
    )  # fmt: skip
    client = build_site_recovery_client(settings, build_asr_credential(settings), write_limiter=budget)
    sent = 0
    with client:
        for index in range(count):
            # A cheap write the vault refuses (no such job): it still counts against ARM's write budget.
            with contextlib.suppress(HttpResponseError):
                client.replication_jobs.begin_resume(
                    settings.asr_resource_group, settings.asr_vault_name, f"no-such-job-{index}",
                    {"properties": {"comments": "pacing"}}, polling=False,
                )  # fmt: skip
            sent += 1
    return sent


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackSettings]:
    stack = Stack(tmp_path_factory.mktemp("budget-stack"))
    settings = stack.up(["azurite", "asr"], quiet=True)
    yield settings
    stack.down(quiet=True)


def test_four_worker_processes_share_one_write_budget(stack: StackSettings) -> None:
    assert stack.asr is not None
    env = function_app_environment(stack)
    with SimulatorControl.from_endpoint(stack.asr) as control:
        control.reset()
        context = multiprocessing.get_context("spawn")
        with context.Pool(WORKERS) as pool:
            sent = pool.starmap(_worker, [(env, "budget-test", WRITES_PER_WORKER)] * WORKERS)
        stats = control.stats()
    assert sum(sent) == WORKERS * WRITES_PER_WORKER
    assert stats.writes == WORKERS * WRITES_PER_WORKER
    assert stats.peak_writes_per_second(1.0) <= BUDGET_PER_SECOND
    # Per-process pacing at the same rate would have let each worker write REFILL per second on its own.
    assert WORKERS * REFILL > BUDGET_PER_SECOND


# ---- the bucket arithmetic (pure) ------------------------------------------------------------------


def test_a_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    state = BucketState(tokens=0.0, updated_at=100.0)
    assert refill(state, now=101.0, capacity=5, rate_per_second=2).tokens == 2.0
    assert refill(state, now=110.0, capacity=5, rate_per_second=2).tokens == 5.0
    assert refill(state, now=99.0, capacity=5, rate_per_second=2) == state  # a clock behind never refills


def test_taking_from_an_empty_bucket_says_how_long_to_wait() -> None:
    state, wait = take(BucketState(0.5, 0.0), now=0.0, capacity=5, rate_per_second=2)
    assert wait == pytest.approx(0.25)
    after, none = take(state, now=0.25, capacity=5, rate_per_second=2)
    assert none == 0
    assert after.tokens == pytest.approx(0.0)


def test_the_per_process_limiter_is_still_available(tmp_path: Path) -> None:
    ticks = iter([0.0, 0.0, 0.0])
    slept: list[float] = []
    limiter = WriteLimiter(2.0, margin=0.0, monotonic=lambda: next(ticks), sleep=slept.append)
    limiter.acquire()
    limiter.acquire()
    assert slept == [0.5]
