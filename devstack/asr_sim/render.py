"""The JSON the ARM surface returns: one function per resource type, shaped like the real service."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from devstack.asr_sim import arm
from devstack.asr_sim.arm import AZURE_FABRIC, NO_SCENARIO_TIME, PROVIDER, TYPE_PREFIX, iso, stable_uuid
from devstack.asr_sim.engine import Simulator
from devstack.asr_sim.jobs import Job
from devstack.asr_sim.model import Machine, ProtectedItem, RecoveryPlan
from devstack.asr_sim.oscatalog import supported_os_list
from devstack.asr_sim.replication import COMPRESSION_RATIO, GIB
from devstack.asr_sim.status import job_in_flight

AGENT_VERSION = "9.62.7172.1"
APPLIANCE_VERSION = "1.62.7172.1"
TARGET_LOCATION = "westeurope"
ITEM_TYPE = f"{TYPE_PREFIX}/replicationFabrics/replicationProtectionContainers/replicationProtectedItems"


def fabric(sim: Simulator, now: datetime) -> dict[str, Any]:
    v = sim.vault
    heartbeat = iso(now - timedelta(seconds=37))
    appliance_id = stable_uuid("appliance", v.id)
    bios_id = stable_uuid("bios", v.id).upper()
    fqdn = f"{arm.APPLIANCE_NAME}.aws2azure.local"
    component = {
        "id": appliance_id, "name": arm.APPLIANCE_NAME, "biosId": bios_id,
        "fabricObjectId": f"{v.physical_site_id()}/machines/{arm.APPLIANCE_NAME}", "fqdn": fqdn,
        "version": APPLIANCE_VERSION, "lastHeartbeatUtc": heartbeat, "health": "Normal", "healthErrors": [],
    }  # fmt: skip
    protected = sum(1 for item in sim.items.values() if item.failover == "None")
    return {
        "id": v.fabric_id(),
        "name": arm.FABRIC_NAME,
        "type": f"{TYPE_PREFIX}/replicationFabrics",
        "location": TARGET_LOCATION,
        "properties": {
            "friendlyName": arm.FABRIC_NAME,
            "encryptionDetails": {"kekState": "None"},
            "rolloverEncryptionDetails": {"kekState": "None"},
            "internalIdentifier": sim.fabric_internal_id,
            "bcdrState": "Valid",
            "customDetails": {
                "instanceType": PROVIDER,
                "vmwareSiteId": "",
                "physicalSiteId": v.physical_site_id(),
                "serviceEndpoint": "https://rcm.westeurope.hypervrecoverymanager.windowsazure.com",
                "serviceResourceId": stable_uuid("service", v.id),
                "serviceContainerId": stable_uuid("service-container", v.id),
                "dataPlaneUri": "https://westeurope-dataplane.siterecovery.windowsazure.com",
                "controlPlaneUri": "https://westeurope-controlplane.siterecovery.windowsazure.com",
                "processServers": [_process_server(sim, component, protected)],
                "rcmProxies": [{**component, "clientAuthenticationType": "Certificate"}],
                "pushInstallers": [dict(component)],
                "replicationAgents": [dict(component)],
                "reprotectAgents": [
                    {
                        **component,
                        "protectedItemCount": 0,
                        "accessibleDatastores": [],
                        "vcenterId": "",
                        "lastDiscoveryInUtc": heartbeat,
                    }
                ],
                "marsAgents": [dict(component)],
                "dras": [
                    {
                        "id": stable_uuid("dra", v.id),
                        "name": arm.APPLIANCE_NAME,
                        "biosId": bios_id,
                        "version": "5.1.8095.0",
                        "lastHeartbeatUtc": heartbeat,
                        "health": "Normal",
                        "healthErrors": [],
                        "forwardProtectedItemCount": protected,
                        "reverseProtectedItemCount": 0,
                    }
                ],
                "agentDetails": [],
            },
            "healthErrorDetails": [],
            "health": "Normal",
        },
    }


def _process_server(sim: Simulator, component: dict[str, Any], protected: int) -> dict[str, Any]:
    total_memory, total_space = 32 * GIB, 1024 * GIB
    return {
        **component,
        "id": sim.process_server_id,
        "ipAddresses": ["10.0.0.10"],
        "totalMemoryInBytes": total_memory,
        "availableMemoryInBytes": total_memory // 2,
        "usedMemoryInBytes": total_memory // 2,
        "memoryUsagePercentage": 50.0,
        "totalSpaceInBytes": total_space,
        "availableSpaceInBytes": total_space * 3 // 4,
        "usedSpaceInBytes": total_space // 4,
        "freeSpacePercentage": 75.0,
        "throughputUploadPendingDataInBytes": 0,
        "throughputInBytes": 0,
        "processorUsagePercentage": 20.0,
        "throughputStatus": "Healthy",
        "systemLoad": 1,
        "systemLoadStatus": "Healthy",
        "diskUsageStatus": "Healthy",
        "memoryUsageStatus": "Healthy",
        "processorUsageStatus": "Healthy",
        "protectedItemCount": protected,
        "historicHealth": "Normal",
    }


def appliances(sim: Simulator, now: datetime) -> dict[str, Any]:
    details = fabric(sim, now)["properties"]["customDetails"]
    appliance = {
        "id": stable_uuid("appliance", sim.vault.id),
        "name": arm.APPLIANCE_NAME,
        "fabricArmId": sim.vault.fabric_id(),
        "processServer": details["processServers"][0],
        "rcmProxy": details["rcmProxies"][0],
        "pushInstaller": details["pushInstallers"][0],
        "replicationAgent": details["replicationAgents"][0],
        "reprotectAgent": details["reprotectAgents"][0],
        "marsAgent": details["marsAgents"][0],
        "dra": details["dras"][0],
        "switchProviderBlockingErrorDetails": [],
    }
    return {
        "value": [{"properties": {"providerSpecificDetails": {"instanceType": PROVIDER, "appliances": [appliance]}}}]
    }


def container(sim: Simulator) -> dict[str, Any]:
    return {
        "id": sim.vault.container_id(),
        "name": arm.CONTAINER_NAME,
        "type": f"{TYPE_PREFIX}/replicationFabrics/replicationProtectionContainers",
        "location": TARGET_LOCATION,
        "properties": {
            "fabricFriendlyName": arm.FABRIC_NAME,
            "friendlyName": arm.CONTAINER_NAME,
            "fabricType": PROVIDER,
            "protectedItemCount": len(sim.items),
            "pairingStatus": "Paired",
            "role": "Primary",
            "fabricSpecificDetails": {"instanceType": PROVIDER},
        },
    }


def policy(sim: Simulator) -> dict[str, Any]:
    return {
        "id": sim.vault.policy_id(),
        "name": arm.POLICY_NAME,
        "type": f"{TYPE_PREFIX}/replicationPolicies",
        "location": TARGET_LOCATION,
        "properties": {
            "friendlyName": arm.POLICY_NAME,
            "providerSpecificDetails": {
                "instanceType": PROVIDER,
                "recoveryPointHistoryInMinutes": 24 * 60,
                "appConsistentFrequencyInMinutes": 60,
                "crashConsistentFrequencyInMinutes": 5,
                "enableMultiVmSync": "True",
            },
        },
    }


def mapping(sim: Simulator) -> dict[str, Any]:
    return {
        "id": sim.vault.mapping_id(),
        "name": arm.MAPPING_NAME,
        "type": f"{TYPE_PREFIX}/replicationFabrics/replicationProtectionContainers/"
        "replicationProtectionContainerMappings",
        "location": TARGET_LOCATION,
        "properties": {
            "targetProtectionContainerId": AZURE_FABRIC,
            "targetProtectionContainerFriendlyName": AZURE_FABRIC,
            "providerSpecificDetails": {"instanceType": PROVIDER, "enableAgentAutoUpgrade": "True"},
            "health": "Normal",
            "healthErrorDetails": [],
            "policyId": sim.vault.policy_id(),
            "state": "Paired",
            "sourceProtectionContainerFriendlyName": arm.CONTAINER_NAME,
            "sourceFabricFriendlyName": arm.FABRIC_NAME,
            "targetFabricFriendlyName": AZURE_FABRIC,
            "policyFriendlyName": arm.POLICY_NAME,
        },
    }


def protectable_item(sim: Simulator, machine: Machine) -> dict[str, Any]:
    supported = sim.os_supported(machine)
    props: dict[str, Any] = {
        "friendlyName": machine.friendly_name,
        "protectionStatus": "Protected" if machine.protected_item_name else "Unprotected",
        "recoveryServicesProviderId": sim.vault.provider_id(),
        "protectionReadinessErrors": [] if supported else [
            f"The operating system '{machine.os_name}' of the machine is not supported for replication with "
            f"{PROVIDER}."
        ],
        "supportedReplicationProviders": [PROVIDER] if supported else [],
        "customDetails": {
            "instanceType": "VMwareVirtualMachine",
            "agentGeneratedId": machine.agent_id,
            "agentInstalled": "true",
            "osType": machine.os_type,
            "agentVersion": AGENT_VERSION,
            "ipAddress": machine.ip,
            "poweredOn": "true",
            "vCenterInfrastructureId": "",
            "discoveryType": "Physical",
            "diskDetails": [
                {
                    "diskId": disk_id,
                    "diskName": _disk_name(machine, index),
                    "diskSizeInMB": str(size * 1024),
                    "diskType": "Basic",
                    "diskConfiguration": "OS" if index == 0 else "Data",
                    "volumeList": [],
                }
                for index, (disk_id, size) in enumerate(zip(machine.disk_ids, machine.disks_gib, strict=True))
            ],
            "validationErrors": [],
        },
    }  # fmt: skip
    if machine.protected_item_name:
        props["replicationProtectedItemId"] = sim.vault.protected_item_id(machine.protected_item_name)
    return {
        "id": sim.vault.protectable_item_id(machine.name),
        "name": machine.name,
        "type": f"{TYPE_PREFIX}/replicationFabrics/replicationProtectionContainers/replicationProtectableItems",
        "properties": props,
    }


def _disk_name(machine: Machine, index: int) -> str:
    return f"{machine.friendly_name}-disk{index}"


def _current_scenario(sim: Simulator, job: Job | None, now: datetime) -> dict[str, Any]:
    if job is None or not job_in_flight(job, now):
        return {"scenarioName": "None", "jobId": sim.vault.job_id("None"), "startTime": NO_SCENARIO_TIME}
    return {"scenarioName": job.scenario.name, "jobId": sim.vault.job_id(job.name), "startTime": iso(job.created_at)}


def protected_item(sim: Simulator, item: ProtectedItem, now: datetime) -> dict[str, Any]:
    v = sim.vault
    status = sim.status(item, now)
    job = sim.jobs.get(item.active_job) if item.active_job else None
    machine = sim.machines[item.machine_name]
    props: dict[str, Any] = {
        "friendlyName": machine.friendly_name,
        "protectedItemType": "PhysicalMachine",
        "protectableItemId": v.protectable_item_id(machine.name),
        "recoveryServicesProviderId": v.provider_id(),
        "primaryFabricFriendlyName": arm.FABRIC_NAME,
        "primaryFabricProvider": PROVIDER,
        "recoveryFabricFriendlyName": AZURE_FABRIC,
        "recoveryFabricId": AZURE_FABRIC,
        "primaryProtectionContainerFriendlyName": arm.CONTAINER_NAME,
        "recoveryProtectionContainerFriendlyName": AZURE_FABRIC,
        "protectionState": status.protection_state,
        "protectionStateDescription": status.protection_description,
        "activeLocation": status.active_location,
        "testFailoverState": status.test_failover_state,
        "testFailoverStateDescription": status.test_failover_description,
        "switchProviderState": "None",
        "switchProviderStateDescription": "None",
        "allowedOperations": status.allowed_operations,
        "replicationHealth": status.replication_health,
        "failoverHealth": status.failover_health,
        "healthErrors": status.health_errors,
        "policyId": v.policy_id(item.policy_name),
        "policyFriendlyName": item.policy_name,
        "currentScenario": _current_scenario(sim, job, now),
        "providerSpecificDetails": _inmage_rcm_details(sim, item, machine, status.ir_health, now),
        "recoveryContainerId": f"{v.id}/replicationFabrics/{stable_uuid('azure-fabric', v.id)}"
        f"/replicationProtectionContainers/{stable_uuid('azure-container', v.id)}",
        "eventCorrelationId": stable_uuid("event", item.internal_id),
    }
    if item.last_failover_time is not None:
        props["lastSuccessfulFailoverTime"] = iso(item.last_failover_time)
    if item.last_test_failover_time is not None:
        props["lastSuccessfulTestFailoverTime"] = iso(item.last_test_failover_time)
    if item.failover_recovery_point_id is not None:
        props["failoverRecoveryPointId"] = item.failover_recovery_point_id
    return {"id": v.protected_item_id(item.name), "name": item.name, "type": ITEM_TYPE, "properties": props}


def _inmage_rcm_details(
    sim: Simulator, item: ProtectedItem, machine: Machine, ir_health: str, now: datetime
) -> dict[str, Any]:
    settings = item.settings
    progress = item.replication
    processed = int(progress.bytes_at(now)) if progress is not None else 0
    percent = progress.percent(now) if progress is not None else 0
    complete = progress is not None and progress.is_complete(now)
    details: dict[str, Any] = {
        "instanceType": PROVIDER,
        "internalIdentifier": item.internal_id,
        "fabricDiscoveryMachineId": sim.vault.discovery_machine_id(machine.name),
        "multiVmGroupName": settings.get("multiVmGroupName", item.name),
        "discoveryType": "PhysicalMachine",
        "processServerId": sim.process_server_id,
        "processorCoreCount": 2,
        "allocatedMemoryInMB": 8192.0,
        "processServerName": arm.APPLIANCE_NAME,
        "runAsAccountId": settings.get("runAsAccountId", ""),
        "osType": machine.os_type,
        "osName": machine.os_name,
        "firmwareType": "BIOS",
        "primaryNicIpAddress": machine.ip,
        "targetGeneration": "V1",
        "licenseType": settings.get("licenseType", "NoLicenseType"),
        "targetVmName": settings.get("targetVmName", machine.friendly_name),
        "targetVmSize": settings.get("targetVmSize", "Standard_D2s_v5"),
        "targetResourceGroupId": settings.get("targetResourceGroupId", ""),
        "targetLocation": TARGET_LOCATION,
        "targetNetworkId": settings.get("targetNetworkId", ""),
        "testNetworkId": settings.get("testNetworkId", settings.get("targetNetworkId", "")),
        "initialReplicationProgressPercentage": percent,
        "initialReplicationProcessedBytes": processed,
        "initialReplicationTransferredBytes": int(processed * COMPRESSION_RATIO),
        "initialReplicationProgressHealth": ir_health,
        "resyncProgressPercentage": 0,
        "resyncProcessedBytes": 0,
        "resyncTransferredBytes": 0,
        "resyncProgressHealth": "None",
        "resyncRequired": "false",
        "resyncState": "None",
        "agentUpgradeState": "None",
        "isLastUpgradeSuccessful": "true",
        "isAgentRegistrationSuccessfulAfterFailover": item.failover != "None",
        "protectedDisks": [],
        "unprotectedDisks": [],
        "mobilityAgentDetails": {
            "version": AGENT_VERSION,
            "latestVersion": AGENT_VERSION,
            "driverVersion": AGENT_VERSION,
            "lastHeartbeatUtc": iso(now - timedelta(seconds=53)),
            "reasonsBlockingUpgrade": ["AlreadyOnLatestVersion"],
            "isUpgradeable": "false",
            "osFamilyName": machine.os_type,
            "distroName": machine.os_name,
        },
        "lastAgentUpgradeErrorDetails": [],
        "agentUpgradeBlockingErrorDetails": [],
        "vmNics": [
            {
                "nicId": stable_uuid("nic", machine.name),
                "isPrimaryNic": "true",
                "isSelectedForFailover": "true",
                "sourceIPAddress": machine.ip,
                "sourceIPAddressType": "Static",
                "sourceNetworkId": "",
                "sourceSubnetName": "",
                "targetIPAddressType": "Dynamic",
                "targetSubnetName": settings.get("targetSubnetName", ""),
                "testSubnetName": settings.get("testSubnetName", settings.get("targetSubnetName", "")),
            }
        ],
        "discoveredVmDetails": {
            "ipAddresses": [machine.ip],
            "powerStatus": "ON",
            "vmFqdn": f"{machine.friendly_name}.ec2.internal",
            "osName": machine.os_name,
            "isDeleted": False,
        },
    }
    if settings.get("userSelectedOSName"):
        details["supportedOSVersions"] = [settings["userSelectedOSName"]]
    rpo = progress.rpo(now) if progress is not None and item.failover == "None" else None
    if rpo is not None:
        point, calculated, seconds = rpo
        details["lastRecoveryPointReceived"] = iso(point)
        details["lastRpoCalculatedTime"] = iso(calculated)
        details["lastRpoInSeconds"] = seconds
        details["lastRecoveryPointId"] = f"{sim.vault.protected_item_id(item.name)}/recoveryPoints/" + stable_uuid(
            item.name, point.isoformat()
        )
    if item.failover_recovery_point_id is not None:
        details["failoverRecoveryPointId"] = item.failover_recovery_point_id
    sizes = dict(zip(machine.disk_ids, machine.disks_gib, strict=True))
    for index, disk_id in enumerate(machine.disk_ids):
        capacity = sizes[disk_id] * GIB
        if disk_id not in item.protected_disk_ids:
            details["unprotectedDisks"].append(
                {"diskId": disk_id, "diskName": _disk_name(machine, index), "capacityInBytes": capacity}
            )
            continue
        details["protectedDisks"].append(
            _protected_disk(
                item=item,
                machine=machine,
                index=index,
                disk_id=disk_id,
                capacity=capacity,
                processed_total=processed,
                complete=complete,
                ir_health=ir_health,
                now=now,
            )
        )
    return details


def _protected_disk(
    *,
    item: ProtectedItem,
    machine: Machine,
    index: int,
    disk_id: str,
    capacity: int,
    processed_total: int,
    complete: bool,
    ir_health: str,
    now: datetime,
) -> dict[str, Any]:
    progress = item.replication
    total = progress.total_bytes if progress is not None and progress.total_bytes else 1
    # Disks share the upload in proportion to their size, so they finish together.
    processed = int(processed_total * capacity / total)
    sync: dict[str, Any] = {
        "progressHealth": ir_health if ir_health != "InProgress" else "None",
        "transferredBytes": int(processed * COMPRESSION_RATIO),
        "last15MinutesTransferredBytes": 0 if complete else int(
            min(processed, (progress.rate_bytes_per_s if progress else 0) * 900 * capacity / total)
        ),
        "processedBytes": processed,
        "progressPercentage": 100 if complete else min(99, int(100 * processed / capacity)),
        "lastRefreshTime": iso(now),
    }  # fmt: skip
    if progress is not None:
        sync["startTime"] = iso(progress.started_at)
        sync["lastDataTransferTimeUtc"] = iso(progress.stalled_since or now)
    disk_type = str(item.settings.get("diskType", "Standard_LRS"))
    return {
        "diskId": disk_id,
        "diskName": _disk_name(machine, index),
        "isOSDisk": "true" if index == 0 else "false",
        "capacityInBytes": capacity,
        "diskState": "InitialReplicationPending" if progress is None else (
            "Protected" if complete else "InitialReplicationInProgress"
        ),
        "logStorageAccountId": str(item.settings.get("logStorageAccountId", "")),
        "seedManagedDiskId": "",
        "targetManagedDiskId": "",
        "diskType": disk_type,
        "dataPendingInLogDataStoreInMB": 0.0,
        "dataPendingAtSourceAgentInMB": round(machine.churn_mb_per_day / 1440, 3),
        "isInitialReplicationComplete": "true" if complete else "false",
        "irDetails": sync,
        "diskSizeInGB": capacity // GIB,
    }  # fmt: skip


def job(sim: Simulator, job: Job, now: datetime) -> dict[str, Any]:
    state = job.state_at(now)
    props: dict[str, Any] = {
        "activityId": job.activity_id,
        "scenarioName": job.scenario.name,
        "friendlyName": job.scenario.friendly_name,
        "state": state,
        "stateDescription": job.state_description_at(now),
        "tasks": _tasks(sim, job, now),
        "errors": [],
        "startTime": iso(job.created_at),
        "allowedActions": job.allowed_actions(now),
        "targetObjectId": job.target_internal_id,
        "targetObjectName": job.target_friendly_name,
        "targetInstanceType": job.target_kind,
        "customDetails": {
            "instanceType": "AsrJobDetails",
            "affectedObjectDetails": {
                "PrimaryFabricId": sim.fabric_internal_id,
                "PrimaryFabricName": arm.FABRIC_NAME,
                "PrimaryFabricProviderId": PROVIDER,
                "RecoveryFabricProviderId": "Azure",
                "TargetObjectArmId": _target_id(sim, job),
            },
        },
    }
    end = job.end_time()
    if end is not None and state in ("Succeeded", "Failed", "Cancelled", "Other"):
        props["endTime"] = iso(end)
    if state == "Failed" and job.error is not None:
        props["errors"] = [_job_error(job, end or now)]
    return {
        "id": sim.vault.job_id(job.name),
        "name": job.name,
        "type": f"{TYPE_PREFIX}/replicationJobs",
        "properties": props,
    }


def _target_id(sim: Simulator, job: Job) -> str:
    if job.target_kind == "RecoveryPlan":
        return sim.vault.recovery_plan_id(job.target_name)
    return sim.vault.protected_item_id(job.target_name)


def _job_state_description(state: str) -> str:
    return {
        "NotStarted": "NotStarted",
        "InProgress": "InProgress",
        "Succeeded": "Completed",
        "Failed": "Failed",
        "Cancelled": "Cancelled",
        "Suspended": "Suspended",
        "Other": "Other",
    }[state]


def _job_error(job: Job, at: datetime) -> dict[str, Any]:
    spec = job.error
    assert spec is not None
    return {
        "serviceErrorDetails": {
            "code": spec.code,
            "message": spec.message,
            "possibleCauses": spec.possible_causes,
            "recommendedAction": spec.recommended_action,
            "activityId": job.activity_id,
        },
        "providerErrorDetails": {
            "errorCode": int(spec.code) if spec.code.isdigit() else 0,
            "errorMessage": spec.message,
            "errorId": stable_uuid("provider-error", job.name),
            "possibleCauses": spec.possible_causes,
            "recommendedAction": spec.recommended_action,
        },
        "errorLevel": "Error",
        "creationTime": iso(at),
        "taskId": stable_uuid("task", job.name, max(job.failing_task, 0)),
    }


def _tasks(sim: Simulator, job: Job, now: datetime) -> list[dict[str, Any]]:
    tasks = job.scenario.tasks
    per_task = job.seconds / len(tasks)
    done_seconds = job.elapsed_run_seconds(now)
    job_state = job.state_at(now)
    rendered = []
    for index, (name, friendly) in enumerate(tasks):
        task_id = stable_uuid("task", job.name, index)
        begin, finish = index * per_task, (index + 1) * per_task
        failing = job.outcome == "Failed" and index == job.failing_task
        if job_state in ("Succeeded", "Failed", "Cancelled", "Other") and done_seconds >= finish - 1e-6:
            state = "Failed" if failing else "Succeeded"
        elif job_state == "Failed" and failing:
            state = "Failed"
        elif job_state == "Cancelled" and begin <= done_seconds:
            state = "Cancelled"
        elif done_seconds >= finish and not failing:
            state = "Succeeded"
        elif done_seconds > begin or (index == 0 and job_state == "InProgress"):
            state = "Suspended" if job_state == "Suspended" else "InProgress"
        else:
            state = "NotStarted"
        task: dict[str, Any] = {
            "taskId": task_id,
            "name": name,
            "allowedActions": [],
            "friendlyName": friendly,
            "state": state,
            "stateDescription": _job_state_description(state),
            "taskType": "TaskDetails",
            "customDetails": {"instanceType": "JobTaskDetails", "jobTask": {
                "jobId": job.name, "jobFriendlyName": job.scenario.friendly_name,
                "targetObjectId": job.target_internal_id, "targetObjectName": job.target_friendly_name,
                "targetInstanceType": job.target_kind, "jobScenarioName": job.scenario.name,
            }},
            "errors": [_job_error(job, now)] if state == "Failed" and job.error is not None else [],
        }  # fmt: skip
        if state != "NotStarted":
            task["startTime"] = iso(job.started_at + timedelta(seconds=begin))
        if state in ("Succeeded", "Failed", "Cancelled"):
            task["endTime"] = iso(job.started_at + timedelta(seconds=min(finish, done_seconds)))
        rendered.append(task)
    return rendered


def operation_status(sim: Simulator, job: Job, now: datetime) -> dict[str, Any]:
    state = job.state_at(now)
    status = {"Succeeded": "Succeeded", "Failed": "Failed", "Cancelled": "Canceled", "Other": "Succeeded"}.get(
        state, "InProgress"
    )
    body: dict[str, Any] = {
        "id": sim.vault.operation_status_id(job.name),
        "name": job.name,
        "status": status,
        "startTime": iso(job.created_at),
    }
    end = job.end_time()
    if status != "InProgress" and end is not None:
        body["endTime"] = iso(end)
    if state == "Failed" and job.error is not None:
        body["error"] = {"code": job.error.code, "message": job.error.message}
    elif state == "Cancelled":
        body["error"] = {"code": "OperationCancelled", "message": f"The job '{job.name}' was cancelled."}
    return body


def recovery_plan(sim: Simulator, plan: RecoveryPlan, now: datetime) -> dict[str, Any]:
    v = sim.vault
    active = sim.jobs.get(plan.active_job) if plan.active_job else None
    props: dict[str, Any] = {
        "friendlyName": plan.friendly_name,
        "primaryFabricId": v.fabric_id(),
        "primaryFabricFriendlyName": arm.FABRIC_NAME,
        "recoveryFabricId": AZURE_FABRIC,
        "recoveryFabricFriendlyName": AZURE_FABRIC,
        "failoverDeploymentModel": "ResourceManager",
        "replicationProviders": [PROVIDER],
        "allowedOperations": sim.plan_allowed_operations(plan, now),
        "groups": [
            {
                "groupType": group_type,
                "replicationProtectedItems": [
                    {"id": v.protected_item_id(name), "virtualMachineId": name} for name in members
                ],
                "startGroupActions": [],
                "endGroupActions": [],
            }
            for group_type, members in plan.groups
        ],
        "providerSpecificDetails": [],
    }
    if plan.last_unplanned_failover_time is not None:
        props["lastUnplannedFailoverTime"] = iso(plan.last_unplanned_failover_time)
    shown = active if active is not None else (sim.jobs.get(plan.last_job) if plan.last_job else None)
    if shown is not None and shown.scenario.name not in ("CreateRecoveryPlan", "DeleteRecoveryPlan"):
        state = shown.state_at(now)
        props["currentScenario"] = {
            "scenarioName": shown.scenario.name,
            "jobId": v.job_id(shown.name),
            "startTime": iso(shown.created_at),
        }
        props["currentScenarioStatus"] = state
        props["currentScenarioStatusDescription"] = shown.state_description_at(now)
    return {
        "id": v.recovery_plan_id(plan.name),
        "name": plan.name,
        "type": f"{TYPE_PREFIX}/replicationRecoveryPlans",
        "location": TARGET_LOCATION,
        "properties": props,
    }


def supported_operating_systems(sim: Simulator, instance_type: str | None) -> dict[str, Any]:
    return {
        "name": "Default",
        "type": f"{TYPE_PREFIX}/replicationSupportedOperatingSystems",
        "id": f"{sim.vault.id}/replicationSupportedOperatingSystems/Default",
        "properties": {"supportedOsList": supported_os_list(instance_type)},
    }
