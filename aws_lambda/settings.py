"""Each Lambda's settings: one frozen object, read from the environment once, at cold start.

The names are the environment variables the SAM template (infra/aws) sets. A missing or invalid
setting raises ``SettingsError`` naming it, so the function fails at init saying what to fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, IPvAnyNetwork, ValidationError, model_validator

from migration.readiness import AgentInstall, ApplianceLocation

# An SNS topic ARN, the form of the template's PhaseTopicArn parameter (standard topics only).
SNS_TOPIC_ARN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$"
# EventBridge retries a failed delivery for up to 24 h; a shorter window would let a late retry run again.
MIN_IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600


class SettingsError(RuntimeError):
    """The environment lacks a setting or has an invalid one; the message names each."""


class LambdaSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    service_name: str = Field(alias="POWERTOOLS_SERVICE_NAME", min_length=1)
    metrics_namespace: str = Field(alias="POWERTOOLS_METRICS_NAMESPACE", min_length=1)
    # Local stack only: "module:callable" making the virtual clock it shares (migration/clock.py).
    clock_factory: str | None = Field(default=None, alias="AWS2AZURE_CLOCK")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        # CloudFormation sets an unused optional parameter as "": that is "not set", not an invalid value.
        env = {k: v for k, v in (os.environ if environ is None else environ).items() if v.strip()}
        try:
            return cls.model_validate(env)
        except ValidationError as exc:
            missing = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "missing"]
            invalid = [
                f"{e['loc'][0] if e['loc'] else 'settings'}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
                if e["type"] != "missing"
            ]
            parts = []
            if missing:
                parts.append("missing environment variables: " + ", ".join(missing))
            if invalid:
                parts.append("invalid environment variables: " + "; ".join(invalid))
            raise SettingsError(f"{cls.__name__}: " + "; ".join(parts)) from None


class QueueSettings(LambdaSettings):
    """Where the events go: the Azure Storage queue, with an add-only SAS kept in Secrets Manager."""

    azure_queue_url: str = Field(alias="AZURE_QUEUE_URL", pattern=r"^https?://[^/]+/.+")
    azure_queue_sas_secret_arn: str = Field(alias="AZURE_QUEUE_SAS_SECRET_ARN", min_length=1)
    # How long a secret read from Secrets Manager is reused before it is read again.
    secret_cache_seconds: int = Field(default=300, ge=0, le=3600, alias="SECRET_CACHE_SECONDS")


class IntakeSettings(QueueSettings):
    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE", min_length=1)
    idempotency_window_seconds: int = Field(
        default=MIN_IDEMPOTENCY_WINDOW_SECONDS + 3600,
        ge=MIN_IDEMPOTENCY_WINDOW_SECONDS,
        alias="IDEMPOTENCY_WINDOW_SECONDS",
    )
    appliance_cidr: IPvAnyNetwork | None = Field(default=None, alias="APPLIANCE_CIDR")
    appliance_security_group_id: str | None = Field(default=None, alias="APPLIANCE_SECURITY_GROUP_ID")
    cutover_function_arn: str = Field(alias="CUTOVER_FUNCTION_ARN", pattern=r"^arn:")
    scheduler_group_name: str = Field(alias="SCHEDULER_GROUP_NAME", min_length=1)
    scheduler_role_arn: str = Field(alias="SCHEDULER_ROLE_ARN", pattern=r"^arn:")
    # Where a schedule's invocation goes when it still fails after its retries (the cutover dead-letter queue).
    scheduler_dead_letter_arn: str | None = Field(default=None, alias="SCHEDULER_DEAD_LETTER_ARN", pattern=r"^arn:")
    # ssm: intake runs the Mobility install document through Systems Manager; push: the appliance pushes
    # the agent (needs inbound ports and credentials on the appliance); manual: the operator installs it.
    agent_install: AgentInstall = Field(default="ssm", alias="AGENT_INSTALL")
    agent_install_document: str | None = Field(default=None, alias="AGENT_INSTALL_DOCUMENT")
    # When the appliance's Mobility service configuration file (in S3 / Secrets Manager) stops being valid.
    agent_config_expires_at: AwareDatetime | None = Field(default=None, alias="AGENT_CONFIG_EXPIRES_AT")
    # Where the AWS side's own phase changes are announced (docs/NOTIFICATIONS.md); None: not announced.
    phase_topic_arn: str | None = Field(default=None, alias="PHASE_TOPIC_ARN", pattern=SNS_TOPIC_ARN)

    @model_validator(mode="after")
    def _appliance_located(self) -> IntakeSettings:
        if self.appliance_cidr is None and not self.appliance_security_group_id:
            raise ValueError("set APPLIANCE_CIDR and/or APPLIANCE_SECURITY_GROUP_ID (where the appliance is)")
        if self.agent_install == "ssm" and not self.agent_install_document:
            raise ValueError("AGENT_INSTALL=ssm needs AGENT_INSTALL_DOCUMENT (the SSM document's name)")
        return self

    @property
    def appliance(self) -> ApplianceLocation:
        return ApplianceLocation(cidr=self.appliance_cidr, security_group_id=self.appliance_security_group_id)


class CutoverSettings(QueueSettings):
    # How long a source may take to stop before the follow-up reports it (no Lambda waits for the stop).
    stop_timeout_seconds: int = Field(default=900, ge=60, le=86400, alias="STOP_TIMEOUT_SECONDS")
    # The one-time follow-up schedule that reports a source that did not stop (EventBridge Scheduler).
    scheduler_group_name: str = Field(alias="SCHEDULER_GROUP_NAME", min_length=1)
    scheduler_role_arn: str = Field(alias="SCHEDULER_ROLE_ARN", pattern=r"^arn:")
    # Where a schedule's invocation goes when it still fails after its retries (the cutover dead-letter queue).
    scheduler_dead_letter_arn: str | None = Field(default=None, alias="SCHEDULER_DEAD_LETTER_ARN", pattern=r"^arn:")
    cutover_function_arn: str = Field(alias="CUTOVER_FUNCTION_ARN", pattern=r"^arn:")


class StatusSyncSettings(LambdaSettings):
    status_api_url: str = Field(alias="STATUS_API_URL", pattern=r"^https?://")
    # A wave cutover's "stop requested" members are handed to the cutover Lambda (asynchronous invoke).
    cutover_function_arn: str | None = Field(default=None, alias="CUTOVER_FUNCTION_ARN", pattern=r"^arn:")
    status_api_key_secret_arn: str = Field(alias="STATUS_API_KEY_SECRET_ARN", min_length=1)
    secret_cache_seconds: int = Field(default=300, ge=0, le=3600, alias="SECRET_CACHE_SECONDS")
    status_api_timeout_seconds: float = Field(default=10.0, gt=0, le=60, alias="STATUS_API_TIMEOUT_SECONDS")
    # Where the Mobility service install results (AwaitingDiscovery, Failed) are announced; None: not announced.
    phase_topic_arn: str | None = Field(default=None, alias="PHASE_TOPIC_ARN", pattern=SNS_TOPIC_ARN)


class ReconcileSettings(LambdaSettings):
    secret_cache_seconds: int = Field(default=300, ge=0, le=3600, alias="SECRET_CACHE_SECONDS")
    intake_function_name: str = Field(alias="INTAKE_FUNCTION_NAME", min_length=1)
    # Reconcile compares each migrating instance's tags with the Azure record (the status API).
    status_api_url: str = Field(alias="STATUS_API_URL", pattern=r"^https?://")
    status_api_key_secret_arn: str = Field(alias="STATUS_API_KEY_SECRET_ARN", min_length=1)
    status_api_timeout_seconds: float = Field(default=10.0, gt=0, le=60, alias="STATUS_API_TIMEOUT_SECONDS")
    scheduler_group_name: str = Field(alias="SCHEDULER_GROUP_NAME", min_length=1)
    # Bounds one run, so a backlog is worked off over several runs instead of timing one out.
    reconcile_max_per_run: int = Field(default=200, ge=1, le=1000, alias="RECONCILE_MAX_PER_RUN")
