"""EventBridge Scheduler: one one-time schedule per instance that invokes the cutover Lambda."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from aws_lambda.adapters.aws_errors import error_code, translate
from aws_lambda.models.cutover import CutoverRequest, StopFollowUp
from migration.identity import InstanceRef

if TYPE_CHECKING:
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_scheduler.type_defs import CreateScheduleInputTypeDef, TargetTypeDef

# If the cutover Lambda cannot be invoked at the time, keep trying for an hour, not a day: a cutover that
# happens far outside its window is worse than one an operator re-runs by hand.
RETRY_WINDOW_SECONDS = 3600


def _target(target_arn: str, role_arn: str, payload: str, dead_letter_arn: str | None) -> TargetTypeDef:
    """The schedule's target; an invocation that still fails after the retries goes to the dead-letter queue
    (Scheduler's Target.DeadLetterConfig, botocore scheduler service-2.json), not nowhere."""
    target: TargetTypeDef = {
        "Arn": target_arn,
        "RoleArn": role_arn,
        "Input": payload,
        "RetryPolicy": {"MaximumEventAgeInSeconds": RETRY_WINDOW_SECONDS, "MaximumRetryAttempts": 10},
    }
    if dead_letter_arn:
        target["DeadLetterConfig"] = {"Arn": dead_letter_arn}
    return target


def schedule_name(instance: InstanceRef) -> str:
    # Scheduler names: 1-64 of [0-9a-zA-Z-_.]; schedules are per account and region, so the id is unique.
    return f"aws2azure-cutover-{instance.instance_id}"


class CutoverSchedules:
    """Implements CutoverScheduler."""

    def __init__(self, client: EventBridgeSchedulerClient, *, group_name: str, target_arn: str, role_arn: str,
                 dead_letter_arn: str | None = None) -> None:  # fmt: skip
        self._client = client
        self._group = group_name
        self._target_arn = target_arn
        self._role_arn = role_arn
        self._dead_letter_arn = dead_letter_arn

    def upsert(self, request: CutoverRequest, at: datetime) -> str:
        name = schedule_name(request.instance)
        params: CreateScheduleInputTypeDef = {
            "Name": name,
            "GroupName": self._group,
            "ScheduleExpression": f"at({at.astimezone(UTC):%Y-%m-%dT%H:%M:%S})",
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "Description": f"aws2azure cutover of {request.instance.migration_id}",
            "Target": _target(self._target_arn, self._role_arn, request.model_dump_json(), self._dead_letter_arn),
        }
        try:
            self._client.create_schedule(**params)
        except ClientError as exc:
            if error_code(exc) != "ConflictException":
                raise translate(exc, f"create schedule {name}") from exc
            try:
                self._client.update_schedule(**params)
            except (ClientError, BotoCoreError) as update_exc:
                raise translate(update_exc, f"update schedule {name}") from update_exc
        except BotoCoreError as exc:
            raise translate(exc, f"create schedule {name}") from exc
        return name

    def scheduled_at(self, instance: InstanceRef) -> datetime | None:
        name = schedule_name(instance)
        try:
            expression = self._client.get_schedule(Name=name, GroupName=self._group)["ScheduleExpression"]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise translate(exc, f"get schedule {name}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"get schedule {name}") from exc
        if not expression.startswith("at(") or not expression.endswith(")"):
            return None
        return datetime.fromisoformat(expression[3:-1]).replace(tzinfo=UTC)

    def delete(self, instance: InstanceRef) -> None:
        name = schedule_name(instance)
        try:
            self._client.delete_schedule(Name=name, GroupName=self._group)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise translate(exc, f"delete schedule {name}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"delete schedule {name}") from exc


class StopFollowUpSchedules:
    """Implements StopFollowUps: one one-time schedule per cutover batch, deleted after it runs."""

    def __init__(self, client: EventBridgeSchedulerClient, *, group_name: str, target_arn: str, role_arn: str,
                 dead_letter_arn: str | None = None) -> None:  # fmt: skip
        self._client = client
        self._group = group_name
        self._target_arn = target_arn
        self._role_arn = role_arn
        self._dead_letter_arn = dead_letter_arn

    def schedule(self, follow_up: StopFollowUp, at: datetime) -> str:
        name = f"aws2azure-stop-check-{follow_up.batch_id}"[:64]
        try:
            self._client.create_schedule(
                Name=name,
                GroupName=self._group,
                ScheduleExpression=f"at({at.astimezone(UTC):%Y-%m-%dT%H:%M:%S})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Description="aws2azure: report cutover sources that did not stop",
                Target=_target(self._target_arn, self._role_arn, follow_up.model_dump_json(), self._dead_letter_arn),
            )
        except ClientError as exc:
            if error_code(exc) != "ConflictException":  # the same batch scheduled twice: one is enough
                raise translate(exc, f"create schedule {name}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"create schedule {name}") from exc
        return name
