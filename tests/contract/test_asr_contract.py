"""The AsrGateway contract, run against the in-memory fake and the real adapter (over HTTPS to the simulator).

Only what the port promises is asserted, so a test written against the fake means the same against ASR:
discovery waits (AwaitingDiscovery), enable is idempotent, a failover is never sent twice, an unknown item
is NotFound.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.app_env import function_app_environment
from devstack.asr_sim.control import SimulatorControl
from devstack.clock import FileClock
from devstack.launcher import Stack
from functions.settings import FunctionSettings
from migration.errors import AwaitingDiscovery, NotFound, PreconditionFailed, TransientCloudError
from migration.ports import AsrGateway, DiscoveredMachine, ReplicationPlan
from tests.fakes import FakeAsr
from tests.integration.adapters.test_asr_adapter import Sim

pytestmark = pytest.mark.integration
_numbers = itertools.count(1)


@dataclass
class World:
    """One ASR (fake or simulated) and the means to move it along, as the contract tests need."""

    gateway: AsrGateway
    discover: Callable[[], str]  # a machine the appliance discovered; returns its IP
    protect: Callable[[DiscoveredMachine, str], None]  # finish the enable job and initial replication
    finish_failover: Callable[[str, str], None]  # (item, job id): the failover job ends, the item is failed over
    writes: Callable[[], int]  # write requests sent to ASR so far


def _fake_world() -> World:
    asr = FakeAsr()

    def discover() -> str:
        ip = f"10.9.0.{next(_numbers)}"
        asr.add_machine(ip, name=f"machine-{ip}")
        return ip

    return World(asr, discover, lambda machine, _job: asr.protect(machine.name),
                 lambda item, _job: asr.failover_done(item), lambda: len(asr.writes))  # fmt: skip


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The real adapter, through the real SDK over HTTPS, against the ASR simulator on its own stack."""
    stack = Stack(tmp_path_factory.mktemp("asr-contract"))
    endpoints = stack.up(["asr"], quiet=True)
    try:
        assert endpoints.asr is not None
        env = function_app_environment(endpoints) | {"STATE_STORAGE": "UseDevelopmentStorage=true"}
        with SimulatorControl.from_endpoint(endpoints.asr) as control:
            real = Sim(control=control, clock=FileClock(Path(endpoints.clock_file)),
                       settings=FunctionSettings.from_environment(env))  # fmt: skip

            def protect(machine: DiscoveredMachine, job: str) -> None:
                real.succeed(job)
                for _ in range(30):
                    if "UnplannedFailover" in real.gateway.get_replication_state(machine.name).allowed_operations:
                        return
                    real.clock.advance_by(21_600)
                raise AssertionError(f"{machine.name} never became protected")

            try:
                yield World(real.gateway, real.seed, protect, lambda _item, job: real.succeed(job),
                            lambda: control.stats().writes)  # fmt: skip
            finally:
                for client in real.clients:
                    client.close()
                for discovery in real.offazure:
                    discovery.close()
    finally:
        stack.down(quiet=True)


@pytest.fixture(params=["fake", "simulator"])
def world(request: pytest.FixtureRequest) -> World:
    if request.param == "fake":
        return _fake_world()
    simulated: World = request.getfixturevalue("simulated")
    return simulated


def _plan(machine: DiscoveredMachine) -> ReplicationPlan:
    return ReplicationPlan(target_vm_name=f"vm-{machine.friendly_name}"[:60], target_subnet="workloads")


def test_a_machine_not_yet_discovered_is_awaited_not_refused(world: World) -> None:
    with pytest.raises(AwaitingDiscovery) as caught:
        world.gateway.find_machine_by_ip("10.250.250.250")
    assert isinstance(caught.value, TransientCloudError)  # retried by the step runner, not a failure


def test_enabling_twice_creates_one_item_and_answers_the_same_job(world: World) -> None:
    machine = world.gateway.find_machine_by_ip(world.discover())
    before = world.writes()
    first = world.gateway.begin_enable_replication(machine, _plan(machine))
    again = world.gateway.begin_enable_replication(machine, _plan(machine))  # an activity rerun
    assert again == first
    assert world.writes() - before == 1


def test_a_failover_is_never_sent_twice(world: World) -> None:
    machine = world.gateway.find_machine_by_ip(world.discover())
    world.protect(machine, world.gateway.begin_enable_replication(machine, _plan(machine)))
    before = world.writes()
    job = world.gateway.begin_unplanned_failover(machine.name)
    assert world.gateway.begin_unplanned_failover(machine.name) == job  # while it runs: its job, no new write
    assert world.writes() - before == 1
    world.finish_failover(machine.name, job)
    with pytest.raises(PreconditionFailed) as caught:
        world.gateway.begin_unplanned_failover(machine.name)  # after it: refused
    assert caught.value.code == "AlreadyFailedOver"
    assert world.writes() - before == 1


def test_an_unknown_item_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        world.gateway.get_replication_state("no-such-item")
