"""Timer trigger: every 15 minutes, find migrations whose orchestration is gone or silent."""

from __future__ import annotations

import logging
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

from functions import names
from functions.bootstrap import services
from functions.dispatch import initial_state, runtime_status
from migration.lifecycle import TERMINAL_PHASES
from migration.reconcile import Verdict, assess
from migration.records import MigrationEvent

bp = df.Blueprint()
logger = logging.getLogger("aws2azure.reconcile")
SCHEDULE = "0 */15 * * * *"


@bp.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def reconcile(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    runtime = services()
    stuck_after = timedelta(seconds=runtime.settings.stuck_after_seconds)
    now = runtime.clock.now()
    counts = dict.fromkeys(Verdict, 0)
    continuation: str | None = None
    while True:
        page = runtime.store.list(continuation=continuation, page_size=200)
        for record in page.items:
            if record.phase in TERMINAL_PHASES:
                continue
            finding = assess(record, await runtime_status(client, record.migration_id), now=now,
                             stuck_after=stuck_after)  # fmt: skip
            counts[finding.verdict] += 1
            if finding.verdict is Verdict.HEALTHY:
                continue
            logger.warning("%s %s: %s", record.migration_id, finding.verdict.value, finding.reason,
                           extra={"migration_id": record.migration_id})  # fmt: skip
            runtime.store.append_event(MigrationEvent(
                migration_id=record.migration_id, at=now, kind=f"Reconcile{finding.verdict.value.title()}",
                phase=record.phase, message=finding.reason,
            ))  # fmt: skip
            if finding.verdict is Verdict.RESTART:
                state = initial_state(record.request, runtime.settings)
                await client.start_new(names.MIGRATE_INSTANCE, record.migration_id, state.model_dump(mode="json"))
        continuation = page.continuation
        if continuation is None:
            break
    logger.info("reconcile sweep: %s", {verdict.value: count for verdict, count in counts.items()})
