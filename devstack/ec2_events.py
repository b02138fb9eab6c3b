"""EventBridge's "EC2 Instance State-change Notification" on the local stack: moto emits none, so this watches moto.

``Ec2StateChanges.poll()`` describes every instance, and for each one whose state changed since the last look
builds the event as EC2 sends it (shape: shared/reference/aws-events/event-instance-state.json, built by
``aws_lambda.models.state_change.state_change_event``) and delivers it to the target when it matches the rule's
pattern (the template's CutoverStateChangeRule), as EventBridge would. A delivery that raises is retried on the
next poll (EventBridge retries a failed Lambda target, up to the rule's retry policy).

"Stop never completes": moto stops an instance at once and cannot hold it in ``stopping``. For an instance under
that fault the watcher undoes the stop (StartInstances) before anything else sees it stopped and emits nothing,
so the cutover's follow-up finds the source still not stopped (it reads ``running`` where AWS would say
``stopping``; docs/AWS.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda.models.state_change import STATE_CHANGE_DETAIL_TYPE, state_change_event

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# The template's CutoverStateChangeRule.EventPattern (infra/aws/template.yaml); tests/integration/aws keeps them equal.
CUTOVER_RULE_PATTERN: dict[str, Any] = {
    "source": ["aws.ec2"],
    "detail-type": [STATE_CHANGE_DETAIL_TYPE],
    "detail": {"state": ["stopped"]},
}


class Clock(Protocol):
    def now(self) -> datetime: ...


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """EventBridge matching for the pattern forms used here: a list of exact values, or a nested object."""
    for key, expected in pattern.items():
        if key not in event:
            return False
        value = event[key]
        if isinstance(expected, Mapping):
            if not isinstance(value, Mapping) or not matches(expected, value):
                return False
        elif value not in expected:
            return False
    return True


@dataclass
class Ec2StateChanges:
    ec2: EC2Client
    account: str
    region: str
    deliver: Callable[[dict[str, Any]], object]
    clock: Clock | None = None
    pattern: Mapping[str, Any] = field(default_factory=lambda: CUTOVER_RULE_PATTERN)
    # Instance ids whose stop never completes (read on every poll, so a fault can be set at any time).
    never_stops: Callable[[], Iterable[str]] = lambda: ()
    emitted: list[dict[str, Any]] = field(default_factory=list)
    delivered: int = 0
    held: set[str] = field(default_factory=set)
    _last: dict[str, str] = field(default_factory=dict)
    _pending: list[dict[str, Any]] = field(default_factory=list)

    def states(self) -> dict[str, str]:
        states: dict[str, str] = {}
        for page in self.ec2.get_paginator("describe_instances").paginate():
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    states[instance["InstanceId"]] = instance["State"]["Name"]
        return states

    def poll(self) -> list[dict[str, Any]]:
        """Look once; return the events delivered by this look (including retried ones)."""
        states = self.states()
        faulted = set(self.never_stops())
        undo = [i for i, s in states.items() if s in ("stopping", "stopped") and i in faulted
                and self._last.get(i) not in (None, "stopped")]  # fmt: skip
        if undo:
            self.ec2.start_instances(InstanceIds=undo)
            self.held.update(undo)
            for instance_id in undo:
                states[instance_id] = self._last[instance_id]  # as far as anyone can tell, still not stopped
        now = (self.clock.now() if self.clock else datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for instance_id, state in sorted(states.items()):
            before = self._last.get(instance_id)
            self._last[instance_id] = state
            if before is None or before == state:
                continue
            event = state_change_event(event_id=str(uuid.uuid4()), account=self.account, region=self.region,
                                       instance_id=instance_id, state=state, time=now)  # fmt: skip
            self.emitted.append(event)
            if matches(self.pattern, event):
                self._pending.append(event)
        delivered: list[dict[str, Any]] = []
        pending, self._pending = self._pending, []
        for event in pending:
            try:
                self.deliver(event)
            except Exception:
                self._pending.append(event)  # EventBridge retries a failed target
                continue
            self.delivered += 1
            delivered.append(event)
        return delivered
