"""The composition root: builds each Lambda's logic from its settings, with real adapters.

boto3 clients are made on first use and kept in ``AwsClients`` for the life of the container (each
handler module holds one, built on its first invocation), never at import time and never per call.
``AWS_ENDPOINT_URL`` in the environment points every client at moto's server locally.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from botocore.config import Config

from aws_lambda.adapters.azure_queue import AzureQueuePublisher
from aws_lambda.adapters.ec2 import Ec2Gateway
from aws_lambda.adapters.lambda_invoke import LambdaIntakeInvoker
from aws_lambda.adapters.scheduler import CutoverSchedules, StopFollowUpSchedules
from aws_lambda.adapters.secrets import CachedSecret
from aws_lambda.adapters.sns import SnsClient, SnsPhaseAnnouncer
from aws_lambda.adapters.ssm import SsmGateway
from aws_lambda.adapters.status_api import StatusApiClient
from aws_lambda.logic.cutover import CutoverDependencies
from aws_lambda.logic.intake import IDEMPOTENCY_KEY_JMESPATH, Intake, IntakeDependencies, ProcessRequest
from aws_lambda.logic.reconcile import ReconcileDependencies
from aws_lambda.logic.status_sync import StatusSyncDependencies
from aws_lambda.models.outcomes import IntakeOutcome
from aws_lambda.settings import (
    CutoverSettings,
    IntakeSettings,
    LambdaSettings,
    QueueSettings,
    ReconcileSettings,
    StatusSyncSettings,
)
from migration.clock import clock_from_factory

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_ssm import SSMClient

    from aws_lambda.ports import Clock

# Adaptive mode rate-limits the client itself when AWS throttles (CreateTags in a big wave, for one).
AWS_CLIENT_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 6}, connect_timeout=5, read_timeout=20)


def clock_for(settings: LambdaSettings) -> Clock:
    return clock_from_factory(settings.clock_factory)


class AwsClients:
    """One boto3 client per service, created on first use."""

    def __init__(self, session: boto3.session.Session | None = None) -> None:
        self._session = session

    @cached_property
    def session(self) -> boto3.session.Session:
        return self._session or boto3.session.Session()

    @cached_property
    def ec2(self) -> EC2Client:
        return self.session.client("ec2", config=AWS_CLIENT_CONFIG)

    @cached_property
    def scheduler(self) -> EventBridgeSchedulerClient:
        return self.session.client("scheduler", config=AWS_CLIENT_CONFIG)

    @cached_property
    def secretsmanager(self) -> SecretsManagerClient:
        return self.session.client("secretsmanager", config=AWS_CLIENT_CONFIG)

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        return self.session.client("dynamodb", config=AWS_CLIENT_CONFIG)

    @cached_property
    def ssm(self) -> SSMClient:
        return self.session.client("ssm", config=AWS_CLIENT_CONFIG)

    @cached_property
    def lambda_(self) -> LambdaClient:
        return self.session.client("lambda", config=AWS_CLIENT_CONFIG)

    @cached_property
    def sns(self) -> SnsClient:
        client: SnsClient = self.session.client("sns", config=AWS_CLIENT_CONFIG)
        return client


def phase_announcer(topic_arn: str | None, clients: AwsClients) -> SnsPhaseAnnouncer | None:
    """The SNS announcer of AWS-side phase changes, None when no topic is configured (nothing announced)."""
    return SnsPhaseAnnouncer(clients.sns, topic_arn) if topic_arn else None


def queue_publisher(settings: QueueSettings, clients: AwsClients) -> AzureQueuePublisher:
    sas = CachedSecret(
        clients.secretsmanager, settings.azure_queue_sas_secret_arn, ttl_seconds=settings.secret_cache_seconds
    )
    return AzureQueuePublisher(settings.azure_queue_url, sas)


@dataclass(frozen=True)
class IntakeRuntime:
    intake: Intake
    # The handler registers each invocation's Lambda context here, so an in-progress record expires
    # with the invocation instead of blocking retries for the whole window.
    idempotency: IdempotencyConfig


def build_intake(
    settings: IntakeSettings, clients: AwsClients | None = None, *, clock: Clock | None = None
) -> IntakeRuntime:
    clients = clients or AwsClients()
    ec2 = Ec2Gateway(clients.ec2)
    config = IdempotencyConfig(
        event_key_jmespath=IDEMPOTENCY_KEY_JMESPATH,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings.idempotency_window_seconds,
    )
    store = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=clients.dynamodb)

    def idempotent(process: ProcessRequest) -> ProcessRequest:
        wrapped: ProcessRequest = idempotent_function(
            process,
            data_keyword_argument="request",
            persistence_store=store,
            config=config,
            output_serializer=PydanticSerializer(IntakeOutcome),
            # Stable across function renames and redeploys, unlike the default (the function's name).
            key_prefix="aws2azure-intake",
        )
        return wrapped

    deps = IntakeDependencies(
        inventory=ec2,
        tags=ec2,
        schedules=CutoverSchedules(
            clients.scheduler,
            group_name=settings.scheduler_group_name,
            target_arn=settings.cutover_function_arn,
            role_arn=settings.scheduler_role_arn,
            dead_letter_arn=settings.scheduler_dead_letter_arn,
        ),
        publisher=queue_publisher(settings, clients),
        appliance=settings.appliance,
        clock=clock or clock_for(settings),
        agent_install=settings.agent_install,
        agents=SsmGateway(clients.ssm, document_name=settings.agent_install_document or "")
        if settings.agent_install == "ssm"
        else None,
        agent_config_expires_at=settings.agent_config_expires_at,
        announcer=phase_announcer(settings.phase_topic_arn, clients),
    )
    return IntakeRuntime(intake=Intake(deps, idempotent=idempotent), idempotency=config)


def build_cutover(
    settings: CutoverSettings, clients: AwsClients | None = None, *, clock: Clock | None = None
) -> CutoverDependencies:
    clients = clients or AwsClients()
    ec2 = Ec2Gateway(clients.ec2)
    return CutoverDependencies(
        inventory=ec2,
        machines=ec2,
        tags=ec2,
        publisher=queue_publisher(settings, clients),
        follow_ups=StopFollowUpSchedules(
            clients.scheduler,
            group_name=settings.scheduler_group_name,
            target_arn=settings.cutover_function_arn,
            role_arn=settings.scheduler_role_arn,
            dead_letter_arn=settings.scheduler_dead_letter_arn,
        ),
        clock=clock or clock_for(settings),
        stop_timeout_seconds=settings.stop_timeout_seconds,
    )


def build_status_sync(settings: StatusSyncSettings, clients: AwsClients | None = None) -> StatusSyncDependencies:
    clients = clients or AwsClients()
    ec2 = Ec2Gateway(clients.ec2)
    key = CachedSecret(
        clients.secretsmanager, settings.status_api_key_secret_arn, ttl_seconds=settings.secret_cache_seconds
    )
    api = StatusApiClient(settings.status_api_url, key, timeout_seconds=settings.status_api_timeout_seconds)
    # Reads install results only (GetCommandInvocation); intake is the one that sends the document.
    agents = SsmGateway(clients.ssm, document_name="")
    arn = settings.cutover_function_arn
    cutover = LambdaIntakeInvoker(clients.lambda_, arn) if arn else None
    return StatusSyncDependencies(
        inventory=ec2,
        tags=ec2,
        status_api=api,
        agents=agents,
        cutover=cutover,
        announcer=phase_announcer(settings.phase_topic_arn, clients),
        sources=ec2,
    )


def build_reconcile(
    settings: ReconcileSettings, clients: AwsClients | None = None, *, clock: Clock | None = None
) -> ReconcileDependencies:
    clients = clients or AwsClients()
    key = CachedSecret(
        clients.secretsmanager, settings.status_api_key_secret_arn, ttl_seconds=settings.secret_cache_seconds
    )
    return ReconcileDependencies(
        inventory=Ec2Gateway(clients.ec2),
        invoker=LambdaIntakeInvoker(clients.lambda_, settings.intake_function_name),
        clock=clock or clock_for(settings),
        max_per_run=settings.reconcile_max_per_run,
        status_api=StatusApiClient(settings.status_api_url, key, timeout_seconds=settings.status_api_timeout_seconds),
        # Read only (scheduled_at): reconcile never creates a schedule, intake does.
        schedules=CutoverSchedules(
            clients.scheduler, group_name=settings.scheduler_group_name, target_arn="", role_arn=""
        ),
    )
