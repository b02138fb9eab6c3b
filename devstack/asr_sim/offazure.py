"""Microsoft.OffAzure as the replication appliance fills it: its server site, the machines it discovered and
the run-as accounts it keeps.

Paths and shapes follow azure-rest-api-specs specification/migrate/resource-manager/Microsoft.OffAzure/OffAzure
(ServerSiteResource.tsp: ``serverSites/{siteName}``; Server.tsp: ``{site}/machines[/{machineName}]``, listed by
parent with ``continuationToken`` paging and ``nextLink``; ServerRunAsAccount.tsp: ``{site}/runasaccounts``) and
the official examples under OffAzure/examples/2024-12-01-preview (ServerSitesController_Get_MaximumSet_Gen.json,
ServersController_ListByServerSiteResource_MaximumSet_Gen.json, ServerRunAsAccountsController_Get_MaximumSet_Gen.json).
Only the fields the product reads, plus the identity fields, are served; their keys and types match the examples
(tests/integration/asr_sim/test_offazure_shapes.py).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from devstack.asr_sim import arm
from devstack.asr_sim.arm import iso, stable_uuid
from devstack.asr_sim.errors import ArmError

if TYPE_CHECKING:
    from devstack.asr_sim.api import Call, Reply
    from devstack.asr_sim.engine import Simulator
    from devstack.asr_sim.model import Machine

SITE_PREFIX = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<resource_group>[^/]+)"
    r"/providers/Microsoft\.OffAzure/serverSites/(?P<site>[^/]+)(?P<rest>/.*)?$",
    re.IGNORECASE,
)
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(r"^$"), "ServerSitesController_Get"),
    ("GET", re.compile(r"^/machines$", re.IGNORECASE), "ServersController_ListByServerSiteResource"),
    ("GET", re.compile(r"^/machines/(?P<machine>[^/]+)$", re.IGNORECASE), "ServersController_GetMachine"),
    ("GET", re.compile(r"^/runasaccounts$", re.IGNORECASE), "ServerRunAsAccountsController_ListByServerSiteResource"),
    ("GET", re.compile(r"^/runasaccounts/(?P<account>[^/]+)$", re.IGNORECASE), "ServerRunAsAccountsController_Get"),
)
SITE_TYPE = "Microsoft.OffAzure/serverSites"
CREATED_MS = "1704067200000"  # epoch milliseconds as a string, the form of the examples' createdTimestamp


def route(sim: Simulator, method: str, path: str, api_version: str | None) -> tuple[str, dict[str, str]] | None:
    """(operation, params) for an OffAzure path, None if the path is not OffAzure's; raises ARM's errors."""
    found = SITE_PREFIX.match(path)
    if found is None:
        return None
    if not api_version:
        raise ArmError(
            400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required."
        )
    if api_version not in arm.OFFAZURE_API_VERSIONS:
        raise ArmError(
            400,
            "NoRegisteredProviderFound",
            f"No registered resource provider found for API version '{api_version}' for type 'serverSites'. "
            f"The supported api-versions are '{', '.join(sorted(arm.OFFAZURE_API_VERSIONS))}'.",
        )
    v = sim.vault
    if (
        found["subscription"] != v.subscription_id
        or found["resource_group"].lower() != v.resource_group.lower()
        or found["site"].lower() != arm.PHYSICAL_SITE_NAME.lower()
    ):
        raise ArmError(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.OffAzure/serverSites/{found['site']}' under resource group "
            f"'{found['resource_group']}' was not found.",
        )
    rest = found["rest"] or ""
    for route_method, pattern, operation in ROUTES:
        match = pattern.match(rest)
        if match and route_method == method:
            return operation, dict(match.groupdict())
        if match:
            raise ArmError(405, "MethodNotAllowed", f"The method '{method}' is not allowed on '{path}'.")
    raise ArmError(404, "InvalidResourceType", f"The resource path '{rest}' is not known to the site.")


# ---------------------------------------------------------------------- shapes


def _system_data(at: str) -> dict[str, Any]:
    return {
        "createdAt": at,
        "createdBy": "aws2azure-appliance",
        "createdByType": "Application",
        "lastModifiedAt": at,
        "lastModifiedBy": "aws2azure-appliance",
        "lastModifiedByType": "Application",
    }


def site(sim: Simulator) -> dict[str, Any]:
    v = sim.vault
    return {
        "id": v.physical_site_id(),
        "name": arm.PHYSICAL_SITE_NAME,
        "type": SITE_TYPE,
        "location": "westeurope",
        "properties": {
            "agentDetails": {
                "id": stable_uuid("site-agent", v.id),
                "keyVaultId": f"/subscriptions/{v.subscription_id}/resourceGroups/{v.resource_group}"
                "/providers/Microsoft.KeyVault/vaults/aws2azure-appliance-kv",
                "keyVaultUri": "https://aws2azure-appliance-kv.vault.azure.net",
                "lastHeartBeatUtc": "2026-01-01T00:00:00Z",
                "version": "1.0.0.0",
            },
            "applianceName": arm.APPLIANCE_NAME,
            "discoverySolutionId": f"/subscriptions/{v.subscription_id}/resourceGroups/{v.resource_group}"
            "/providers/Microsoft.Migrate/MigrateProjects/aws2azure-project/Solutions/Servers-Discovery-ServerDiscovery",
            "provisioningState": "Created",
        },
        "systemData": _system_data("2026-01-01T00:00:00Z"),
        "tags": {},
    }


def machine(sim: Simulator, m: Machine) -> dict[str, Any]:
    discovered = iso(m.discovered_at) if m.discovered_at is not None else "2026-01-01T00:00:00.0000000Z"
    return {
        "id": sim.vault.discovery_machine_id(m.name),
        "name": m.name,
        "type": f"{SITE_TYPE}/machines",
        "properties": {
            "displayName": m.friendly_name,
            "fqdn": f"{m.friendly_name}.ec2.internal",
            "applianceNames": [arm.APPLIANCE_NAME],
            "biosGuid": stable_uuid("bios", m.name),
            "numberOfProcessorCore": 2,
            "allocatedMemoryInMb": 8192,
            "operatingSystemDetails": {
                "osArchitecture": "x64",
                "osName": m.os_name,
                "osType": m.os_type,
                "osVersion": m.os_name.rsplit(" ", 1)[-1],
            },
            "networkAdapters": [
                {
                    "ipAddressList": [m.ip],
                    "ipAddressType": "Static",
                    "macAddress": "02:" + ":".join(stable_uuid("mac", m.name)[i : i + 2] for i in (0, 2, 4, 6, 9)),
                    "networkName": "eth0",
                    "nicId": stable_uuid("nic", m.name),
                }
            ],
            "disks": [
                {
                    "id": disk_id,
                    "generatedId": disk_id,
                    "name": f"disk{index}",
                    "path": _disk_path(m.os_type, index),
                    "diskType": "Basic",
                    "lun": index,
                    "maxSizeInBytes": size * 1024**3,
                }
                for index, (disk_id, size) in enumerate(zip(m.disk_ids, m.disks_gib, strict=True))
            ],
            "runAsAccountId": sim.run_as_account_of(m),
            "isDeleted": False,
            "provisioningState": "Created",
            "createdTimestamp": CREATED_MS,
            "updatedTimestamp": CREATED_MS,
        },
        "systemData": _system_data(discovered),
    }


def _disk_path(os_type: str, index: int) -> str:
    return f"/dev/xvd{chr(ord('a') + index)}" if os_type == "Linux" else f"\\\\.\\PHYSICALDRIVE{index}"


def run_as_account(sim: Simulator, os_type: str, name: str) -> dict[str, Any]:
    return {
        "id": sim.vault.run_as_account_id(name),
        "name": name,
        "type": f"{SITE_TYPE}/runasaccounts",
        "properties": {
            "applianceName": arm.APPLIANCE_NAME,
            "createdTimestamp": CREATED_MS,
            "credentialType": "WindowsGuest" if os_type == "Windows" else "LinuxGuest",
            "displayName": name,
            "provisioningState": "Created",
            "updatedTimestamp": CREATED_MS,
        },
        "systemData": _system_data("2026-01-01T00:00:00Z"),
    }


# ---------------------------------------------------------------------- handlers


def _page(call: Call, path: str, values: list[Any]) -> Reply:
    from devstack.asr_sim.api import Reply

    size = call.sim.config.page_size
    try:
        skip = max(0, int(call.query.get("continuationToken") or 0))
    except ValueError as exc:
        raise ArmError(400, "InvalidContinuationToken", "continuationToken is not one this service issued.") from exc
    body: dict[str, Any] = {"value": values[skip : skip + size]}
    if skip + size < len(values):
        version = call.query.get("api-version", "")
        body["nextLink"] = f"{call.base_url}{path}?api-version={version}&continuationToken={skip + size}"
    return Reply(200, body)


def site_get(call: Call) -> Reply:
    from devstack.asr_sim.api import Reply

    return Reply(200, site(call.sim))


def machines_list(call: Call) -> Reply:
    machines = sorted(call.sim.discovered_machines(), key=lambda m: m.name)
    return _page(call, f"{call.sim.vault.physical_site_id()}/machines", [machine(call.sim, m) for m in machines])


def machine_get(call: Call) -> Reply:
    from devstack.asr_sim.api import Reply

    return Reply(200, machine(call.sim, call.sim.discovered_machine(call.params["machine"])))


def run_as_accounts_list(call: Call) -> Reply:
    values = [run_as_account(call.sim, os_type, name) for os_type, name in arm.RUN_AS_ACCOUNTS.items()]
    return _page(call, f"{call.sim.vault.physical_site_id()}/runasaccounts", values)


def run_as_account_get(call: Call) -> Reply:
    from devstack.asr_sim.api import Reply

    for os_type, name in arm.RUN_AS_ACCOUNTS.items():
        if name.lower() == call.params["account"].lower():
            return Reply(200, run_as_account(call.sim, os_type, name))
    raise ArmError(404, "ResourceNotFound", f"The run-as account '{call.params['account']}' was not found.")


HANDLERS = {
    "ServerSitesController_Get": site_get,
    "ServersController_ListByServerSiteResource": machines_list,
    "ServersController_GetMachine": machine_get,
    "ServerRunAsAccountsController_ListByServerSiteResource": run_as_accounts_list,
    "ServerRunAsAccountsController_Get": run_as_account_get,
}
