"""Deliver an event from the AWS side (or the HTTP API) to the right orchestration, exactly once.

Shared by the queue trigger and the API, so a request by hand and one from a tag behave alike.
"""

from __future__ import annotations

import logging

import azure.durable_functions as df

from functions import names
from functions.settings import FunctionSettings
from migration.errors import NotFound, TransientCloudError
from migration.events import AnyEvent, FailoverRequested, MigrationRequested, MigrationRequestedData
from migration.intake import IntakeAction, IntakeDecision, decide
from migration.lifecycle import WorkflowState
from migration.ports import MigrationStore
from migration.records import MigrationEvent
from migration.waves import record_source_stopped

logger = logging.getLogger("aws2azure.dispatch")


def initial_state(request: MigrationRequestedData, settings: FunctionSettings) -> WorkflowState:
    """The input of a new migrate_instance: the request and the settings it runs under."""
    return WorkflowState(
        request=request,
        approval_required=(request.wave or "") in settings.approval_required_waves,
        poll_floor_seconds=settings.poll_floor_seconds,
        poll_ceiling_seconds=settings.poll_ceiling_seconds,
        retry_budget_seconds=settings.step_retry_budget_seconds,
        validation_bound_seconds=settings.validation_bound_seconds,
        validation_recheck_seconds=settings.validation_recheck_seconds,
        rollback_on_failed_validation=settings.rollback_on_failed_validation,
    )


async def runtime_status(client: df.DurableOrchestrationClient, instance_id: str) -> str | None:
    status = await client.get_status(instance_id)
    value = getattr(status, "runtime_status", None)
    if value is None:
        return None
    return str(getattr(value, "value", value))


async def dispatch(
    event: AnyEvent, client: df.DurableOrchestrationClient, store: MigrationStore, settings: FunctionSettings
) -> IntakeDecision:
    migration_id = event.instance.migration_id
    try:
        record = store.get(migration_id)
    except NotFound:
        record = None
    decision = decide(event, record, await runtime_status(client, migration_id))
    if decision.action is IntakeAction.START and isinstance(event, MigrationRequested):
        state = initial_state(event.data, settings)
        try:
            await client.start_new(names.MIGRATE_INSTANCE, migration_id, state.model_dump(mode="json"))
        except Exception:
            # Two deliveries raced past the status check: the host refuses the second start.
            if await runtime_status(client, migration_id) in ("Pending", "Running"):
                decision = IntakeDecision(IntakeAction.IGNORE, "duplicate request: started by a concurrent delivery")
            else:
                raise
    elif decision.action is IntakeAction.RETRY_LATER:
        logger.warning("%s: %s; the message will be delivered again", migration_id, decision.reason,
                       extra={"migration_id": migration_id, "event_id": event.id})  # fmt: skip
        raise TransientCloudError(decision.reason)
    elif decision.action is IntakeAction.RAISE_EVENT:
        if isinstance(event, FailoverRequested) and event.data.source_stopped:
            # Downtime starts here (the timeline); a wave member joins a recovery plan from this mark.
            record_source_stopped(store, migration_id, event.time)
        name = names.EVENT_FAILOVER_REQUESTED if isinstance(event, FailoverRequested) else names.EVENT_CANCEL_REQUESTED
        await client.raise_event(migration_id, name, event.data.model_dump(mode="json"))
    logger.info(
        "%s %s: %s (%s)", migration_id, event.type.rsplit(".", 2)[-2], decision.action.value, decision.reason,
        extra={"migration_id": migration_id, "event_id": event.id},
    )  # fmt: skip
    if record is not None and decision.action is IntakeAction.IGNORE:
        store.append_event(MigrationEvent(
            migration_id=migration_id, at=event.time, kind="EventIgnored", phase=record.phase,
            message=decision.reason, details={"event_id": event.id, "type": event.type},
        ))  # fmt: skip
    return decision
