"""Status sync: copy what Azure reports for each migration in flight onto its EC2 instance's tags.

The Mobility service install's result (AwaitingDiscovery or Failed) is the AWS side's own phase change: it is
announced on SNS when a topic is configured, before its tags are written, with the id
``<migration id>:<phase>:<command id>``. When SNS refuses it, that instance's tags are left as they are this run
(logged, metric PhaseAnnounceFailed), so the next run reads the same result and announces the same id. The phases
copied from Azure are never announced here: Azure announces them itself.

Rollback before commit (docs/ROLLBACK.md): a record whose ``timeline.restart_requested_at`` is set (Azure deleted the
failed-over VM) gets its source started again (StartInstances), once per request: the ``aws2azure:rollback-start`` tag
keeps the request carried out, and the cutover's stop mark is cleared in the same tag write.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from aws_lambda.logic.cutover import StopMark
from aws_lambda.logic.intake import current_phase
from aws_lambda.models.agent import failure_summary
from aws_lambda.models.cutover import CutoverRequest
from aws_lambda.models.inventory import TaggedInstance
from aws_lambda.models.outcomes import StatusSyncOutcome
from aws_lambda.models.phase_events import instance_phase_changed, wave_of
from aws_lambda.observability import count, count_by, logger
from aws_lambda.ports import (
    AgentInstaller,
    InstanceInventory,
    IntakeInvoker,
    PhaseAnnouncer,
    SourceStarter,
    StatusApi,
    TagWriter,
)
from migration.errors import MigrationError, NotFound
from migration.lifecycle import Phase
from migration.readiness import OsFamily
from migration.records import MigrationRecord
from migration.tags import (
    AGENT,
    CUTOVER_STOP,
    EC2_TAG_VALUE_MAX,
    REASON,
    ROLLBACK_START,
    STATUS,
    STATUS_TAGS,
    UPDATED_AT,
    parse_utc_time,
    status_tags,
)

# One cutover invocation takes at most this many (CutoverBatch's bound).
CUTOVER_BATCH = 1000


def wave_stop_request(tagged: TaggedInstance, record: MigrationRecord) -> CutoverRequest | None:
    """The stop a wave cutover asked for on this member's record (Azure never holds AWS credentials: the AWS
    side learns of it here, by pulling), unless this instance was already asked to stop for it."""
    timeline = record.timeline
    if not (record.cutover_plan and record.phase is Phase.AWAITING_CUTOVER and timeline.stop_requested_at):
        return None
    if timeline.source_stopped_at is not None:
        return None
    request_id = f"wave-{record.wave or 'none'}-{timeline.stop_requested_at:%Y%m%dT%H%M%SZ}"
    mark = StopMark.parse(tagged.tags.get(CUTOVER_STOP))
    if mark is not None and mark.request_id == request_id:
        return None  # asked already (stopping, sent, or reported not stopped): never twice for one request
    return CutoverRequest(instance=tagged.instance, request_id=request_id, requested_by="operator")


def rollback_restart(tagged: TaggedInstance, record: MigrationRecord) -> str | None:
    """The restart a rollback asked for on this record (Azure undid the failover), unless it was carried out."""
    asked = record.timeline.restart_requested_at
    if asked is None:
        return None
    stopped = record.timeline.source_stopped_at
    if stopped is not None and stopped > asked:
        return None  # stopped again for a later cutover: that restart is history
    request_id = f"rollback-{asked:%Y%m%dT%H%M%SZ}"
    if tagged.tags.get(ROLLBACK_START) == request_id:
        return None
    return request_id


# Nothing more will change for these (NotReady never reached Azure); a new request re-tags them first.
_SETTLED = frozenset({Phase.NOT_READY, Phase.MIGRATED, Phase.CANCELLED})


@dataclass(frozen=True)
class StatusSyncDependencies:
    inventory: InstanceInventory
    tags: TagWriter
    status_api: StatusApi
    max_parallel_reads: int = 8
    agents: AgentInstaller | None = None
    # The cutover Lambda, invoked with the sources a wave cutover asked to stop (None: not wired).
    cutover: IntakeInvoker | None = None
    # Where the install results (AWS-side phase changes) are announced (SNS); None: not announced.
    announcer: PhaseAnnouncer | None = None
    # Starts rolled-back sources again (EC2 StartInstances); None: not wired.
    sources: SourceStarter | None = None


# Azure has not got past waiting for the machine yet: the AWS side knows more about the agent.
_BEFORE_DISCOVERY = frozenset({Phase.REQUESTED, Phase.INSTALLING_AGENT, Phase.AWAITING_DISCOVERY})


def _agent(tags: Mapping[str, str]) -> tuple[str, str, OsFamily] | None:
    parts = tags.get(AGENT, "").split(":")
    if len(parts) != 3:
        return None
    os_family: OsFamily
    if parts[2] == "linux":
        os_family = "linux"
    elif parts[2] == "windows":
        os_family = "windows"
    else:
        return None
    return parts[0], parts[1], os_family


def _agent_update(tagged: TaggedInstance, deps: StatusSyncDependencies) -> dict[str, str] | bool | None:
    """Tags from the install command (a dict), True to leave the instance as it is this run, None to sync it."""
    agent = _agent(tagged.tags)
    if agent is None or agent[0] != "installing" or deps.agents is None:
        return None
    _, command_id, os_family = agent
    result = deps.agents.invocation(command_id, tagged.instance.instance_id, os_family)
    if not result.finished:
        return True
    now = datetime.now(UTC)
    if result.succeeded:
        reason = "Mobility service installed and registered with the appliance; waiting for it to discover the machine"
        return {
            **status_tags(Phase.AWAITING_DISCOVERY.value, updated_at=now, reason=reason),
            AGENT: f"installed:{command_id}:{os_family}",
        }
    count("AgentInstallFailed")
    return {
        **status_tags(Phase.FAILED.value, updated_at=now, reason=failure_summary(result, limit=EC2_TAG_VALUE_MAX)),
        AGENT: f"failed:{command_id}:{os_family}",
    }


def announce_agent_result(tagged: TaggedInstance, update: Mapping[str, str], announcer: PhaseAnnouncer) -> None:
    """Announce the phase an install result is about to write (its tags are ``update``); raises when refused."""
    _, command_id, _ = update[AGENT].split(":")
    phase = Phase(update[STATUS])
    event = instance_phase_changed(
        tagged.instance,
        phase,
        change_key=command_id,
        changed_at=parse_utc_time(UPDATED_AT, update[UPDATED_AT]),
        previous_phase=current_phase(dict(tagged.tags)),
        reason=update.get(REASON, ""),
        wave=wave_of(dict(tagged.tags)),
    )
    message_id = announcer.announce(event)
    count_by("PhaseAnnounced", "Phase", phase.value)
    logger.info(
        "phase change announced",
        extra={"event_id": event.id, "phase": phase.value, "instance_id": tagged.instance.instance_id,
               "message_id": message_id},
    )  # fmt: skip


def _needs_sync(tagged: TaggedInstance) -> bool:
    phase = current_phase(tagged.tags)
    return phase is not None and phase not in _SETTLED


def desired_tags(record: MigrationRecord) -> dict[str, str]:
    return status_tags(
        record.phase.value,
        updated_at=record.updated_at,
        reason=record.reason,
        progress=record.progress_percent,
    )


def _differs(current: Mapping[str, str], desired: Mapping[str, str]) -> bool:
    return any(current.get(key) != value for key, value in desired.items() if key in STATUS_TAGS)


def sync_statuses(deps: StatusSyncDependencies) -> StatusSyncOutcome:
    candidates = [t for t in deps.inventory.list_tagged(STATUS) if _needs_sync(t)]
    updates: dict[str, dict[str, str]] = {}
    in_flight: list[TaggedInstance] = []
    errors: dict[str, str] = {}
    for tagged in candidates:
        try:
            agent = _agent_update(tagged, deps)
        except MigrationError as exc:
            errors[tagged.instance.instance_id] = str(exc)
            continue
        if isinstance(agent, dict):
            if deps.announcer is not None:
                try:
                    announce_agent_result(tagged, agent, deps.announcer)
                except MigrationError as exc:
                    # Tags left as they are: the next run reads the same result and announces the same id.
                    count("PhaseAnnounceFailed")
                    logger.error(
                        "install result not announced; its tags wait for the next run",
                        extra={"instance_id": tagged.instance.instance_id, "error": str(exc)},
                    )
                    errors[tagged.instance.instance_id] = f"announce: {exc}"
                    continue
            updates[tagged.instance.instance_id] = agent
        elif agent is None:
            in_flight.append(tagged)

    def read(tagged: TaggedInstance) -> MigrationRecord | MigrationError:
        try:
            return deps.status_api.get_migration(tagged.instance.migration_id)
        except MigrationError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=deps.max_parallel_reads) as pool:
        results = list(pool.map(read, in_flight))

    not_in_azure: list[str] = []
    for tagged, result in zip(in_flight, results, strict=True):
        instance_id = tagged.instance.instance_id
        if isinstance(result, NotFound):
            # Requested but not yet picked up from the queue (or Azure is behind): next run will see it.
            not_in_azure.append(instance_id)
        elif isinstance(result, MigrationError):
            errors[instance_id] = str(result)
        else:
            mark = _agent(tagged.tags)
            if mark is not None and mark[0] == "failed" and result.phase in _BEFORE_DISCOVERY:
                continue  # the install failed: the Failed tag with its reason stays until a new request
            wanted = desired_tags(result)
            if mark is not None and mark[0] == "installed" and result.phase is Phase.REQUESTED:
                wanted = {**wanted, STATUS: Phase.AWAITING_DISCOVERY.value}
            if _differs(tagged.tags, wanted):
                updates[instance_id] = wanted
    stops = [
        request
        for tagged, result in zip(in_flight, results, strict=True)
        if isinstance(result, MigrationRecord) and (request := wave_stop_request(tagged, result)) is not None
    ]
    if stops and deps.cutover is not None:
        for start in range(0, len(stops), CUTOVER_BATCH):
            batch = stops[start : start + CUTOVER_BATCH]
            deps.cutover.invoke({"cutovers": [r.model_dump(mode="json") for r in batch]})
        count("WaveStopsRequested", len(stops))
    restarts = {
        tagged.instance.instance_id: (request_id, result)
        for tagged, result in zip(in_flight, results, strict=True)
        if isinstance(result, MigrationRecord) and (request_id := rollback_restart(tagged, result)) is not None
    }
    if restarts and deps.sources is not None:
        refused = deps.sources.start_many(sorted(restarts))
        for instance_id, (request_id, record) in restarts.items():
            if instance_id in refused:
                errors[instance_id] = f"start after rollback: {refused[instance_id]}"
                continue
            # The source runs again: its status from Azure, the stop mark cleared, the restart remembered.
            updates[instance_id] = {**desired_tags(record), CUTOVER_STOP: "", ROLLBACK_START: request_id}
        count("RolledBackSourcesStarted", len(restarts) - len(refused))
    if updates:
        deps.tags.write_tags(updates)
    count("StatusTagsUpdated", len(updates))
    if errors:
        count("StatusSyncErrors", len(errors))
        logger.warning("status API errors", extra={"errors": errors})
    outcome = StatusSyncOutcome(
        checked=len(candidates),
        updated=sorted(updates),
        unchanged=max(0, len(candidates) - len(updates) - len(not_in_azure) - len(errors)),
        not_in_azure=not_in_azure,
        errors=errors,
    )
    logger.info("status sync done", extra=outcome.model_dump())
    return outcome
