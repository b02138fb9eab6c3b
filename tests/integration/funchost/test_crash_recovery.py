"""The host as the stack runs it (a subprocess started by the launcher), killed with SIGKILL in
the middle of a fan-out of 50 activities and again during a durable timer wait: after each
restart every orchestration completes with the right output, and no step that was committed
before the kill runs again."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.funchost import launch
from devstack.funchost.durable.protocol import EventType
from devstack.funchost.durable.store import DurableStore
from devstack.launcher import LaunchContext, Stack
from devstack.settings import StackSettings

pytestmark = pytest.mark.integration

SAMPLE_APP = Path(__file__).parent / "apps" / "conformance"
INSTANCES = [f"crash-{i}" for i in range(3)]
FAN_OUT = 50


@pytest.fixture(scope="module")
def crash_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, StackSettings, Path]]:
    log_dir = tmp_path_factory.mktemp("activity-log")
    overrides = {
        launch.APP_DIR_VARIABLE: str(SAMPLE_APP),
        "FUNCHOST_SAMPLE_LOG": str(log_dir),
        "FUNCHOST_SAMPLE_SLOW": "0.15",
        "AWS2AZURE_HOST_IDLE_GRACE": "1.0",  # a window to kill the host while it waits on a timer
    }
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    stack = Stack(tmp_path_factory.mktemp("crash-stack"))
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


def kill_host(stack: Stack) -> None:
    pid = stack.running()["host"]
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def restart_host(stack: Stack, settings: StackSettings) -> str:
    ctx = LaunchContext(stack.root, stack.root / "clock", settings.model_dump())
    spec = launch.service_spec(ctx)
    assert spec is not None
    stack._start(spec)
    return str(spec.settings["host"].base_url)


def activity_log(log_dir: Path) -> list[dict[str, Any]]:
    path = log_dir / "slow_square.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def committed(settings: StackSettings) -> dict[str, dict[str, Any]]:
    """What storage holds for each instance right now: its history and open tasks."""
    assert settings.azurite is not None
    store = DurableStore(settings.azurite.connection_string, "TestHubName")
    found = {}
    for state in store.load_states():
        if state["InstanceId"] in INSTANCES:
            stored = store.load_instance(state)
            found[str(state["InstanceId"])] = {
                "history": [json.loads(e) for e in stored.history_json],
                "open_tasks": stored.snapshot["open_tasks"],
            }
    return found


def completed_values(history: list[dict[str, Any]]) -> set[int]:
    """Task ids 0..49 are the fan-out's activities, scheduled in order with values 0..49."""
    return {e["TaskScheduledId"] for e in history if e["EventType"] == EventType.TASK_COMPLETED}


def status(base_url: str, instance_id: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/durabletask/instances/{instance_id}")
    return dict(response.json()) if response.status_code in (200, 202) else {}


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_sigkill_during_fan_out_and_timer_wait_loses_no_committed_step(
    crash_stack: tuple[Stack, StackSettings, Path],
) -> None:
    stack, settings, log_dir = crash_stack
    assert settings.host is not None
    headers = {"x-functions-key": settings.host.function_keys["default"]}
    for instance_id in INSTANCES:
        started = httpx.post(
            f"{settings.host.base_url}/api/orchestrators/big_fan_out/{instance_id}",
            json={"count": FAN_OUT, "days": 8},
            headers=headers,
        )
        assert started.status_code == 202, started.text
    wait_until(lambda: len(activity_log(log_dir)) >= 40, 30, "the fan-out to be under way")

    kill_host(stack)
    at_kill = committed(settings)
    committed_before = {iid: completed_values(data["history"]) for iid, data in at_kill.items()}
    total_committed = sum(len(v) for v in committed_before.values())
    assert 0 < total_committed < FAN_OUT * len(INSTANCES), "the kill should land in the middle of the fan-out"
    first_pid = activity_log(log_dir)[0]["pid"]

    base_url = restart_host(stack, settings)
    wait_until(
        lambda: any(status(base_url, i).get("customStatus") == "waiting on timer" for i in INSTANCES),
        60,
        "an orchestration to wait on its timer",
    )
    kill_host(stack)
    at_second_kill = committed(settings)
    waiting_on_timer = [
        iid for iid, data in at_second_kill.items() if any(t["kind"] == "timer" for t in data["open_tasks"])
    ]
    detail = [(d["open_tasks"], [e["EventType"] for e in d["history"][-6:]]) for d in at_second_kill.values()]
    assert waiting_on_timer, f"the second kill should land while a durable timer is pending: {detail}"

    base_url = restart_host(stack, settings)
    wait_until(
        lambda: all(status(base_url, i).get("runtimeStatus") == "Completed" for i in INSTANCES),
        60,
        "every orchestration to complete",
    )

    expected_sum = sum(i * i for i in range(FAN_OUT))
    for instance_id in INSTANCES:
        final = status(base_url, instance_id)
        assert final["output"]["sum"] == expected_sum
        assert final["output"]["final"] == 1000 * 1000
        assert final["output"]["woke"] >= "2"  # an ISO timestamp
    records = activity_log(log_dir)
    for instance_id, done in committed_before.items():
        rerun = {r["value"] for r in records if r["instance"] == instance_id and r["pid"] != first_pid}
        assert not (rerun & done), f"{instance_id}: committed steps ran again after the restart: {rerun & done}"
    for instance_id in INSTANCES:
        history = httpx.get(f"{base_url}/durabletask/instances/{instance_id}", params={"showHistory": "true"}).json()
        completions = [e["TaskScheduledId"] for e in history["historyEvents"] if e["EventType"] == "TaskCompleted"]
        assert sorted(completions) == sorted(set(completions))  # each task completed exactly once in history
        assert len(completions) == FAN_OUT + 1
