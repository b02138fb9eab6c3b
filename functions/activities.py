"""Activity functions: thin wrappers that run one migration step and return its Outcome."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from functions.bootstrap import services
from migration.events import MigrationRequestedData
from migration.outcome import capture
from migration.phases import Phase

bp = df.Blueprint()


@bp.activity_trigger(input_name="request", activity="register")
def register(request: dict[str, Any]) -> dict[str, Any]:
    return capture(lambda: services().steps.register(MigrationRequestedData.model_validate(request)))


@bp.activity_trigger(input_name="payload", activity="start_replication")
def start_replication(payload: dict[str, Any]) -> dict[str, Any]:
    return capture(lambda: services().steps.start_replication(payload["migration_id"]))


@bp.activity_trigger(input_name="payload", activity="get_job")
def get_job(payload: dict[str, Any]) -> dict[str, Any]:
    return capture(lambda: services().steps.get_job(payload["migration_id"], payload["job_id"]))


@bp.activity_trigger(input_name="payload", activity="observe_replication")
def observe_replication(payload: dict[str, Any]) -> dict[str, Any]:
    phase = Phase(payload.get("phase", Phase.REPLICATING.value))
    return capture(lambda: services().steps.observe_replication(payload["migration_id"], phase=phase))


@bp.activity_trigger(input_name="payload", activity="record_phase")
def record_phase(payload: dict[str, Any]) -> dict[str, Any]:
    return capture(
        lambda: services().steps.record_phase(payload["migration_id"], Phase(payload["phase"]), payload["reason"])
    )


@bp.activity_trigger(input_name="payload", activity="log_event")
def log_event(payload: dict[str, Any]) -> dict[str, Any]:
    return capture(lambda: services().steps.note(payload["migration_id"], payload["kind"], payload["message"]))


@bp.activity_trigger(input_name="payload", activity="start_test_failover")
def start_test_failover(payload: dict[str, Any]) -> dict[str, Any]:
    return capture(lambda: services().steps.start_test_failover(payload["migration_id"]))


@bp.activity_trigger(input_name="payload", activity="start_test_failover_cleanup")
def start_test_failover_cleanup(payload: dict[str, Any]) -> dict[str, Any]:
    return capture(lambda: services().steps.start_test_failover_cleanup(payload["migration_id"]))


@bp.activity_trigger(input_name="payload", activity="start_failover")
def start_failover(payload: dict[str, Any]) -> dict[str, Any]:
    return capture(lambda: services().steps.start_failover(payload["migration_id"]))


@bp.activity_trigger(input_name="payload", activity="start_commit")
def start_commit(payload: dict[str, Any]) -> dict[str, Any]:
    return capture(lambda: services().steps.start_commit(payload["migration_id"]))


@bp.activity_trigger(input_name="payload", activity="start_complete_migration")
def start_complete_migration(payload: dict[str, Any]) -> dict[str, Any]:
    return capture(lambda: services().steps.start_complete_migration(payload["migration_id"]))


@bp.activity_trigger(input_name="payload", activity="start_disable_replication")
def start_disable_replication(payload: dict[str, Any]) -> dict[str, Any]:
    return capture(lambda: services().steps.start_disable_replication(payload["migration_id"]))
