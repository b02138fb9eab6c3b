"""Cutover Lambda: invoked by the instance's one-time schedule (or by hand) -> aws_lambda.logic.cutover."""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.exceptions import InvalidModelTypeError
from aws_lambda_powertools.utilities.typing import LambdaContext

from aws_lambda.bootstrap import build_cutover
from aws_lambda.handlers._input import describe_invalid
from aws_lambda.logic.cutover import CutoverDependencies, run_cutover
from aws_lambda.models.cutover import CutoverRequest
from aws_lambda.models.outcomes import CutoverOutcome
from aws_lambda.observability import logger, metrics, tracer
from aws_lambda.settings import CutoverSettings

SETTINGS = CutoverSettings.from_environment()  # cold start: a missing setting fails the init, by name


@functools.cache
def dependencies() -> CutoverDependencies:
    return build_cutover(SETTINGS)  # once per container, on the first invocation


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        request = parse(event=event, model=CutoverRequest)
    except (ValidationError, InvalidModelTypeError) as exc:
        reason = describe_invalid(exc, "cutover request")
        return CutoverOutcome(action="rejected", reason=reason).model_dump(mode="json")
    logger.set_correlation_id(request.instance.instance_id)
    return run_cutover(request, dependencies()).model_dump(mode="json")
