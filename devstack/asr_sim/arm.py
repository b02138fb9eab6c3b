"""ARM identifiers, names and constants of the simulated vault."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

API_VERSION = "2025-08-01"
# Microsoft.OffAzure (the appliance's discovery site): the version Learn's InMageRcm automation page uses
# (articles/migrate/how-to-automate-vmware-to-azure-migration-rest-api.md) and the one of the official examples
# (specification/migrate/resource-manager/Microsoft.OffAzure/OffAzure/examples/2024-12-01-preview).
OFFAZURE_API_VERSIONS = frozenset({"2023-06-06", "2024-12-01-preview"})
SUPPORTED_API_VERSIONS = frozenset({API_VERSION})
PROVIDER = "InMageRcm"
AZURE_FABRIC = "Microsoft Azure"
# ASR's "no scenario" placeholder time, as every real example shows it.
NO_SCENARIO_TIME = "1753-01-01T01:01:01Z"

FABRIC_NAME = "aws2azure-appliance-fabric"
CONTAINER_NAME = "aws2azure-appliance-container"
POLICY_NAME = "aws2azure-24h"
MAPPING_NAME = "aws2azure-container-mapping"
APPLIANCE_NAME = "aws2azure-appliance"
PHYSICAL_SITE_NAME = "aws2azure-serversite"
# Push-install credentials the appliance keeps (OffAzure run-as accounts), one per OS family.
RUN_AS_ACCOUNTS = {"Windows": "aws2azure-windows-admin", "Linux": "aws2azure-linux-root"}

TYPE_PREFIX = "Microsoft.RecoveryServices/vaults"


def stable_uuid(*parts: object) -> str:
    """A UUID that depends only on its inputs, so runs with the same seed agree."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def unit_fraction(*parts: object) -> float:
    """A number in [0, 1) that depends only on its inputs: the simulator's only randomness."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def iso(moment: datetime) -> str:
    """ASR's timestamp form: UTC with seven fractional digits and a Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0Z"


@dataclass(frozen=True)
class Vault:
    subscription_id: str
    resource_group: str
    name: str

    @property
    def id(self) -> str:
        return (
            f"/Subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.RecoveryServices/vaults/{self.name}"
        )

    def fabric_id(self, fabric: str = FABRIC_NAME) -> str:
        return f"{self.id}/replicationFabrics/{fabric}"

    def container_id(self, fabric: str = FABRIC_NAME, container: str = CONTAINER_NAME) -> str:
        return f"{self.fabric_id(fabric)}/replicationProtectionContainers/{container}"

    def protectable_item_id(self, name: str) -> str:
        return f"{self.container_id()}/replicationProtectableItems/{name}"

    def protected_item_id(self, name: str) -> str:
        return f"{self.container_id()}/replicationProtectedItems/{name}"

    def mapping_id(self) -> str:
        return f"{self.container_id()}/replicationProtectionContainerMappings/{MAPPING_NAME}"

    def policy_id(self, name: str = POLICY_NAME) -> str:
        return f"{self.id}/replicationPolicies/{name}"

    def job_id(self, name: str) -> str:
        return f"{self.id}/replicationJobs/{name}"

    def recovery_plan_id(self, name: str) -> str:
        return f"{self.id}/replicationRecoveryPlans/{name}"

    def operation_status_id(self, job_name: str) -> str:
        return f"{self.id}/replicationOperationStatus/{job_name}"

    def provider_id(self) -> str:
        return f"{self.fabric_id()}/replicationRecoveryServicesProviders/{stable_uuid('dra', self.id)}"

    def physical_site_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.OffAzure/ServerSites/{PHYSICAL_SITE_NAME}"
        )

    def discovery_machine_id(self, machine_name: str) -> str:
        return f"{self.physical_site_id()}/machines/{machine_name}"

    def run_as_account_id(self, name: str) -> str:
        return f"{self.physical_site_id()}/runasaccounts/{name}"
