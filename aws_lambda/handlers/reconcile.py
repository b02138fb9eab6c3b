"""Reconcile Lambda: on a schedule, re-run intake for instances it never saw (aws_lambda.logic.reconcile)."""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from aws_lambda.bootstrap import build_reconcile
from aws_lambda.handlers._input import correlate_scheduled_run
from aws_lambda.logic.reconcile import ReconcileDependencies, reconcile
from aws_lambda.observability import logger, metrics, tracer
from aws_lambda.settings import ReconcileSettings

SETTINGS = ReconcileSettings.from_environment()  # cold start: a missing setting fails the init, by name


@functools.cache
def dependencies() -> ReconcileDependencies:
    return build_reconcile(SETTINGS)  # once per container, on the first invocation


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate_scheduled_run(event, context)
    return reconcile(dependencies()).model_dump(mode="json")
