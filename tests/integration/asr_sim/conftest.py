from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.asr_sim.contract import SimConfig
from devstack.asr_sim.control import SimulatorControl
from devstack.clock import FileClock
from devstack.launcher import Stack
from devstack.settings import AsrEndpoint, StackSettings
from tests.integration.asr_sim.support import AsrDriver, make_client


@pytest.fixture(scope="session")
def asr_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, StackSettings]]:
    stack = Stack(tmp_path_factory.mktemp("asr-stack"))
    settings = stack.up(["asr"])
    yield stack, settings
    stack.down()


@pytest.fixture(scope="session")
def asr_endpoint(asr_stack: tuple[Stack, StackSettings]) -> AsrEndpoint:
    endpoint = asr_stack[1].asr
    assert endpoint is not None
    return endpoint


@pytest.fixture
def asr(asr_stack: tuple[Stack, StackSettings], asr_endpoint: AsrEndpoint) -> Iterator[AsrDriver]:
    """A clean simulator (no machines, no faults, zeroed counters) with LRO Retry-After 0 for the pollers."""
    with SimulatorControl.from_endpoint(asr_endpoint) as control:
        control.reset(state=True)
        control.configure(SimConfig(lro_retry_after_seconds=0))
        client = make_client(asr_endpoint)
        driver = AsrDriver(
            endpoint=asr_endpoint,
            client=client,
            control=control,
            clock=FileClock(asr_stack[1].clock_file),
            infra=control.infrastructure(),
        )
        yield driver
        client.close()
