"""Turning a bad event into a clear, logged reason instead of an unhandled exception."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.exceptions import InvalidModelTypeError
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from aws_lambda.models.scheduled import ScheduledTrigger
from aws_lambda.observability import count, logger

MAX_PROBLEMS_REPORTED = 5


def describe_invalid(error: Exception, what: str) -> str:
    if isinstance(error, ValidationError):
        problems = [
            f"{'.'.join(str(p) for p in item['loc']) or 'event'}: {item['msg']}"
            for item in error.errors()[:MAX_PROBLEMS_REPORTED]
        ]
        more = error.error_count() - len(problems)
        reason = f"not a valid {what}: " + "; ".join(problems) + (f" (+{more} more)" if more > 0 else "")
    else:
        reason = f"not a valid {what}: {error}"
    count("RejectedEvents")
    logger.error(reason)
    return reason


def correlate_scheduled_run(event: dict[str, Any], context: LambdaContext) -> None:
    """A scheduled Lambda's log correlation id: the EventBridge event's id, else the request id.

    The payload carries nothing else the scheduled Lambdas need, so a malformed one is not an error.
    """
    try:
        trigger = parse(event=event, model=ScheduledTrigger)
        logger.set_correlation_id(trigger.id or context.aws_request_id)
    except (ValidationError, InvalidModelTypeError):
        logger.set_correlation_id(context.aws_request_id)
