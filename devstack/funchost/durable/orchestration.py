"""One orchestration instance as the Durable extension sees it, with no I/O: a pure state machine.

An *episode* takes the messages that arrived (activity results, fired timers, external events,
a terminate request), appends them to the history, replays the orchestrator over the whole
history through the real SDK, and turns the actions it returns into new history events and
*effects* (run this activity, start this timer, start that child) for the engine to carry out
after the episode is committed.

Task ids. The SDK numbers every task it schedules with a counter (``_sequence_number``) and
matches completions to tasks by that number (``TaskScheduledId``/``TimerId``). The host has to
give each new action the number the SDK gave it. Visible actions are numbered in the order they
appear in the returned action list, but a ``*_with_retry`` call also draws numbers the host never
sees as actions: one for the back-off timer when an attempt fails, one for the next attempt when
that timer fires (as DurableTask's RetryInterceptor does). Those draws happen while the SDK
replays the failure or timer event, so the host delivers such *retry events* after every other
new event of the episode: then the SDK's order is always "new visible actions first, then one
number per retry event, in delivery order", and the host can count along.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from devstack.funchost.durable.protocol import (
    UNSUPPORTED_ACTIONS,
    ActionType,
    EventType,
    Leaf,
    OrchestratorResult,
    format_timestamp,
    history_event,
    iter_leaves,
    orchestration_context,
    parse_orchestrator_failure,
    parse_orchestrator_output,
    parse_timestamp,
)


class RuntimeStatus(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    FAILED = "Failed"
    CANCELED = "Canceled"
    TERMINATED = "Terminated"
    SUSPENDED = "Suspended"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {RuntimeStatus.COMPLETED, RuntimeStatus.FAILED, RuntimeStatus.CANCELED, RuntimeStatus.TERMINATED}
)
# DurableTask.Core's OrchestrationStatus numbers, as ExecutionCompleted events carry them.
_DTFX_STATUS = {RuntimeStatus.COMPLETED: 1, RuntimeStatus.CONTINUED_AS_NEW: 2, RuntimeStatus.FAILED: 3}


class MessageKind(StrEnum):
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
    TIMER_FIRED = "timer_fired"
    SUB_COMPLETED = "sub_completed"
    SUB_FAILED = "sub_failed"
    EVENT = "event"
    TERMINATE = "terminate"


@dataclass
class Message:
    """Something that happened to an instance and becomes a history event in its next episode."""

    kind: MessageKind
    execution_id: str | None = None  # results target one execution; events and terminate the current one
    task_id: int = -1
    name: str = ""
    payload: str | None = None  # result JSON, event input JSON, or the terminate reason
    reason: str = ""
    details: str = ""
    durable_key: str | None = None  # the stored inbox row to delete once the message is in history

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        return cls(**{**data, "kind": MessageKind(data["kind"])})


@dataclass
class RetryPolicy:
    first_interval_ms: int
    max_attempts: int

    @classmethod
    def from_action(cls, body: dict[str, Any]) -> RetryPolicy:
        options = body.get("retryOptions") or {}
        return cls(
            first_interval_ms=int(options.get("firstRetryIntervalInMilliseconds", 1000)),
            max_attempts=int(options.get("maxNumberOfAttempts", 1)),
        )


@dataclass
class RetryGroup:
    """A ``*_with_retry`` call across its attempts."""

    kind: str  # "activity" | "suborchestration"
    name: str
    input: str | None
    policy: RetryPolicy
    explicit_child_id: str | None = None
    attempts: int = 1


@dataclass
class OpenTask:
    task_id: int
    kind: str  # "activity" | "timer" | "suborchestration"
    name: str = ""
    input: str | None = None
    fire_at: str | None = None
    child_instance_id: str | None = None
    retry_group: int | None = None
    retry_timer: bool = False


@dataclass
class ParentLink:
    instance_id: str
    execution_id: str
    task_id: int


# --- effects: what the engine does after the episode is committed -----------------------------------


@dataclass(frozen=True)
class RunActivity:
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


@dataclass(frozen=True)
class StartTimer:
    instance_id: str
    execution_id: str
    task_id: int
    fire_at: datetime


@dataclass(frozen=True)
class CancelTimer:
    instance_id: str
    execution_id: str
    task_id: int


@dataclass(frozen=True)
class StartChild:
    instance_id: str
    name: str
    input_json: str | None
    parent: ParentLink


@dataclass(frozen=True)
class NotifyParent:
    parent_instance_id: str
    message: Message


Effect = RunActivity | StartTimer | CancelTimer | StartChild | NotifyParent


@dataclass
class EpisodeOutcome:
    new_events: list[str] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    consumed_keys: list[str] = field(default_factory=list)
    needs_followup: bool = False
    replayed_events: int = 0
    invoked: bool = False


@dataclass(frozen=True)
class InstanceView:
    """An instance as last committed: what status queries answer (never a half-finished episode)."""

    instance_id: str
    name: str
    status: RuntimeStatus
    input_json: str | None
    output_json: str | None
    custom_status_json: str | None
    created_time: str
    last_updated_time: str
    generation: int
    history_length: int


OrchestratorInvoker = Callable[[str], str]
"""Calls the orchestrator function's handle with the context JSON and returns its state JSON."""


def new_execution_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Instance:
    instance_id: str
    name: str
    input_json: str | None
    created_time: str
    status: RuntimeStatus = RuntimeStatus.PENDING
    execution_id: str = field(default_factory=new_execution_id)
    last_updated_time: str = ""
    output_json: str | None = None
    custom_status_json: str | None = None
    failure_details: str | None = None
    parent: ParentLink | None = None
    # Replay bookkeeping for the current execution.
    history_json: list[str] = field(default_factory=list)
    next_task_id: int = 0
    leaf_signatures: list[str] = field(default_factory=list)
    leaf_task_ids: list[int] = field(default_factory=list)
    waits_seen: dict[str, int] = field(default_factory=dict)
    events_delivered: dict[str, int] = field(default_factory=dict)
    open_tasks: dict[int, OpenTask] = field(default_factory=dict)
    retries: dict[int, RetryGroup] = field(default_factory=dict)
    # Arrived but not yet in history; external events wait in ``buffered_events`` for a waiter.
    inbox: list[Message] = field(default_factory=list)
    buffered_events: list[Message] = field(default_factory=list)
    episodes: int = 0
    generation: int = 0  # bumps on continue_as_new, names the history rows of each execution
    commits: int = 0  # committed episodes over the instance's life, orders its stored snapshots
    stored_history_length: int = 0  # history kept only in storage (finished instances drop it from memory)

    def __post_init__(self) -> None:
        if not self.last_updated_time:
            self.last_updated_time = self.created_time

    # ----------------------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return bool(self.history_json)

    def has_work(self) -> bool:
        """An episode would make progress: something arrived, or a buffered event has a waiter."""
        if self.status.is_terminal:
            return False
        if not self.started or self.inbox:
            return True
        return any(self._outstanding_waits(msg.name) > 0 for msg in self.buffered_events)

    def accept(self, message: Message) -> bool:
        """Take a message in; False when it can no longer matter (stale execution, finished instance)."""
        if self.status.is_terminal:
            return False
        if message.execution_id is not None and message.execution_id != self.execution_id:
            return False
        if message.kind == MessageKind.EVENT:
            self.buffered_events.append(message)
        else:
            self.inbox.append(message)
        return True

    def _outstanding_waits(self, name: str) -> int:
        return self.waits_seen.get(name, 0) - self.events_delivered.get(name, 0)

    # ----------------------------------------------------------------------------------------------
    def run_episode(self, now: datetime, invoke: OrchestratorInvoker) -> EpisodeOutcome:
        outcome = EpisodeOutcome()
        stamp = format_timestamp(now)
        self.last_updated_time = stamp
        terminate = next((m for m in self.inbox if m.kind == MessageKind.TERMINATE), None)
        if terminate is not None:
            self._terminate(terminate, stamp, outcome)
            return outcome

        new_events: list[dict[str, Any]] = [history_event(EventType.ORCHESTRATOR_STARTED, stamp)]
        if not self.started:
            new_events.append(self._execution_started(stamp))
            self.status = RuntimeStatus.RUNNING
        normal, retry_events = self._take_inbox(stamp, outcome)
        new_events.extend(normal)
        new_events.extend(event for event, _ in retry_events)

        self.history_json.extend(json.dumps(event) for event in new_events)
        outcome.new_events.extend(self.history_json[-len(new_events) :])
        context = orchestration_context(
            instance_id=self.instance_id,
            history_json=self.history_json,
            input_value=None if self.input_json is None else json.loads(self.input_json),
            parent_instance_id=self.parent.instance_id if self.parent else None,
        )
        outcome.replayed_events = len(self.history_json)
        outcome.invoked = True
        try:
            result = parse_orchestrator_output(invoke(context))
        except Exception as exc:  # the orchestrator raised: the SDK put its state in the message
            result = parse_orchestrator_failure(str(exc))

        tail: list[dict[str, Any]] = []
        if result.error is None:
            failure = self._apply_actions(result, [task for _, task in retry_events], now, stamp, tail, outcome)
        else:
            failure = result.error
        if failure is None:
            self.custom_status_json = None if result.custom_status is None else json.dumps(result.custom_status)
        tail.append(history_event(EventType.ORCHESTRATOR_COMPLETED, stamp))
        continue_with: tuple[str | None] | None = None
        if failure is not None:
            self._fail(failure, stamp, tail, outcome)
        elif result.is_done:
            continue_with = self._finish(result, stamp, tail, outcome)
        self.history_json.extend(json.dumps(event) for event in tail)
        outcome.new_events.extend(self.history_json[-len(tail) :])
        if continue_with is not None:
            self._new_execution(continue_with[0])
        outcome.needs_followup = outcome.needs_followup or self.has_work()
        return outcome

    # ----------------------------------------------------------------------------------------------
    def _execution_started(self, stamp: str) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "Name": self.name,
            "Version": "",
            "Input": self.input_json,
            "OrchestrationInstance": {"InstanceId": self.instance_id, "ExecutionId": self.execution_id},
        }
        if self.parent is not None:
            fields["ParentInstance"] = {
                "OrchestrationInstance": {
                    "InstanceId": self.parent.instance_id,
                    "ExecutionId": self.parent.execution_id,
                },
                "TaskScheduleId": self.parent.task_id,
            }
        return history_event(EventType.EXECUTION_STARTED, stamp, **fields)

    def _take_inbox(
        self, stamp: str, outcome: EpisodeOutcome
    ) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], OpenTask]]]:
        """Turn arrived messages into history events: ordinary ones, then retry events (see module doc)."""
        normal: list[dict[str, Any]] = []
        retry_events: list[tuple[dict[str, Any], OpenTask]] = []
        for message in self.inbox:
            task = self.open_tasks.get(message.task_id)
            if task is None:  # a duplicate (an activity that ran twice) or a cancelled timer
                continue
            event = self._result_event(message, task, stamp)
            del self.open_tasks[message.task_id]
            if self._draws_task_number(message, task):
                retry_events.append((event, task))
            else:
                normal.append(event)
                if task.retry_group is not None and not task.retry_timer:
                    self.retries.pop(task.retry_group, None)  # an attempt succeeded
                elif task.retry_timer and task.retry_group is not None:
                    self.retries.pop(task.retry_group, None)  # attempts exhausted: the call fails now
        self.inbox.clear()
        still_buffered: list[Message] = []
        for message in self.buffered_events:
            if self._outstanding_waits(message.name) > 0:
                self.events_delivered[message.name] = self.events_delivered.get(message.name, 0) + 1
                normal.append(history_event(EventType.EVENT_RAISED, stamp, Name=message.name, Input=message.payload))
                if message.durable_key:
                    outcome.consumed_keys.append(message.durable_key)
            else:
                still_buffered.append(message)
        self.buffered_events = still_buffered
        return normal, retry_events

    def _draws_task_number(self, message: Message, task: OpenTask) -> bool:
        if task.retry_group is None:
            return False
        if task.retry_timer:
            group = self.retries[task.retry_group]
            return group.attempts < group.policy.max_attempts
        return message.kind in (MessageKind.TASK_FAILED, MessageKind.SUB_FAILED)

    @staticmethod
    def _result_event(message: Message, task: OpenTask, stamp: str) -> dict[str, Any]:
        kind = message.kind
        if kind == MessageKind.TIMER_FIRED:
            return history_event(EventType.TIMER_FIRED, stamp, TimerId=task.task_id, FireAt=task.fire_at)
        if kind in (MessageKind.TASK_COMPLETED, MessageKind.SUB_COMPLETED):
            event_type = (
                EventType.TASK_COMPLETED
                if kind == MessageKind.TASK_COMPLETED
                else EventType.SUB_ORCHESTRATION_COMPLETED
            )
            return history_event(event_type, stamp, TaskScheduledId=task.task_id, Result=message.payload)
        event_type = EventType.TASK_FAILED if kind == MessageKind.TASK_FAILED else EventType.SUB_ORCHESTRATION_FAILED
        return history_event(
            event_type, stamp, TaskScheduledId=task.task_id, Reason=message.reason, Details=message.details
        )

    # ----------------------------------------------------------------------------------------------
    def _apply_actions(
        self,
        result: OrchestratorResult,
        retry_tasks: list[OpenTask],
        now: datetime,
        stamp: str,
        tail: list[dict[str, Any]],
        outcome: EpisodeOutcome,
    ) -> str | None:
        """Schedule what the orchestrator asked for; a returned string is why the orchestration fails."""
        leaves = list(iter_leaves(result.actions))
        for leaf in leaves:
            if leaf.action_type in UNSUPPORTED_ACTIONS:
                return f"{UNSUPPORTED_ACTIONS[leaf.action_type]} is not supported by the local Functions host"
        numbered = [leaf for leaf in leaves if leaf.numbered]
        known = len(self.leaf_signatures)
        for index, leaf in enumerate(numbered[:known]):
            if leaf.signature != self.leaf_signatures[index]:
                return (
                    "Non-Deterministic workflow detected: the orchestrator scheduled "
                    f"{leaf.signature!r} where its history has {self.leaf_signatures[index]!r} "
                    f"(task {self.leaf_task_ids[index]})"
                )
        if len(numbered) < known:
            return (
                "Non-Deterministic workflow detected: the orchestrator scheduled "
                f"{len(numbered)} tasks on replay but its history has {known}"
            )
        for leaf in numbered[known:]:
            task_id = self.next_task_id
            self.next_task_id += 1
            self.leaf_signatures.append(leaf.signature)
            self.leaf_task_ids.append(task_id)
            self._schedule_leaf(leaf, task_id, now, stamp, tail, outcome)
        for task in retry_tasks:
            task_id = self.next_task_id
            self.next_task_id += 1
            self._continue_retry(task, task_id, now, stamp, tail, outcome)
        for index, leaf in enumerate(numbered):
            if leaf.action_type == ActionType.CREATE_TIMER and leaf.body.get("isCanceled"):
                self._cancel_timer(self.leaf_task_ids[index], outcome)
        self.waits_seen = dict(
            Counter(
                str(leaf.body.get("externalEventName"))
                for leaf in leaves
                if leaf.action_type == ActionType.WAIT_FOR_EXTERNAL_EVENT
            )
        )
        return None

    def _schedule_leaf(
        self, leaf: Leaf, task_id: int, now: datetime, stamp: str, tail: list[dict[str, Any]], outcome: EpisodeOutcome
    ) -> None:
        body = leaf.body
        kind = leaf.action_type
        if kind == ActionType.CREATE_TIMER:
            fire_at = str(body["fireAt"])
            tail.append(history_event(EventType.TIMER_CREATED, stamp, task_id, FireAt=fire_at))
            if not body.get("isCanceled"):
                self.open_tasks[task_id] = OpenTask(task_id, "timer", fire_at=fire_at)
                outcome.effects.append(
                    StartTimer(self.instance_id, self.execution_id, task_id, _parse_fire_at(fire_at))
                )
            return
        name = str(body["functionName"])
        task_input = body.get("input")
        retry_group: int | None = None
        if kind in (ActionType.CALL_ACTIVITY_WITH_RETRY, ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY):
            retry_group = task_id
            self.retries[task_id] = RetryGroup(
                kind="activity" if kind == ActionType.CALL_ACTIVITY_WITH_RETRY else "suborchestration",
                name=name,
                input=task_input,
                policy=RetryPolicy.from_action(body),
                explicit_child_id=body.get("instanceId"),
            )
        if kind in (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY):
            self._schedule_activity(task_id, name, task_input, retry_group, stamp, tail, outcome)
        else:
            self._schedule_child(task_id, name, task_input, body.get("instanceId"), retry_group, stamp, tail, outcome)

    def _schedule_activity(
        self,
        task_id: int,
        name: str,
        task_input: str | None,
        retry_group: int | None,
        stamp: str,
        tail: list[dict[str, Any]],
        outcome: EpisodeOutcome,
    ) -> None:
        tail.append(history_event(EventType.TASK_SCHEDULED, stamp, task_id, Name=name, Input=task_input))
        self.open_tasks[task_id] = OpenTask(task_id, "activity", name, task_input, retry_group=retry_group)
        outcome.effects.append(RunActivity(self.instance_id, self.execution_id, task_id, name, task_input))

    def _schedule_child(
        self,
        task_id: int,
        name: str,
        task_input: str | None,
        explicit_id: str | None,
        retry_group: int | None,
        stamp: str,
        tail: list[dict[str, Any]],
        outcome: EpisodeOutcome,
    ) -> None:
        child_id = explicit_id or f"{self.instance_id}:{task_id:04d}"
        tail.append(
            history_event(
                EventType.SUB_ORCHESTRATION_CREATED, stamp, task_id, Name=name, Input=task_input, InstanceId=child_id
            )
        )
        self.open_tasks[task_id] = OpenTask(
            task_id, "suborchestration", name, task_input, child_instance_id=child_id, retry_group=retry_group
        )
        # The action's input is the SDK's JSON text; as a child's input it is serialized once more,
        # exactly as the extension's data converter does (the SDK's get_input parses it back).
        child_input = None if task_input is None else json.dumps(task_input)
        outcome.effects.append(
            StartChild(child_id, name, child_input, ParentLink(self.instance_id, self.execution_id, task_id))
        )

    def _continue_retry(
        self,
        task: OpenTask,
        task_id: int,
        now: datetime,
        stamp: str,
        tail: list[dict[str, Any]],
        outcome: EpisodeOutcome,
    ) -> None:
        assert task.retry_group is not None
        group = self.retries[task.retry_group]
        if not task.retry_timer:  # an attempt failed: wait before the next one (or before giving up)
            fire_at = format_timestamp(now + timedelta(milliseconds=group.policy.first_interval_ms))
            tail.append(history_event(EventType.TIMER_CREATED, stamp, task_id, FireAt=fire_at))
            self.open_tasks[task_id] = OpenTask(
                task_id, "timer", fire_at=fire_at, retry_group=task.retry_group, retry_timer=True
            )
            outcome.effects.append(StartTimer(self.instance_id, self.execution_id, task_id, _parse_fire_at(fire_at)))
            return
        group.attempts += 1
        if group.kind == "activity":
            self._schedule_activity(task_id, group.name, group.input, task.retry_group, stamp, tail, outcome)
        else:
            self._schedule_child(
                task_id, group.name, group.input, group.explicit_child_id, task.retry_group, stamp, tail, outcome
            )

    def _cancel_timer(self, task_id: int, outcome: EpisodeOutcome) -> None:
        task = self.open_tasks.get(task_id)
        if task is not None and task.kind == "timer":
            del self.open_tasks[task_id]
            outcome.effects.append(CancelTimer(self.instance_id, self.execution_id, task_id))

    # ----------------------------------------------------------------------------------------------
    def _finish(
        self, result: OrchestratorResult, stamp: str, tail: list[dict[str, Any]], outcome: EpisodeOutcome
    ) -> tuple[str | None] | None:
        """Complete the orchestration, or return the next execution's input for continue_as_new."""
        continue_as_new = next(
            (leaf for leaf in iter_leaves(result.actions) if leaf.action_type == ActionType.CONTINUE_AS_NEW), None
        )
        if continue_as_new is not None:
            new_input = continue_as_new.body.get("input")
            tail.append(
                history_event(
                    EventType.EXECUTION_COMPLETED,
                    stamp,
                    OrchestrationStatus=_DTFX_STATUS[RuntimeStatus.CONTINUED_AS_NEW],
                    Result=new_input,
                )
            )
            self._close_open_tasks(outcome)
            outcome.needs_followup = True
            return (None if new_input is None else json.dumps(new_input),)
        self.status = RuntimeStatus.COMPLETED
        self.output_json = None if result.output is None else json.dumps(result.output)
        tail.append(
            history_event(
                EventType.EXECUTION_COMPLETED,
                stamp,
                OrchestrationStatus=_DTFX_STATUS[RuntimeStatus.COMPLETED],
                Result=self.output_json,
            )
        )
        self._close_open_tasks(outcome)
        self._drop_buffered_events(outcome)
        if self.parent is not None:
            outcome.effects.append(
                NotifyParent(
                    self.parent.instance_id,
                    Message(
                        MessageKind.SUB_COMPLETED,
                        self.parent.execution_id,
                        self.parent.task_id,
                        payload=self.output_json,
                    ),
                )
            )
        return None

    def _fail(self, error: str, stamp: str, tail: list[dict[str, Any]], outcome: EpisodeOutcome) -> None:
        reason = f"Orchestrator function '{self.name}' failed: {error}"
        self.status = RuntimeStatus.FAILED
        self.output_json = json.dumps(reason)
        self.failure_details = error
        tail.append(
            history_event(
                EventType.EXECUTION_COMPLETED,
                stamp,
                OrchestrationStatus=_DTFX_STATUS[RuntimeStatus.FAILED],
                Result=self.output_json,
                FailureDetails={"ErrorType": "OrchestrationFailure", "ErrorMessage": error},
            )
        )
        self._close_open_tasks(outcome)
        self._drop_buffered_events(outcome)
        if self.parent is not None:
            outcome.effects.append(
                NotifyParent(
                    self.parent.instance_id,
                    Message(
                        MessageKind.SUB_FAILED,
                        self.parent.execution_id,
                        self.parent.task_id,
                        reason=reason,
                        details=error,
                    ),
                )
            )

    def _terminate(self, message: Message, stamp: str, outcome: EpisodeOutcome) -> None:
        if message.durable_key:
            outcome.consumed_keys.append(message.durable_key)
        reason = message.payload or ""
        events = []
        if not self.started:
            events.append(history_event(EventType.ORCHESTRATOR_STARTED, stamp))
            events.append(self._execution_started(stamp))
        events.append(history_event(EventType.EXECUTION_TERMINATED, stamp, Input=json.dumps(reason)))
        self.history_json.extend(json.dumps(event) for event in events)
        outcome.new_events.extend(self.history_json[-len(events) :])
        self.status = RuntimeStatus.TERMINATED
        self.output_json = json.dumps(reason)
        self.inbox.clear()
        self._close_open_tasks(outcome)
        self._drop_buffered_events(outcome)

    def _close_open_tasks(self, outcome: EpisodeOutcome) -> None:
        for task in self.open_tasks.values():
            if task.kind == "timer":
                outcome.effects.append(CancelTimer(self.instance_id, self.execution_id, task.task_id))
        self.open_tasks.clear()
        self.retries.clear()

    def _drop_buffered_events(self, outcome: EpisodeOutcome) -> None:
        outcome.consumed_keys.extend(m.durable_key for m in self.buffered_events if m.durable_key)
        self.buffered_events.clear()

    def _new_execution(self, input_json: str | None) -> None:
        """continue_as_new: a fresh history; events that no waiter took yet carry over."""
        self.input_json = input_json
        self.execution_id = new_execution_id()
        self.generation += 1
        self.history_json = []
        self.next_task_id = 0
        self.leaf_signatures = []
        self.leaf_task_ids = []
        self.waits_seen = {}
        self.events_delivered = {}
        self.episodes = 0
        self.status = RuntimeStatus.RUNNING

    def view(self) -> InstanceView:
        return InstanceView(
            instance_id=self.instance_id,
            name=self.name,
            status=self.status,
            input_json=self.input_json,
            output_json=self.output_json,
            custom_status_json=self.custom_status_json,
            created_time=self.created_time,
            last_updated_time=self.last_updated_time,
            generation=self.generation,
            history_length=len(self.history_json) if self.history_json else self.stored_history_length,
        )

    # --- persistence: everything but the history, which is stored as episode chunks ---------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "name": self.name,
            "input_json": self.input_json,
            "created_time": self.created_time,
            "status": self.status.value,
            "execution_id": self.execution_id,
            "last_updated_time": self.last_updated_time,
            "output_json": self.output_json,
            "custom_status_json": self.custom_status_json,
            "failure_details": self.failure_details,
            "parent": asdict(self.parent) if self.parent else None,
            "history_length": len(self.history_json) if self.history_json else self.stored_history_length,
            "next_task_id": self.next_task_id,
            "leaf_signatures": self.leaf_signatures,
            "leaf_task_ids": self.leaf_task_ids,
            "waits_seen": self.waits_seen,
            "events_delivered": self.events_delivered,
            "open_tasks": [asdict(task) for task in self.open_tasks.values()],
            "retries": {str(key): asdict(group) for key, group in self.retries.items()},
            "episodes": self.episodes,
            "generation": self.generation,
            "commits": self.commits,
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any], history_json: list[str]) -> Instance:
        retries = {}
        for key, group in data["retries"].items():
            policy = RetryPolicy(**group.pop("policy"))
            retries[int(key)] = RetryGroup(policy=policy, **group)
        return cls(
            instance_id=data["instance_id"],
            name=data["name"],
            input_json=data["input_json"],
            created_time=data["created_time"],
            status=RuntimeStatus(data["status"]),
            execution_id=data["execution_id"],
            last_updated_time=data["last_updated_time"],
            output_json=data["output_json"],
            custom_status_json=data["custom_status_json"],
            failure_details=data.get("failure_details"),
            parent=ParentLink(**data["parent"]) if data["parent"] else None,
            history_json=history_json[: data["history_length"]],
            next_task_id=data["next_task_id"],
            leaf_signatures=list(data["leaf_signatures"]),
            leaf_task_ids=list(data["leaf_task_ids"]),
            waits_seen=dict(data["waits_seen"]),
            events_delivered=dict(data["events_delivered"]),
            open_tasks={task["task_id"]: OpenTask(**task) for task in data["open_tasks"]},
            retries=retries,
            episodes=data["episodes"],
            generation=data["generation"],
            commits=data.get("commits", 0),
            stored_history_length=data["history_length"],
        )

    def pending_effects(self) -> list[Effect]:
        """After a restart: the work the committed state still waits for (activities rerun, as on Azure)."""
        effects: list[Effect] = []
        for task in self.open_tasks.values():
            if task.kind == "activity":
                effects.append(RunActivity(self.instance_id, self.execution_id, task.task_id, task.name, task.input))
            elif task.kind == "timer" and task.fire_at:
                effects.append(
                    StartTimer(self.instance_id, self.execution_id, task.task_id, _parse_fire_at(task.fire_at))
                )
            elif task.kind == "suborchestration" and task.child_instance_id:
                child_input = None if task.input is None else json.dumps(task.input)
                effects.append(
                    StartChild(
                        task.child_instance_id,
                        task.name,
                        child_input,
                        ParentLink(self.instance_id, self.execution_id, task.task_id),
                    )
                )
        return effects


def _parse_fire_at(text: str) -> datetime:
    return parse_timestamp(text)
