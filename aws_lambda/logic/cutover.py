"""Cutover, driven by events: stop the sources and return; fail over each one when EC2 says it stopped.

ASR cannot shut down an AWS source, so the last changes on the source reach Azure only if it is stopped
first. No Lambda waits for a stop (a wave of 1,000 would hold 1,000 invocations for minutes):

1. ``start_cutover`` (the instance's schedule, or an operator's batch) checks each instance, marks it
   ``aws2azure:cutover-stop=stopping:<request>``, calls StopInstances in batches, schedules one follow-up
   for the batch at the bound (EventBridge Scheduler, ``at(...)``, deleted after it runs) and returns.
2. ``on_state_change`` ("EC2 Instance State-change Notification", state ``stopped``) sends
   ``FailoverRequested(source_stopped=true)`` for an instance marked ``stopping`` that still wants migrating.
3. ``check_stopped`` (the follow-up) reports each source of the batch that did not stop (reason tag, metric,
   no failover), and fails over one that did stop but whose event was lost.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from aws_lambda.logic.intake import current_phase, event_id
from aws_lambda.models.cutover import CutoverRequest, StopFollowUp
from aws_lambda.models.outcomes import CutoverOutcome, CutoverRunOutcome
from aws_lambda.models.state_change import InstanceStateChange
from aws_lambda.observability import count, count_by, logger
from aws_lambda.ports import Clock, EventPublisher, InstanceInventory, SourceMachines, StopFollowUps, TagWriter
from migration.errors import NotFound
from migration.events import FailoverRequestedData, new_event
from migration.identity import InstanceRef
from migration.lifecycle import Phase
from migration.readiness import InstanceDescription
from migration.tags import CUTOVER_STOP, EC2_TAG_VALUE_MAX, MIGRATE, REASON, UPDATED_AT, parse_bool

COMPONENT = "cutover"
# Failing over makes sense only while Azure replicates the instance (or already started failing it over).
_NOTHING_TO_CUT_OVER = frozenset(
    {Phase.NOT_READY, Phase.CANCELLED, Phase.FAILED, Phase.MIGRATED, Phase.INSTALLING_AGENT, Phase.AWAITING_DISCOVERY,
     Phase.ROLLING_BACK, Phase.ROLLED_BACK}
)  # fmt: skip
_GONE = frozenset({"shutting-down", "terminated"})
STOPPING, SENT, NOT_STOPPED = "stopping", "sent", "not-stopped"
_BATCH_NAMESPACE = uuid.UUID("7b1d0f7e-2c4a-4e55-9a0b-6f3e2d1c0b9a")


@dataclass(frozen=True)
class CutoverDependencies:
    inventory: InstanceInventory
    machines: SourceMachines
    tags: TagWriter
    publisher: EventPublisher
    follow_ups: StopFollowUps
    clock: Clock
    stop_timeout_seconds: int


@dataclass(frozen=True)
class StopMark:
    state: str
    request_id: str
    requested_by: str

    def value(self) -> str:
        return f"{self.state}:{self.request_id}:{self.requested_by}"[:EC2_TAG_VALUE_MAX]

    @classmethod
    def parse(cls, raw: str | None) -> StopMark | None:
        parts = (raw or "").split(":")
        if len(parts) < 3:
            return None
        return cls(state=parts[0], request_id=":".join(parts[1:-1]), requested_by=parts[-1])


def _wants_migration(tags: dict[str, str]) -> bool:
    try:
        return parse_bool(MIGRATE, tags.get(MIGRATE, "false"))
    except ValueError:
        return False


def _stamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _reason_tags(reason: str, now: datetime, mark: StopMark | None = None) -> dict[str, str]:
    tags = {REASON: reason[:EC2_TAG_VALUE_MAX], UPDATED_AT: _stamp(now)}
    if mark is not None:
        tags[CUTOVER_STOP] = mark.value()
    return tags


def start_cutover(requests: list[CutoverRequest], deps: CutoverDependencies) -> CutoverRunOutcome:
    """Stop every source that may be cut over, in batched calls, and return without waiting."""
    now = deps.clock.now()
    outcomes: list[CutoverOutcome] = []
    to_stop: dict[str, tuple[CutoverRequest, InstanceDescription]] = {}
    updates: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    for request in requests:
        count("CutoverRequests")
        instance = request.instance
        try:
            description = deps.inventory.describe(instance)
        except NotFound:
            count("InstanceNotFound")
            reason = f"instance {instance.instance_id} no longer exists; failover not requested"
            outcomes.append(CutoverOutcome(action="ignored", reason=reason, instance_id=instance.instance_id))
            continue
        phase = current_phase(description.tags)
        if not _wants_migration(description.tags):
            outcomes.append(_ignored(f"{MIGRATE} is not true (cancelled?); the source was left running", description))
            continue
        if phase is None or phase in _NOTHING_TO_CUT_OVER:
            status = phase.value if phase else "no status"
            outcomes.append(
                _ignored(f"migration is {status}: nothing to cut over; the source was left as it is", description)
            )
            continue
        mark = StopMark(STOPPING, request.request_id, request.requested_by)
        if description.state in _GONE:
            outcomes.append(_not_stopped(description, f"the source is {description.state}", now, updates, request))
            continue
        if description.state == "stopped":
            # Already stopped: no state-change event will come, so fail over now.
            outcomes.append(_request_failover(instance, mark, now, deps, updates))
            continue
        reason = f"cutover at {_stamp(now)}: stopping the source; failover follows when EC2 reports it stopped"
        updates[instance.instance_id] = _reason_tags(reason, now, mark)
        to_stop[instance.instance_id] = (request, description)
    if to_stop:
        # Mark first: a state-change event that arrives before the marks are written would be ignored.
        deps.tags.write_tags({i: updates[i] for i in to_stop})
        refused = deps.machines.stop_many(list(to_stop))
        stopping = [i for i in to_stop if i not in refused]
        written.update(stopping)
        for instance_id, error in refused.items():
            request, description = to_stop[instance_id]
            why = f"EC2 refused to stop it ({getattr(error, 'code', '') or type(error).__name__}: {_short(error)})"
            outcomes.append(_not_stopped(description, why, now, updates, request))
        if stopping:
            batch = StopFollowUp(
                batch_id=str(uuid.uuid5(_BATCH_NAMESPACE, ",".join(sorted(stopping)) + _stamp(now)))[:36],
                instances=[to_stop[i][0].instance for i in stopping],
                stop_requested_at=now,
                bound_seconds=deps.stop_timeout_seconds,
            )
            deps.follow_ups.schedule(batch, now + timedelta(seconds=deps.stop_timeout_seconds))
            for instance_id in stopping:
                outcomes.append(
                    CutoverOutcome(
                        action="stop-requested",
                        reason=updates[instance_id][REASON],
                        instance_id=instance_id,
                    )
                )
    others = {i: t for i, t in updates.items() if i not in written}
    if others:
        deps.tags.write_tags(others)
    return CutoverRunOutcome(outcomes=outcomes)


def _short(error: Exception) -> str:
    return str(error).split(": ", 1)[-1][:80]


def on_state_change(change: InstanceStateChange, deps: CutoverDependencies) -> CutoverOutcome:
    """EC2 reports an instance's new state: fail it over if it is a cutover source that has now stopped."""
    instance = InstanceRef(account_id=change.account, region=change.region, instance_id=change.detail.instance_id)
    if change.detail.state != "stopped":
        return CutoverOutcome(action="ignored", reason=f"state {change.detail.state}", instance_id=instance.instance_id)
    try:
        description = deps.inventory.describe(instance)
    except NotFound:
        return CutoverOutcome(action="ignored", reason="instance not found", instance_id=instance.instance_id)
    mark = StopMark.parse(description.tags.get(CUTOVER_STOP))
    if mark is None or mark.state != STOPPING:
        # Stopped by someone else, or already handled (a duplicate event): never a failover.
        return CutoverOutcome(
            action="ignored", reason="not a source stopped for cutover", instance_id=instance.instance_id
        )
    phase = current_phase(description.tags)
    if not _wants_migration(description.tags) or phase is None or phase in _NOTHING_TO_CUT_OVER:
        return _ignored("the migration no longer wants a cutover; failover not requested", description)
    updates: dict[str, dict[str, str]] = {}
    outcome = _request_failover(instance, mark, deps.clock.now(), deps, updates)
    deps.tags.write_tags(updates)
    return outcome


def check_stopped(follow_up: StopFollowUp, deps: CutoverDependencies) -> CutoverRunOutcome:
    """The follow-up at the bound: report sources still not stopped; repair a lost state-change event."""
    now = deps.clock.now()
    outcomes: list[CutoverOutcome] = []
    updates: dict[str, dict[str, str]] = {}
    for instance in follow_up.instances:
        try:
            description = deps.inventory.describe(instance)
        except NotFound:
            continue
        mark = StopMark.parse(description.tags.get(CUTOVER_STOP))
        if mark is None or mark.state != STOPPING:
            continue  # failed over already (the event came), or cancelled
        if description.state == "stopped":
            logger.warning("state-change event missing; failing over from the follow-up")
            outcomes.append(_request_failover(instance, mark, now, deps, updates))
            continue
        why = f"still {description.state} {follow_up.bound_seconds}s after the stop was requested"
        outcomes.append(
            _not_stopped(
                description,
                why,
                now,
                updates,
                CutoverRequest(instance=instance, request_id=mark.request_id, requested_by="schedule"),
            )
        )
    if updates:
        deps.tags.write_tags(updates)
    return CutoverRunOutcome(outcomes=outcomes)


def _request_failover(
    instance: InstanceRef, mark: StopMark, now: datetime, deps: CutoverDependencies, updates: dict[str, dict[str, str]]
) -> CutoverOutcome:
    requested_by = "operator" if mark.requested_by == "operator" else "schedule"
    reason = f"source stopped at {_stamp(now)}; failover requested by {requested_by}"
    event = new_event(
        FailoverRequestedData(instance=instance, requested_by=requested_by, source_stopped=True, reason=reason),
        component=COMPONENT,
        at=now,
        event_id=event_id("FailoverRequested", instance, mark.request_id),
    )
    deps.publisher.publish(event)
    updates[instance.instance_id] = _reason_tags(reason, now, StopMark(SENT, mark.request_id, mark.requested_by))
    count_by("EventsEmitted", "EventType", "FailoverRequested")
    logger.info("failover requested", extra={"event_id": event.id, "instance_id": instance.instance_id})
    return CutoverOutcome(
        action="failover-requested", reason=reason, instance_id=instance.instance_id, event_id=event.id
    )


def _not_stopped(
    description: InstanceDescription,
    why: str,
    now: datetime,
    updates: dict[str, dict[str, str]],
    request: CutoverRequest,
) -> CutoverOutcome:
    reason = (
        f"cutover at {_stamp(now)}: the source did not stop ({why}); failover NOT requested. "
        "Stop it and invoke cutover again"
    )
    mark = StopMark(NOT_STOPPED, request.request_id, request.requested_by)
    updates[description.instance.instance_id] = _reason_tags(reason, now, mark)
    count("CutoverSourceNotStopped")
    logger.error("source did not stop; failover not requested", extra={"why": why, "request_id": request.request_id})
    return CutoverOutcome(action="source-not-stopped", reason=reason, instance_id=description.instance.instance_id)


def _ignored(reason: str, description: InstanceDescription) -> CutoverOutcome:
    logger.warning(f"cutover ignored: {reason}")
    return CutoverOutcome(action="ignored", reason=reason, instance_id=description.instance.instance_id)
