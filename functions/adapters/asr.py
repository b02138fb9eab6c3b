"""Azure Site Recovery, InMageRcm only, behind ``migration.ports.AsrGateway``.

One SDK (azure-mgmt-recoveryservicessiterecovery 2.0.0), one client per worker, injected. Every SDK
error leaves this module as a ``migration.errors`` type, chosen by HTTP status and exception class,
never by message text. Long-running operations are started with polling off; the ASR job id is read
from the 202's headers and the orchestrator watches the job with durable timers.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import HTTPPolicy
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
from azure.mgmt.recoveryservicessiterecovery import models as asr

from functions.adapters.offazure import OffAzureClient, Server
from migration.errors import (
    AwaitingDiscovery,
    AwaitingOperation,
    InvalidInput,
    MigrationError,
    NotFound,
    PermanentCloudError,
    PreconditionFailed,
    ThrottledError,
    TransientCloudError,
)
from migration.monitoring import classify_job_state
from migration.ports import (
    FINISHED_JOB_STATES,
    AsrJob,
    DiscoveredMachine,
    JobState,
    ReplicationPlan,
    ReplicationState,
)

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline import PipelineResponse

    from functions.settings import FunctionSettings
from migration.pacing import WriteLimiterLike

INSTANCE_TYPE = "InMageRcm"
ResponseHook = Callable[["PipelineResponse[Any, Any]"], None]
# ASR names the Azure side of every Azure-bound recovery plan with this literal fabric id.
AZURE_RECOVERY_FABRIC_ID = "Microsoft Azure"
MAX_RECOVERY_PLAN_ITEMS = 100  # ASR's own cap per recovery plan

# allowedOperations values (ASR's spelling).
OP_TEST_FAILOVER = "TestFailover"
OP_TEST_FAILOVER_CLEANUP = "TestFailoverCleanup"
OP_UNPLANNED_FAILOVER = "UnplannedFailover"
OP_COMMIT = "Commit"
OP_COMPLETE_MIGRATION = "CompleteMigration"
OP_DISABLE_PROTECTION = "DisableProtection"
# Operations ASR offers only once a failover has happened (see DESIGN.md's verified sequence).
POST_FAILOVER_OPERATIONS = frozenset({OP_COMMIT.lower(), OP_COMPLETE_MIGRATION.lower()})
FAILOVER_SCENARIOS = frozenset({"unplannedfailover", "failover", "plannedfailover"})
# currentScenario.scenarioName / JobProperties.scenarioName of each operation's job, lower-case. TestFailover and
# UnplannedFailover are the official examples' spelling (ReplicationProtectedItems_TestFailover.json,
# ReplicationRecoveryPlans_UnplannedFailover.json); the others are the simulator's names with plausible variants.
TEST_FAILOVER_SCENARIOS = frozenset({"testfailover"})
TEST_CLEANUP_SCENARIOS = frozenset({"testfailovercleanup", "cleanuptestfailover"})
COMMIT_SCENARIOS = frozenset({"commit", "failovercommit", "commitfailover"})
REMOVE_SCENARIOS = frozenset({"disabledr", "disableprotection", "completemigration"})
JOB_ACTION_RESTART = (
    "Restart"  # JobProperties.allowedActions (Restart-AzRecoveryServicesAsrJob, replicationJobs/restart)
)

# The orchestration's word for each verdict of migration.monitoring.classify_job_state.
VERDICT_STATES: Mapping[str, JobState] = {
    "running": "InProgress",
    "waiting_for_operator": "Suspended",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "cancelled": "Cancelled",
}

# How this client retries, and why. The SDK's RetryPolicy (azure-core) by default retries 10 times
# in all, 3 times per kind, and for *every* response >= 400 that carries Retry-After (any method,
# POST failovers included) it sleeps for Retry-After in real time inside the activity. Our own
# retry lives one level up: the orchestrator re-schedules the activity after a durable timer sized
# from ThrottledError.retry_after_seconds, re-reading allowedOperations first. Two layers of retry
# would multiply (3 SDK tries x N durable tries) and block a Functions worker while sleeping, so:
#   - status retries off: 429 / 5xx come straight back as ThrottledError / TransientCloudError;
#   - read retries off: the server may already have acted on a POST, so never re-send it blindly;
#   - connect retries 2: the request never reached ASR, so re-sending is safe and cheap (the SDK
#     re-sends GET/PUT/DELETE only, never a POST).
# Measured against the simulator: one 429 or 503 = exactly one request served (tests/integration/adapters).
SDK_RETRY_SETTINGS: Mapping[str, Any] = {
    "retry_total": 2,
    "retry_connect": 2,
    "retry_read": 0,
    "retry_status": 0,
    "retry_backoff_factor": 0.5,
}
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
JOB_SCAN_LIMIT = 200  # jobs to look through when an existing item's enable job must be found again


# --------------------------------------------------------------------------------------------------
# Client and credential (used by the composition root, once per worker)
# --------------------------------------------------------------------------------------------------


class LocalSimulatorOnlyCredential:
    """A fixed bearer token for the project's local ASR simulator. NOT a production credential.

    The simulator does not validate tokens; the SDK's bearer policy just needs one to send. In Azure
    the Function App uses its managed identity (``build_asr_credential``).
    """

    TOKEN = "aws2azure-local-simulator-token"

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.TOKEN, int(time.time()) + 3600)


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_asr_credential(settings: FunctionSettings) -> TokenCredential:
    """The simulator's fixed token on loopback, else the Function App's identity.

    DefaultAzureCredential resolves to the managed identity in Azure (AZURE_CLIENT_ID selects a
    user-assigned one) and to a developer's login elsewhere.
    """
    if settings.asr_base_url and is_loopback_url(settings.asr_base_url):
        return LocalSimulatorOnlyCredential()
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


class WritePacingPolicy(HTTPPolicy):  # type: ignore[type-arg]
    """Holds each ARM write (anything but GET/HEAD) until the worker's write budget has room.

    A transport-level policy, so the pacing applies at the moment a write is sent, every attempt
    included, whichever operation sends it; reads pass straight through.
    """

    def __init__(self, limiter: WriteLimiterLike) -> None:
        super().__init__()
        self.limiter = limiter

    def send(self, request: PipelineRequest) -> PipelineResponse:  # type: ignore[type-arg]
        if request.http_request.method.upper() not in ("GET", "HEAD"):
            self.limiter.acquire()
        response: PipelineResponse = self.next.send(request)  # type: ignore[type-arg]
        return response


def build_site_recovery_client(
    settings: FunctionSettings, credential: TokenCredential, *, write_limiter: WriteLimiterLike | None = None
) -> SiteRecoveryManagementClient:
    """One client per worker. ASR_BASE_URL / ASR_CA_BUNDLE point it at the local simulator."""
    options: dict[str, Any] = dict(SDK_RETRY_SETTINGS)
    if write_limiter is not None:
        options["per_retry_policies"] = [WritePacingPolicy(write_limiter)]
    if isinstance(credential, LocalSimulatorOnlyCredential) and not (
        settings.asr_base_url and is_loopback_url(settings.asr_base_url)
    ):
        raise RuntimeError(
            "LocalSimulatorOnlyCredential is for the local ASR simulator only; "
            "set ASR_BASE_URL to the simulator's loopback URL or use the managed identity"
        )
    if settings.asr_base_url:
        options["base_url"] = settings.asr_base_url
    if settings.asr_ca_bundle:
        options["connection_verify"] = settings.asr_ca_bundle
    return SiteRecoveryManagementClient(credential, settings.asr_subscription_id, **options)


# --------------------------------------------------------------------------------------------------
# Error translation: by status code and exception type only
# --------------------------------------------------------------------------------------------------


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def retry_after_seconds(headers: Mapping[str, str] | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` / ``x-ms-retry-after-ms`` / ``Retry-After``."""
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        raw = _header(headers, name)
        if raw:
            with contextlib.suppress(ValueError):
                return max(0.0, float(raw) / 1000.0)
    raw = _header(headers, "Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def translate_http_error(error: HttpResponseError, action: str) -> MigrationError:
    status = error.status_code
    code = error.error.code if error.error is not None else None
    detail = (error.error.message if error.error is not None else None) or error.reason or str(error)
    text = f"{action}: ASR answered {status} {code or ''}: {detail}".replace("  ", " ")
    headers: Mapping[str, str] | None = getattr(error.response, "headers", None)
    if status == 429:
        return ThrottledError(text, retry_after_seconds=retry_after_seconds(headers))
    if status is None or status >= 500 or status == 408:
        return TransientCloudError(text, retry_after_seconds=retry_after_seconds(headers))
    if status == 404:
        return NotFound(text, code=code or "NotFound")
    if status in (409, 412):
        return PreconditionFailed(text, code=code or "Conflict")
    return PermanentCloudError(text, code=code or f"Http{status}")


@contextlib.contextmanager
def translated_errors(action: str) -> Iterator[None]:
    """Run SDK calls; re-raise whatever they raise as a ``migration.errors`` type."""
    try:
        yield
    except HttpResponseError as exc:
        translated = translate_http_error(exc, action)
        # The error keeps its response, and an open response keeps its socket past the client's
        # close(); the body has been read, so release it.
        close = getattr(exc.response, "close", None)
        if callable(close):
            close()
        raise translated from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise TransientCloudError(f"{action}: could not reach ASR: {exc.message}") from exc
    except AzureError as exc:
        raise TransientCloudError(f"{action}: {type(exc).__name__}: {exc.message}") from exc


# --------------------------------------------------------------------------------------------------
# Pure mappings (unit-tested without a server)
# --------------------------------------------------------------------------------------------------


def last_segment(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def job_name_from_id(job_id: str | None) -> str | None:
    """A job name from a job ARM id or a bare name; ASR's placeholder ``.../replicationJobs/None`` is none."""
    if not job_id:
        return None
    name = last_segment(job_id.split("?", 1)[0])
    return None if not name or name.lower() == "none" else name


def job_name_from_operation_url(url: str | None) -> str | None:
    """The ASR job behind a 202's Location / Azure-AsyncOperation URL.

    ASR's Location is ``.../replicationJobs/{job}/operationresults/{job}`` (Azure PowerShell's
    GetJobIdFromReponseLocation takes the segment after ``operationresults``); a bare
    ``.../replicationJobs/{job}`` and ASR's ``.../replicationOperationStatus/{job}`` are read too.
    """
    if not url:
        return None
    segments = [s for s in urlsplit(url).path.split("/") if s]
    lowered = [s.lower() for s in segments]
    for marker in ("operationresults", "replicationjobs", "replicationoperationstatus"):
        if marker in lowered:
            index = len(lowered) - 1 - lowered[::-1].index(marker)
            if index + 1 < len(segments):
                name = segments[index + 1]
                if name.lower() != "none":
                    return name
    return None


def job_name_from_headers(headers: Mapping[str, str] | None) -> str | None:
    for name in ("Location", "Azure-AsyncOperation"):
        job = job_name_from_operation_url(_header(headers, name))
        if job:
            return job
    return None


_IP_SPLIT = re.compile(r"[\s,;]+")


def _ip_list(*values: object) -> tuple[str, ...]:
    found: list[str] = []
    for value in values:
        candidates: Iterable[object]
        if isinstance(value, str):
            candidates = _IP_SPLIT.split(value)
        elif isinstance(value, list | tuple):
            candidates = value
        else:
            continue
        for candidate in candidates:
            text = str(candidate).strip()
            if text and text not in found:
                found.append(text)
    return tuple(found)


def discovered_machine_from(server: Server, *, fabric_name: str, container_name: str) -> DiscoveredMachine:
    """An OffAzure machine (``{site}/machines/{name}``) as the core sees it: IPs from
    ``networkAdapters[].ipAddressList``, OS from ``operatingSystemDetails``, disks from ``disks``."""
    os = server.os
    props = server.properties
    return DiscoveredMachine(
        name=server.name,
        id=server.id,
        fabric_name=fabric_name,
        container_name=container_name,
        friendly_name=props.display_name or props.fqdn or server.name,
        ip_addresses=_ip_list(list(server.ip_addresses)),
        os_type=os.os_type or "",
        os_name=os.os_name or "",
        disk_ids=tuple(d.id or d.generated_id or "" for d in props.disks if d.id or d.generated_id),
        run_as_account_id=props.run_as_account_id or "",
    )


def _normalise_os(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9.]+", " ", text.lower()).split())


@dataclass(frozen=True)
class SupportedOs:
    """One entry of replicationSupportedOperatingSystems for one provider."""

    os_type: str
    os_name: str
    versions: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.os_name} {'/'.join(self.versions)}".strip()


def supported_os_list(
    supported: asr.SupportedOperatingSystems, instance_type: str = INSTANCE_TYPE
) -> list[SupportedOs]:
    result: list[SupportedOs] = []
    properties = supported.properties or asr.SupportedOSProperties()
    for entry in properties.supported_os_list or []:
        if (entry.instance_type or "").lower() != instance_type.lower():
            continue
        for os_details in entry.supported_os or []:
            versions = tuple(v.version for v in os_details.os_versions or [] if v.version)
            result.append(SupportedOs(os_details.os_type or "", os_details.os_name or "", versions))
    return result


def os_is_supported(os_type: str, os_name: str, supported: Iterable[SupportedOs]) -> bool:
    """The OS name starts with a listed name of the same OS type, and what follows starts with one of
    its versions (``22.04`` covers ``22.04.3 LTS``, ``9`` covers ``9.2`` but not ``90``).

    A name that is exactly a listed name is supported too: ASR lists some systems by full product
    name with a kernel version beside it (``Windows Server 2008 R2 Datacenter``, version 6.1).
    """
    name = _normalise_os(os_name)
    if not name:
        return False
    for entry in supported:
        listed = _normalise_os(entry.os_name)
        if entry.os_type.lower() != os_type.lower() or not listed:
            continue
        if name != listed and not name.startswith(listed + " "):
            continue
        rest = name[len(listed) :].strip()
        if not rest or not entry.versions:
            return True
        if any(re.match(re.escape(v.lower()) + r"(?![0-9])", rest) for v in entry.versions):
            return True
    return False


def _text(value: str | Enum | None) -> str:
    """The SDK gives known enum values as str-Enums, whose str() is ``Class.MEMBER``."""
    if isinstance(value, Enum):
        return str(value.value)
    return value or ""


def _health_error_text(error: asr.HealthError) -> str:
    message = error.summary_message or error.error_message or error.possible_causes or ""
    code = error.error_code or error.error_type or "HealthError"
    return f"{code}: {message}" if message else code


def replication_state_from(item: asr.ReplicationProtectedItem) -> ReplicationState:
    props = item.properties or asr.ReplicationProtectedItemProperties()
    details = props.provider_specific_details
    rcm = details if isinstance(details, asr.InMageRcmReplicationDetails) else None
    health_errors = [_health_error_text(e) for e in props.health_errors or []]
    progress: int | None = None
    rpo: int | None = None
    last_point: datetime | None = None
    if rcm is not None:
        progress = rcm.initial_replication_progress_percentage
        rpo = rcm.last_rpo_in_seconds
        last_point = rcm.last_recovery_point_received
        progress_health = _text(rcm.initial_replication_progress_health)
        # NoProgress / SlowProgress is how ASR says a replication has stalled; the orchestrator
        # reads health_errors, so it is surfaced there even when ASR raised no health error yet.
        if progress_health and progress_health not in ("None", "InProgress"):
            health_errors.append(f"InitialReplicationProgress: {progress_health}")
        for disk in rcm.protected_disks or []:
            health_errors.extend(
                f"disk {disk.disk_name or disk.disk_id}: {_health_error_text(e)}"
                for e in getattr(disk, "health_errors", None) or []
            )
    return ReplicationState(
        protected_item_name=item.name or "",
        protection_state=props.protection_state or "Unknown",
        replication_health=props.replication_health or "None",
        allowed_operations=frozenset(props.allowed_operations or []),
        progress_percent=None if progress is None else max(0, min(100, int(progress))),
        rpo_seconds=rpo,
        failover_health=props.failover_health,
        active_location=props.active_location,
        test_failover_state=props.test_failover_state,
        health_errors=tuple(dict.fromkeys(health_errors)),
        last_recovery_point=last_point,
        target_vm_name=rcm.target_vm_name if rcm is not None else None,
        target_resource_group_id=rcm.target_resource_group_id if rcm is not None else None,
    )


def _job_error_text(error: asr.JobErrorDetails) -> str:
    service = error.service_error_details
    if service is not None and (service.code or service.message):
        return f"{service.code or 'ServiceError'}: {service.message or ''}".rstrip(": ")
    provider = error.provider_error_details
    if provider is not None:
        return f"{provider.error_code or 'ProviderError'}: {provider.error_message or ''}".rstrip(": ")
    return "unknown job error"


def job_from(job: asr.Job) -> AsrJob:
    """Every ASR job state gets a verdict (migration.monitoring.classify_job_state); ``state`` is the
    orchestration's word for it, ``asr_state``/``state_description`` ASR's own."""
    props = job.properties or asr.JobProperties()
    raw_state = props.state or "NotStarted"
    verdict = classify_job_state(raw_state, props.state_description)
    errors = [_job_error_text(e) for e in props.errors or []]
    for task in props.tasks or []:
        errors.extend(_job_error_text(e) for e in task.errors or [])
    if verdict.verdict in ("failed", "cancelled") and verdict.note:
        errors.append(verdict.note)
    actions = {a.lower() for a in props.allowed_actions or []}
    return AsrJob(
        job_id=job.name or "",
        restartable=JOB_ACTION_RESTART.lower() in actions,
        scenario=props.scenario_name or "",
        state=VERDICT_STATES[verdict.verdict],
        display_name=props.friendly_name or props.scenario_name or "",
        errors=tuple(dict.fromkeys(errors)),
        asr_state=raw_state,
        state_description=props.state_description or "",
        verdict=verdict.verdict,
        note=verdict.note,
    )


def _allowed(props: asr.ReplicationProtectedItemProperties | asr.RecoveryPlanProperties) -> list[str]:
    return list(props.allowed_operations or [])


def _is_allowed(allowed: Sequence[str], operation: str) -> bool:
    return operation.lower() in {op.lower() for op in allowed}


def has_failed_over(props: asr.ReplicationProtectedItemProperties) -> bool:
    """ASR says a failover already happened: the item is active in Azure, or offers only the
    operations that follow a failover (Commit / CompleteMigration) and no longer a failover."""
    if (props.active_location or "").lower() == "recovery":
        return True
    allowed = {op.lower() for op in _allowed(props)}
    return bool(allowed & POST_FAILOVER_OPERATIONS) and OP_UNPLANNED_FAILOVER.lower() not in allowed


def running_scenario_job(scenario: asr.CurrentScenarioDetails | None, scenarios: frozenset[str]) -> str | None:
    if scenario is None or (scenario.scenario_name or "").lower() not in scenarios:
        return None
    return job_name_from_id(scenario.job_id)


def scenario_in_flight(scenario: asr.CurrentScenarioDetails | None) -> str | None:
    """The scenario ASR is running on an item or plan; ``None`` (ASR's own word) when idle."""
    if scenario is None or job_name_from_id(scenario.job_id) is None:
        return None
    name = scenario.scenario_name or ""
    return None if name.lower() in ("", "none") else name


def _discovery_site_id(fabric: asr.Fabric) -> str:
    details = fabric.properties.custom_details if fabric.properties else None
    if not isinstance(details, asr.InMageRcmFabricSpecificDetails):
        return ""
    return details.physical_site_id or details.vmware_site_id or ""


def _started(job: asr.Job) -> datetime:
    start = job.properties.start_time if job.properties else None
    return start or datetime.min.replace(tzinfo=UTC)


def _tags(tags: Mapping[str, str]) -> list[asr.UserCreatedResourceTag]:
    return [asr.UserCreatedResourceTag(tag_name=k, tag_value=v) for k, v in sorted(tags.items())]


# --------------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VaultTopology:
    """What every call needs and nothing changes during a migration: resolved once per worker."""

    fabric_name: str
    fabric_id: str
    container_name: str
    container_id: str
    process_server_id: str
    policy_id: str
    # The appliance's discovery site (Microsoft.OffAzure); discovered machines are its children.
    discovery_site_id: str = ""


class AzureSiteRecoveryGateway:
    """``AsrGateway`` over the real SDK client (InMageRcm, the modernized appliance path)."""

    def __init__(
        self,
        client: SiteRecoveryManagementClient,
        *,
        resource_group: str,
        vault_name: str,
        policy_name: str,
        target_resource_group_id: str,
        target_network_id: str,
        default_subnet: str,
        default_tags: Mapping[str, str] | None = None,
        default_vm_size: str | None = None,
        cache_storage_account_id: str,
        offazure: OffAzureClient,
        test_network_id: str | None = None,
        allow_test_failover_in_target_network: bool = False,
        target_disk_type: str = "Standard_LRS",
        run_as_account_id: str | None = None,
        push_install: bool = False,
        hybrid_benefit: bool = False,
        fabric_name: str | None = None,
    ) -> None:
        self._client = client
        self._rg = resource_group
        self._vault = vault_name
        self._policy_name = policy_name
        self._target_rg_id = target_resource_group_id
        self._target_network_id = target_network_id
        # A test failover belongs in an isolated network; into the target (production) network only when the
        # operator allows it explicitly (ALLOW_TEST_FAILOVER_IN_TARGET_NETWORK).
        self._test_network_id = test_network_id
        self._allow_test_in_target = allow_test_failover_in_target_network
        self._offazure = offazure
        # Push install of the Mobility agent (the appliance reaches the source with these credentials): the
        # run-as account from the setting, else the one the site holds for the machine (properties.runAsAccountId).
        self._run_as_account_id = run_as_account_id
        self._push_install = push_install or bool(run_as_account_id)
        self._hybrid_benefit = hybrid_benefit
        self._default_subnet = default_subnet
        self._default_tags = dict(default_tags or {})
        self._default_vm_size = default_vm_size
        self._cache_storage_account_id = cache_storage_account_id
        self._disk_type = target_disk_type
        self._fabric_name = fabric_name
        self._topology: VaultTopology | None = None
        self._supported_os: list[SupportedOs] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, client: SiteRecoveryManagementClient, settings: FunctionSettings, **overrides: Any
    ) -> AzureSiteRecoveryGateway:
        options: dict[str, Any] = {
            "resource_group": settings.asr_resource_group,
            "vault_name": settings.asr_vault_name,
            "policy_name": settings.asr_policy_name,
            "target_resource_group_id": settings.target_resource_group_id,
            "target_network_id": settings.target_network_id,
            "default_subnet": settings.target_default_subnet,
            "default_tags": settings.target_tags,
            "default_vm_size": settings.target_default_vm_size,
            "cache_storage_account_id": settings.asr_cache_storage_account_id,
            "test_network_id": settings.test_network_id,
            "allow_test_failover_in_target_network": settings.allow_test_failover_in_target_network,
            "target_disk_type": settings.target_disk_type,
            "run_as_account_id": settings.asr_run_as_account_id,
            "push_install": settings.asr_push_install,
            "hybrid_benefit": settings.azure_hybrid_benefit,
        }
        options.update(overrides)
        return cls(client, **options)

    # ---- topology, resolved once --------------------------------------------------------------

    @property
    def topology(self) -> VaultTopology:
        if self._topology is None:
            with self._lock:
                if self._topology is None:
                    self._topology = self._resolve_topology()
        return self._topology

    def _resolve_topology(self) -> VaultTopology:
        fabric = self._resolve_fabric()
        fabric_name = fabric.name or ""
        with translated_errors(f"list protection containers of fabric {fabric_name}"):
            containers = list(
                self._client.replication_protection_containers.list_by_replication_fabrics(
                    self._rg, self._vault, fabric_name
                )
            )
        if not containers:
            raise NotFound(
                f"fabric {fabric_name} in vault {self._vault} has no protection container",
                code="ProtectionContainerNotFound",
            )
        container = containers[0]
        with translated_errors(f"read replication policy {self._policy_name}"):
            policy = self._client.replication_policies.get(self._rg, self._vault, self._policy_name)
        policy_type = policy.properties.provider_specific_details if policy.properties else None
        if policy_type is not None and (policy_type.instance_type or "") != INSTANCE_TYPE:
            raise PreconditionFailed(
                f"replication policy {self._policy_name} is for {policy_type.instance_type}, not {INSTANCE_TYPE}",
                code="PolicyProviderMismatch",
            )
        return VaultTopology(
            fabric_name=fabric_name,
            fabric_id=fabric.id or "",
            container_name=container.name or "",
            container_id=container.id or "",
            process_server_id=self._choose_process_server(fabric),
            policy_id=policy.id or "",
            discovery_site_id=_discovery_site_id(fabric),
        )

    def _resolve_fabric(self) -> asr.Fabric:
        if self._fabric_name:
            with translated_errors(f"read fabric {self._fabric_name}"):
                return self._client.replication_fabrics.get(self._rg, self._vault, self._fabric_name)
        with translated_errors(f"list fabrics of vault {self._vault}"):
            fabrics = list(self._client.replication_fabrics.list(self._rg, self._vault))
        rcm = [
            f
            for f in fabrics
            if f.properties is not None
            and f.properties.custom_details is not None
            and (f.properties.custom_details.instance_type or "") == INSTANCE_TYPE
        ]
        if not rcm:
            raise NotFound(
                f"vault {self._vault} has no {INSTANCE_TYPE} fabric: register a replication appliance first",
                code="ReplicationApplianceNotFound",
            )
        if len(rcm) > 1:
            names = ", ".join(sorted(f.name or "?" for f in rcm))
            raise PreconditionFailed(
                f"vault {self._vault} has several {INSTANCE_TYPE} fabrics ({names}); configure which one to use",
                code="AmbiguousFabric",
            )
        return rcm[0]

    def _choose_process_server(self, fabric: asr.Fabric) -> str:
        details = fabric.properties.custom_details if fabric.properties else None
        servers = list(details.process_servers or []) if isinstance(details, asr.InMageRcmFabricSpecificDetails) else []
        servers = [s for s in servers if s.id]
        if not servers:
            raise PreconditionFailed(
                f"fabric {fabric.name} has no process server: the replication appliance is not registered",
                code="ProcessServerNotFound",
            )
        healthy = [s for s in servers if (s.health or "").lower() == "normal"]
        return (healthy or servers)[0].id or ""

    # ---- discovery -----------------------------------------------------------------------------

    def find_machine_by_ip(self, private_ip: str) -> DiscoveredMachine:
        """The machine in the appliance's OffAzure site whose network adapters carry ``private_ip``."""
        topo = self.topology
        if not topo.discovery_site_id:
            raise PreconditionFailed(
                f"fabric {topo.fabric_name} names no discovery site (customDetails.physicalSiteId / vmwareSiteId): "
                "the replication appliance is not registered with Azure Migrate",
                code="DiscoverySiteNotFound",
            )
        with translated_errors(f"list the machines of discovery site {last_segment(topo.discovery_site_id)}"):
            servers = [s for s in self._offazure.list_machines(topo.discovery_site_id) if not s.properties.is_deleted]
        matches = [s for s in servers if private_ip in s.ip_addresses]
        if not matches:
            raise AwaitingDiscovery(
                f"the replication appliance has not discovered a machine with IP {private_ip} yet "
                f"(site {last_segment(topo.discovery_site_id)}, {len(servers)} machines); it appears once the "
                "Mobility agent on the instance has registered with the appliance"
            )
        if len(matches) > 1:
            names = ", ".join(f"{m.properties.display_name or m.name} ({m.name})" for m in matches)
            raise PreconditionFailed(
                f"several discovered machines have IP {private_ip}: {names}; remove the stale ones",
                code="AmbiguousMachine",
            )
        return discovered_machine_from(matches[0], fabric_name=topo.fabric_name, container_name=topo.container_name)

    def ensure_os_supported(self, machine: DiscoveredMachine) -> None:
        """Checked against the API's InMageRcm list (replicationSupportedOperatingSystems), never a hard-coded
        one, with the OS the appliance discovered (the OffAzure machine's operatingSystemDetails)."""
        supported = self._supported_operating_systems()
        os_type, os_name = machine.os_type, machine.os_name
        same_type = [e for e in supported if e.os_type.lower() == os_type.lower()]
        offered = ", ".join(e.describe() for e in same_type) or "none"
        if os_name and not os_is_supported(os_type, os_name, supported):
            raise PreconditionFailed(
                f"{machine.friendly_name} runs {os_name} ({os_type}), which ASR {INSTANCE_TYPE} does not "
                f"support; supported {os_type} systems: {offered}",
                code="UnsupportedOperatingSystem",
            )
        if not same_type:
            raise PreconditionFailed(
                f"ASR cannot replicate {machine.friendly_name} ({os_type or 'unknown OS type'}) with "
                f"{INSTANCE_TYPE}: no supported {os_type or 'such'} systems",
                code="UnsupportedOperatingSystem",
            )

    def _supported_operating_systems(self) -> list[SupportedOs]:
        if self._supported_os is None:
            with translated_errors("read supported operating systems"):
                answer = self._client.supported_operating_systems.get(
                    self._rg, self._vault, instance_type=INSTANCE_TYPE
                )
            self._supported_os = supported_os_list(answer)
        return self._supported_os

    # ---- replication ---------------------------------------------------------------------------

    def begin_enable_replication(self, machine: DiscoveredMachine, plan: ReplicationPlan) -> str:
        topo = self.topology
        name = machine.name
        existing = self._find_item(name)
        if existing is not None:
            # Idempotent: a retried activity must not create the item twice.
            return self._last_job_of(existing)
        enable_input = self._enable_input(machine, plan)
        try:
            job = self._start(
                f"enable replication of {machine.friendly_name}",
                lambda hook: self._client.replication_protected_items.begin_create(
                    self._rg, self._vault, topo.fabric_name, topo.container_name, name, enable_input,
                    polling=False, raw_response_hook=hook,
                ),
            )  # fmt: skip
        except PreconditionFailed:
            # Two runs of the same step (an activity is at-least-once) raced: the other one's PUT created the
            # item, ours got 409. Its enable job is ours too.
            raced = self._find_item(name)
            if raced is None:
                raise
            return self._last_job_of(raced)
        return job or self._last_job_of(self._get_item(name))

    def _run_as_for(self, machine: DiscoveredMachine) -> str | None:
        if not self._push_install:
            return None  # the agent is installed another way (SSM Run Command); ASR needs no credentials
        run_as = self._run_as_account_id or machine.run_as_account_id
        if not run_as:
            raise PreconditionFailed(
                f"push install is on but no run-as account is known for {machine.friendly_name}: set "
                "ASR_RUN_AS_ACCOUNT_ID or add credentials for it on the replication appliance",
                code="RunAsAccountNotFound",
            )
        return run_as

    def _license_type(self, machine: DiscoveredMachine, plan: ReplicationPlan) -> str:
        """WindowsServer claims Azure Hybrid Benefit: only for a Windows source whose owner chose it (tag
        aws2azure:hybrid-benefit, else AZURE_HYBRID_BENEFIT). Everything else is NoLicenseType."""
        chosen = self._hybrid_benefit if plan.hybrid_benefit is None else plan.hybrid_benefit
        return "WindowsServer" if chosen and machine.os_type.lower() == "windows" else "NoLicenseType"

    def _enable_input(self, machine: DiscoveredMachine, plan: ReplicationPlan) -> asr.EnableProtectionInput:
        """InMageRcmEnableProtectionInput as Azure PowerShell's InMageRcm path builds it
        (NewAzureRmRecoveryServicesAsrReplicationProtectedItem.cs, InMageRcmToAzureReplication): the OffAzure
        machine id as fabricDiscoveryMachineId, no protectableItemId, disksDefault with the cache (log) storage
        account and disk type (both Required in the SDK's InMageRcmDisksDefaultInput)."""
        topo = self.topology
        if not machine.id:
            raise InvalidInput(f"{machine.friendly_name} has no discovery (OffAzure) machine id")
        tags = _tags({**self._default_tags, **plan.tags})
        disks_default = asr.InMageRcmDisksDefaultInput(
            log_storage_account_id=self._cache_storage_account_id, disk_type=plan.disk_type or self._disk_type
        )
        provider = asr.InMageRcmEnableProtectionInput(
            fabric_discovery_machine_id=machine.id,
            disks_default=disks_default,
            target_resource_group_id=self._target_rg_id,
            target_network_id=self._target_network_id,
            target_subnet_name=plan.target_subnet or self._default_subnet,
            target_vm_name=plan.target_vm_name,
            target_vm_size=plan.target_vm_size or self._default_vm_size,
            license_type=self._license_type(machine, plan),
            process_server_id=topo.process_server_id,
            target_vm_tags=tags,
            target_nic_tags=tags,
            target_managed_disk_tags=tags,
            seed_managed_disk_tags=tags,
        )
        if self._test_network_id:
            provider.test_network_id = self._test_network_id
            provider.test_subnet_name = plan.target_subnet or self._default_subnet
        run_as = self._run_as_for(machine)
        if run_as:
            provider.run_as_account_id = run_as
        return asr.EnableProtectionInput(
            properties=asr.EnableProtectionInputProperties(policy_id=topo.policy_id, provider_specific_details=provider)
        )

    def get_replication_state(self, protected_item_name: str) -> ReplicationState:
        return replication_state_from(self._get_item(protected_item_name))

    def get_job(self, job_id: str) -> AsrJob:
        name = job_name_from_id(job_id)
        if name is None:
            raise InvalidInput(f"{job_id!r} is not an ASR job id")
        with translated_errors(f"read ASR job {name}"):
            job = self._client.replication_jobs.get(self._rg, self._vault, name)
        return job_from(job)

    def resume_job(self, job_id: str, comments: str = "") -> AsrJob:
        """ASR's replicationJobs resume (ReplicationJobs_Resume) for a Suspended job."""
        name = job_name_from_id(job_id)
        if name is None:
            raise InvalidInput(f"{job_id!r} is not an ASR job id")
        current = self.get_job(name)
        if current.verdict != "waiting_for_operator":
            raise PreconditionFailed(
                f"ASR job {name} is {current.asr_state or current.state}, not suspended; nothing to resume",
                code="JobNotSuspended",
            )
        resume_input = asr.ResumeJobParams(properties=asr.ResumeJobParamsProperties(comments=comments or "aws2azure"))
        self._start(
            f"resume ASR job {name}",
            lambda hook: self._client.replication_jobs.begin_resume(
                self._rg, self._vault, name, resume_input, polling=False, raw_response_hook=hook
            ),
        )
        return self.get_job(name)

    # ---- failover ------------------------------------------------------------------------------

    def _test_network(self) -> str:
        network = self._test_network_id
        in_target = not network or network.lower() == self._target_network_id.lower()
        if in_target and not self._allow_test_in_target:
            raise PreconditionFailed(
                "a test failover needs an isolated test network: set TEST_NETWORK_ID (a test VM in the target "
                "network runs beside production with the same addresses), or set "
                "ALLOW_TEST_FAILOVER_IN_TARGET_NETWORK=true to accept that",
                code="TestNetworkRequired",
            )
        return network or self._target_network_id

    def begin_test_failover(self, protected_item_name: str) -> str:
        network = self._test_network()
        item, recovered = self._item_for(protected_item_name, OP_TEST_FAILOVER, TEST_FAILOVER_SCENARIOS)
        if recovered:
            return recovered
        failover_input = asr.TestFailoverInput(
            properties=asr.TestFailoverInputProperties(
                failover_direction="PrimaryToRecovery",
                network_type="VmNetworkAsInput",
                network_id=network,
                provider_specific_details=asr.InMageRcmTestFailoverInput(network_id=network),
            )
        )
        return self._item_write(
            item, "test failover",
            lambda topo, hook: self._client.replication_protected_items.begin_test_failover(
                self._rg, self._vault, topo.fabric_name, topo.container_name, protected_item_name,
                failover_input, polling=False, raw_response_hook=hook,
            ),
        )  # fmt: skip

    def begin_test_failover_cleanup(self, protected_item_name: str) -> str:
        item, recovered = self._item_for(protected_item_name, OP_TEST_FAILOVER_CLEANUP, TEST_CLEANUP_SCENARIOS)
        if recovered:
            return recovered
        cleanup_input = asr.TestFailoverCleanupInput(
            properties=asr.TestFailoverCleanupInputProperties(comments="aws2azure: test failover validated")
        )
        return self._item_write(
            item, "test failover cleanup",
            lambda topo, hook: self._client.replication_protected_items.begin_test_failover_cleanup(
                self._rg, self._vault, topo.fabric_name, topo.container_name, protected_item_name,
                cleanup_input, polling=False, raw_response_hook=hook,
            ),
        )  # fmt: skip

    def begin_unplanned_failover(self, protected_item_name: str) -> str:
        """Never a second failover: a running one returns its job, a finished one AlreadyFailedOver."""
        item = self._get_item(protected_item_name)
        props = item.properties or asr.ReplicationProtectedItemProperties()
        running = running_scenario_job(props.current_scenario, FAILOVER_SCENARIOS)
        if running is not None:
            return running
        if has_failed_over(props):
            raise PreconditionFailed(
                f"{protected_item_name} has already failed over (activeLocation {props.active_location}, "
                f"allowedOperations {_allowed(props)}); a failover is never requested twice",
                code="AlreadyFailedOver",
            )
        self._require(item, OP_UNPLANNED_FAILOVER)
        failover_input = asr.UnplannedFailoverInput(
            properties=asr.UnplannedFailoverInputProperties(
                failover_direction="PrimaryToRecovery",
                # ASR cannot shut an AWS source down; the AWS side stopped it before this call.
                source_site_operations="NotRequired",
                provider_specific_details=asr.InMageRcmUnplannedFailoverInput(perform_shutdown="false"),
            )
        )
        return self._item_write(
            item, "unplanned failover",
            lambda topo, hook: self._client.replication_protected_items.begin_unplanned_failover(
                self._rg, self._vault, topo.fabric_name, topo.container_name, protected_item_name,
                failover_input, polling=False, raw_response_hook=hook,
            ),
        )  # fmt: skip

    def begin_commit(self, protected_item_name: str) -> str:
        item, recovered = self._item_for(protected_item_name, OP_COMMIT, COMMIT_SCENARIOS)
        if recovered:
            return recovered
        return self._item_write(
            item, "commit failover",
            lambda topo, hook: self._client.replication_protected_items.begin_failover_commit(
                self._rg, self._vault, topo.fabric_name, topo.container_name, protected_item_name,
                polling=False, raw_response_hook=hook,
            ),
        )  # fmt: skip

    def begin_complete_migration(self, protected_item_name: str) -> str:
        """After commit, end replication: ``remove`` (ReplicationProtectedItems_Delete) with
        disableProtectionReason MigrationComplete when ASR offers CompleteMigration, else with NotSpecified when it
        offers DisableProtection (Learn's InMageRcm automation page, "Complete/Disable migration": after a
        successful failover, disable replication). Neither offered: PreconditionFailed CompleteMigrationNotOffered;
        the VM already runs in Azure, so the caller records the migration done with a note."""
        item = self._get_item(protected_item_name)
        props = item.properties or asr.ReplicationProtectedItemProperties()
        allowed = _allowed(props)
        if _is_allowed(allowed, OP_COMPLETE_MIGRATION):
            return self._remove(item, "MigrationComplete", "complete migration")
        if _is_allowed(allowed, OP_DISABLE_PROTECTION) and has_failed_over(props):
            return self._remove(item, "NotSpecified", "complete migration (disable replication)")
        running = running_scenario_job(props.current_scenario, REMOVE_SCENARIOS)
        if running is not None:
            return running  # our earlier request went through (its answer was lost): watch that job
        busy = scenario_in_flight(props.current_scenario)
        if busy:
            raise TransientCloudError(
                f"ASR is running {busy} on {protected_item_name}; complete migration after it", retry_after_seconds=60
            )
        raise PreconditionFailed(
            f"ASR offers neither CompleteMigration nor DisableProtection on {protected_item_name} "
            f"(protectionState {props.protection_state}, allowedOperations {allowed})",
            code="CompleteMigrationNotOffered",
        )

    def begin_disable_replication(self, protected_item_name: str) -> str:
        item = self._item_allowing(protected_item_name, OP_DISABLE_PROTECTION)
        return self._remove(item, "NotSpecified", "disable replication")

    def _remove(self, item: asr.ReplicationProtectedItem, reason: str, action: str) -> str:
        name = item.name or ""
        remove_input = asr.DisableProtectionInput(
            properties=asr.DisableProtectionInputProperties(
                disable_protection_reason=reason,
                replication_provider_input=asr.DisableProtectionProviderSpecificInput(
                    instance_type="DisableProtectionProviderSpecificInput"
                ),
            )
        )
        return self._item_write(
            item, action,
            lambda topo, hook: self._client.replication_protected_items.begin_delete(
                self._rg, self._vault, topo.fabric_name, topo.container_name, name, remove_input,
                polling=False, raw_response_hook=hook,
            ),
        )  # fmt: skip

    # ---- recovery plans (waves) ----------------------------------------------------------------

    def create_recovery_plan(self, plan_name: str, protected_item_names: Sequence[str]) -> str:
        """Recovery plan creation is a long-running operation (202 + Azure-AsyncOperation in the official
        ReplicationRecoveryPlans_Create example): returns the creation job, which the caller waits for."""
        names = list(dict.fromkeys(protected_item_names))
        if not names or len(names) > MAX_RECOVERY_PLAN_ITEMS:
            raise InvalidInput(
                f"a recovery plan holds 1 to {MAX_RECOVERY_PLAN_ITEMS} machines; {plan_name} was given {len(names)}"
            )
        topo = self.topology
        existing = self._find_plan(plan_name)
        if existing is not None:
            groups = (existing.properties or asr.RecoveryPlanProperties()).groups or []
            have = {last_segment(i.id or "") for g in groups for i in g.replication_protected_items or []}
            if have != set(names):
                raise PreconditionFailed(
                    f"recovery plan {plan_name} exists with other machines: "
                    f"missing {sorted(set(names) - have)}, extra {sorted(have - set(names))}",
                    code="RecoveryPlanMismatch",
                )
            return self._plan_creation_job(existing)
        plan_input = asr.CreateRecoveryPlanInput(
            properties=asr.CreateRecoveryPlanInputProperties(
                primary_fabric_id=topo.fabric_id,
                recovery_fabric_id=AZURE_RECOVERY_FABRIC_ID,
                failover_deployment_model="ResourceManager",
                groups=[
                    asr.RecoveryPlanGroup(
                        group_type="Boot",
                        replication_protected_items=[
                            asr.RecoveryPlanProtectedItem(
                                id=f"{topo.container_id}/replicationProtectedItems/{n}", virtual_machine_id=n
                            )
                            for n in names
                        ],
                        start_group_actions=[],
                        end_group_actions=[],
                    )
                ],
            )
        )
        job = self._start(
            f"create recovery plan {plan_name}",
            lambda hook: self._client.replication_recovery_plans.begin_create(
                self._rg, self._vault, plan_name, plan_input, polling=False, raw_response_hook=hook
            ),
        )
        if job is None:
            raise PermanentCloudError(f"ASR named no job for creating recovery plan {plan_name}", code="JobNotFound")
        return job

    def _plan_creation_job(self, plan: asr.RecoveryPlan) -> str:
        """The job that created an existing plan (newest CreateRecoveryPlan job on it); '' if ASR no longer lists
        it (an old plan: created long ago)."""
        props = plan.properties or asr.RecoveryPlanProperties()
        newest = self._newest_job_for(f"recovery plan {plan.name}", plan.name, props.friendly_name)
        scenario = (newest.properties.scenario_name if newest is not None and newest.properties else None) or ""
        if newest is not None and scenario.lower() == "createrecoveryplan":
            return newest.name or ""
        return ""

    def begin_recovery_plan_failover(self, plan_name: str) -> str:
        plan = self._get_plan(plan_name)
        props = plan.properties or asr.RecoveryPlanProperties()
        # A plan keeps showing its last scenario after it ends; only an unfinished one is running.
        running = running_scenario_job(props.current_scenario, FAILOVER_SCENARIOS)
        if running is not None and (props.current_scenario_status or "InProgress") not in FINISHED_JOB_STATES:
            return running
        allowed = _allowed(props)
        if not _is_allowed(allowed, OP_UNPLANNED_FAILOVER) and _is_allowed(allowed, OP_COMMIT):
            raise PreconditionFailed(
                f"recovery plan {plan_name} has already failed over (allowedOperations {allowed})",
                code="AlreadyFailedOver",
            )
        self._require_plan(plan, OP_UNPLANNED_FAILOVER)
        failover_input = asr.RecoveryPlanUnplannedFailoverInput(
            properties=asr.RecoveryPlanUnplannedFailoverInputProperties(
                failover_direction="PrimaryToRecovery",
                source_site_operations="NotRequired",
                # The sources are stopped before cutover, so the latest point loses nothing.
                provider_specific_details=[asr.RecoveryPlanInMageRcmFailoverInput(recovery_point_type="Latest")],
            )
        )
        job = self._start(
            f"fail over recovery plan {plan_name}",
            lambda hook: self._client.replication_recovery_plans.begin_unplanned_failover(
                self._rg, self._vault, plan_name, failover_input, polling=False, raw_response_hook=hook
            ),
        )
        return job or self._plan_job(plan_name)

    def begin_recovery_plan_commit(self, plan_name: str) -> str:
        plan = self._get_plan(plan_name)
        self._require_plan(plan, OP_COMMIT)
        job = self._start(
            f"commit recovery plan {plan_name}",
            lambda hook: self._client.replication_recovery_plans.begin_failover_commit(
                self._rg, self._vault, plan_name, polling=False, raw_response_hook=hook
            ),
        )
        return job or self._plan_job(plan_name)

    # ---- helpers -------------------------------------------------------------------------------

    def _get_item(self, name: str) -> asr.ReplicationProtectedItem:
        topo = self.topology
        with translated_errors(f"read replicated item {name}"):
            return self._client.replication_protected_items.get(
                self._rg, self._vault, topo.fabric_name, topo.container_name, name
            )

    def _find_item(self, name: str) -> asr.ReplicationProtectedItem | None:
        try:
            return self._get_item(name)
        except NotFound:
            return None

    def _get_plan(self, plan_name: str) -> asr.RecoveryPlan:
        with translated_errors(f"read recovery plan {plan_name}"):
            return self._client.replication_recovery_plans.get(self._rg, self._vault, plan_name)

    def _find_plan(self, plan_name: str) -> asr.RecoveryPlan | None:
        try:
            return self._get_plan(plan_name)
        except NotFound:
            return None

    def _item_for(self, name: str, operation: str,
                  scenarios: frozenset[str]) -> tuple[asr.ReplicationProtectedItem, str | None]:  # fmt: skip
        """The item, and the job of ``operation`` if an earlier request for it went through (an activity rerun
        after a crash, or a 202 lost to a 5xx): the one ASR is running (currentScenario), or, once ASR no longer
        offers the operation, the newest such job if it succeeded. Else the operation must be allowed now."""
        item = self._get_item(name)
        props = item.properties or asr.ReplicationProtectedItemProperties()
        running = running_scenario_job(props.current_scenario, scenarios)
        if running is not None:
            return item, running
        if not _is_allowed(_allowed(props), operation):
            done = self._newest_job_for(f"replicated item {name}", item.id, item.name, props.friendly_name,
                                        scenarios=scenarios)  # fmt: skip
            if done is not None and job_from(done).state == "Succeeded":
                return item, done.name or None
        self._require(item, operation)
        return item, None

    # ---- job recovery: restart a failed job, find an item's job again ------------------------------------

    def restart_job(self, job_id: str, protected_item_name: str) -> str:
        """ReplicationJobs_Restart (``begin_restart``, POST .../replicationJobs/{job}/restart) when the job's
        allowedActions offer Restart. The job to watch afterwards is the one ASR runs on the item (currentScenario),
        else the job the 202 names, else the restarted job itself (the official example answers with a RestartJob
        job, so the re-run may not be the job the answer names). A job no longer restartable whose operation runs
        again on the item (our earlier restart, its answer lost) returns that run."""
        name = job_name_from_id(job_id)
        if name is None:
            raise InvalidInput(f"{job_id!r} is not an ASR job id")
        with translated_errors(f"read ASR job {name}"):
            job = self._client.replication_jobs.get(self._rg, self._vault, name)
        current = job_from(job)
        scenarios = frozenset({current.scenario.lower()}) if current.scenario else frozenset()
        if not current.restartable:
            rerun = self.find_item_job(protected_item_name, scenarios) if scenarios else None
            if rerun is not None and rerun != name:
                return rerun
            raise PreconditionFailed(
                f"ASR does not offer Restart on job {name} ({current.asr_state or current.state}; allowedActions "
                f"{list((job.properties or asr.JobProperties()).allowed_actions or [])})",
                code="JobNotRestartable",
            )
        answered = self._start(
            f"restart ASR job {name}",
            lambda hook: self._client.replication_jobs.begin_restart(
                self._rg, self._vault, name, polling=False, raw_response_hook=hook
            ),
        )
        running = self._running_job(protected_item_name, scenarios)
        return running or answered or name

    def find_item_job(
        self, protected_item_name: str, scenarios: frozenset[str], *, friendly_name: str = ""
    ) -> str | None:
        """The item's job of one of ``scenarios``: ASR's currentScenario when it names one, else the newest job the
        vault lists for the item (ReplicationJobs_List; JobQueryParameter has no target filter, so the match on
        targetObjectId/targetObjectName is ours, over a bounded scan)."""
        running = self._running_job(protected_item_name, scenarios)
        if running is not None:
            return running
        item = self._find_item(protected_item_name)
        props = (item.properties if item is not None else None) or asr.ReplicationProtectedItemProperties()
        ids = (item.id if item is not None else None, protected_item_name, props.friendly_name, friendly_name)
        newest = self._newest_job_for(f"replicated item {protected_item_name}", *ids, scenarios=scenarios)
        return newest.name if newest is not None and newest.name else None

    def _running_job(self, protected_item_name: str, scenarios: frozenset[str]) -> str | None:
        item = self._find_item(protected_item_name)
        if item is None or item.properties is None:
            return None
        return running_scenario_job(item.properties.current_scenario, scenarios)

    def _item_allowing(self, name: str, operation: str) -> asr.ReplicationProtectedItem:
        item = self._get_item(name)
        self._require(item, operation)
        return item

    @staticmethod
    def _require(item: asr.ReplicationProtectedItem, operation: str) -> None:
        props = item.properties or asr.ReplicationProtectedItemProperties()
        allowed = _allowed(props)
        if _is_allowed(allowed, operation):
            return
        busy = scenario_in_flight(props.current_scenario)
        text = (
            f"ASR does not allow {operation} on {item.name} now (protectionState "
            f"{props.protection_state}{f', job {busy} running' if busy else ''}); "
            f"allowedOperations: {allowed}"
        )
        if busy:
            # Another job runs on the item: a wait, not a refusal (the step runner retries after it).
            raise AwaitingOperation(text, code="OperationInProgress", retry_after_seconds=60)
        raise PreconditionFailed(text, code="OperationNotAllowed")

    def _require_plan(self, plan: asr.RecoveryPlan, operation: str) -> None:
        props = plan.properties or asr.RecoveryPlanProperties()
        allowed = _allowed(props)
        if _is_allowed(allowed, operation):
            return
        if self._plan_being_created(plan):
            # The caller waits for the creation job; this is the guard if it did not.
            raise AwaitingOperation(
                f"recovery plan {plan.name} is still being created",
                code="RecoveryPlanBeingCreated",
                retry_after_seconds=30,
            )
        raise PreconditionFailed(
            f"ASR does not allow {operation} on recovery plan {plan.name} now; allowedOperations: {allowed}",
            code="OperationNotAllowed",
        )

    def _plan_being_created(self, plan: asr.RecoveryPlan) -> bool:
        """ASR shows no current scenario while it creates a plan; its newest job on the plan tells."""
        props = plan.properties or asr.RecoveryPlanProperties()
        if (scenario_in_flight(props.current_scenario) or "").lower() == "createrecoveryplan":
            return True
        newest = self._newest_job_for(f"recovery plan {plan.name}", plan.name, props.friendly_name)
        if newest is None or newest.properties is None:
            return False
        scenario = (newest.properties.scenario_name or "").lower()
        return scenario == "createrecoveryplan" and not job_from(newest).finished

    def _item_write(
        self,
        item: asr.ReplicationProtectedItem,
        action: str,
        call: Callable[[VaultTopology, ResponseHook], object],
    ) -> str:
        topo = self.topology
        name = item.name or ""
        job = self._start(f"{action} of {name}", lambda hook: call(topo, hook))
        return job or self._last_job_of(self._get_item(name))

    @staticmethod
    def _start(action: str, call: Callable[[ResponseHook], object]) -> str | None:
        """Send the operation's first request with polling off; the job id from the last response."""
        responses: list[Any] = []
        try:
            with translated_errors(action):
                call(lambda response: responses.append(response.http_response))
            return job_name_from_headers(responses[-1].headers) if responses else None
        finally:
            # The SDK reads the 202 but leaves it open in a reference cycle, and an open response keeps
            # its socket alive past the client's close(); release it now rather than at some GC.
            for response in responses:
                response.close()

    def _last_job_of(self, item: asr.ReplicationProtectedItem) -> str:
        """The job ASR is running on the item, else the newest job it ran on it."""
        props = item.properties or asr.ReplicationProtectedItemProperties()
        current = job_name_from_id(props.current_scenario.job_id if props.current_scenario else None)
        if current:
            return current
        newest = self._newest_job_for(f"replicated item {item.name}", item.id, item.name, props.friendly_name)
        if newest is not None and newest.name:
            return newest.name
        raise PermanentCloudError(f"ASR reports no job for replicated item {item.name}", code="JobNotFound")

    def _newest_job_for(self, what: str, *target_names: str | None,
                        scenarios: frozenset[str] | None = None) -> asr.Job | None:  # fmt: skip
        """The newest ASR job whose target is one of ``target_names`` (and, given ``scenarios``, whose
        scenarioName is one of them), over a bounded scan."""
        targets = {t.lower() for t in target_names if t}
        newest: asr.Job | None = None
        with translated_errors(f"list ASR jobs for {what}"):
            for count, job in enumerate(self._client.replication_jobs.list(self._rg, self._vault)):
                if count >= JOB_SCAN_LIMIT:
                    break
                job_props = job.properties or asr.JobProperties()
                if scenarios is not None and (job_props.scenario_name or "").lower() not in scenarios:
                    continue
                names = {(job_props.target_object_id or "").lower(), (job_props.target_object_name or "").lower()}
                if job.name and names & targets and (newest is None or _started(job) > _started(newest)):
                    newest = job
        return newest

    def _plan_job(self, plan_name: str) -> str:
        plan = self._get_plan(plan_name)
        scenario = plan.properties.current_scenario if plan.properties else None
        job = job_name_from_id(scenario.job_id if scenario else None)
        if job is None:
            raise PermanentCloudError(f"ASR started no job for recovery plan {plan_name}", code="JobNotFound")
        return job
