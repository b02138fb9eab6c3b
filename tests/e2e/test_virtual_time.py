"""Virtual time waits for work, never for readers (issue 19).

The local host jumps the shared clock to the next durable timer once nothing is runnable. A client that
reads the API in a tight loop (an operator's `aws2azure watch`, a test polling a status) must not count
as work: otherwise time crawls, and whether a test passes depends on how fast the machine answers.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from aws2azure.api_client import MigrationApi
from devstack.asr_sim.control import SimulatorControl
from devstack.clock import FileClock
from devstack.launcher import Stack
from devstack.settings import StackSettings
from tests.e2e.support import api_of, intake_queue, migration_id, phase_of, send_event, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

WINDOW_S = 6.0  # wall seconds per measuring window
# Between two reads: 50 reads a second at most, ten times as often as the 0.2 s poll that used to stall time.
READ_PAUSE_S = 0.02


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, StackSettings]]:
    stack = Stack(tmp_path_factory.mktemp("virtual-time"))
    settings = stack.up()
    yield stack, settings
    stack.down()


def _virtual_seconds_per_wall_second(clock: FileClock, *, reader: threading.Event | None = None) -> float:
    start_wall, start_virtual = time.monotonic(), clock.now()
    if reader is not None:
        reader.set()
    time.sleep(WINDOW_S)
    if reader is not None:
        reader.clear()
    elapsed: datetime = clock.now()
    return (elapsed - start_virtual).total_seconds() / (time.monotonic() - start_wall)


def _replicating(api: MigrationApi, instance: str) -> bool:
    phase = phase_of(api, instance)
    if phase in ("Failed", "NotReady", "Cancelled"):
        raise AssertionError(f"{instance} ended {phase}: {api.get(migration_id(instance))['migration'].get('reason')}")
    return phase == "Replicating"


def test_a_client_reading_in_a_tight_loop_does_not_slow_virtual_progress(stack: tuple[Stack, StackSettings]) -> None:
    _, settings = stack
    assert settings.asr is not None
    sim = SimulatorControl.from_endpoint(settings.asr)
    api, queue = api_of(settings), intake_queue(settings)
    clock = FileClock(settings.clock_file)
    instances = [f"i-0718{n:013d}" for n in range(3)]
    for n, instance in enumerate(instances):
        # Large disks: replication lasts virtual weeks, so every window measures the same kind of work.
        sim.seed_machine(f"10.71.0.{n + 10}", "Linux", "Ubuntu 22.04 LTS", [4096, 8192], friendly_name=instance,
                         upload_mb_per_s=1.0)  # fmt: skip
        send_event(queue, "MigrationRequested", instance, {"private_ip": f"10.71.0.{n + 10}", "os_family": "linux",
                                                           "request_id": f"r-vt-{n}"})  # fmt: skip
    for instance in instances:
        wait_for(functools.partial(_replicating, api, instance), timeout=300, what=f"{instance} Replicating")

    reading, stop = threading.Event(), threading.Event()
    reads = [0]

    def read_in_a_tight_loop() -> None:
        while not stop.is_set():
            if reading.wait(0.05):
                api.get(migration_id(instances[0]))
                reads[0] += 1
                time.sleep(READ_PAUSE_S)

    thread = threading.Thread(target=read_in_a_tight_loop, daemon=True)
    thread.start()
    try:
        before = _virtual_seconds_per_wall_second(clock)
        with_reader = _virtual_seconds_per_wall_second(clock, reader=reading)
        after = _virtual_seconds_per_wall_second(clock)
    finally:
        stop.set()
        thread.join(timeout=30)
    quiet = (before + after) / 2
    print(f"virtual s per wall s: {before:.0f} quiet, {with_reader:.0f} with {reads[0]} reads, {after:.0f} quiet")
    # The old host stalled at one read every 0.2 s; this reader reads several times as often.
    assert reads[0] > 10 * WINDOW_S, f"the reader made only {reads[0]} reads"
    assert before > 0, before
    assert after > 0, after
    # The reader window sits between two quiet ones, so a rate that drifts with replication cancels out.
    assert with_reader / quiet >= 0.8, (
        f"virtual s per wall s: {before:.0f}, with {reads[0]} reads {with_reader:.0f}, {after:.0f}"
    )
    assert all(phase_of(api, i) in ("Replicating", "ReadyForCutover", "AwaitingCutover") for i in instances)
