"""Drive an orchestrator through the real azure-functions-durable SDK by history replay.

Each episode sends the whole history (as the Durable extension does) and reads back the actions;
the test decides what each activity returned, when timers fire and which events arrive. This is
the SDK's own protocol, not a stand-in for our code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df

from devstack.funchost.durable.protocol import (
    LONG_RUNNING_TIMER_INTERVAL,
    MAXIMUM_SHORT_TIMER_DURATION,
    UPPER_SCHEMA_VERSION,
    iter_leaves,
)

EXECUTION_STARTED, TASK_SCHEDULED, TASK_COMPLETED, TASK_FAILED = 0, 4, 5, 6
SUB_ORCHESTRATION_CREATED, SUB_ORCHESTRATION_COMPLETED = 7, 8
TIMER_CREATED, TIMER_FIRED, ORCHESTRATOR_STARTED, ORCHESTRATOR_COMPLETED = 10, 11, 12, 13
EVENT_RAISED, CONTINUE_AS_NEW_EVENT = 15, 16
CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY, CALL_SUB_ORCHESTRATOR, CONTINUE_AS_NEW, CREATE_TIMER = 0, 1, 2, 4, 5


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _event(kind: int, at: datetime, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    return {"EventType": kind, "EventId": event_id, "IsPlayed": False, "Timestamp": _ts(at), **fields}


def orchestrator_handle(blueprint: df.Blueprint, name: str) -> Callable[[str], str]:
    app = df.DFApp()
    app.register_functions(blueprint)
    for function in app.get_functions():
        if function.get_function_name() == name:
            handle: Callable[[str], str] = function.get_user_function()
            return handle
    raise LookupError(name)


@dataclass
class PendingActivity:
    """An activity, or a sub-orchestration (``sub``), scheduled and not answered yet."""

    event_id: int
    name: str
    input: Any
    sub: bool = False


@dataclass
class PendingTimer:
    event_id: int
    fire_at: datetime


@dataclass
class Replay:
    handle: Callable[[str], str]
    input: Any
    now: datetime
    instance_id: str = "test-instance"
    history: list[dict[str, Any]] = field(default_factory=list)
    activities: list[PendingActivity] = field(default_factory=list)
    timers: list[PendingTimer] = field(default_factory=list)
    scheduled: int = 0
    episodes: int = 0
    executions: int = 1
    max_history: int = 0
    calls: list[tuple[str, Any]] = field(default_factory=list)
    custom_status: Any = None
    output: Any = None
    done: bool = False
    continued_with: Any = None
    _inbox: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._start_execution()

    def _start_execution(self) -> None:
        self.history = []
        self.scheduled = 0
        self.activities, self.timers = [], []
        started = _event(
            EXECUTION_STARTED, self.now, Name="orchestrator", Input=json.dumps(self.input), Version="",
            OrchestrationInstance={"InstanceId": self.instance_id},
        )  # fmt: skip
        self._inbox = [started, *self._inbox]

    def raise_event(self, name: str, payload: Any) -> None:
        self._inbox.append(_event(EVENT_RAISED, self.now, Name=name, Input=json.dumps(payload)))

    def complete_activity(self, activity: PendingActivity, result: Any) -> None:
        self.activities.remove(activity)
        kind = SUB_ORCHESTRATION_COMPLETED if activity.sub else TASK_COMPLETED
        self._inbox.append(_event(kind, self.now, TaskScheduledId=activity.event_id, Result=json.dumps(result)))

    def fail_activity(self, activity: PendingActivity, reason: str) -> None:
        self.activities.remove(activity)
        self._inbox.append(
            _event(TASK_FAILED, self.now, TaskScheduledId=activity.event_id, Reason=reason, Details=reason)
        )

    def fire_next_timer(self) -> PendingTimer:
        timer = min(self.timers, key=lambda t: t.fire_at)
        self.timers.remove(timer)
        self.now = max(self.now, timer.fire_at)
        self._inbox.append(_event(TIMER_FIRED, self.now, TimerId=timer.event_id, FireAt=_ts(timer.fire_at)))
        return timer

    def episode(self) -> None:
        """One orchestrator invocation: new events in, new actions out, as the extension does it."""
        for event in self.history:
            event["IsPlayed"] = True
        self.history.append(_event(ORCHESTRATOR_STARTED, self.now))
        self.history.extend(self._inbox)
        self._inbox = []
        # The replay schema the local host (and the extension) speaks: V3, where a compound task lists only its
        # children not yet scheduled (V1 lists a scheduled child again inside a later task_all/task_any).
        context = {
            "history": self.history, "instanceId": self.instance_id, "isReplaying": False,
            "parentInstanceId": None, "input": json.dumps(self.input),
            "upperSchemaVersion": UPPER_SCHEMA_VERSION, "upperSchemaVersionNew": UPPER_SCHEMA_VERSION,
            "maximumShortTimerDuration": MAXIMUM_SHORT_TIMER_DURATION,
            "longRunningTimerIntervalDuration": LONG_RUNNING_TIMER_INTERVAL,
        }  # fmt: skip
        state = json.loads(self.handle(json.dumps(context)))
        self.episodes += 1
        self.custom_status = state.get("customStatus")
        actions = [leaf.body for group in state.get("actions", []) for leaf in iter_leaves(group)]
        # Activities and timers take sequence numbers; waits for events do not.
        numbered = (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY, CALL_SUB_ORCHESTRATOR, CREATE_TIMER)
        sequenced = [a for a in actions if a["actionType"] in numbered]
        cancelled = {i for i, a in enumerate(sequenced) if a["actionType"] == CREATE_TIMER and a.get("isCanceled")}
        self.timers = [t for t in self.timers if t.event_id not in cancelled]
        for action in sequenced[self.scheduled :]:
            kind = action["actionType"]
            if kind in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY):
                # Inputs travel as JSON text in the protocol.
                payload = json.loads(action["input"]) if action.get("input") is not None else None
                self.activities.append(PendingActivity(self.scheduled, action["functionName"], payload))
                self.calls.append((action["functionName"], payload))
                self.history.append(_event(TASK_SCHEDULED, self.now, self.scheduled, Name=action["functionName"]))
            elif kind == CALL_SUB_ORCHESTRATOR:
                payload = json.loads(action["input"]) if action.get("input") is not None else None
                self.activities.append(PendingActivity(self.scheduled, action["functionName"], payload, sub=True))
                self.calls.append((action["functionName"], payload))
                created = _event(SUB_ORCHESTRATION_CREATED, self.now, self.scheduled, Name=action["functionName"],
                                 InstanceId=action.get("instanceId"))  # fmt: skip
                self.history.append(created)
            else:
                fire_at = datetime.fromisoformat(action["fireAt"].replace("Z", "+00:00"))
                if self.scheduled not in cancelled:
                    self.timers.append(PendingTimer(self.scheduled, fire_at))
                self.history.append(_event(TIMER_CREATED, self.now, self.scheduled, FireAt=action["fireAt"]))
            self.scheduled += 1
        for action in actions:
            if action["actionType"] == CONTINUE_AS_NEW:
                self.continued_with = json.loads(action["input"])
        self.history.append(_event(ORCHESTRATOR_COMPLETED, self.now))
        self.max_history = max(self.max_history, len(self.history))
        if state.get("isDone"):
            if self.continued_with is not None:
                # Events raised after the last episode go to the new execution, as the extension does.
                self.input, self.continued_with = self.continued_with, None
                self.executions += 1
                self._start_execution()
            else:
                self.done = True
                self.output = state.get("output")
        if state.get("error"):
            raise AssertionError(f"orchestrator failed: {state['error']}")

    def run(self, respond: Callable[[PendingActivity, Replay], Any], *, max_episodes: int = 5000,
            before_episode: Callable[[Replay], None] | None = None) -> Any:  # fmt: skip
        """Run to completion: activities answered by ``respond``; timers fire when nothing else is due."""
        self.episode()
        while not self.done:
            if self.episodes >= max_episodes:
                raise AssertionError(f"orchestration not done after {max_episodes} episodes")
            if before_episode is not None:
                before_episode(self)
            if self.activities:
                activity = self.activities[0]
                self.complete_activity(activity, respond(activity, self))
            elif not self._inbox and self.timers:
                self.fire_next_timer()
            elif not self._inbox:
                raise AssertionError(f"orchestration is waiting with nothing to do: {self.custom_status}")
            self.episode()
        return self.output

    def advance(self, delta: timedelta) -> None:
        self.now += delta
