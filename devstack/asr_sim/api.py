"""ARM operation handlers: request in, (status, body, headers) out. One function per SDK operation id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devstack.asr_sim import arm, compute, offazure, render
from devstack.asr_sim.arm import API_VERSION
from devstack.asr_sim.engine import Simulator
from devstack.asr_sim.errors import ArmError, not_found
from devstack.asr_sim.jobs import FINISHED, Job


@dataclass
class Call:
    sim: Simulator
    now: datetime
    base_url: str
    params: dict[str, str]
    query: dict[str, str]
    body: dict[str, Any]

    @property
    def vault_url(self) -> str:
        v = self.sim.vault
        return (
            f"{self.base_url}/subscriptions/{v.subscription_id}/resourceGroups/{v.resource_group}"
            f"/providers/Microsoft.RecoveryServices/vaults/{v.name}"
        )


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Reply]


def _check_fabric(call: Call) -> None:
    if call.params["fabric"].lower() != arm.FABRIC_NAME.lower():
        raise not_found("replication fabric", call.params["fabric"])


def _check_container(call: Call) -> None:
    _check_fabric(call)
    if call.params["container"].lower() != arm.CONTAINER_NAME.lower():
        raise not_found("protection container", call.params["container"])


def _item_path(name: str) -> str:
    return (
        f"/replicationFabrics/{arm.FABRIC_NAME}/replicationProtectionContainers/{arm.CONTAINER_NAME}"
        f"/replicationProtectedItems/{name}"
    )


def accepted(call: Call, job: Job, resource_path: str) -> Reply:
    """ARM's long-running answer: both status URLs name the ASR job (see docs: how to get the job id)."""
    retry = str(call.sim.config.lro_retry_after_seconds)
    return Reply(
        202,
        None,
        {
            "Location": f"{call.vault_url}{resource_path}/operationResults/{job.name}?api-version={API_VERSION}",
            "Azure-AsyncOperation": f"{call.vault_url}/replicationOperationStatus/{job.name}?api-version={API_VERSION}",
            "Retry-After": retry,
            "x-ms-request-id": call.sim.vault.job_id(job.name),
        },
    )


def page(call: Call, path: str, values: list[Any]) -> Reply:
    size = call.sim.config.page_size
    try:
        skip = max(0, int(call.query.get("$skipToken") or 0))
    except ValueError as exc:
        raise ArmError(400, "InvalidSkipToken", "$skipToken is not one this service issued.") from exc
    body: dict[str, Any] = {"value": values[skip : skip + size]}
    if skip + size < len(values):
        body["nextLink"] = f"{call.vault_url}{path}?api-version={API_VERSION}&$skipToken={skip + size}"
    return Reply(200, body)


# ---------------------------------------------------------------------- infrastructure


def fabrics_list(call: Call) -> Reply:
    return Reply(200, {"value": [render.fabric(call.sim, call.now)]})


def fabrics_get(call: Call) -> Reply:
    _check_fabric(call)
    return Reply(200, render.fabric(call.sim, call.now))


def appliances_list(call: Call) -> Reply:
    return Reply(200, render.appliances(call.sim, call.now))


def containers_list(call: Call) -> Reply:
    return Reply(200, {"value": [render.container(call.sim)]})


def containers_by_fabric(call: Call) -> Reply:
    _check_fabric(call)
    return containers_list(call)


def containers_get(call: Call) -> Reply:
    _check_container(call)
    return Reply(200, render.container(call.sim))


def mappings_list(call: Call) -> Reply:
    return Reply(200, {"value": [render.mapping(call.sim)]})


def mappings_by_container(call: Call) -> Reply:
    _check_container(call)
    return mappings_list(call)


def mappings_get(call: Call) -> Reply:
    _check_container(call)
    if call.params["mapping"].lower() != arm.MAPPING_NAME.lower():
        raise not_found("protection container mapping", call.params["mapping"])
    return Reply(200, render.mapping(call.sim))


def policies_list(call: Call) -> Reply:
    return Reply(200, {"value": [render.policy(call.sim)]})


def policies_get(call: Call) -> Reply:
    if call.params["policy"].lower() != arm.POLICY_NAME.lower():
        raise not_found("replication policy", call.params["policy"])
    return Reply(200, render.policy(call.sim))


def supported_os(call: Call) -> Reply:
    return Reply(200, render.supported_operating_systems(call.sim, call.query.get("instanceType")))


# ---------------------------------------------------------------------- protectable items


def protectable_list(call: Call) -> Reply:
    _check_container(call)
    machines = [render.protectable_item(call.sim, m) for m in call.sim.discovered_machines()]
    path = f"/replicationFabrics/{arm.FABRIC_NAME}/replicationProtectionContainers/{arm.CONTAINER_NAME}"
    return page(call, f"{path}/replicationProtectableItems", machines)


def protectable_get(call: Call) -> Reply:
    _check_container(call)
    machine = call.sim.machine(call.params["protectable"])
    if not machine.discovered:
        raise not_found("protectable item", call.params["protectable"])
    return Reply(200, render.protectable_item(call.sim, machine))


# ---------------------------------------------------------------------- replicated items


def items_list(call: Call) -> Reply:
    values = [render.protected_item(call.sim, item, call.now) for item in call.sim.items.values()]
    return page(call, "/replicationProtectedItems", values)


def items_by_container(call: Call) -> Reply:
    _check_container(call)
    values = [render.protected_item(call.sim, item, call.now) for item in call.sim.items.values()]
    path = f"/replicationFabrics/{arm.FABRIC_NAME}/replicationProtectionContainers/{arm.CONTAINER_NAME}"
    return page(call, f"{path}/replicationProtectedItems", values)


def item_get(call: Call) -> Reply:
    _check_container(call)
    return Reply(200, render.protected_item(call.sim, call.sim.item(call.params["item"]), call.now))


def _item_operation(run: Callable[[Simulator, str, dict[str, Any], datetime], Job]) -> Handler:
    def handle(call: Call) -> Reply:
        _check_container(call)
        name = call.params["item"]
        job = run(call.sim, name, call.body, call.now)
        return accepted(call, job, _item_path(name))

    return handle


item_create = _item_operation(lambda sim, name, body, now: sim.enable(name, body, now))
item_update = _item_operation(lambda sim, name, body, now: sim.update(name, body, now))
item_purge = _item_operation(lambda sim, name, body, now: sim.purge(name, now))
item_test_failover = _item_operation(lambda sim, name, body, now: sim.test_failover(name, body, now))
item_cleanup = _item_operation(lambda sim, name, body, now: sim.test_failover_cleanup(name, body, now))
item_failover = _item_operation(lambda sim, name, body, now: sim.unplanned_failover(name, body, now))
item_commit = _item_operation(lambda sim, name, body, now: sim.commit(name, now))
item_remove = _item_operation(lambda sim, name, body, now: sim.remove(name, body, now))


def _operation_result(call: Call, job: Job, resource: Callable[[], Any | None], path: str) -> Reply:
    state = job.state_at(call.now)
    if state not in FINISHED:
        return Reply(
            202,
            None,
            {
                "Location": f"{call.vault_url}{path}/operationResults/{job.name}?api-version={API_VERSION}",
                "Retry-After": str(call.sim.config.lro_retry_after_seconds),
            },
        )
    if state == "Failed" and job.error is not None:
        raise ArmError(400, job.error.code, job.error.message)
    if state == "Cancelled":
        raise ArmError(400, "OperationCancelled", f"The job '{job.name}' was cancelled.")
    body = resource()
    return Reply(204) if body is None else Reply(200, body)


def item_operation_result(call: Call) -> Reply:
    _check_container(call)
    name = call.params["item"]
    job = call.sim.job(call.params["result"])

    def resource() -> Any | None:
        item = call.sim.items.get(name)
        return None if item is None else render.protected_item(call.sim, item, call.now)

    return _operation_result(call, job, resource, _item_path(name))


# ---------------------------------------------------------------------- jobs


def jobs_list(call: Call) -> Reply:
    sim = call.sim
    values = [render.job(sim, sim.jobs[name], call.now) for name in reversed(sim.job_order)]
    return page(call, "/replicationJobs", values)


def job_get(call: Call) -> Reply:
    return Reply(200, render.job(call.sim, call.sim.job(call.params["job"]), call.now))


def job_restart(call: Call) -> Reply:
    old = call.params["job"]
    restarted = call.sim.restart_job(old, call.now)
    # The new job is what the operation tracks: .../replicationJobs/{old}/operationResults/{new}.
    return accepted(call, restarted, f"/replicationJobs/{old}")


def _job_action(call: Call, job: Job) -> Reply:
    """Resume and cancel take effect at once; ASR still answers 202 with a Location naming the job."""
    location = f"{call.vault_url}/replicationJobs/{job.name}/operationResults/{job.name}?api-version={API_VERSION}"
    retry = str(call.sim.config.lro_retry_after_seconds)
    return Reply(
        202, None, {"Location": location, "Retry-After": retry, "x-ms-request-id": call.sim.vault.job_id(job.name)}
    )


def job_resume(call: Call) -> Reply:
    return _job_action(call, call.sim.resume_job(call.params["job"], call.now))


def job_cancel(call: Call) -> Reply:
    return _job_action(call, call.sim.cancel_job(call.params["job"], call.now))


def job_operation_result(call: Call) -> Reply:
    job = call.sim.job(call.params["result"])
    if call.params["job"] == job.name:
        # The result of a resume or cancel, which took effect when it was asked for.
        return Reply(200, render.job(call.sim, job, call.now))
    return _operation_result(
        call, job, lambda: render.job(call.sim, job, call.now), f"/replicationJobs/{call.params['job']}"
    )


def operation_status(call: Call) -> Reply:
    job = call.sim.job(call.params["result"])
    reply = Reply(200, render.operation_status(call.sim, job, call.now))
    if job.state_at(call.now) not in FINISHED:
        reply.headers["Retry-After"] = str(call.sim.config.lro_retry_after_seconds)
    return reply


# ---------------------------------------------------------------------- recovery plans


def plans_list(call: Call) -> Reply:
    sim = call.sim
    values = [render.recovery_plan(sim, plan, call.now) for plan in sim.plans.values() if plan.ready]
    return page(call, "/replicationRecoveryPlans", values)


def plan_get(call: Call) -> Reply:
    return Reply(200, render.recovery_plan(call.sim, call.sim.plan(call.params["plan"]), call.now))


def _plan_operation(run: Callable[[Simulator, str, dict[str, Any], datetime], Job]) -> Handler:
    def handle(call: Call) -> Reply:
        name = call.params["plan"]
        job = run(call.sim, name, call.body, call.now)
        return accepted(call, job, f"/replicationRecoveryPlans/{name}")

    return handle


plan_create = _plan_operation(lambda sim, name, body, now: sim.create_plan(name, body, now))
plan_delete = _plan_operation(lambda sim, name, body, now: sim.delete_plan(name, now))
plan_failover = _plan_operation(lambda sim, name, body, now: sim.plan_unplanned_failover(name, body, now))
plan_commit = _plan_operation(lambda sim, name, body, now: sim.plan_commit(name, now))


def plan_operation_result(call: Call) -> Reply:
    name = call.params["plan"]
    job = call.sim.job(call.params["result"])

    def resource() -> Any | None:
        plan = call.sim.plans.get(name)
        return None if plan is None else render.recovery_plan(call.sim, plan, call.now)

    return _operation_result(call, job, resource, f"/replicationRecoveryPlans/{name}")


HANDLERS: dict[str, Handler] = {
    "ReplicationFabrics_List": fabrics_list,
    "ReplicationFabrics_Get": fabrics_get,
    "ReplicationAppliances_List": appliances_list,
    "ReplicationProtectionContainers_List": containers_list,
    "ReplicationProtectionContainers_ListByReplicationFabrics": containers_by_fabric,
    "ReplicationProtectionContainers_Get": containers_get,
    "ReplicationProtectableItems_ListByReplicationProtectionContainers": protectable_list,
    "ReplicationProtectableItems_Get": protectable_get,
    "ReplicationProtectionContainerMappings_List": mappings_list,
    "ReplicationProtectionContainerMappings_ListByReplicationProtectionContainers": mappings_by_container,
    "ReplicationProtectionContainerMappings_Get": mappings_get,
    "ReplicationPolicies_List": policies_list,
    "ReplicationPolicies_Get": policies_get,
    "ReplicationProtectedItems_List": items_list,
    "ReplicationProtectedItems_ListByReplicationProtectionContainers": items_by_container,
    "ReplicationProtectedItems_Get": item_get,
    "ReplicationProtectedItems_Create": item_create,
    "ReplicationProtectedItems_Update": item_update,
    "ReplicationProtectedItems_Purge": item_purge,
    "ReplicationProtectedItems_TestFailover": item_test_failover,
    "ReplicationProtectedItems_TestFailoverCleanup": item_cleanup,
    "ReplicationProtectedItems_UnplannedFailover": item_failover,
    "ReplicationProtectedItems_FailoverCommit": item_commit,
    "ReplicationProtectedItems_Delete": item_remove,
    "ReplicationProtectedItems_OperationResults": item_operation_result,
    "ReplicationJobs_List": jobs_list,
    "ReplicationJobs_Get": job_get,
    "ReplicationJobs_Restart": job_restart,
    "ReplicationJobs_Resume": job_resume,
    "ReplicationJobs_Cancel": job_cancel,
    "ReplicationJobs_OperationResults": job_operation_result,
    "ReplicationOperationStatus_Get": operation_status,
    "ReplicationRecoveryPlans_List": plans_list,
    "ReplicationRecoveryPlans_Get": plan_get,
    "ReplicationRecoveryPlans_Create": plan_create,
    "ReplicationRecoveryPlans_Delete": plan_delete,
    "ReplicationRecoveryPlans_UnplannedFailover": plan_failover,
    "ReplicationRecoveryPlans_FailoverCommit": plan_commit,
    "ReplicationRecoveryPlans_OperationResults": plan_operation_result,
    "SupportedOperatingSystems_Get": supported_os,
    **offazure.HANDLERS,
    **compute.HANDLERS,
}
