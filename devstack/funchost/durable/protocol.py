"""The JSON the Durable extension exchanges with an out-of-process (Python) orchestrator.

History events go in (``EventType`` numbers and field names as in DurableTask.Core), the
orchestrator's state comes out (``isDone``, ``actions``, ``output``, ``customStatus``). The
field names and the numbers here are those the ``azure-functions-durable`` SDK reads and writes
(``HistoryEventType``, ``ActionType``, ``OrchestratorState``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

# The SDK's DATETIME_STRING_FORMAT; always UTC with a literal Z, which dateutil reads as tz-aware.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
OUT_OF_PROC_MARKER = "$OutOfProcData$:"
# Replay schema V3: the SDK splits timers longer than the maximum into intervals itself.
UPPER_SCHEMA_VERSION = 2
# The Azure Storage provider's defaults (DurableTaskOptions.MaximumTimerDuration, LongRunningTimerIntervalLength).
MAXIMUM_SHORT_TIMER_DURATION = "6.00:00:00"
LONG_RUNNING_TIMER_INTERVAL = "3.00:00:00"


class EventType(IntEnum):
    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_FAILED = 2
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    SUB_ORCHESTRATION_CREATED = 7
    SUB_ORCHESTRATION_COMPLETED = 8
    SUB_ORCHESTRATION_FAILED = 9
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_SENT = 14
    EVENT_RAISED = 15
    CONTINUE_AS_NEW = 16


class ActionType(IntEnum):
    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    CALL_ENTITY = 7
    CALL_HTTP = 8
    SIGNAL_ENTITY = 9
    WHEN_ANY = 11
    WHEN_ALL = 12


# Actions whose task gets a sequence number from the SDK (its ``_sequence_number``), in the order the
# orchestrator yields them. External events are matched by name instead.
NUMBERED_ACTIONS = frozenset(
    {
        ActionType.CALL_ACTIVITY,
        ActionType.CALL_ACTIVITY_WITH_RETRY,
        ActionType.CALL_SUB_ORCHESTRATOR,
        ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY,
        ActionType.CREATE_TIMER,
        ActionType.CALL_ENTITY,
        ActionType.CALL_HTTP,
    }
)
UNSUPPORTED_ACTIONS = {
    ActionType.CALL_ENTITY: "call_entity (Durable Entities)",
    ActionType.SIGNAL_ENTITY: "signal_entity (Durable Entities)",
    ActionType.CALL_HTTP: "call_http (durable HTTP)",
}


def format_timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("history timestamps must be timezone-aware (UTC)")
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> datetime:
    """Read the SDK's timestamp format (and plain ISO-8601) as an aware UTC datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def history_event(event_type: EventType, timestamp: str, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    """One history event as the extension serializes it (``IsPlayed`` is set when sent)."""
    return {"EventType": int(event_type), "EventId": event_id, "IsPlayed": False, "Timestamp": timestamp, **fields}


def orchestration_context(
    *,
    instance_id: str,
    history_json: list[str],
    input_value: Any,
    parent_instance_id: str | None,
) -> str:
    """The orchestration trigger's payload: history plus instance data, as the extension sends it.

    ``history_json`` holds each event already serialized, so a replay costs one string join rather
    than re-encoding the whole history.
    """
    head = json.dumps(
        {
            "instanceId": instance_id,
            "isReplaying": False,
            "parentInstanceId": parent_instance_id,
            "input": input_value,
            "upperSchemaVersion": UPPER_SCHEMA_VERSION,
            "upperSchemaVersionNew": UPPER_SCHEMA_VERSION,
            "maximumShortTimerDuration": MAXIMUM_SHORT_TIMER_DURATION,
            "longRunningTimerIntervalDuration": LONG_RUNNING_TIMER_INTERVAL,
        }
    )
    return head[:-1] + ', "history": [' + ",".join(history_json) + "]}"


@dataclass(frozen=True)
class OrchestratorResult:
    """What one orchestrator invocation returned (or the error it raised, with its partial state)."""

    is_done: bool
    actions: list[dict[str, Any]]
    output: Any = None
    custom_status: Any = None
    error: str | None = None
    has_output: bool = False


def parse_orchestrator_output(payload: str) -> OrchestratorResult:
    state = json.loads(payload)
    groups = state.get("actions") or []
    actions = [action for group in groups for action in (group if isinstance(group, list) else [group])]
    return OrchestratorResult(
        is_done=bool(state.get("isDone")),
        actions=actions,
        output=state.get("output"),
        custom_status=state.get("customStatus"),
        error=state.get("error"),
        has_output="output" in state,
    )


def parse_orchestrator_failure(message: str) -> OrchestratorResult:
    """An orchestrator that raised: the SDK appends its state after ``$OutOfProcData$:``."""
    head, marker, tail = message.partition(OUT_OF_PROC_MARKER)
    if not marker:
        return OrchestratorResult(is_done=False, actions=[], error=message or "orchestrator failed")
    try:
        partial = parse_orchestrator_output(tail)
    except ValueError:
        return OrchestratorResult(is_done=False, actions=[], error=head.strip() or message)
    error = partial.error or head.strip()
    return OrchestratorResult(is_done=False, actions=partial.actions, custom_status=partial.custom_status, error=error)


@dataclass
class Leaf:
    """One schedulable action, in the order the orchestrator yielded it."""

    action_type: ActionType
    body: dict[str, Any] = field(repr=False)

    @property
    def numbered(self) -> bool:
        return self.action_type in NUMBERED_ACTIONS

    @property
    def signature(self) -> str:
        """What must stay the same on replay: the kind of action and its target."""
        name = self.body.get("functionName") or self.body.get("externalEventName") or ""
        kind = "timer" if self.action_type == ActionType.CREATE_TIMER else int(self.action_type)
        return f"{kind}:{name}"


def iter_leaves(actions: list[dict[str, Any]]) -> Iterator[Leaf]:
    """Flatten WhenAll/WhenAny compound actions depth-first, in their children's order."""
    for action in actions:
        children = action.get("compoundActions")
        if children is not None:
            yield from iter_leaves(children)
        else:
            yield Leaf(ActionType(action["actionType"]), action)
