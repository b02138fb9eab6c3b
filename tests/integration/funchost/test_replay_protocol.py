"""Conformance of the replay engine (no services): each sample orchestration runs through the real
SDK and the results are checked against what the Durable Functions documentation describes."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from devstack.funchost.durable.orchestration import Instance, Message, MessageKind, RuntimeStatus
from devstack.funchost.durable.protocol import (
    ActionType,
    EventType,
    iter_leaves,
    orchestration_context,
    parse_orchestrator_failure,
    parse_orchestrator_output,
)
from devstack.funchost.durable.sdk import invoke_orchestrator
from tests.integration.funchost.driver import Driver


@pytest.fixture
def driver() -> Driver:
    return Driver()


def events_of(driver: Driver, instance_id: str, kind: EventType) -> list[dict[str, Any]]:
    return [e for e in driver.history(instance_id) if e["EventType"] == kind]


def test_function_chaining_passes_each_result_to_the_next_activity(driver: Driver) -> None:
    instance = driver.start("chain", "bob")
    driver.run()
    assert instance.status == RuntimeStatus.COMPLETED
    assert driver.output(instance.instance_id) == ["Hello bob", "Hello Hello bob"]
    scheduled = events_of(driver, instance.instance_id, EventType.TASK_SCHEDULED)
    assert [(e["EventId"], e["Name"]) for e in scheduled] == [(0, "say_hello"), (1, "say_hello")]


def test_history_starts_each_episode_with_orchestrator_started_and_execution_started_once(driver: Driver) -> None:
    instance = driver.start("chain", "x")
    driver.run()
    history = driver.history(instance.instance_id)
    assert history[0]["EventType"] == EventType.ORCHESTRATOR_STARTED
    assert history[1]["EventType"] == EventType.EXECUTION_STARTED
    assert history[1]["Version"] == ""
    assert sum(e["EventType"] == EventType.EXECUTION_STARTED for e in history) == 1
    starts = sum(e["EventType"] == EventType.ORCHESTRATOR_STARTED for e in history)
    assert starts == sum(e["EventType"] == EventType.ORCHESTRATOR_COMPLETED for e in history) == driver.episodes
    assert history[-1]["EventType"] == EventType.EXECUTION_COMPLETED


def test_fan_out_fan_in_schedules_all_activities_in_one_episode(driver: Driver) -> None:
    instance = driver.start("fan_out", 10)
    driver.run()
    assert driver.output(instance.instance_id) == sum(i * i for i in range(10))
    assert driver.episodes == 2  # start (schedules all ten), then every result at once
    assert [e["EventId"] for e in events_of(driver, instance.instance_id, EventType.TASK_SCHEDULED)] == list(range(10))


def test_retry_waits_the_first_retry_interval_between_attempts(driver: Driver) -> None:
    instance = driver.start("flaky", {"key": "retry-ok", "failures": 2, "attempts": 3})
    started = driver.now
    driver.run()
    assert driver.output(instance.instance_id) == {"value": "succeeded on attempt 3", "after": "Hello after"}
    timers = events_of(driver, instance.instance_id, EventType.TIMER_CREATED)
    assert len(timers) == 2  # one back-off timer per failed attempt
    assert driver.now - started == timedelta(seconds=10)  # 2 x firstRetryInterval (5 s)
    assert driver.activity_calls.count("fail_until") == 3


def test_retry_gives_up_after_max_attempts_and_the_orchestrator_sees_the_failure(driver: Driver) -> None:
    instance = driver.start("flaky", {"key": "retry-exhausted", "failures": 10, "attempts": 3})
    driver.run()
    assert driver.output(instance.instance_id) == {"failed": "RuntimeError: attempt 3 failed "}
    assert driver.activity_calls.count("fail_until") == 3


def test_retries_interleaved_with_fan_out_match_the_sdk_task_numbering(driver: Driver) -> None:
    instance = driver.start("fan_out_retry")
    driver.run()
    assert instance.status == RuntimeStatus.COMPLETED, instance.output_json
    output = driver.output(instance.instance_id)
    assert output == [
        "succeeded on attempt 1",
        "succeeded on attempt 2",
        "succeeded on attempt 3",
        "succeeded on attempt 1",
        49,
        9,
    ]
    ids = [e["EventId"] for e in driver.history(instance.instance_id) if e["EventType"] in (4, 10)]
    assert sorted(ids) == list(range(len(ids)))  # every number the SDK drew was used exactly once


def test_durable_timer_wakes_at_its_fire_time_and_current_utc_datetime_follows(driver: Driver) -> None:
    instance = driver.start("sleeper", 3600)
    driver.run()
    output = driver.output(instance.instance_id)
    assert output["woke"] == (driver.now).isoformat()
    assert json.loads(json.dumps(output))["started"] < output["woke"]
    fired = events_of(driver, instance.instance_id, EventType.TIMER_FIRED)
    assert len(fired) == 1


def test_timers_longer_than_six_days_are_split_by_the_sdk(driver: Driver) -> None:
    instance = driver.start("sleeper", 10 * 86400)
    start = driver.now
    driver.run()
    assert instance.status == RuntimeStatus.COMPLETED
    created = events_of(driver, instance.instance_id, EventType.TIMER_CREATED)
    # 3 days (longRunningTimerIntervalDuration) while more than 6 days remain, then the rest: 3 + 3 + 4.
    assert len(created) == 3
    assert created[-1]["FireAt"].startswith((start + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%S"))
    assert driver.now - start == timedelta(days=10)


def test_external_event_raised_before_the_orchestrator_waits_is_buffered(driver: Driver) -> None:
    instance = driver.start("approval")
    driver.raise_event(instance.instance_id, "Approval", {"ok": True})
    driver.run()
    assert instance.status == RuntimeStatus.COMPLETED
    # As on Azure, the SDK client's raise_event JSON-encodes the data twice; the orchestrator gets its text.
    assert json.loads(driver.output(instance.instance_id)) == {"ok": True}
    assert json.loads(instance.custom_status_json or "null") == {"stage": "approved"}


def test_custom_status_is_visible_while_the_orchestrator_waits(driver: Driver) -> None:
    instance = driver.start("approval")
    driver.run()
    assert instance.status == RuntimeStatus.RUNNING
    assert json.loads(instance.custom_status_json or "null") == {"stage": "waiting for approval"}


def test_timeout_pattern_timer_wins_when_no_event_comes(driver: Driver) -> None:
    instance = driver.start("approval_or_timeout", 2)
    start = driver.now
    driver.run()
    assert "timed_out_at" in driver.output(instance.instance_id)
    assert driver.now - start == timedelta(hours=2)


def test_timeout_pattern_event_wins_and_the_cancelled_timer_never_fires(driver: Driver) -> None:
    instance = driver.start("approval_or_timeout", 2)
    driver.run(fire_timers=False)
    driver.raise_event(instance.instance_id, "Approval", "yes")
    start = driver.now
    driver.run()
    assert driver.output(instance.instance_id) == {"approved": '"yes"'}
    assert driver.timers == []
    assert driver.now == start  # the cancelled timer did not move time


def test_continue_as_new_restarts_history_and_keeps_unprocessed_events(driver: Driver) -> None:
    instance = driver.start("collector")
    for item in range(4):
        driver.raise_event(instance.instance_id, "Item", item)
    driver.run()
    assert instance.status == RuntimeStatus.COMPLETED
    assert driver.output(instance.instance_id) == ["0", "1", "2"]
    assert instance.generation == 2  # two continue_as_new restarts
    history = driver.history(instance.instance_id)
    assert sum(e["EventType"] == EventType.EXECUTION_STARTED for e in history) == 1  # fresh history


def test_sub_orchestrations_fan_out_and_return_results(driver: Driver) -> None:
    instance = driver.start("parent", 3)
    driver.run()
    assert driver.output(instance.instance_id) == {"sums": [0, 1, 5], "named": ["Hello child", "Hello Hello child"]}
    assert f"{instance.instance_id}-named" in driver.instances
    created = events_of(driver, instance.instance_id, EventType.SUB_ORCHESTRATION_CREATED)
    assert [e["InstanceId"] for e in created][:3] == [f"{instance.instance_id}:{i:04d}" for i in range(3)]


def test_a_failing_orchestrator_fails_and_its_parent_sees_the_error(driver: Driver) -> None:
    failing = driver.start("failing")
    parent = driver.start("parent_of_failing")
    driver.run()
    assert failing.status == RuntimeStatus.FAILED
    assert "orchestrator gave up" in (driver.output(failing.instance_id) or "")
    assert driver.output(parent.instance_id) == {"child_failed": True}


def test_terminate_stops_a_waiting_orchestration_with_the_reason_as_output(driver: Driver) -> None:
    instance = driver.start("forever")
    driver.run()
    driver.terminate(instance.instance_id, "operator said stop")
    driver.run()
    assert instance.status == RuntimeStatus.TERMINATED
    assert driver.output(instance.instance_id) == "operator said stop"
    assert not instance.accept(Message(MessageKind.EVENT, name="Never", payload="1"))


def test_replaying_a_finished_history_yields_the_same_actions(driver: Driver) -> None:
    """Replay determinism: the recorded history, replayed, asks for exactly what it recorded."""
    instance = driver.start("fan_out_retry")
    driver.run()
    history = driver.history(instance.instance_id)
    handle = driver.app.orchestrators["fan_out_retry"].user_function
    context = orchestration_context(
        instance_id=instance.instance_id,
        history_json=[json.dumps(e) for e in history],
        input_value=None,
        parent_instance_id=None,
    )
    result = parse_orchestrator_output(invoke_orchestrator(handle, context))
    assert result.is_done
    assert result.output == driver.output(instance.instance_id)
    visible = [leaf for leaf in iter_leaves(result.actions) if leaf.numbered]
    first_attempts = [e for e in history if e["EventType"] == EventType.TASK_SCHEDULED][: len(visible)]
    assert [leaf.body["functionName"] for leaf in visible[:5]] == [e["Name"] for e in first_attempts[:5]]


def test_a_non_deterministic_orchestrator_is_failed_with_a_clear_message(driver: Driver) -> None:
    instance = driver.start("chain", "x")
    driver.step()
    # Change the recorded past: the orchestrator will schedule say_hello where history has square.
    instance.leaf_signatures[0] = f"{int(ActionType.CALL_ACTIVITY)}:square"
    driver.run()
    assert instance.status == RuntimeStatus.FAILED
    assert "Non-Deterministic workflow detected" in (driver.output(instance.instance_id) or "")


def test_an_activity_failure_without_retry_fails_the_orchestration_with_its_reason(driver: Driver) -> None:
    instance = Instance("x", "chain", json.dumps(json.dumps("a")), "2030-01-01T00:00:00.000000Z")
    handle = driver.app.orchestrators["chain"].user_function
    outcome = instance.run_episode(driver.now, lambda ctx: invoke_orchestrator(handle, ctx))
    (task_id,) = instance.open_tasks
    assert [type(e).__name__ for e in outcome.effects] == ["RunActivity"]
    instance.accept(Message(MessageKind.TASK_FAILED, instance.execution_id, task_id, reason="no such activity"))
    instance.run_episode(driver.now, lambda ctx: invoke_orchestrator(handle, ctx))
    assert instance.status == RuntimeStatus.FAILED
    assert "no such activity" in (instance.output_json or "")


def test_results_for_an_old_execution_are_ignored(driver: Driver) -> None:
    instance = driver.start("forever")
    driver.run()
    assert not instance.accept(Message(MessageKind.TASK_COMPLETED, "another-execution", 0, payload="1"))


def test_snapshot_round_trip_keeps_the_replay_bookkeeping(driver: Driver) -> None:
    instance = driver.start("flaky", {"key": "snap", "failures": 1, "attempts": 3})
    driver.step()
    driver.step()  # the first attempt failed, a back-off timer is open
    copy = Instance.from_snapshot(json.loads(json.dumps(instance.snapshot())), list(instance.history_json))
    assert copy.snapshot() == instance.snapshot()
    assert copy.pending_effects() == instance.pending_effects()


def test_an_orchestrator_exception_is_read_from_the_out_of_proc_payload() -> None:
    message = 'boom\n\n$OutOfProcData$:{"isDone": false, "actions": [[]], "error": "boom", "customStatus": "x"}'
    result = parse_orchestrator_failure(message)
    assert result.error == "boom"
    assert result.custom_status == "x"
    assert parse_orchestrator_failure("plain failure").error == "plain failure"
