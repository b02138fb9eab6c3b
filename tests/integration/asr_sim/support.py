"""Helpers for the ASR simulator tests: structure comparison, SDK-model conformance, a typed test driver."""

from __future__ import annotations

import re
import time
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.pipeline import PipelineResponse
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient, models
from azure.mgmt.recoveryservicessiterecovery._utils.model_base import Model as SdkModel
from azure.mgmt.recoveryservicessiterecovery.models import _models as generated_models

from devstack.asr_sim.contract import Infrastructure
from devstack.asr_sim.control import SimulatorControl, job_name_from_operation_url
from devstack.clock import FileClock
from devstack.settings import AsrEndpoint

JSON = Any
_NAMESPACE = {**vars(generated_models), "_models": models}


class LocalCredential:
    """The SDK only needs ``get_token``; the simulator checks that a bearer token is present."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("local-test-token", int(time.time()) + 3600)


def make_client(endpoint: AsrEndpoint, **kwargs: Any) -> SiteRecoveryManagementClient:
    options: dict[str, Any] = {"retry_total": 0, "polling_interval": 0, **kwargs}
    return SiteRecoveryManagementClient(
        LocalCredential(),
        endpoint.subscription_id,
        base_url=endpoint.base_url,
        connection_verify=endpoint.ca_cert,
        **options,
    )


def raw_json(pipeline_response: PipelineResponse[Any, Any], deserialized: Any, headers: Any) -> JSON:
    """A ``cls=`` callback: hand back the response body as plain JSON."""
    return pipeline_response.http_response.json()


# ---------------------------------------------------------------------- structure comparison


def _kind(value: JSON) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


POLYMORPHIC_KEYS = frozenset({"providerSpecificDetails", "customDetails", "fabricSpecificDetails"})
FREE_FORM_MAPS = frozenset({"affectedObjectDetails"})


def structure_mismatches(example: JSON, actual: JSON, path: str = "$") -> list[str]:
    """Where ``actual`` lacks a key of ``example`` or has another JSON type for it, recursively.

    Provider-specific objects whose ``instanceType`` differs (HyperVReplicaAzure in most examples,
    InMageRcm here) are compared only on ``instanceType``; their own fields are checked against the
    SDK's models by ``unknown_keys`` instead. Free-form maps (``affectedObjectDetails``) are compared
    as objects of strings. List elements are compared with the keys every example element has.
    """
    if example is None:
        return []
    if _kind(example) != _kind(actual):
        return [f"{path}: example is {_kind(example)}, simulator gives {_kind(actual)}"]
    key = re.sub(r"\[\d+\]$", "", path.rsplit(".", 1)[-1])
    if isinstance(example, dict) and key in FREE_FORM_MAPS:
        return [f"{path}.{k}: not a string" for k, v in actual.items() if not isinstance(v, str)]
    if isinstance(example, dict):
        if key in POLYMORPHIC_KEYS and example.get("instanceType") != actual.get("instanceType"):
            return [] if isinstance(actual.get("instanceType"), str) else [f"{path}.instanceType: missing"]
        problems = []
        for key, value in example.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems.extend(structure_mismatches(value, actual[key], f"{path}.{key}"))
        return problems
    if isinstance(example, list) and example:
        if not actual:
            return [f"{path}: example has elements, simulator gives an empty list"]
        template = _common_element(example)
        problems = []
        for index, element in enumerate(actual):
            problems.extend(structure_mismatches(template, element, f"{path}[{index}]"))
        return problems
    return []


def _common_element(elements: list[JSON]) -> JSON:
    if not all(isinstance(e, dict) for e in elements):
        return elements[0]
    common = set(elements[0]).intersection(*(set(e) for e in elements[1:]))
    return {k: v for k, v in elements[0].items() if k in common}


# ---------------------------------------------------------------------- SDK model conformance


def _model_classes(annotation: Any) -> list[type]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, dict):
        return [cls for arg in typing.get_args(annotation) for cls in _model_classes(arg)]
    if isinstance(annotation, type) and issubclass(annotation, SdkModel):
        return [annotation]
    return []


def unknown_keys(model: type, data: JSON, path: str = "$") -> list[str]:
    """Keys in ``data`` that the SDK's model (resolved by discriminator) does not declare, recursively."""
    if isinstance(data, list):
        return [p for i, item in enumerate(data) for p in unknown_keys(model, item, f"{path}[{i}]")]
    if not isinstance(data, dict):
        return []
    mapping: dict[str, type] = getattr(model, "__mapping__", {})
    if mapping and isinstance(data.get("instanceType"), str):
        model = mapping.get(data["instanceType"], model)
    model({})  # the SDK computes its field table on first instantiation
    fields = {rf._rest_name: attr for attr, rf in model._attr_to_rest_field.items()}  # type: ignore[attr-defined]
    hints = typing.get_type_hints(model, globalns=_NAMESPACE)
    problems = []
    for key, value in data.items():
        if key not in fields:
            problems.append(f"{path}.{key}: not a field of {model.__name__}")
            continue
        for nested in _model_classes(hints.get(fields[key])):
            problems.extend(unknown_keys(nested, value, f"{path}.{key}"))
    return problems


# ---------------------------------------------------------------------- the driver


@dataclass
class AsrDriver:
    """The SDK, the control API and the clock, bound to one running simulator."""

    endpoint: AsrEndpoint
    client: SiteRecoveryManagementClient
    control: SimulatorControl
    clock: FileClock
    infra: Infrastructure
    last_headers: dict[str, str] = field(default_factory=dict)

    @property
    def rg(self) -> str:
        return self.endpoint.resource_group

    @property
    def vault(self) -> str:
        return self.endpoint.vault_name

    @property
    def scope(self) -> tuple[str, str, str, str]:
        return self.rg, self.vault, self.infra.fabric_name, self.infra.protection_container_name

    def capture(self, response: PipelineResponse[Any, Any]) -> None:
        self.last_headers = dict(response.http_response.headers)

    def job_of_last_call(self) -> str:
        return job_name_from_operation_url(self.last_headers["Azure-AsyncOperation"])

    def seed(self, ip: str, *, os_name: str = "Ubuntu 22.04", disks: tuple[int, ...] = (32, 64), **kw: Any) -> str:
        os_type = "Windows" if os_name.lower().startswith("windows") else "Linux"
        return self.control.seed_machine(ip, os_type, os_name, disks, **kw)  # type: ignore[arg-type]

    def enable_body(self, machine: str, **details: Any) -> dict[str, Any]:
        target_rg = f"/subscriptions/{self.endpoint.subscription_id}/resourceGroups/aws2azure-target"
        provider = {
            "instanceType": "InMageRcm",
            "fabricDiscoveryMachineId": f"{self.infra.physical_site_id}/machines/{machine}",
            "processServerId": self.infra.process_server_id,
            "targetResourceGroupId": target_rg,
            "targetNetworkId": f"{target_rg}/providers/Microsoft.Network/virtualNetworks/migrated-vnet",
            "testNetworkId": f"{target_rg}/providers/Microsoft.Network/virtualNetworks/test-vnet",
            "targetSubnetName": "workloads",
            "targetVmName": f"vm-{machine[:8]}",
            "disksDefault": {
                "logStorageAccountId": f"{target_rg}/providers/Microsoft.Storage/storageAccounts/asrcache",
                "diskType": "Standard_LRS",
            },
            **details,
        }
        return {
            "properties": {
                "policyId": self.infra.policy_id,
                "providerSpecificDetails": provider,
            }
        }

    def enable(self, item: str, machine: str, **details: Any) -> str:
        self.client.replication_protected_items.begin_create(
            *self.scope, item, self.enable_body(machine, **details), polling=False, raw_response_hook=self.capture
        )
        return self.job_of_last_call()

    def item(self, name: str) -> models.ReplicationProtectedItem:
        return self.client.replication_protected_items.get(*self.scope, name)

    def item_json(self, name: str) -> JSON:
        return self.client.replication_protected_items.get(*self.scope, name, cls=raw_json)

    def job(self, name: str) -> models.Job:
        return self.client.replication_jobs.get(self.rg, self.vault, name)

    def advance(self, seconds: float) -> None:
        self.clock.advance_by(seconds)

    def finish_job(self, name: str, *, step: float = 60.0, limit: float = 3 * 86_400) -> str:
        """Advance the clock until the job ends; return its final state."""
        waited = 0.0
        while True:
            state = str(self.job(name).properties.state)  # type: ignore[union-attr]
            if state in ("Succeeded", "Failed", "Cancelled"):
                return state
            if waited > limit:
                raise AssertionError(f"job {name} still {state} after {limit} virtual seconds")
            self.advance(step)
            waited += step

    def until(self, predicate: Callable[[], bool], *, step: float = 600.0, limit: float = 30 * 86_400) -> float:
        """Advance the clock until ``predicate()``; return the virtual seconds it took."""
        waited = 0.0
        while not predicate():
            if waited > limit:
                raise AssertionError(f"condition not met after {limit} virtual seconds")
            self.advance(step)
            waited += step
        return waited

    def protect(self, item: str, machine: str) -> None:
        """Enable replication and advance until the item is Protected."""
        assert self.finish_job(self.enable(item, machine)) == "Succeeded"
        self.until(lambda: self.item(item).properties.protection_state == "Protected")  # type: ignore[union-attr]

    def failover_body(self, perform_shutdown: Any = "false") -> dict[str, Any]:
        return {
            "properties": {
                "failoverDirection": "PrimaryToRecovery",
                "providerSpecificDetails": {"instanceType": "InMageRcm", "performShutdown": perform_shutdown},
            }
        }

    def test_failover_body(self) -> dict[str, Any]:
        return {
            "properties": {
                "failoverDirection": "PrimaryToRecovery",
                "networkType": "VmNetworkAsInput",
                "providerSpecificDetails": {"instanceType": "InMageRcm"},
            }
        }

    def run(self, begin: Callable[..., Any], *args: Any) -> str:
        """Start an LRO with polling off, run its job to the end, return the job name."""
        begin(*self.scope, *args, polling=False, raw_response_hook=self.capture)
        job = self.job_of_last_call()
        assert self.finish_job(job) == "Succeeded", self.job(job).properties.errors  # type: ignore[union-attr]
        return job


class FakeClock:
    """A virtual clock for unit tests of the engine (no file, no server)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> datetime:
        self.current += timedelta(seconds=seconds)
        return self.current


def iter_pages(values: Iterator[Any]) -> list[Any]:
    return list(values)
