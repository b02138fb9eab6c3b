"""Status sync Lambda: on a schedule, Azure's status API -> EC2 status tags (aws_lambda.logic.status_sync)."""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from aws_lambda.bootstrap import build_status_sync
from aws_lambda.handlers._input import correlate_scheduled_run
from aws_lambda.logic.status_sync import StatusSyncDependencies, sync_statuses
from aws_lambda.observability import logger, metrics, tracer
from aws_lambda.settings import StatusSyncSettings

SETTINGS = StatusSyncSettings.from_environment()  # cold start: a missing setting fails the init, by name


@functools.cache
def dependencies() -> StatusSyncDependencies:
    return build_status_sync(SETTINGS)  # once per container, on the first invocation


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate_scheduled_run(event, context)
    return sync_statuses(dependencies()).model_dump(mode="json")
