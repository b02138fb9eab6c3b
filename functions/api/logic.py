"""What the HTTP API does, without HTTP: one function per route.

Reads go to the store. Writes never change a record here: they check the record's state (so an
operator gets a clear 409 instead of a silently ignored event), then signal the migration's
orchestration, which owns every state change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from functions.api.models import (
    Accepted,
    Action,
    ApproveRequest,
    CancelRequest,
    CutoverRequest,
    JobResumed,
    ListQuery,
    MigrationDetail,
    NotificationView,
    ResumeRequest,
    RetryRequest,
    RollbackRequest,
)
from functions.names import (
    EVENT_APPROVED,
    EVENT_CANCEL_REQUESTED,
    EVENT_FAILOVER_REQUESTED,
    EVENT_ROLLBACK_REQUESTED,
    MIGRATE_INSTANCE,
)
from migration import lifecycle
from migration.errors import InvalidInput, NotFound, PreconditionFailed
from migration.events import (
    CancelRequestedData,
    FailoverRequestedData,
    MigrationRequested,
    new_event,
    parse_event,
)
from migration.identity import InstanceRef
from migration.intake import IntakeAction, IntakeDecision
from migration.lifecycle import (
    ACTIVE_RUNTIME_STATUSES,
    COMMITTED_PHASES,
    FAILOVER_STARTED_PHASES,
    TERMINAL_PHASES,
    Phase,
    is_cancellable,
    rollback_refusal,
)
from migration.notifications import NotificationOutbox
from migration.ports import MigrationStore
from migration.queries import check_wave, summarize_wave
from migration.records import MigrationRecord, Page, WaveSummary
from migration.steps import MigrationSteps

EVENT_HISTORY_LIMIT = 200
# Durable runtime statuses of an orchestration that exists and can still receive events.
API_COMPONENT = "api"
NOTIFICATION_LIMIT = 20


class OrchestrationControl(Protocol):
    """The Durable Functions client, as the API needs it. Raises only migration.errors types."""

    async def runtime_status(self, instance_id: str) -> str | None:
        """The orchestration's runtime status (``Running``, ``Completed``, ...), None if it never ran."""
        ...

    async def request_migration(self, event: MigrationRequested) -> IntakeDecision:
        """Deliver a MigrationRequested exactly as the queue intake does: start, or ignore and say why."""
        ...

    async def raise_event(self, instance_id: str, event_name: str, payload: dict[str, Any]) -> None:
        """Raises PreconditionFailed when no running orchestration can receive it."""
        ...


def status_url(migration_id: str) -> str:
    return f"/api/migrations/{migration_id}"


def check_migration_id(migration_id: str) -> InstanceRef:
    try:
        return InstanceRef.from_migration_id(migration_id)
    except ValueError as exc:
        raise InvalidInput(
            f"{migration_id!r} is not a migration id (expected <account>-<region>-<instance id>, "
            "e.g. 123456789012-eu-west-1-i-0123456789abcdef0)",
            problems=["migration_id: not <account>-<region>-<instance id>"],
        ) from exc


# -- reads ---------------------------------------------------------------------------------------


def list_migrations(store: MigrationStore, query: ListQuery) -> Page:
    return store.list(wave=query.wave, phase=query.phase, page_size=query.page_size, continuation=query.continuation)


def get_migration(store: MigrationStore, migration_id: str, *,
                  outbox: NotificationOutbox | None = None) -> MigrationDetail:  # fmt: skip
    check_migration_id(migration_id)
    record = _get(store, migration_id)
    notifications = [] if outbox is None else outbox.recent(migration_id, limit=NOTIFICATION_LIMIT)
    return MigrationDetail(
        migration=record, events=store.list_events(migration_id, limit=EVENT_HISTORY_LIMIT),
        notifications=[NotificationView.model_validate(n.model_dump(mode="json")) for n in notifications],
    )  # fmt: skip


def get_wave(store: MigrationStore, wave: str) -> WaveSummary:
    check_wave(wave)
    records: list[MigrationRecord] = []
    continuation = None
    while True:
        page = store.list(wave=wave, page_size=1000, continuation=continuation)
        records.extend(page.items)
        continuation = page.continuation
        if continuation is None:
            break
    if not records and wave not in store.list_waves():
        raise NotFound(f"no wave named {wave!r}", code="WaveNotFound")
    return summarize_wave(wave, records)


def _get(store: MigrationStore, migration_id: str) -> MigrationRecord:
    try:
        return store.get(migration_id)
    except NotFound:
        raise NotFound(f"no migration {migration_id}", code="MigrationNotFound") from None


# -- writes: signal the orchestration ------------------------------------------------------------


async def start_migration(control: OrchestrationControl, body: bytes) -> Accepted:
    """Start by hand, with the same contract and the same rules as a request from the AWS side."""
    event = parse_event(body)
    if not isinstance(event, MigrationRequested):
        raise InvalidInput(
            f"POST /api/migrations takes a MigrationRequested event, not {event.type}; "
            "use /cutover or /cancel on the migration instead",
            problems=[f"type: expected {MigrationRequested.model_fields['type'].default}"],
        )
    return await _request(control, event, "start")


async def request_cutover(
    store: MigrationStore, control: OrchestrationControl, migration_id: str, request: CutoverRequest
) -> Accepted:
    record = await _read_checked(store, migration_id)
    if record.phase is Phase.MIGRATED:
        raise PreconditionFailed(f"migration {migration_id} is already Migrated", code="AlreadyMigrated")
    if record.phase in FAILOVER_STARTED_PHASES or record.failover_requested_at is not None:
        raise PreconditionFailed(
            f"migration {migration_id} has already started its failover (phase {record.phase.value}); "
            "a failover is never requested twice",
            code="FailoverAlreadyRequested",
        )
    if record.cutover_plan is not None:
        raise PreconditionFailed(
            f"migration {migration_id} fails over with its wave (recovery plan {record.cutover_plan}); "
            "cut over the wave instead",
            code="WaveOwnsCutover",
        )
    if record.phase in TERMINAL_PHASES:
        hint = "retry it first" if record.phase is Phase.FAILED else "request it again first"
        raise PreconditionFailed(
            f"migration {migration_id} is {record.phase.value} and cannot be cut over; {hint}",
            code="NotCuttable",
        )
    data = FailoverRequestedData(
        instance=record.instance, requested_by="operator", source_stopped=request.source_stopped,
        reason=request.reason,
    )  # fmt: skip
    await control.raise_event(migration_id, EVENT_FAILOVER_REQUESTED, data.model_dump(mode="json"))
    return _accepted(record, "cutover", EVENT_FAILOVER_REQUESTED)


async def resume_job(store: MigrationStore, steps: MigrationSteps, migration_id: str,
                     request: ResumeRequest) -> JobResumed:  # fmt: skip
    """Resume the suspended ASR job the migration waits on; its orchestration goes on watching it."""
    record = await _read_checked(store, migration_id)
    if record.current_job_id is None or record.phase in TERMINAL_PHASES:
        raise PreconditionFailed(
            f"migration {migration_id} waits on no ASR job (phase {record.phase.value}); there is nothing to resume",
            code="NothingToResume",
        )
    job_id = record.current_job_id
    job = await asyncio.to_thread(steps.resume_job, migration_id, job_id)
    return JobResumed(migration_id=migration_id, job_id=job_id, state=job.state, status_url=status_url(migration_id))


async def approve(
    store: MigrationStore, control: OrchestrationControl, migration_id: str, request: ApproveRequest
) -> Accepted:
    record = await _read_checked(store, migration_id)
    if record.phase in TERMINAL_PHASES or record.phase in FAILOVER_STARTED_PHASES:
        raise PreconditionFailed(
            f"migration {migration_id} is {record.phase.value}: there is nothing left to approve",
            code="NothingToApprove",
        )
    payload = {"requested_by": "operator", "reason": request.reason}
    await control.raise_event(migration_id, EVENT_APPROVED, payload)
    return _accepted(record, "approve", EVENT_APPROVED)


async def cancel(
    store: MigrationStore, control: OrchestrationControl, migration_id: str, request: CancelRequest
) -> Accepted:
    record = await _read_checked(store, migration_id)
    if not is_cancellable(record.phase):
        if record.phase in FAILOVER_STARTED_PHASES:
            raise PreconditionFailed(
                f"migration {migration_id} cannot be cancelled: its failover has started "
                f"(phase {record.phase.value}), and ASR must never cancel a migration failover; "
                "let it finish, then decide",
                code="FailoverStarted",
            )
        raise PreconditionFailed(
            f"migration {migration_id} has already ended ({record.phase.value}); there is nothing to cancel",
            code="AlreadyEnded",
        )
    data = CancelRequestedData(instance=record.instance, requested_by="operator", reason=request.reason)
    await control.raise_event(migration_id, EVENT_CANCEL_REQUESTED, data.model_dump(mode="json"))
    return _accepted(record, "cancel", EVENT_CANCEL_REQUESTED)


async def retry(
    store: MigrationStore,
    control: OrchestrationControl,
    migration_id: str,
    request: RetryRequest,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Accepted:
    """Retry a Failed migration: start its orchestration again with the original request.

    A retry means one thing: a new migrate_instance, through the same intake rules as the queue, with the
    request the record keeps (same ``request_id``). It resumes from what ASR reports (docs/ARCHITECTURE.md,
    "Retry"), so nothing already done is done twice. A migration whose orchestration still runs is not
    retried: it has not given up (a member released by a failed recovery plan resumes by itself).
    """
    record = await _read_checked(store, migration_id)
    if record.phase not in (Phase.FAILED, Phase.ROLLED_BACK):
        raise PreconditionFailed(
            f"only a Failed or RolledBack migration can be retried; {migration_id} is {record.phase.value}",
            code="NotFailed",
        )
    if await control.runtime_status(migration_id) in ACTIVE_RUNTIME_STATUSES:
        raise PreconditionFailed(
            f"migration {migration_id} is Failed but its orchestration is still running and resumes by itself; "
            "nothing to retry (aws2azure status shows where it stands)",
            code="StillRunning",
        )
    return await _request(control, _request_again(record, now()), "retry", phase=record.phase)


async def rollback(
    store: MigrationStore,
    control: OrchestrationControl,
    steps: MigrationSteps,
    migration_id: str,
    request: RollbackRequest,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Accepted:
    """Roll a failover back before its commit (docs/ROLLBACK.md). A running orchestration gets RollbackRequested
    (in FailingOver it is held until the failover job ends); a Failed migration whose orchestration has ended (after
    its failover, before a commit) keeps the request on its record and a new orchestration carries it out."""
    record = await _read_checked(store, migration_id)
    previous = record.last_change.previous if record.last_change is not None else None
    committed = record.timeline.committed_at is not None or (
        record.phase is Phase.FAILED and previous in COMMITTED_PHASES
    )
    refusal = rollback_refusal(record.phase, failover_done=record.timeline.failover_done_at is not None,
                               committed=committed)  # fmt: skip
    if refusal is not None:
        code, words = refusal
        raise PreconditionFailed(f"migration {migration_id} cannot be rolled back: {words}", code=code)
    if record.cutover_plan is not None and record.phase is not Phase.FAILED:
        raise PreconditionFailed(
            f"migration {migration_id} fails over with its wave (recovery plan {record.cutover_plan}), whose gate "
            "decides: a member that fails it is released and rolls back on its own gate",
            code="WaveOwnsCutover",
        )
    order = lifecycle.RollbackRequest(requested_by="operator", reason=request.reason)
    if await control.runtime_status(migration_id) in ACTIVE_RUNTIME_STATUSES:
        await control.raise_event(migration_id, EVENT_ROLLBACK_REQUESTED, order.model_dump(mode="json"))
        return _accepted(record, "rollback", EVENT_ROLLBACK_REQUESTED)
    if record.phase is not Phase.FAILED:
        raise PreconditionFailed(
            f"migration {migration_id} is {record.phase.value} but no orchestration runs for it; retry it first",
            code="OrchestrationNotRunning",
        )
    await asyncio.to_thread(steps.request_rollback, migration_id, order)
    return await _request(control, _request_again(record, now()), "rollback", phase=record.phase)


async def _request(
    control: OrchestrationControl, event: MigrationRequested, action: Action, *, phase: Phase | None = None
) -> Accepted:
    migration_id = event.instance.migration_id
    decision = await control.request_migration(event)
    if decision.action is not IntakeAction.START:
        raise PreconditionFailed(f"migration {migration_id} was not started: {decision.reason}", code="NotStarted")
    return Accepted(
        migration_id=migration_id, action=action, signal=MIGRATE_INSTANCE, phase=phase,
        status_url=status_url(migration_id),
    )  # fmt: skip


def _request_again(record: MigrationRecord, at: datetime) -> MigrationRequested:
    """The record's own request, whole (same request_id), in a new event."""
    data = record.request
    return new_event(data, component=API_COMPONENT, at=at)


async def _read_checked(store: MigrationStore, migration_id: str) -> MigrationRecord:
    check_migration_id(migration_id)
    # The store's SDK is synchronous; keep the worker's event loop free while it waits.
    return await asyncio.to_thread(_get, store, migration_id)


def _accepted(record: MigrationRecord, action: Action, signal: str) -> Accepted:
    return Accepted(
        migration_id=record.migration_id, action=action, signal=signal, phase=record.phase,
        status_url=status_url(record.migration_id),
    )  # fmt: skip
