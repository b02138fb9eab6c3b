"""Cutover: stop the source instance, then ask Azure to fail over.

ASR cannot shut down an AWS source, so the last changes on the source reach Azure only if it is
stopped first. A source that does not stop within the bounded wait is reported (tag, log, metric)
and not failed over: failing over a running source would split its data between the two clouds.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda.logic.intake import current_phase, event_id
from aws_lambda.models.cutover import CutoverRequest
from aws_lambda.models.outcomes import CutoverOutcome
from aws_lambda.observability import count, count_by, logger
from aws_lambda.ports import Clock, EventPublisher, InstanceInventory, SourceMachines, TagWriter
from migration.errors import NotFound, PreconditionFailed
from migration.events import FailoverRequested, FailoverRequestedData, event_source
from migration.phases import Phase
from migration.readiness import InstanceDescription
from migration.tags import MIGRATE, parse_bool, status_tags

COMPONENT = "cutover"
# Failing over makes sense only while Azure replicates the instance (or already started failing it over).
_NOTHING_TO_CUT_OVER = frozenset({Phase.NOT_READY, Phase.CANCELLED, Phase.FAILED, Phase.MIGRATED})
_GONE = frozenset({"shutting-down", "terminated"})


@dataclass(frozen=True)
class CutoverDependencies:
    inventory: InstanceInventory
    machines: SourceMachines
    tags: TagWriter
    publisher: EventPublisher
    clock: Clock
    stop_timeout_seconds: float
    stop_poll_seconds: float


def _wants_migration(tags: dict[str, str]) -> bool:
    try:
        return parse_bool(MIGRATE, tags.get(MIGRATE, "false"))
    except ValueError:
        return False


def run_cutover(request: CutoverRequest, deps: CutoverDependencies) -> CutoverOutcome:
    instance = request.instance
    count("CutoverRequests")
    try:
        description = deps.inventory.describe(instance)
    except NotFound:
        count("InstanceNotFound")
        reason = f"instance {instance.instance_id} no longer exists; failover not requested"
        logger.warning(reason)
        return CutoverOutcome(action="ignored", reason=reason, instance_id=instance.instance_id)
    phase = current_phase(description.tags)
    if not _wants_migration(description.tags):
        return _ignored(f"{MIGRATE} is not true (cancelled?); the source was left running", description)
    if phase is None or phase in _NOTHING_TO_CUT_OVER:
        status = phase.value if phase else "no status"
        return _ignored(f"migration is {status}: nothing to cut over; the source was left as it is", description)

    state = description.state
    if state in _GONE:
        return _not_stopped(request, description, phase, f"the source is {state}", deps)
    if state != "stopped":
        try:
            deps.machines.stop(instance.instance_id)
        except PreconditionFailed as exc:
            return _not_stopped(
                request, description, phase, f"EC2 refused to stop it ({exc.code}: stop protection?)", deps
            )
        state = deps.machines.wait_until_stopped(
            instance.instance_id,
            timeout_seconds=deps.stop_timeout_seconds,
            poll_seconds=deps.stop_poll_seconds,
        )
        if state != "stopped":
            return _not_stopped(
                request, description, phase, f"still {state} after {deps.stop_timeout_seconds:g}s", deps
            )

    now = deps.clock.now()
    reason = f"source stopped at {now:%Y-%m-%dT%H:%M:%SZ}; failover requested by {request.requested_by}"
    event = FailoverRequested(
        specversion="1.0",
        id=event_id("FailoverRequested", instance, request.request_id),
        source=event_source(instance, COMPONENT),
        time=now,
        subject=instance.instance_id,
        data=FailoverRequestedData(
            instance=instance, requested_by=request.requested_by, source_stopped=True, reason=reason
        ),
    )
    deps.publisher.publish(event)
    deps.tags.write_tags({instance.instance_id: status_tags(phase.value, updated_at=now, reason=reason)})
    count_by("EventsEmitted", "EventType", "FailoverRequested")
    logger.info("failover requested", extra={"event_id": event.id, "requested_by": request.requested_by})
    return CutoverOutcome(
        action="failover-requested", reason=reason, instance_id=instance.instance_id, event_id=event.id
    )


def _not_stopped(
    request: CutoverRequest,
    description: InstanceDescription,
    phase: Phase,
    why: str,
    deps: CutoverDependencies,
) -> CutoverOutcome:
    now = deps.clock.now()
    reason = (
        f"cutover at {now:%Y-%m-%dT%H:%M:%SZ}: the source did not stop ({why}); failover NOT requested. "
        "Stop it and invoke cutover again"
    )
    deps.tags.write_tags({description.instance.instance_id: status_tags(phase.value, updated_at=now, reason=reason)})
    count("CutoverSourceNotStopped")
    logger.error("source did not stop; failover not requested", extra={"why": why, "request_id": request.request_id})
    return CutoverOutcome(action="source-not-stopped", reason=reason, instance_id=description.instance.instance_id)


def _ignored(reason: str, description: InstanceDescription) -> CutoverOutcome:
    logger.warning(f"cutover ignored: {reason}")
    return CutoverOutcome(action="ignored", reason=reason, instance_id=description.instance.instance_id)
