"""The Function App's settings: one frozen object, read once per worker at the edge.

The names are the app settings the Bicep template creates (tests/integration/infra checks they agree).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from migration.ports import DiskType

MIGRATIONS_TABLE = "migrations"
EVENTS_TABLE = "migrationevents"
INTAKE_QUEUE = "migration-requests"
INTAKE_QUEUE_CONNECTION = "MIGRATION_QUEUE"  # the queue trigger's `connection` app setting prefix
STATE_STORAGE_CONNECTION = "STATE_STORAGE"  # connection string, or STATE_STORAGE__tableServiceUri
TASK_HUB_NAME = "aws2azure"
WRITE_BUDGET_TABLE = "asrwritebudget"
NOTIFICATIONS_TABLE = "notifications"
_STORAGE_ACCOUNT_ID = (
    r"(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Storage/storageAccounts/[^/]+$"
)


class FunctionSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    state_storage_connection_string: str | None = Field(default=None, alias="STATE_STORAGE")
    state_table_service_uri: str | None = Field(default=None, alias="STATE_STORAGE__tableServiceUri")
    asr_subscription_id: str = Field(alias="ASR_SUBSCRIPTION_ID")
    asr_resource_group: str = Field(alias="ASR_RESOURCE_GROUP")
    asr_vault_name: str = Field(alias="ASR_VAULT_NAME")
    # Only set locally: the ASR simulator's URL and its test CA. In Azure the SDK's defaults apply.
    asr_base_url: str | None = Field(default=None, alias="ASR_BASE_URL")
    asr_ca_bundle: str | None = Field(default=None, alias="ASR_CA_BUNDLE")
    asr_policy_name: str = Field(default="aws2azure-24h", alias="ASR_POLICY_NAME")
    target_resource_group_id: str = Field(alias="TARGET_RESOURCE_GROUP_ID")
    target_network_id: str = Field(alias="TARGET_NETWORK_ID")
    target_default_subnet: str = Field(alias="TARGET_DEFAULT_SUBNET")
    target_default_vm_size: str | None = Field(default=None, alias="TARGET_DEFAULT_VM_SIZE")
    target_tags: dict[str, str] = Field(default_factory=dict, alias="TARGET_TAGS")
    # The cache (log) storage account ASR stages replicated data in: InMageRcmDisksDefaultInput.logStorageAccountId,
    # Required in the SDK's model and mandatory (-LogStorageAccountId) in Azure PowerShell.
    asr_cache_storage_account_id: str = Field(alias="ASR_CACHE_STORAGE_ACCOUNT_ID", pattern=_STORAGE_ACCOUNT_ID)
    # InMageRcmDisksDefaultInput.diskType (DiskAccountType); the tag aws2azure:target-disk-type overrides it.
    target_disk_type: DiskType = Field(default="Standard_LRS", alias="TARGET_DISK_TYPE")
    # licenseType WindowsServer claims Azure Hybrid Benefit; only when the licences carry that right.
    azure_hybrid_benefit: bool = Field(default=False, alias="AZURE_HYBRID_BENEFIT")
    # An isolated network for test failovers; a test failover into TARGET_NETWORK_ID only when allowed.
    test_network_id: str | None = Field(default=None, alias="TEST_NETWORK_ID")
    allow_test_failover_in_target_network: bool = Field(default=False, alias="ALLOW_TEST_FAILOVER_IN_TARGET_NETWORK")
    # Push install of the Mobility agent by the appliance: the OffAzure run-as account it uses. Unset (and
    # ASR_PUSH_INSTALL false): the agent is installed another way (SSM Run Command) and none is sent.
    asr_run_as_account_id: str | None = Field(default=None, alias="ASR_RUN_AS_ACCOUNT_ID")
    asr_push_install: bool = Field(default=False, alias="ASR_PUSH_INSTALL")
    # How long a request waits for the appliance to discover its machine before it is NotReady.
    discovery_timeout_seconds: int = Field(default=3600, ge=60, alias="DISCOVERY_TIMEOUT_SECONDS")
    # Only set locally: where the simulator serves Microsoft.OffAzure (defaults to ASR_BASE_URL).
    offazure_base_url: str | None = Field(default=None, alias="OFFAZURE_BASE_URL")
    # Only set locally: where the simulator serves Microsoft.Compute (defaults to ASR_BASE_URL).
    compute_base_url: str | None = Field(default=None, alias="COMPUTE_BASE_URL")
    # The validation gate between failover and commit (docs/VALIDATION.md): how long the failed-over VM may take to
    # run with a Ready VM agent before the migration fails (no commit sent), and the pause between two looks.
    validation_bound_seconds: int = Field(default=1200, ge=60, alias="VALIDATION_BOUND_SECONDS")
    validation_recheck_seconds: int = Field(default=60, ge=5, alias="VALIDATION_RECHECK_SECONDS")
    # A failed gate rolls the failover back (docs/ROLLBACK.md); false: the migration ends Failed, nothing undone.
    rollback_on_failed_validation: bool = Field(default=True, alias="ROLLBACK_ON_FAILED_VALIDATION")
    # One write budget for the whole app (a token bucket in Table Storage), under ARM's 200 / 10 per second.
    asr_write_budget_capacity: int = Field(default=100, ge=1, le=200, alias="ASR_WRITE_BUDGET_CAPACITY")
    asr_write_budget_per_second: float = Field(default=8.0, gt=0, le=10, alias="ASR_WRITE_BUDGET_PER_SECOND")
    asr_writes_per_second: float = Field(default=8.0, gt=0, alias="ASR_WRITES_PER_SECOND")
    poll_floor_seconds: int = Field(default=300, ge=1, alias="POLL_FLOOR_SECONDS")
    poll_ceiling_seconds: int = Field(default=6 * 3600, ge=1, alias="POLL_CEILING_SECONDS")
    stuck_after_seconds: int = Field(default=12 * 3600, ge=60, alias="STUCK_AFTER_SECONDS")
    # How long a step retries transient conditions (throttling, 5xx, connection errors) before it fails.
    step_retry_budget_seconds: int = Field(default=6 * 3600, ge=60, alias="STEP_RETRY_BUDGET_SECONDS")
    # Wave cutover: how many recovery plans fail over at once, how long a source may take to report stopped
    # (status sync's 5-minute pull + the AWS side's STOP_TIMEOUT_SECONDS), and the old plan-by-plan path
    # (kept only to compare downtime with, bench/run.py).
    wave_max_parallel_plans: int = Field(default=10, ge=1, le=100, alias="WAVE_MAX_PARALLEL_PLANS")
    wave_stop_bound_seconds: int = Field(default=1800, ge=60, alias="WAVE_STOP_BOUND_SECONDS")
    wave_sequential_plans: bool = Field(default=False, alias="WAVE_SEQUENTIAL_PLANS")
    # Waves whose members fail over only after an operator's approval (comma-separated names).
    approval_required_waves: frozenset[str] = Field(default=frozenset(), alias="APPROVAL_REQUIRED_WAVES")
    # Notifications (a CloudEvent per phase change, functions/notifications.py): a webhook and/or an Event Grid topic
    # (CloudEvent schema, the app's managed identity). Neither set: no notifications are queued.
    notify_webhook_url: str | None = Field(default=None, alias="NOTIFY_WEBHOOK_URL")
    notify_webhook_secret: str | None = Field(default=None, alias="NOTIFY_WEBHOOK_SECRET")
    notify_event_grid_endpoint: str | None = Field(default=None, alias="NOTIFY_EVENT_GRID_ENDPOINT")
    # Optional: the topic's access key (in Azure a Key Vault reference); set, it is used instead of the identity.
    notify_event_grid_key: str | None = Field(default=None, alias="NOTIFY_EVENT_GRID_KEY")
    # A notification not delivered this long after its phase change is dead-lettered (kept, marked, audited).
    notify_dead_letter_after_seconds: int = Field(default=24 * 3600, ge=60, alias="NOTIFY_DEAD_LETTER_AFTER_SECONDS")
    # Local only: "module:callable" making the virtual clock the local stack shares (migration/clock.py).
    clock_factory: str | None = Field(default=None, alias="AWS2AZURE_CLOCK")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> FunctionSettings:
        env: dict[str, object] = dict(os.environ if environ is None else environ)
        if "TARGET_TAGS" in env:
            try:
                env["TARGET_TAGS"] = json.loads(str(env["TARGET_TAGS"]) or "{}")
            except ValueError as exc:
                raise RuntimeError(f"app setting TARGET_TAGS is not a JSON object: {exc}") from exc
        if "APPROVAL_REQUIRED_WAVES" in env:
            env["APPROVAL_REQUIRED_WAVES"] = {
                wave.strip() for wave in str(env["APPROVAL_REQUIRED_WAVES"]).split(",") if wave.strip()
            }
        try:
            settings = cls.model_validate(env)
        except ValidationError as exc:
            missing = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "missing"]
            other = [f"{e['loc'][0]}: {e['msg']}" for e in exc.errors() if e["type"] != "missing"]
            parts = []
            if missing:
                parts.append("missing app settings: " + ", ".join(missing))
            if other:
                parts.append("invalid app settings: " + "; ".join(other))
            raise RuntimeError("; ".join(parts)) from None
        if settings.notify_event_grid_key and not settings.notify_event_grid_endpoint:
            raise RuntimeError("app setting NOTIFY_EVENT_GRID_KEY is set but NOTIFY_EVENT_GRID_ENDPOINT is not")
        if not (settings.state_storage_connection_string or settings.state_table_service_uri):
            raise RuntimeError(
                "missing app settings: STATE_STORAGE (connection string) or STATE_STORAGE__tableServiceUri"
            )
        return settings
