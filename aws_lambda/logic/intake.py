"""Intake: an instance's request tags changed. Check it, tag it, schedule its cutover, tell Azure.

A Tag Change event only says *that* tags changed; what to do is decided from the instance's tags as
EC2 reports them now (the event may be a retry delivered hours late) and from the status aws2azure
wrote earlier:

- migrate is true and nothing is in flight: readiness checks, then NotReady (with the reason) or
  Requested (cutover schedule created or moved, ``MigrationRequested`` on the queue);
- migrate is true and a migration is in flight: only a new cutover time applies (the schedule moves);
- migrate was removed or set false: ``CancelRequested`` while cancelling is still allowed.

Every phase intake writes itself (NotReady, Requested, InstallingAgent, Cancelled) is also announced on SNS
when a topic is configured (``io.aws2azure.instance.PhaseChanged.v1``, aws_lambda/models/phase_events.py), just
before the tag write, with an id made of the instance, the phase and this request. A refused announcement fails
the invocation with nothing written, so Lambda's retry (and then the dead-letter queue) runs the same decision
again and announces the same id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from pydantic import BaseModel, ConfigDict

from aws_lambda.models.cutover import CutoverRequest
from aws_lambda.models.outcomes import IntakeAction, IntakeOutcome
from aws_lambda.models.phase_events import instance_phase_changed, wave_of
from aws_lambda.models.tag_change import TagChangeEvent
from aws_lambda.observability import count, count_by, logger
from aws_lambda.ports import (
    OTHER_REGION,
    AgentInstaller,
    Clock,
    CutoverScheduler,
    EventPublisher,
    InstanceInventory,
    PhaseAnnouncer,
    TagWriter,
)
from migration.errors import InvalidInput, MigrationError, NotFound
from migration.events import CancelRequestedData, MigrationRequestedData, VmChecks, new_event
from migration.identity import InstanceRef
from migration.lifecycle import FAILOVER_STARTED_PHASES, Phase, is_cancellable
from migration.readiness import (
    AgentInstall,
    ApplianceLocation,
    InstanceDescription,
    ReadinessFailure,
    check_readiness,
)
from migration.tags import AGENT, CUTOVER_AT, MIGRATE, REQUEST_TAGS, STATUS, MigrationTags, status_tags

COMPONENT = "intake"
RULE_TAGS = "tags"
RULE_CUTOVER_AT = "cutover-at"
RULE_AGENT_CONFIG = "agent-config"
# A new request may start from these (or from no status at all); any other status is a migration in flight.
_RESTARTABLE = frozenset({Phase.NOT_READY, Phase.FAILED, Phase.CANCELLED, Phase.ROLLED_BACK})
_EVENT_NAMESPACE = uuid.UUID("5f0c2a4e-3d8b-4f43-9c55-8f1c7a0e2b61")


class IntakeRequest(BaseModel):
    """One tagging of one instance: what idempotency is keyed on (instance + request)."""

    model_config = ConfigDict(frozen=True)

    instance: InstanceRef
    request_id: str
    changed_keys: tuple[str, ...]


IDEMPOTENCY_KEY_JMESPATH = "[instance.account_id, instance.region, instance.instance_id, request_id]"

ProcessRequest: TypeAlias = Callable[..., IntakeOutcome]


@dataclass(frozen=True)
class IntakeDependencies:
    inventory: InstanceInventory
    tags: TagWriter
    schedules: CutoverScheduler
    publisher: EventPublisher
    appliance: ApplianceLocation
    clock: Clock
    agent_install: AgentInstall = "ssm"
    agents: AgentInstaller | None = None
    # When the appliance's Mobility service configuration file stops being valid (the operator's setting).
    agent_config_expires_at: datetime | None = None
    # Where intake's own phase changes are announced (SNS); None: not announced.
    announcer: PhaseAnnouncer | None = None


def event_id(event_type: str, instance: InstanceRef, request_id: str) -> str:
    """The same request always yields the same CloudEvent id, so the Azure side can drop a re-delivery."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{event_type}:{instance.migration_id}:{request_id}"))


def current_phase(tags: dict[str, str]) -> Phase | None:
    try:
        return Phase(tags[STATUS])
    except (KeyError, ValueError):
        return None  # no status yet, or a value someone else wrote: treated as none


class Intake:
    def __init__(
        self,
        deps: IntakeDependencies,
        *,
        idempotent: Callable[[ProcessRequest], ProcessRequest] | None = None,
    ) -> None:
        self._deps = deps
        # Only a request that reaches an instance is recorded for idempotency; ignored events cost nothing.
        self._process: ProcessRequest = idempotent(self._process_request) if idempotent else self._process_request

    def handle(self, change: TagChangeEvent) -> IntakeOutcome:
        instance = change.instance_ref()
        if instance is None:
            return _ignored(f"not an EC2 instance: {change.describe_resource()}")
        changed = tuple(sorted(set(change.detail.changed_tag_keys) & set(REQUEST_TAGS)))
        if not changed:
            # Our own status tags change the tag set too; those events end here.
            return _ignored("no aws2azure request tag changed", instance=instance, request_id=change.id)
        count("IntakeRequests")
        return self._process(request=IntakeRequest(instance=instance, request_id=change.id, changed_keys=changed))

    def _process_request(self, request: IntakeRequest) -> IntakeOutcome:
        try:
            description = self._deps.inventory.describe(request.instance)
        except NotFound as exc:
            count("InstanceNotFound")
            return _ignored(
                f"instance {request.instance.instance_id} no longer exists; nothing to migrate"
                if exc.code != OTHER_REGION
                else str(exc),
                instance=request.instance,
                request_id=request.request_id,
            )
        phase = current_phase(description.tags)
        try:
            wanted = MigrationTags.from_tags(description.tags)
        except InvalidInput as exc:
            if phase is not None and phase not in _RESTARTABLE:
                return self._note(description, request, phase, f"tags ignored while migrating: {exc}")
            return self._not_ready(
                description, request, [ReadinessFailure(rule=RULE_TAGS, reason=p) for p in exc.problems]
            )
        if not wanted.migrate:
            return self._cancel(description, request, phase)
        if phase is Phase.MIGRATED:
            return _ignored("already migrated", instance=request.instance, request_id=request.request_id)
        if phase is not None and phase not in _RESTARTABLE:
            return self._reschedule(description, request, phase, wanted)
        return self._request(description, request, wanted)

    # A new request

    def _request(
        self, description: InstanceDescription, request: IntakeRequest, wanted: MigrationTags
    ) -> IntakeOutcome:
        now = self._deps.clock.now()
        agents = self._deps.agents if self._deps.agent_install == "ssm" else None
        if agents is not None:
            description = description.model_copy(
                update={"ssm_ping_status": agents.ping_status(request.instance.instance_id)}
            )
        readiness = check_readiness(description, self._deps.appliance, agent_install=self._deps.agent_install)
        failures = list(readiness.failures)
        expires = self._deps.agent_config_expires_at
        if agents is not None and expires is not None and expires <= now:
            failures.append(
                ReadinessFailure(
                    rule=RULE_AGENT_CONFIG,
                    reason=f"the appliance's Mobility service configuration file expired at "
                    f"{expires:%Y-%m-%dT%H:%M:%SZ}: generate a new one on the appliance, store it and set "
                    "AGENT_CONFIG_EXPIRES_AT",
                )
            )
        if wanted.cutover_at is not None and wanted.cutover_at <= now:
            failures.append(
                ReadinessFailure(
                    rule=RULE_CUTOVER_AT,
                    reason=f"{CUTOVER_AT} {wanted.cutover_at:%Y-%m-%dT%H:%M:%SZ} is in the past; "
                    "set a future UTC time or remove it",
                )
            )
        if failures or readiness.os_family is None or description.private_ip is None:
            return self._not_ready(description, request, failures)
        instance = request.instance
        schedule = None
        if wanted.cutover_at is not None:
            schedule = self._deps.schedules.upsert(
                CutoverRequest(instance=instance, request_id=request.request_id, cutover_at=wanted.cutover_at),
                wanted.cutover_at,
            )
        else:
            self._deps.schedules.delete(instance)
        event = new_event(
            MigrationRequestedData(
                instance=instance,
                private_ip=description.private_ip,
                os_family=readiness.os_family,
                wave=wanted.wave,
                cutover_at=wanted.cutover_at,
                target_size=wanted.target_size,
                target_subnet=wanted.target_subnet,
                test_failover=wanted.test_failover,
                target_disk_type=wanted.target_disk_type,
                hybrid_benefit=wanted.hybrid_benefit,
                disks_gib=list(description.disks_gib),
                checks=VmChecks(tcp_ports=list(wanted.check_tcp), http_url=wanted.check_http)
                if wanted.check_tcp or wanted.check_http
                else None,
                request_id=request.request_id,
            ),
            component=COMPONENT,
            at=now,
            event_id=event_id("MigrationRequested", instance, request.request_id),
        )
        # Publish before tagging: if tagging fails, the retry publishes the same event id again, which
        # Azure drops; tagging first could leave a Requested tag with nothing on the queue.
        self._deps.publisher.publish(event)
        reason = "readiness checks passed; migration requested"
        phase = Phase.REQUESTED
        extra: dict[str, str] = {}
        if agents is not None:
            # The appliance discovers the machine once the agent is registered with it; Azure waits for that.
            command_id = agents.send_install(
                instance.instance_id, comment=f"aws2azure Mobility service install, request {request.request_id}"
            )
            phase = Phase.INSTALLING_AGENT
            reason += f"; Mobility service install sent through SSM (command {command_id})"
            extra[AGENT] = f"installing:{command_id}:{readiness.os_family}"
        if schedule:
            reason += f"; cutover scheduled at {wanted.cutover_at:%Y-%m-%dT%H:%M:%SZ}"
        self._announce(description, request, phase, reason=reason, at=now)
        self._deps.tags.write_tags(
            {instance.instance_id: {**status_tags(phase.value, updated_at=now, reason=reason), **extra}}
        )
        count("MigrationRequested")
        count_by("EventsEmitted", "EventType", "MigrationRequested")
        logger.info(
            "migration requested",
            extra={"event_id": event.id, "os_family": readiness.os_family, "wave": wanted.wave},
        )
        return IntakeOutcome(
            action="requested",
            reason=reason,
            instance_id=instance.instance_id,
            request_id=request.request_id,
            event_id=event.id,
            cutover_schedule=schedule,
        )

    def _not_ready(
        self, description: InstanceDescription, request: IntakeRequest, failures: list[ReadinessFailure]
    ) -> IntakeOutcome:
        reason = "; ".join(f.reason for f in failures) or "not ready"
        now = self._deps.clock.now()
        self._deps.schedules.delete(request.instance)
        self._announce(description, request, Phase.NOT_READY, reason=reason, at=now)
        self._deps.tags.write_tags(
            {request.instance.instance_id: status_tags(Phase.NOT_READY.value, updated_at=now, reason=reason)}
        )
        for failure in failures:
            count_by("NotReady", "Rule", failure.rule)
        logger.warning("instance not ready", extra={"rules": [f.rule for f in failures], "reason": reason})
        return IntakeOutcome(
            action="not-ready",
            reason=reason,
            instance_id=request.instance.instance_id,
            request_id=request.request_id,
            failed_rules=[f.rule for f in failures],
        )

    # A migration in flight

    def _reschedule(
        self, description: InstanceDescription, request: IntakeRequest, phase: Phase, wanted: MigrationTags
    ) -> IntakeOutcome:
        instance = request.instance
        if CUTOVER_AT not in request.changed_keys:
            return _ignored(
                f"a migration is in flight ({phase.value}); only a new {CUTOVER_AT} applies to it",
                instance=instance,
                request_id=request.request_id,
            )
        if phase in FAILOVER_STARTED_PHASES:
            return self._note(description, request, phase, f"{CUTOVER_AT} ignored: failover already started")
        now = self._deps.clock.now()
        if wanted.cutover_at is None:
            self._deps.schedules.delete(instance)
            return self._note(description, request, phase, "cutover schedule removed", action="rescheduled")
        if wanted.cutover_at <= now:
            return self._note(
                description,
                request,
                phase,
                f"{CUTOVER_AT} ignored: it is in the past; the schedule is unchanged",
            )
        schedule = self._deps.schedules.upsert(
            CutoverRequest(instance=instance, request_id=request.request_id, cutover_at=wanted.cutover_at),
            wanted.cutover_at,
        )
        outcome = self._note(
            description,
            request,
            phase,
            f"cutover rescheduled to {wanted.cutover_at:%Y-%m-%dT%H:%M:%SZ}",
            action="rescheduled",
        )
        return outcome.model_copy(update={"cutover_schedule": schedule})

    # A cancellation

    def _cancel(self, description: InstanceDescription, request: IntakeRequest, phase: Phase | None) -> IntakeOutcome:
        instance = request.instance
        if MIGRATE not in request.changed_keys or phase is None:
            return _ignored(
                f"{MIGRATE} is not true: no migration requested",
                instance=instance,
                request_id=request.request_id,
            )
        if phase in FAILOVER_STARTED_PHASES or phase is Phase.MIGRATED:
            logger.warning("cancel refused: failover already started", extra={"phase": phase.value})
            return self._note(
                description, request, phase, "cannot cancel: failover already started (ASR never cancels one)"
            )
        if phase is Phase.NOT_READY:
            # Nothing reached Azure: cancelled here.
            self._deps.schedules.delete(instance)
            now = self._deps.clock.now()
            reason = f"{MIGRATE} removed before the migration started"
            self._announce(description, request, Phase.CANCELLED, reason=reason, at=now)
            self._deps.tags.write_tags(
                {instance.instance_id: status_tags(Phase.CANCELLED.value, updated_at=now, reason=reason)}
            )
            return IntakeOutcome(
                action="cancelled",
                reason=reason,
                instance_id=instance.instance_id,
                request_id=request.request_id,
            )
        if not is_cancellable(phase):
            return _ignored(
                f"nothing to cancel: the migration is {phase.value}",
                instance=instance,
                request_id=request.request_id,
            )
        now = self._deps.clock.now()
        event = new_event(
            CancelRequestedData(
                instance=instance, requested_by="tag-removed", reason=f"{MIGRATE} tag removed or set false"
            ),
            component=COMPONENT,
            at=now,
            event_id=event_id("CancelRequested", instance, request.request_id),
        )
        self._deps.schedules.delete(instance)
        self._deps.publisher.publish(event)
        count_by("EventsEmitted", "EventType", "CancelRequested")
        logger.info("cancel requested", extra={"event_id": event.id, "phase": phase.value})
        outcome = self._note(description, request, phase, "cancel requested: migrate tag removed")
        return outcome.model_copy(update={"action": "cancel-requested", "event_id": event.id})

    def _announce(
        self, description: InstanceDescription, request: IntakeRequest, phase: Phase, *, reason: str, at: datetime
    ) -> None:
        """Announce a phase intake is about to write; raises (nothing written yet) when SNS refuses it."""
        announcer = self._deps.announcer
        if announcer is None:
            return
        event = instance_phase_changed(
            request.instance,
            phase,
            change_key=request.request_id,
            changed_at=at,
            previous_phase=current_phase(description.tags),
            reason=reason,
            wave=wave_of(description.tags),
        )
        log = {"event_id": event.id, "phase": phase.value, "instance_id": request.instance.instance_id}
        try:
            message_id = announcer.announce(event)
        except MigrationError as exc:
            count("PhaseAnnounceFailed")
            # The invocation fails before the tag write: Lambda retries it (then the dead-letter queue).
            logger.error(
                "phase change not announced; failing so the request is retried", extra=log | {"error": str(exc)}
            )
            raise
        count_by("PhaseAnnounced", "Phase", phase.value)
        logger.info("phase change announced", extra=log | {"message_id": message_id})

    def _note(
        self,
        description: InstanceDescription,
        request: IntakeRequest,
        phase: Phase,
        reason: str,
        *,
        action: IntakeAction = "ignored",
    ) -> IntakeOutcome:
        """Say why on the instance without changing its phase (status sync owns the phase in flight)."""
        now = self._deps.clock.now()
        self._deps.tags.write_tags(
            {description.instance.instance_id: status_tags(phase.value, updated_at=now, reason=reason)}
        )
        logger.info(reason, extra={"phase": phase.value})
        return IntakeOutcome(
            action=action, reason=reason, instance_id=request.instance.instance_id, request_id=request.request_id
        )


def _ignored(reason: str, *, instance: InstanceRef | None = None, request_id: str | None = None) -> IntakeOutcome:
    count("IntakeIgnored")
    logger.info(f"ignored: {reason}")
    return IntakeOutcome(
        action="ignored",
        reason=reason,
        instance_id=instance.instance_id if instance else None,
        request_id=request_id,
    )
