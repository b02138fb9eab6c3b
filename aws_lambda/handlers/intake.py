"""Intake Lambda: EventBridge "Tag Change on Resource" for an EC2 instance -> aws_lambda.logic.intake."""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.exceptions import InvalidModelTypeError
from aws_lambda_powertools.utilities.typing import LambdaContext

from aws_lambda.bootstrap import IntakeRuntime, build_intake
from aws_lambda.handlers._input import describe_invalid
from aws_lambda.models.outcomes import IntakeOutcome
from aws_lambda.models.tag_change import TagChangeEvent
from aws_lambda.observability import logger, metrics, tracer
from aws_lambda.settings import IntakeSettings

SETTINGS = IntakeSettings.from_environment()  # cold start: a missing setting fails the init, by name


@functools.cache
def runtime() -> IntakeRuntime:
    return build_intake(SETTINGS)  # once per container, on the first invocation


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    app = runtime()
    app.idempotency.register_lambda_context(context)
    try:
        change = parse(event=event, model=TagChangeEvent)
    except (ValidationError, InvalidModelTypeError) as exc:
        reason = describe_invalid(exc, "Tag Change on Resource event")
        return IntakeOutcome(action="rejected", reason=reason).model_dump(mode="json")
    instance = change.instance_ref()
    logger.set_correlation_id(instance.instance_id if instance else change.id)
    return app.intake.handle(change).model_dump(mode="json")
