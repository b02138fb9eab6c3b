"""The simulator's responses have the structure of the real service's published examples.

For every operation with an example in /work/shared/reference/asr the request is sent with the real
SDK and the response compared key by key, type by type, at every level (see ``structure_mismatches``).
Every key the simulator emits must also be a field of the SDK's model for that resource, which is the
authority for the InMageRcm provider-specific shapes the Hyper-V examples cannot show.

Operations without an example (so checked only against the SDK models): replicationProtectedItems
list/update, replicationJobs list/restart/resume/cancel, replicationRecoveryPlans get/list/
failoverCommit/delete, replicationProtectionContainerMappings get/list, replicationPolicies list,
replicationFabrics list, replicationProtectionContainers list, operation status and results.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.recoveryservicessiterecovery import models

from devstack.asr_sim.contract import SimConfig
from tests.integration.asr_sim.support import AsrDriver, raw_json, structure_mismatches, unknown_keys

pytestmark = pytest.mark.integration

REFERENCE = Path(
    os.environ.get("AWS2AZURE_ASR_REFERENCE") or Path(__file__).resolve().parents[4] / "shared" / "reference" / "asr"
)
# Keys an example shows that this scenario cannot have, with the reason.
NOT_APPLICABLE = {
    ("ReplicationProtectedItems_TestFailoverCleanup", "$.properties.lastSuccessfulFailoverTime"):
        "a migration cleans up its test failover before it ever fails over; the example item had failed over",
    ("ReplicationRecoveryPlans_UnplannedFailover", "$.properties.lastPlannedFailoverTime"):
        "InMageRcm has no planned failover; the example plan had one earlier",
    ("ReplicationRecoveryPlans_UnplannedFailover", "$.properties.lastTestFailoverTime"):
        "test failover through a recovery plan is not modelled; the example plan had one",
}  # fmt: skip


def example(name: str) -> dict[str, Any]:
    path = REFERENCE / f"{name}.json"
    if not path.exists():
        pytest.skip(f"reference example {path} is not available")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def assert_same_structure(name: str, status: str, actual: Any) -> None:
    expected = example(name)["responses"][status]["body"]
    problems = [
        p
        for p in structure_mismatches(expected, actual)
        if (name, p.split(":")[0].removesuffix(" ")) not in NOT_APPLICABLE
    ]
    assert problems == [], f"{name} {status}: " + "; ".join(problems)


def assert_sdk_fields(model: type, actual: Any) -> None:
    assert unknown_keys(model, actual) == []


def assert_lro_headers(name: str, headers: dict[str, str]) -> None:
    expected = example(name)["responses"]["202"]["headers"]
    lowered = {k.lower(): v for k, v in headers.items()}
    for key in expected:
        assert key.lower() in lowered, f"{name} 202 lacks {key}"
    assert int(lowered["retry-after"]) >= 0
    assert "/replicationOperationStatus/" in lowered["azure-asyncoperation"]


@pytest.fixture
def migrated(asr: AsrDriver) -> dict[str, Any]:
    """One item walked through the whole migration, with the raw JSON of every step kept."""
    machine = asr.seed("10.20.0.10", disks=(16,), churn_mb_per_day=2_000)
    asr.seed("10.20.0.11", disks=(16,))
    seen: dict[str, Any] = {}
    asr.client.replication_protected_items.begin_create(
        *asr.scope, "item-a", asr.enable_body(machine), polling=False, raw_response_hook=asr.capture
    )
    seen["create_headers"] = dict(asr.last_headers)
    seen["enable_job"] = asr.job_of_last_call()
    asr.finish_job(seen["enable_job"])
    asr.until(lambda: asr.item("item-a").properties.protection_state == "Protected")  # type: ignore[union-attr]
    seen["protected"] = asr.item_json("item-a")
    items = asr.client.replication_protected_items
    asr.client.replication_protected_items.begin_test_failover(
        *asr.scope, "item-a", asr.test_failover_body(), polling=False, raw_response_hook=asr.capture
    )
    seen["test_failover_headers"] = dict(asr.last_headers)
    asr.finish_job(asr.job_of_last_call())
    seen["test_failover"] = asr.item_json("item-a")
    asr.run(items.begin_test_failover_cleanup, "item-a", {"properties": {"comments": "done"}})
    seen["cleanup"] = asr.item_json("item-a")
    asr.run(items.begin_unplanned_failover, "item-a", asr.failover_body())
    seen["failover"] = asr.item_json("item-a")
    asr.run(items.begin_failover_commit, "item-a")
    seen["commit"] = asr.item_json("item-a")
    items.begin_delete(
        *asr.scope,
        "item-a",
        {"properties": {"disableProtectionReason": "MigrationComplete"}},
        polling=False,
        raw_response_hook=asr.capture,
    )
    seen["remove_headers"] = dict(asr.last_headers)
    return seen


def test_replicated_item_shapes_follow_the_examples(asr: AsrDriver, migrated: dict[str, Any]) -> None:
    assert_lro_headers("ReplicationProtectedItems_Create", migrated["create_headers"])
    for example_name, key in (
        ("ReplicationProtectedItems_Create", "protected"),
        ("ReplicationProtectedItems_Get", "protected"),
        ("ReplicationProtectedItems_TestFailover", "test_failover"),
        ("ReplicationProtectedItems_TestFailoverCleanup", "cleanup"),
        ("ReplicationProtectedItems_UnplannedFailover", "failover"),
        ("ReplicationProtectedItems_FailoverCommit", "commit"),
    ):
        assert_same_structure(example_name, "200", migrated[key])
        assert_sdk_fields(models.ReplicationProtectedItem, migrated[key])
    assert_lro_headers("ReplicationProtectedItems_TestFailover", migrated["test_failover_headers"])
    assert_lro_headers("ReplicationProtectedItems_Delete", migrated["remove_headers"])


def test_the_walk_shows_the_states_the_examples_show(migrated: dict[str, Any]) -> None:
    """The examples' own state strings for the same steps, where the example is of this flow."""
    reference = example("ReplicationProtectedItems_UnplannedFailover")["responses"]["200"]["body"]["properties"]
    failover = migrated["failover"]["properties"]
    for key in ("protectionState", "protectionStateDescription", "activeLocation", "allowedOperations"):
        assert failover[key] == reference[key]
    tfo_reference = example("ReplicationProtectedItems_TestFailover")["responses"]["200"]["body"]["properties"]
    tfo = migrated["test_failover"]["properties"]
    for key in ("testFailoverState", "testFailoverStateDescription", "protectionStateDescription", "allowedOperations"):
        assert tfo[key] == tfo_reference[key]


def test_purge_answers_like_the_example(asr: AsrDriver) -> None:
    machine = asr.seed("10.20.0.20", disks=(8,))
    asr.enable("item-p", machine)
    asr.finish_job(asr.job_of_last_call())
    asr.client.replication_protected_items.begin_purge(
        *asr.scope, "item-p", polling=False, raw_response_hook=asr.capture
    )
    assert_lro_headers("ReplicationProtectedItems_Purge", asr.last_headers)


def test_infrastructure_shapes_follow_the_examples(asr: AsrDriver) -> None:
    rg, vault, fabric, container = asr.scope
    fabric_json = asr.client.replication_fabrics.get(rg, vault, fabric, cls=raw_json)
    assert_same_structure("ReplicationFabrics_Get", "200", fabric_json)
    assert_sdk_fields(models.Fabric, fabric_json)
    container_json = asr.client.replication_protection_containers.get(rg, vault, fabric, container, cls=raw_json)
    assert_same_structure("ReplicationProtectionContainers_Get", "200", container_json)
    assert_sdk_fields(models.ProtectionContainer, container_json)
    policy_json = asr.client.replication_policies.get(rg, vault, asr.infra.policy_name, cls=raw_json)
    assert_same_structure("ReplicationPolicies_Get", "200", policy_json)
    assert_sdk_fields(models.Policy, policy_json)
    mapping_json = asr.client.replication_protection_container_mappings.get(
        rg, vault, fabric, container, asr.infra.container_mapping_name, cls=raw_json
    )
    assert_sdk_fields(models.ProtectionContainerMapping, mapping_json)
    pages: list[Any] = []
    list(
        asr.client.replication_appliances.list(
            rg, vault, raw_response_hook=lambda r: pages.append(r.http_response.json())
        )
    )
    assert_same_structure("ReplicationAppliances_List", "200", pages[0])
    assert_sdk_fields(models.ReplicationAppliance, pages[0]["value"])
    os_json = asr.client.supported_operating_systems.get(rg, vault, instance_type="InMageRcm", cls=raw_json)
    assert_same_structure("SupportedOperatingSystems_Get", "200", os_json)
    assert_sdk_fields(models.SupportedOperatingSystems, os_json)


def test_protectable_item_shapes_follow_the_examples(asr: AsrDriver) -> None:
    asr.control.configure(SimConfig(lro_retry_after_seconds=0, page_size=1))
    first = asr.seed("10.20.0.30")
    asr.seed("10.20.0.31")
    rg, vault, fabric, container = asr.scope
    item_json = asr.client.replication_protectable_items.get(rg, vault, fabric, container, first, cls=raw_json)
    assert_same_structure("ReplicationProtectableItems_Get", "200", item_json)
    assert_sdk_fields(models.ProtectableItem, item_json)
    pages: list[Any] = []
    listed = list(
        asr.client.replication_protectable_items.list_by_replication_protection_containers(
            rg, vault, fabric, container, raw_response_hook=lambda r: pages.append(r.http_response.json())
        )
    )
    assert len(listed) == 2
    assert len(pages) == 2  # one per page: the SDK followed nextLink
    assert_same_structure("ReplicationProtectableItems_ListByReplicationProtectionContainers", "200", pages[0])


def test_job_shape_follows_the_example(asr: AsrDriver) -> None:
    machine = asr.seed("10.20.0.40", disks=(8,))
    job = asr.enable("item-j", machine)
    asr.finish_job(job)
    job_json = asr.client.replication_jobs.get(asr.rg, asr.vault, job, cls=raw_json)
    assert_same_structure("ReplicationJobs_Get", "200", job_json)
    assert_sdk_fields(models.Job, job_json)


def test_recovery_plan_shapes_follow_the_examples(asr: AsrDriver) -> None:
    names = []
    for index in range(2):
        machine = asr.seed(f"10.20.1.{index + 1}", disks=(8,))
        asr.protect(f"rp-item-{index}", machine)
        names.append(f"rp-item-{index}")
    plan = asr.client.replication_recovery_plans
    body = {
        "properties": {
            "primaryFabricId": asr.infra.fabric_id,
            "recoveryFabricId": "Microsoft Azure",
            "failoverDeploymentModel": "ResourceManager",
            "groups": [
                {
                    "groupType": "Boot",
                    "replicationProtectedItems": [
                        {
                            "id": f"{asr.infra.protection_container_id}/replicationProtectedItems/{n}",
                            "virtualMachineId": n,
                        }
                        for n in names
                    ],
                    "startGroupActions": [],
                    "endGroupActions": [],
                }
            ],
        }
    }
    plan.begin_create(asr.rg, asr.vault, "wave-1", body, polling=False, raw_response_hook=asr.capture)
    assert_lro_headers("ReplicationRecoveryPlans_Create", asr.last_headers)
    asr.finish_job(asr.job_of_last_call())
    created = plan.get(asr.rg, asr.vault, "wave-1", cls=raw_json)
    assert_same_structure("ReplicationRecoveryPlans_Create", "200", created)
    assert_sdk_fields(models.RecoveryPlan, created)
    failover_input = {
        "properties": {
            "failoverDirection": "PrimaryToRecovery",
            "sourceSiteOperations": "NotRequired",
            "providerSpecificDetails": [{"instanceType": "InMageRcm", "recoveryPointType": "Latest"}],
        }
    }
    plan.begin_unplanned_failover(
        asr.rg, asr.vault, "wave-1", failover_input, polling=False, raw_response_hook=asr.capture
    )
    assert_lro_headers("ReplicationRecoveryPlans_UnplannedFailover", asr.last_headers)
    assert asr.finish_job(asr.job_of_last_call()) == "Succeeded"
    failed_over = plan.get(asr.rg, asr.vault, "wave-1", cls=raw_json)
    assert_same_structure("ReplicationRecoveryPlans_UnplannedFailover", "200", failed_over)
    assert_sdk_fields(models.RecoveryPlan, failed_over)
