"""Activity functions: thin wrappers that parse their contract's input, run one step, answer an Outcome."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from functions.bootstrap import services
from migration import contracts as c

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=c.REGISTER.name)
def register(payload: dict[str, Any]) -> dict[str, Any]:
    return c.REGISTER.run(payload, services().steps.register)


@bp.activity_trigger(input_name="payload", activity=c.START_REPLICATION.name)
def start_replication(payload: dict[str, Any]) -> dict[str, Any]:
    return c.START_REPLICATION.run(payload, lambda ref: services().steps.start_replication(ref.migration_id))


@bp.activity_trigger(input_name="payload", activity=c.GET_JOB.name)
def get_job(payload: dict[str, Any]) -> dict[str, Any]:
    return c.GET_JOB.run(payload, lambda ref: services().steps.get_job(ref.migration_id, ref.job_id))


@bp.activity_trigger(input_name="payload", activity=c.RESTART_JOB.name)
def restart_job(payload: dict[str, Any]) -> dict[str, Any]:
    return c.RESTART_JOB.run(payload, lambda ref: services().steps.restart_job(ref.migration_id, ref.job_id))


@bp.activity_trigger(input_name="payload", activity=c.OBSERVE_REPLICATION.name)
def observe_replication(payload: dict[str, Any]) -> dict[str, Any]:
    return c.OBSERVE_REPLICATION.run(
        payload, lambda req: services().steps.observe_replication(req.migration_id, phase=req.phase)
    )


@bp.activity_trigger(input_name="payload", activity=c.RECORD_PHASE.name)
def record_phase(payload: dict[str, Any]) -> dict[str, Any]:
    def record(entry: c.PhaseRecord) -> c.Done:
        services().steps.record_phase(entry.migration_id, entry.phase, entry.reason)
        return c.Done()

    return c.RECORD_PHASE.run(payload, record)


@bp.activity_trigger(input_name="payload", activity=c.LOG_EVENT.name)
def log_event(payload: dict[str, Any]) -> dict[str, Any]:
    def note(entry: c.AuditNote) -> c.Done:
        services().steps.note(entry.migration_id, entry.kind, entry.message)
        return c.Done()

    return c.LOG_EVENT.run(payload, note)


@bp.activity_trigger(input_name="payload", activity=c.START_TEST_FAILOVER.name)
def start_test_failover(payload: dict[str, Any]) -> dict[str, Any]:
    return c.START_TEST_FAILOVER.run(payload, lambda ref: services().steps.start_test_failover(ref.migration_id))


@bp.activity_trigger(input_name="payload", activity=c.START_TEST_FAILOVER_CLEANUP.name)
def start_test_failover_cleanup(payload: dict[str, Any]) -> dict[str, Any]:
    return c.START_TEST_FAILOVER_CLEANUP.run(
        payload, lambda ref: services().steps.start_test_failover_cleanup(ref.migration_id)
    )


@bp.activity_trigger(input_name="payload", activity=c.START_FAILOVER.name)
def start_failover(payload: dict[str, Any]) -> dict[str, Any]:
    return c.START_FAILOVER.run(payload, lambda ref: services().steps.start_failover(ref.migration_id))


@bp.activity_trigger(input_name="payload", activity=c.VALIDATE_FAILOVER.name)
def validate_failover(payload: dict[str, Any]) -> dict[str, Any]:
    return c.VALIDATE_FAILOVER.run(payload, lambda ref: services().steps.validate_failover(ref.migration_id))


@bp.activity_trigger(input_name="payload", activity=c.START_COMMIT.name)
def start_commit(payload: dict[str, Any]) -> dict[str, Any]:
    return c.START_COMMIT.run(payload, lambda ref: services().steps.start_commit(ref.migration_id))


@bp.activity_trigger(input_name="payload", activity=c.START_COMPLETE_MIGRATION.name)
def start_complete_migration(payload: dict[str, Any]) -> dict[str, Any]:
    return c.START_COMPLETE_MIGRATION.run(
        payload, lambda ref: services().steps.start_complete_migration(ref.migration_id)
    )


@bp.activity_trigger(input_name="payload", activity=c.START_DISABLE_REPLICATION.name)
def start_disable_replication(payload: dict[str, Any]) -> dict[str, Any]:
    return c.START_DISABLE_REPLICATION.run(
        payload, lambda ref: services().steps.start_disable_replication(ref.migration_id)
    )


@bp.activity_trigger(input_name="payload", activity=c.START_ROLLBACK.name)
def start_rollback(payload: dict[str, Any]) -> dict[str, Any]:
    return c.START_ROLLBACK.run(payload, lambda start: services().steps.start_rollback(start.migration_id,
                                                                                    start.request))  # fmt: skip


@bp.activity_trigger(input_name="payload", activity=c.REMOVE_FAILED_OVER_VM.name)
def remove_failed_over_vm(payload: dict[str, Any]) -> dict[str, Any]:
    return c.REMOVE_FAILED_OVER_VM.run(payload, lambda ref: services().steps.remove_failed_over_vm(ref.migration_id))
