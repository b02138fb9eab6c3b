"""Unit tests of the ASR adapter's pure pieces: SDK models (built from REST-shaped JSON, as the SDK
deserializes them) to core models, job ids from LRO headers, and error translation by type."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest
from azure.core.rest._requests_basic import RestRequestsTransportResponse
from azure.mgmt.core import ARMPipelineClient
from azure.mgmt.core.exceptions import ARMErrorFormat
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
from azure.mgmt.recoveryservicessiterecovery import models as asr
from requests.structures import CaseInsensitiveDict

from functions.adapters.asr import (
    AzureSiteRecoveryGateway,
    LocalSimulatorOnlyCredential,
    build_site_recovery_client,
    discovered_machine_from,
    has_failed_over,
    job_from,
    job_name_from_headers,
    job_name_from_id,
    job_name_from_operation_url,
    os_is_supported,
    replication_state_from,
    retry_after_seconds,
    supported_os_list,
    translate_http_error,
    translated_errors,
)
from functions.adapters.offazure import OffAzureClient, Server
from functions.settings import FunctionSettings
from migration.errors import (
    NotFound,
    PermanentCloudError,
    PreconditionFailed,
    ThrottledError,
    TransientCloudError,
)
from migration.ports import DiscoveredMachine

VAULT = "/Subscriptions/c1/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/vault1"
CONTAINER = f"{VAULT}/replicationFabrics/fab/replicationProtectionContainers/cont"


def protected_item(**properties: Any) -> asr.ReplicationProtectedItem:
    """A replicated item in the shape of ReplicationProtectedItems_Get.json, InMageRcm details."""
    body: dict[str, Any] = {
        "id": f"{CONTAINER}/replicationProtectedItems/vm-1",
        "name": "vm-1",
        "properties": {
            "friendlyName": "web-1",
            "protectionState": "Protected",
            "activeLocation": "Primary",
            "testFailoverState": "None",
            "allowedOperations": [
                "PlannedFailover",
                "UnplannedFailover",
                "DisableProtection",
                "TestFailover",
            ],
            "replicationHealth": "Normal",
            "failoverHealth": "Normal",
            "healthErrors": [],
            "currentScenario": {
                "scenarioName": "None",
                "jobId": f"{VAULT}/replicationJobs/None",
                "startTime": "1753-01-01T01:01:01Z",
            },
            "providerSpecificDetails": {
                "instanceType": "InMageRcm",
                "initialReplicationProgressPercentage": 100,
                "initialReplicationProgressHealth": "None",
                "lastRpoInSeconds": 42,
                "lastRecoveryPointReceived": "2025-01-02T03:04:05.0000000Z",
            },
        },
    }
    body["properties"].update(properties)
    return asr.ReplicationProtectedItem(body)


# ---- replication state -------------------------------------------------------------------------


def test_replication_state_maps_inmagercm_details() -> None:
    state = replication_state_from(protected_item())

    assert state.protected_item_name == "vm-1"
    assert state.protection_state == "Protected"
    assert state.replication_health == "Normal"
    assert state.progress_percent == 100
    assert state.rpo_seconds == 42
    assert state.last_recovery_point == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert state.active_location == "Primary"
    assert "UnplannedFailover" in state.allowed_operations
    assert state.health_errors == ()


def test_replication_state_reports_progress_and_health_errors_while_replicating() -> None:
    item = protected_item(
        protectionState="InitialReplicationInProgress",
        replicationHealth="Critical",
        allowedOperations=["DisableProtection"],
        healthErrors=[{"errorCode": "78144", "summaryMessage": "No app-consistent recovery point"}],
        providerSpecificDetails={
            "instanceType": "InMageRcm",
            "initialReplicationProgressPercentage": 37,
            "initialReplicationProgressHealth": "NoProgress",
        },
    )

    state = replication_state_from(item)

    assert state.progress_percent == 37
    assert state.rpo_seconds is None
    assert state.replication_health == "Critical"
    assert state.health_errors == (
        "78144: No app-consistent recovery point",
        "InitialReplicationProgress: NoProgress",
    )


def test_replication_state_without_provider_details_has_no_progress() -> None:
    item = protected_item(providerSpecificDetails={"instanceType": "HyperVReplicaAzure"})

    state = replication_state_from(item)

    assert state.progress_percent is None
    assert state.rpo_seconds is None


# ---- failed over or not ------------------------------------------------------------------------


def test_item_after_unplanned_failover_counts_as_failed_over() -> None:
    # The allowedOperations/activeLocation of ReplicationProtectedItems_UnplannedFailover.json.
    item = protected_item(
        protectionState="UnplannedFailoverCommitPendingStatesBegin",
        activeLocation="Recovery",
        allowedOperations=["CompleteMigration", "Commit", "DisableProtection", "ChangePit"],
    )
    assert item.properties is not None
    assert has_failed_over(item.properties)


def test_item_offering_commit_only_counts_as_failed_over_even_without_active_location() -> None:
    item = protected_item(activeLocation=None, allowedOperations=["Commit", "DisableProtection"])
    assert item.properties is not None
    assert has_failed_over(item.properties)


def test_protected_item_has_not_failed_over() -> None:
    item = protected_item()
    assert item.properties is not None
    assert not has_failed_over(item.properties)


# ---- discovered machines and supported OS ------------------------------------------------------


def protectable(name: str, custom: dict[str, Any]) -> asr.ProtectableItem:
    return asr.ProtectableItem(
        {
            "id": f"{CONTAINER}/replicationProtectableItems/{name}",
            "name": name,
            "properties": {
                "friendlyName": f"friendly-{name}",
                "protectionStatus": "Unprotected",
                "protectionReadinessErrors": [],
                "supportedReplicationProviders": ["InMageRcm"],
                "customDetails": custom,
            },
        }
    )


SITE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OffAzure/ServerSites/site"


def server_body(
    name: str, ips: list[list[str]], *, os_type: str = "Linux", os_name: str = "Ubuntu 22.04"
) -> dict[str, Any]:
    """An OffAzure machine, shaped like ServersController_ListByServerSiteResource_MaximumSet_Gen.json."""
    return {
        "id": f"{SITE}/machines/{name}",
        "name": name,
        "type": "Microsoft.OffAzure/serverSites/machines",
        "properties": {
            "displayName": f"friendly-{name}",
            "networkAdapters": [{"ipAddressList": adapter, "macAddress": "02:00:00:00:00:01"} for adapter in ips],
            "disks": [{"id": "d-0", "name": "root", "maxSizeInBytes": 1}, {"generatedId": "d-1", "lun": 1}],
            "operatingSystemDetails": {"osType": os_type, "osName": os_name, "osVersion": "22.04"},
            "runAsAccountId": f"{SITE}/runasaccounts/linux",
            "unknownField": {"kept": "out"},
        },
    }


def test_discovered_machine_from_an_offazure_machine() -> None:
    machine = discovered_machine_from(
        Server.model_validate(server_body("m-1", [["10.0.1.5"]])), fabric_name="fab", container_name="cont"
    )

    assert machine == DiscoveredMachine(
        name="m-1",
        id=f"{SITE}/machines/m-1",
        fabric_name="fab",
        container_name="cont",
        friendly_name="friendly-m-1",
        ip_addresses=("10.0.1.5",),
        os_type="Linux",
        os_name="Ubuntu 22.04",
        disk_ids=("d-0", "d-1"),
        run_as_account_id=f"{SITE}/runasaccounts/linux",
    )


def test_discovered_machine_reads_every_ip_of_a_multi_homed_machine() -> None:
    server = Server.model_validate(server_body("m-2", [["10.0.1.6", "10.0.2.6"], ["10.0.3.6", "10.0.1.6"]]))

    machine = discovered_machine_from(server, fabric_name="f", container_name="c")

    assert machine.ip_addresses == ("10.0.1.6", "10.0.2.6", "10.0.3.6")


SUPPORTED = asr.SupportedOperatingSystems(
    {
        "name": "Default",
        "properties": {
            "supportedOsList": [
                {"instanceType": "A2A", "supportedOs": [{"osName": "centos", "osType": "linux"}]},
                {
                    "instanceType": "InMageRcm",
                    "supportedOs": [
                        {"osName": "Ubuntu", "osType": "Linux", "osVersions": [{"version": "22.04"}]},
                        {"osName": "RHEL", "osType": "Linux", "osVersions": [{"version": "9"}]},
                        {"osName": "Windows Server", "osType": "Windows", "osVersions": [{"version": "2019"}]},
                        # As SupportedOperatingSystems_Get.json lists Windows: full name, kernel version.
                        {
                            "osName": "Windows Server 2008 R2 Datacenter",
                            "osType": "windows",
                            "osVersions": [{"version": "6.1", "servicePack": "1"}],
                        },
                    ],
                },
            ]
        },
    }
)


def test_supported_os_list_keeps_only_inmagercm() -> None:
    entries = supported_os_list(SUPPORTED)
    assert [(e.os_type, e.os_name, e.versions) for e in entries] == [
        ("Linux", "Ubuntu", ("22.04",)),
        ("Linux", "RHEL", ("9",)),
        ("Windows", "Windows Server", ("2019",)),
        ("windows", "Windows Server 2008 R2 Datacenter", ("6.1",)),
    ]


@pytest.mark.parametrize(
    ("os_type", "os_name", "expected"),
    [
        ("Linux", "Ubuntu 22.04", True),
        ("Linux", "Ubuntu 22.04.3 LTS", True),
        ("linux", "ubuntu-22.04", True),
        ("Linux", "RHEL 9.2", True),
        ("Windows", "Windows Server 2019 Datacenter", True),
        ("Windows", "Windows Server 2008 R2 Datacenter", True),
        ("Linux", "Ubuntu 12.04", False),
        ("Linux", "Ubuntu 22.045", False),
        ("Linux", "RHEL 90", False),
        ("Linux", "Ubuntux 22.04", False),
        ("Linux", "centos 6.0", False),  # supported by A2A only
        ("Linux", "Amazon Linux 2023", False),
        ("Windows", "Ubuntu 22.04", False),  # wrong type
        ("Linux", "", False),
    ],
)
def test_os_is_supported(os_type: str, os_name: str, expected: bool) -> None:
    assert os_is_supported(os_type, os_name, supported_os_list(SUPPORTED)) is expected


# ---- jobs --------------------------------------------------------------------------------------


def test_job_from_a_failed_job_collects_job_and_task_errors() -> None:
    job = asr.Job(
        {
            "name": "job-1",
            "properties": {
                "scenarioName": "EnableDr",
                "friendlyName": "Enable replication",
                "state": "Failed",
                "errors": [{"serviceErrorDetails": {"code": "28031", "message": "appliance error"}}],
                "tasks": [{"errors": [{"providerErrorDetails": {"errorCode": 7, "errorMessage": "disk"}}]}],
            },
        }
    )

    result = job_from(job)

    assert result.job_id == "job-1"
    assert result.state == "Failed"
    assert result.finished
    assert result.display_name == "Enable replication"
    assert result.errors == ("28031: appliance error", "7: disk")


@pytest.mark.parametrize(
    ("asr_state", "description", "expected"),
    [
        ("Succeeded", "Completed", "Succeeded"),
        ("Cancelling", None, "InProgress"),
        ("Suspended", "Suspended", "Suspended"),
        # Finding 5: Other used to count as InProgress and was polled until the stuck timeout.
        ("Other", "CompletedWithInformation", "Succeeded"),
        ("Other", "Skipped", "Succeeded"),
        ("Other", None, "Failed"),
        ("Cancelled", "Cancelled", "Cancelled"),
    ],
)
def test_every_job_state_gets_a_verdict(asr_state: str, description: str | None, expected: str) -> None:
    props: dict[str, Any] = {"state": asr_state}
    if description:
        props["stateDescription"] = description
    assert job_from(asr.Job({"name": "j", "properties": props})).state == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"https://management.azure.com{VAULT}/replicationJobs/abc/operationresults/abc?api-version=1",
            "abc",
        ),
        (f"https://management.azure.com{VAULT}/replicationJobs/j-9?api-version=2025-08-01", "j-9"),
        (f"https://127.0.0.1:8443{VAULT}/replicationOperationStatus/op-7?api-version=2025-08-01", "op-7"),
        (f"https://management.azure.com{VAULT}/replicationJobs/None", None),
        ("https://management.azure.com/somewhere/else", None),
        (None, None),
    ],
)
def test_job_name_from_operation_url(url: str | None, expected: str | None) -> None:
    assert job_name_from_operation_url(url) == expected


def test_job_name_prefers_location_over_azure_async_operation() -> None:
    headers = {
        "azure-asyncoperation": f"https://h{VAULT}/replicationOperationStatus/op-1?api-version=x",
        "location": f"https://h{VAULT}/replicationJobs/job-1/operationresults/job-1?api-version=x",
    }
    assert job_name_from_headers(headers) == "job-1"
    assert job_name_from_headers({"Azure-AsyncOperation": headers["azure-asyncoperation"]}) == "op-1"
    assert job_name_from_headers({}) is None


def test_job_name_from_id_accepts_arm_ids_and_names() -> None:
    assert job_name_from_id(f"{VAULT}/replicationJobs/j-1") == "j-1"
    assert job_name_from_id("j-2") == "j-2"
    assert job_name_from_id(f"{VAULT}/replicationJobs/None") is None
    assert job_name_from_id(None) is None


# ---- errors ------------------------------------------------------------------------------------


def http_error(status: int, body: str = "", headers: dict[str, str] | None = None) -> HttpResponseError:
    """A real azure-core response (requests transport) around a real requests.Response."""
    raw = requests.Response()
    raw.status_code = status
    raw.reason = "reason"
    raw.headers = CaseInsensitiveDict({"Content-Type": "application/json", **(headers or {})})
    raw.raw = io.BytesIO(body.encode())
    raw.encoding = "utf-8"
    response = RestRequestsTransportResponse(  # type: ignore[no-untyped-call]
        request=HttpRequest("POST", "https://h/x"), internal_response=raw
    )
    response.read()  # as the SDK's operations do before raising
    error_type = ResourceNotFoundError if status == 404 else HttpResponseError
    return error_type(response=response, error_format=ARMErrorFormat)


ARM_ERROR = '{"error": {"code": "%s", "message": "m"}}'


def test_429_becomes_throttled_with_retry_after() -> None:
    error = translate_http_error(http_error(429, ARM_ERROR % "TooManyRequests", {"Retry-After": "17"}), "x")
    assert isinstance(error, ThrottledError)
    assert error.retry_after_seconds == 17


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_transient(status: int) -> None:
    error = translate_http_error(http_error(status, ARM_ERROR % "InternalError"), "x")
    assert type(error) is TransientCloudError


def test_404_is_not_found_with_arm_code() -> None:
    error = translate_http_error(http_error(404, ARM_ERROR % "ResourceNotFound"), "x")
    assert isinstance(error, NotFound)
    assert error.code == "ResourceNotFound"


def test_409_is_precondition_failed_and_400_permanent_with_arm_code() -> None:
    conflict = translate_http_error(http_error(409, ARM_ERROR % "ProtectionEntityInvalidState"), "x")
    bad = translate_http_error(http_error(400, ARM_ERROR % "InvalidParameter"), "x")
    assert isinstance(conflict, PreconditionFailed)
    assert conflict.code == "ProtectionEntityInvalidState"
    assert type(bad) is PermanentCloudError
    assert bad.code == "InvalidParameter"


def test_error_without_arm_body_still_translates() -> None:
    error = translate_http_error(http_error(400, "not json"), "x")
    assert type(error) is PermanentCloudError
    assert error.code == "Http400"


def test_connection_errors_are_transient() -> None:
    with pytest.raises(TransientCloudError), translated_errors("read"):
        raise ServiceRequestError("connection refused")


def test_retry_after_in_seconds_milliseconds_and_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds({"Retry-After": "30"}) == 30
    assert retry_after_seconds({"retry-after-ms": "1500", "Retry-After": "30"}) == 1.5
    assert retry_after_seconds({"Retry-After": "Wed, 01 Jan 2025 12:00:20 GMT"}, now=now) == 20
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


# ---- client and credential ---------------------------------------------------------------------


def settings(**overrides: str) -> FunctionSettings:
    env = {
        "STATE_STORAGE": "UseDevelopmentStorage=true",
        "ASR_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
        "ASR_RESOURCE_GROUP": "rg",
        "ASR_VAULT_NAME": "vault",
        "TARGET_RESOURCE_GROUP_ID": "/subscriptions/s/resourceGroups/t",
        "TARGET_NETWORK_ID": "/subscriptions/s/providers/Microsoft.Network/virtualNetworks/n",
        "TARGET_DEFAULT_SUBNET": "workloads",
        "ASR_CACHE_STORAGE_ACCOUNT_ID": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage"
        "/storageAccounts/c",
        **overrides,
    }
    return FunctionSettings.from_environment(env)


def test_local_credential_hands_out_a_token() -> None:
    token = LocalSimulatorOnlyCredential().get_token("https://management.azure.com/.default")
    assert token.token
    assert token.expires_on > datetime.now(UTC).timestamp()


def test_local_credential_is_refused_outside_loopback() -> None:
    with pytest.raises(RuntimeError, match="local ASR simulator only"):
        build_site_recovery_client(settings(), LocalSimulatorOnlyCredential())
    with pytest.raises(RuntimeError, match="local ASR simulator only"):
        build_site_recovery_client(settings(ASR_BASE_URL="https://asr.example.com"), LocalSimulatorOnlyCredential())


def test_client_for_the_simulator_uses_its_url() -> None:
    client = build_site_recovery_client(
        settings(ASR_BASE_URL="https://127.0.0.1:9443", ASR_CA_BUNDLE="/tmp/ca.pem"),
        LocalSimulatorOnlyCredential(),
    )
    with client:
        assert client._config.base_url == "https://127.0.0.1:9443"


# ---- vault answers the simulator cannot give (a fake at the HTTP boundary) ----------------------


def rest_response(request: HttpRequest, status: int, body: Any) -> RestRequestsTransportResponse:
    raw = requests.Response()
    raw.status_code = status
    raw.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
    raw.raw = io.BytesIO(json.dumps(body).encode())
    raw.encoding = "utf-8"
    response = RestRequestsTransportResponse(request=request, internal_response=raw)  # type: ignore[no-untyped-call]
    response.read()
    return response


class CannedArm(HttpTransport):  # type: ignore[type-arg]
    """Answers GETs from a table of path suffix -> JSON body; anything else is a 404."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers

    def send(self, request: HttpRequest, **kwargs: Any) -> RestRequestsTransportResponse:
        path = urlsplit(request.url).path
        for suffix, body in self.answers.items():
            if request.method == "GET" and path.endswith(suffix):
                return rest_response(request, 200, body)
        return rest_response(request, 404, {"error": {"code": "NotFound", "message": path}})

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> CannedArm:
        return self

    def __exit__(self, *args: object) -> None:
        pass


def fabric_body(name: str, *, process_servers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "id": f"{VAULT}/replicationFabrics/{name}",
        "name": name,
        "properties": {
            "customDetails": {
                "instanceType": "InMageRcm",
                "physicalSiteId": SITE,
                "processServers": [{"id": "ps-1", "health": "Normal"}] if process_servers is None else process_servers,
            }
        },
    }


def gateway_over(answers: dict[str, Any]) -> AzureSiteRecoveryGateway:
    client = SiteRecoveryManagementClient(
        LocalSimulatorOnlyCredential(), "00000000-0000-0000-0000-000000000001",
        base_url="https://127.0.0.1:1", transport=CannedArm(answers), retry_total=0,
    )  # fmt: skip
    offazure = OffAzureClient(ARMPipelineClient("https://127.0.0.1:1", policies=[], transport=CannedArm(answers)))
    return AzureSiteRecoveryGateway(
        client, resource_group="rg", vault_name="vault", policy_name="pol", target_resource_group_id="rg-id",
        target_network_id="net-id", default_subnet="sub", offazure=offazure,
        cache_storage_account_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/c",
    )  # fmt: skip


VAULT_ANSWERS: dict[str, Any] = {
    "/replicationFabrics": {"value": [fabric_body("fab")]},
    "/replicationFabrics/fab/replicationProtectionContainers": {
        "value": [{"id": f"{CONTAINER}", "name": "cont", "properties": {}}]
    },
    "/replicationPolicies/pol": {
        "id": f"{VAULT}/replicationPolicies/pol",
        "name": "pol",
        "properties": {"providerSpecificDetails": {"instanceType": "InMageRcm"}},
    },
}


def test_several_machines_with_one_ip_are_named() -> None:
    servers = [server_body(name, ips) for name, ips in (("old", [["10.0.0.7"]]), ("new", [["10.0.0.7"]]),
                                                          ("other", [["10.0.0.8"]]))]  # fmt: skip
    gateway = gateway_over({**VAULT_ANSWERS, "/site/machines": {"value": servers}})

    with pytest.raises(PreconditionFailed) as caught:
        gateway.find_machine_by_ip("10.0.0.7")

    assert caught.value.code == "AmbiguousMachine"
    assert "friendly-old (old)" in str(caught.value)
    assert "friendly-new (new)" in str(caught.value)


def test_vault_topology_is_resolved_from_the_inmagercm_fabric() -> None:
    topology = gateway_over(VAULT_ANSWERS).topology

    assert topology.fabric_name == "fab"
    assert topology.container_name == "cont"
    assert topology.process_server_id == "ps-1"
    assert topology.policy_id.endswith("/replicationPolicies/pol")
    assert topology.discovery_site_id == SITE


def test_two_appliance_fabrics_are_ambiguous() -> None:
    answers = {**VAULT_ANSWERS, "/replicationFabrics": {"value": [fabric_body("a"), fabric_body("b")]}}
    with pytest.raises(PreconditionFailed) as caught:
        _ = gateway_over(answers).topology
    assert caught.value.code == "AmbiguousFabric"


def test_a_fabric_without_process_server_is_refused() -> None:
    answers = {**VAULT_ANSWERS, "/replicationFabrics": {"value": [fabric_body("fab", process_servers=[])]}}
    with pytest.raises(PreconditionFailed) as caught:
        _ = gateway_over(answers).topology
    assert caught.value.code == "ProcessServerNotFound"


def test_a_vault_without_appliance_is_not_found() -> None:
    with pytest.raises(NotFound) as caught:
        _ = gateway_over({"/replicationFabrics": {"value": []}}).topology
    assert caught.value.code == "ReplicationApplianceNotFound"
