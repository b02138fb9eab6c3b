"""Cutover Lambda: one function for the three things that drive a cutover -> aws_lambda.logic.cutover.

- the instance's one-time schedule (or an operator): a ``CutoverRequest`` or a ``CutoverBatch``;
- EventBridge "EC2 Instance State-change Notification" (state ``stopped``);
- the batch's one-time follow-up schedule: a ``StopFollowUp``.
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.exceptions import InvalidModelTypeError
from aws_lambda_powertools.utilities.typing import LambdaContext

from aws_lambda.bootstrap import build_cutover
from aws_lambda.handlers._input import describe_invalid
from aws_lambda.logic.cutover import CutoverDependencies, check_stopped, on_state_change, start_cutover
from aws_lambda.models.cutover import CutoverBatch, CutoverRequest, StopFollowUp
from aws_lambda.models.outcomes import CutoverOutcome
from aws_lambda.models.state_change import STATE_CHANGE_DETAIL_TYPE, InstanceStateChange
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
        if event.get("detail-type") == STATE_CHANGE_DETAIL_TYPE:
            change = parse(event=event, model=InstanceStateChange)
            logger.set_correlation_id(change.detail.instance_id)
            return on_state_change(change, dependencies()).model_dump(mode="json")
        if "follow_up" in event:
            follow_up = parse(event=event, model=StopFollowUp)
            logger.set_correlation_id(follow_up.batch_id)
            return check_stopped(follow_up, dependencies()).model_dump(mode="json")
        if "cutovers" in event:
            batch = parse(event=event, model=CutoverBatch)
            logger.set_correlation_id(context.aws_request_id)
            return start_cutover(list(batch.cutovers), dependencies()).model_dump(mode="json")
        request = parse(event=event, model=CutoverRequest)
    except (ValidationError, InvalidModelTypeError) as exc:
        reason = describe_invalid(exc, "cutover input")
        return CutoverOutcome(action="rejected", reason=reason).model_dump(mode="json")
    logger.set_correlation_id(request.instance.instance_id)
    [outcome] = start_cutover([request], dependencies()).outcomes
    return outcome.model_dump(mode="json")
