"""Queue messages are held on a renewed lease, as the WebJobs queue listener holds them (issue 17, crash finding 3).

A host that is SIGKILLed while its function handles a message gives the message back once the lease runs out,
so it is delivered again (dequeue count 2) and does its work; before, the local host received messages for a
fixed 300 s, so a message in hand at a kill stayed invisible for five minutes of wall time while the virtual
clock ran on, and the crash scenario's machine waited for a request or a cutover that never came in time.
And a function that runs longer than the lease keeps its message: the lease is renewed while it runs."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from devstack.funchost import launch
from devstack.launcher import Stack
from devstack.settings import StackSettings
from tests.integration.funchost.test_crash_recovery import kill_host, restart_host, status, wait_until

pytestmark = pytest.mark.integration

SAMPLE_APP = Path(__file__).parent / "apps" / "conformance"
LEASE_SECONDS = 6  # renewed every 3 s: a renewal can be 3 s late before the message shows


@pytest.fixture(scope="module")
def lease_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, StackSettings, Path]]:
    log_dir = tmp_path_factory.mktemp("intake-log")
    overrides = {
        launch.APP_DIR_VARIABLE: str(SAMPLE_APP),
        launch.QUEUE_LEASE_VARIABLE: str(LEASE_SECONDS),
        "FUNCHOST_SAMPLE_LOG": str(log_dir),
    }
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    stack = Stack(tmp_path_factory.mktemp("lease-stack"))
    try:
        settings = stack.up(["azurite", "host"], quiet=True)
        yield stack, settings, log_dir
    finally:
        stack.down(quiet=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _queue(settings: StackSettings) -> QueueClient:
    assert settings.azurite is not None
    return QueueClient.from_connection_string(settings.azurite.connection_string, "sample-requests")


def _send(settings: StackSettings, body: dict[str, Any]) -> None:
    _queue(settings).send_message(base64.b64encode(json.dumps(body).encode()).decode())


def _deliveries(log_dir: Path, instance_id: str) -> list[int]:
    path = log_dir / "intake.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [r["dequeue_count"] for r in map(json.loads, lines) if r["body"].get("instance_id") == instance_id]


def test_a_function_that_runs_longer_than_the_lease_keeps_its_message(
    lease_stack: tuple[Stack, StackSettings, Path],
) -> None:
    _, settings, log_dir = lease_stack
    hold = 4 * LEASE_SECONDS
    _send(settings, {"instance_id": "lease-held", "input": "once", "hold_seconds": hold})
    wait_until(lambda: _deliveries(log_dir, "lease-held") == [1], 60, "the first delivery")
    queue = _queue(settings)
    # While the function runs (four leases long) the message is never visible: its lease is renewed.
    started = time.monotonic()
    while _deliveries(log_dir, "lease-held") == [1] and time.monotonic() - started < hold - 1:
        assert not list(queue.peek_messages(max_messages=32)), "the message became visible while its function ran"
        time.sleep(0.2)
    assert settings.host is not None
    base_url = settings.host.base_url
    wait_until(lambda: status(base_url, "lease-held").get("runtimeStatus") == "Completed", 60, "the orchestration")
    assert _deliveries(log_dir, "lease-held") == [1]
    wait_until(lambda: queue.get_queue_properties().approximate_message_count == 0, 30, "the message deleted")


# Last in this module: it kills the host (the test above uses the first host's address).
def test_a_message_in_hand_when_the_host_is_killed_is_delivered_again_once_its_lease_runs_out(
    lease_stack: tuple[Stack, StackSettings, Path],
) -> None:
    stack, settings, log_dir = lease_stack
    _send(settings, {"instance_id": "lease-killed", "input": "again", "hold_seconds": 600})
    wait_until(lambda: _deliveries(log_dir, "lease-killed") == [1], 60, "the first delivery")
    kill_host(stack)
    base_url = restart_host(stack, settings)
    # The old host's lease (6 s, no longer renewed) runs out; the new host receives the message again.
    wait_until(lambda: _deliveries(log_dir, "lease-killed") == [1, 2], 120, "the delivery after the kill")
    wait_until(lambda: status(base_url, "lease-killed").get("runtimeStatus") == "Completed", 60, "the orchestration")
    assert status(base_url, "lease-killed")["output"] == ["Hello again", "Hello Hello again"]
