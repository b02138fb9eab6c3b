"""Microsoft.OffAzure: the machines the replication appliance discovered, behind a small typed client.

For InMageRcm the appliance's discovered machines are OffAzure resources: the InMageRcm fabric's
``properties.customDetails`` names the site (``physicalSiteId`` for physical servers, ``vmwareSiteId`` for
VMware), and the site lists them at ``{site id}/machines`` (azure-rest-api-specs specification/migrate/
resource-manager/Microsoft.OffAzure/OffAzure/Server.tsp, ServerSiteResource.tsp; Azure PowerShell's
PSAsrFabricDiscoveryClient reads ``{siteId}/machines`` and ``{siteId}/runasaccounts`` and follows ``nextLink``;
Learn: articles/migrate/how-to-automate-vmware-to-azure-migration-rest-api.md, api-version 2023-06-06).

There is no Python SDK for OffAzure on the registry (azure-mgmt-offazure is an empty placeholder), so this talks
to it through azure-mgmt-core's ARM pipeline with the same credential, retry settings and pacing policy as the
ASR client. The pydantic models keep only the fields the product reads; their shape follows the official
examples (OffAzure/examples/2024-12-01-preview/ServersController_ListByServerSiteResource_MaximumSet_Gen.json,
ServerRunAsAccountsController_Get_MaximumSet_Gen.json). Unknown fields are ignored, as ARM clients must.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import policies
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest
from azure.mgmt.core import ARMPipelineClient
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy, ARMHttpLoggingPolicy
from pydantic import BaseModel, ConfigDict, Field

from migration.errors import InvalidInput

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from migration.pacing import WriteLimiterLike

OFFAZURE_API_VERSION = "2023-06-06"  # Learn's InMageRcm automation page uses this version for sites/machines
ARM_ENDPOINT = "https://management.azure.com"
ARM_SCOPE = "https://management.azure.com/.default"
MAX_PAGES = 1000  # a bound on nextLink chains: 1000 pages of machines is far more than one appliance holds


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class NetworkAdapter(_Model):
    ip_address_list: tuple[str, ...] = Field(default=(), alias="ipAddressList")
    mac_address: str | None = Field(default=None, alias="macAddress")
    nic_id: str | None = Field(default=None, alias="nicId")


class Disk(_Model):
    id: str | None = None
    generated_id: str | None = Field(default=None, alias="generatedId")
    name: str | None = None
    max_size_in_bytes: int | None = Field(default=None, alias="maxSizeInBytes")


class OperatingSystem(_Model):
    os_type: str | None = Field(default=None, alias="osType")
    os_name: str | None = Field(default=None, alias="osName")
    os_version: str | None = Field(default=None, alias="osVersion")


class ServerProperties(_Model):
    display_name: str | None = Field(default=None, alias="displayName")
    fqdn: str | None = None
    network_adapters: tuple[NetworkAdapter, ...] = Field(default=(), alias="networkAdapters")
    disks: tuple[Disk, ...] = ()
    operating_system_details: OperatingSystem | None = Field(default=None, alias="operatingSystemDetails")
    guest_os_details: OperatingSystem | None = Field(default=None, alias="guestOsDetails")
    run_as_account_id: str | None = Field(default=None, alias="runAsAccountId")
    is_deleted: bool | None = Field(default=None, alias="isDeleted")


class Server(_Model):
    """A machine of a server site (``Microsoft.OffAzure/serverSites/machines``)."""

    id: str
    name: str
    properties: ServerProperties = ServerProperties()

    @property
    def ip_addresses(self) -> tuple[str, ...]:
        found: list[str] = []
        for adapter in self.properties.network_adapters:
            for ip in adapter.ip_address_list:
                if ip and ip not in found:
                    found.append(ip)
        return tuple(found)

    @property
    def os(self) -> OperatingSystem:
        return self.properties.operating_system_details or self.properties.guest_os_details or OperatingSystem()


class RunAsAccountProperties(_Model):
    display_name: str | None = Field(default=None, alias="displayName")
    credential_type: str | None = Field(default=None, alias="credentialType")


class RunAsAccount(_Model):
    id: str
    name: str
    properties: RunAsAccountProperties = RunAsAccountProperties()


def _page_items(body: dict[str, Any]) -> tuple[list[Any], str | None]:
    values = body.get("value")
    if not isinstance(values, list):
        raise InvalidInput("OffAzure answered a list without 'value'")
    link = body.get("nextLink")
    return values, link if isinstance(link, str) and link else None


class OffAzureClient:
    """Reads of an appliance's OffAzure site. Raises azure-core's HttpResponseError / AzureError; the caller
    (functions.adapters.asr) translates them, as it does the ASR SDK's."""

    def __init__(
        self, pipeline: ARMPipelineClient[HttpRequest, Any], *, api_version: str = OFFAZURE_API_VERSION
    ) -> None:
        self._pipeline = pipeline
        self._api_version = api_version

    def close(self) -> None:
        self._pipeline.close()

    def _get(self, url: str) -> dict[str, Any]:
        request = HttpRequest("GET", self._pipeline.format_url(url), headers={"Accept": "application/json"})
        response = self._pipeline.send_request(request)
        try:
            if response.status_code >= 400:
                raise HttpResponseError(response=response)
            body = json.loads(response.text() or "{}")
        finally:
            response.close()
        if not isinstance(body, dict):
            raise InvalidInput("OffAzure answered something other than a JSON object")
        return body

    def _url(self, path: str) -> str:
        return f"{path}?api-version={quote(self._api_version)}"

    def _list(self, path: str) -> Iterator[dict[str, Any]]:
        url: str | None = self._url(path)
        for _ in range(MAX_PAGES):
            if url is None:
                return
            values, url = _page_items(self._get(url))
            yield from (v for v in values if isinstance(v, dict))
        raise InvalidInput(f"OffAzure's nextLink chain for {path} did not end after {MAX_PAGES} pages")

    def list_machines(self, site_id: str) -> Iterator[Server]:
        """Every machine of the site, page by page (nextLink)."""
        for value in self._list(f"{site_id.rstrip('/')}/machines"):
            yield Server.model_validate(value)

    def get_machine(self, machine_id: str) -> Server:
        return Server.model_validate(self._get(self._url(machine_id)))

    def list_run_as_accounts(self, site_id: str) -> list[RunAsAccount]:
        return [RunAsAccount.model_validate(v) for v in self._list(f"{site_id.rstrip('/')}/runasaccounts")]


def build_offazure_client(
    credential: TokenCredential,
    *,
    base_url: str | None = None,
    ca_bundle: str | None = None,
    retry_settings: dict[str, Any] | None = None,
    write_limiter: WriteLimiterLike | None = None,
) -> OffAzureClient:
    """The ARM pipeline the ASR SDK client builds for itself (azure-mgmt-recoveryservicessiterecovery's
    _configuration.py), with the same credential, retry settings and write pacing."""
    from functions.adapters.asr import WritePacingPolicy

    retry = dict(retry_settings or {})
    per_retry: list[Any] = [WritePacingPolicy(write_limiter)] if write_limiter is not None else []
    pipeline_policies: list[Any] = [
        policies.RequestIdPolicy(),
        policies.HeadersPolicy(),
        policies.UserAgentPolicy(sdk_moniker="aws2azure-offazure/1"),
        policies.ProxyPolicy(),
        policies.ContentDecodePolicy(),
        policies.RetryPolicy(**retry),
        ARMChallengeAuthenticationPolicy(credential, ARM_SCOPE),
        *per_retry,
        policies.CustomHookPolicy(),
        policies.NetworkTraceLoggingPolicy(),
        policies.DistributedTracingPolicy(),
        ARMHttpLoggingPolicy(),
    ]
    transport = RequestsTransport(connection_verify=ca_bundle) if ca_bundle else RequestsTransport()
    pipeline: ARMPipelineClient[HttpRequest, Any] = ARMPipelineClient(
        base_url or ARM_ENDPOINT, policies=pipeline_policies, transport=transport
    )
    return OffAzureClient(pipeline)
