"""The real SDK against the running simulator: the migration walk, refusals, every fault kind as the SDK
sees it, its own pollers (and continuation tokens), the counters, the launcher, and speed."""

from __future__ import annotations

import ssl
import statistics
import time
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from devstack.asr_sim.contract import AsrErrorSpec, FaultRule, SimConfig
from devstack.asr_sim.control import SimulatorControl, job_name_from_operation_url
from devstack.launcher import Stack
from devstack.settings import AsrEndpoint
from tests.integration.asr_sim.support import AsrDriver, make_client

pytestmark = pytest.mark.integration


def error_of(exc: HttpResponseError) -> tuple[int, str]:
    assert exc.status_code is not None
    assert exc.error is not None
    return exc.status_code, str(exc.error.code)


def provider_details(asr: AsrDriver, item: str) -> Any:
    props = asr.item(item).properties
    assert props is not None
    return props.provider_specific_details


def headers_of(exc: HttpResponseError) -> Any:
    assert exc.response is not None
    return cast(Any, exc.response).headers


def state(asr: AsrDriver, item: str) -> tuple[str, list[str]]:
    props = asr.item(item).properties
    assert props is not None
    return str(props.protection_state), list(props.allowed_operations or [])


# ---------------------------------------------------------------------- the walk and the refusals


def test_migration_walk_through_the_sdk(asr: AsrDriver) -> None:
    machine = asr.seed("10.30.0.1", disks=(20, 40), churn_mb_per_day=5_000)
    job = asr.enable("vm1", machine)
    assert state(asr, "vm1") == ("EnablingProtection", [])
    assert asr.finish_job(job) == "Succeeded"
    assert state(asr, "vm1") == ("InitialReplicationInProgress", ["DisableProtection"])
    details = provider_details(asr, "vm1")
    assert details.instance_type == "InMageRcm"
    assert 0 <= details.initial_replication_progress_percentage < 100
    asr.until(lambda: state(asr, "vm1")[0] == "Protected")
    assert state(asr, "vm1") == ("Protected", ["UnplannedFailover", "DisableProtection", "TestFailover"])
    details = provider_details(asr, "vm1")
    assert details.initial_replication_progress_percentage == 100
    assert details.last_rpo_in_seconds is not None
    items = asr.client.replication_protected_items
    asr.run(items.begin_test_failover, "vm1", asr.test_failover_body())
    assert state(asr, "vm1") == ("Protected", ["TestFailoverCleanup"])
    asr.run(items.begin_test_failover_cleanup, "vm1", {"properties": {"comments": "ok"}})
    asr.run(items.begin_unplanned_failover, "vm1", asr.failover_body())
    assert state(asr, "vm1") == (
        "UnplannedFailoverCommitPendingStatesBegin",
        ["CompleteMigration", "Commit", "DisableProtection", "ChangePit"],
    )
    assert asr.item("vm1").properties.active_location == "Recovery"  # type: ignore[union-attr]
    asr.run(items.begin_failover_commit, "vm1")
    assert state(asr, "vm1")[0] == "UnplannedFailoverCommitted"
    asr.run(items.begin_delete, "vm1", {"properties": {"disableProtectionReason": "MigrationComplete"}})
    with pytest.raises(ResourceNotFoundError):
        asr.item("vm1")


def test_illegal_operations_get_arm_errors(asr: AsrDriver) -> None:
    machine = asr.seed("10.30.0.2")
    asr.enable("vm2", machine)
    items = asr.client.replication_protected_items
    with pytest.raises(HttpResponseError) as busy:
        items.begin_unplanned_failover(*asr.scope, "vm2", asr.failover_body(), polling=False)
    assert error_of(busy.value) == (409, "ReplicationOperationInProgress")
    asr.finish_job(asr.job_of_last_call())
    with pytest.raises(HttpResponseError) as early:
        items.begin_unplanned_failover(*asr.scope, "vm2", asr.failover_body(), polling=False)
    assert error_of(early.value) == (400, "OperationNotAllowedInCurrentState")
    assert "InitialReplicationInProgress" in str(early.value.message)
    with pytest.raises(HttpResponseError) as again:
        items.begin_create(*asr.scope, "vm2", asr.enable_body(machine), polling=False)
    assert error_of(again.value) == (409, "ReplicationProtectedItemAlreadyExists")
    with pytest.raises(ResourceNotFoundError):
        asr.item("no-such-item")
    stats = asr.control.stats()
    assert stats.failover_requests == {"vm2": 2}
    assert stats.failovers_started == {}


def test_unknown_api_version_is_refused_with_arms_error(asr: AsrDriver, asr_endpoint: AsrEndpoint) -> None:
    old = make_client(asr_endpoint, api_version="2021-06-01")
    with pytest.raises(HttpResponseError) as refused:
        old.replication_fabrics.get(asr.rg, asr.vault, asr.infra.fabric_name)
    assert error_of(refused.value) == (400, "NoRegisteredProviderFound")
    tls = ssl.create_default_context(cafile=asr_endpoint.ca_cert)
    vault_url = f"{asr_endpoint.base_url}/subscriptions/{asr_endpoint.subscription_id}/resourceGroups/{asr.rg}"
    vault_url += f"/providers/Microsoft.RecoveryServices/vaults/{asr.vault}/replicationFabrics"
    with httpx.Client(verify=tls) as raw:
        missing = raw.get(vault_url, headers={"Authorization": "Bearer x"})
        unauthenticated = raw.get(vault_url, params={"api-version": "2025-08-01"})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
    assert unauthenticated.status_code == 401


# ---------------------------------------------------------------------- faults as the SDK sees them


def test_throttling_is_a_429_with_retry_after(asr: AsrDriver) -> None:
    asr.control.set_faults(run=FaultRule(throttle_rate=1.0, throttle_retry_after_seconds=7))
    with pytest.raises(HttpResponseError) as throttled:
        asr.client.replication_fabrics.get(asr.rg, asr.vault, asr.infra.fabric_name)
    assert error_of(throttled.value) == (429, "TooManyRequests")
    assert headers_of(throttled.value)["Retry-After"] == "7"
    assert asr.control.stats().throttled_429 == 1


def test_server_errors_are_500_and_503(asr: AsrDriver) -> None:
    asr.control.set_faults(run=FaultRule(server_error_rate=1.0))
    seen = set()
    for _ in range(4):
        with pytest.raises(HttpResponseError) as broken:
            asr.client.replication_fabrics.get(asr.rg, asr.vault, asr.infra.fabric_name)
        seen.add(broken.value.status_code)
    assert seen == {500, 503}
    assert asr.control.stats().server_errors_5xx == 4


def test_a_5xx_after_the_effect_still_started_the_failover(asr: AsrDriver) -> None:
    machine = asr.seed("10.30.0.3", disks=(8,))
    asr.protect("vm3", machine)
    rule = FaultRule(
        server_error_rate=1.0, server_error_statuses=(500,), server_errors_after_effect=True, scope="writes"
    )
    asr.control.set_faults(machines={machine: rule})
    with pytest.raises(HttpResponseError) as broken:
        asr.client.replication_protected_items.begin_unplanned_failover(
            *asr.scope, "vm3", asr.failover_body(), polling=False
        )
    assert broken.value.status_code == 500
    assert state(asr, "vm3") == ("UnplannedFailoverInProgress", [])
    assert asr.control.stats().failovers_started == {"vm3": 1}


def test_slow_responses_are_slow(asr: AsrDriver) -> None:
    asr.control.set_faults(run=FaultRule(slow_response_ms=250))
    started = time.perf_counter()
    asr.client.replication_fabrics.get(asr.rg, asr.vault, asr.infra.fabric_name)
    assert time.perf_counter() - started >= 0.25


def test_faults_can_target_one_machine(asr: AsrDriver) -> None:
    target = asr.seed("10.30.0.4")
    other = asr.seed("10.30.0.5")
    asr.control.set_faults(machines={"10.30.0.4": FaultRule(throttle_rate=1.0)})
    protectables = asr.client.replication_protectable_items
    with pytest.raises(HttpResponseError) as throttled:
        protectables.get(*asr.scope, target)
    assert throttled.value.status_code == 429
    assert protectables.get(*asr.scope, other).name == other


def test_failed_job_reports_the_asr_error(asr: AsrDriver) -> None:
    machine = asr.seed("10.30.0.6")
    error = AsrErrorSpec(code="78007", message="The mobility service could not be reached.")
    asr.control.set_faults(run=FaultRule(job_failure_rate=1.0, job_failure_error=error))
    job = asr.enable("vm6", machine)
    assert asr.finish_job(job) == "Failed"
    props = asr.job(job).properties
    assert props is not None
    assert props.errors is not None
    assert props.errors[0].service_error_details is not None
    assert props.errors[0].service_error_details.code == "78007"
    assert props.allowed_actions == ["Restart"]
    assert state(asr, "vm6") == ("EnablingFailed", ["DisableProtection"])
    asr.control.clear_faults()
    poller = asr.client.replication_jobs.begin_restart(
        asr.rg, asr.vault, job, polling=False, raw_response_hook=asr.capture
    )
    assert poller is not None
    assert asr.finish_job(asr.job_of_last_call()) == "Succeeded"


def test_stalled_replication_is_critical_with_no_progress(asr: AsrDriver) -> None:
    machine = asr.seed("10.30.0.7", disks=(500,))
    asr.finish_job(asr.enable("vm7", machine))
    asr.advance(600)
    asr.control.set_faults(machines={machine: FaultRule(stalled=True)})
    before = provider_details(asr, "vm7")
    asr.advance(86_400)
    props = asr.item("vm7").properties
    assert props is not None
    details: Any = props.provider_specific_details
    assert props.replication_health == "Critical"
    assert details.initial_replication_progress_health == "NoProgress"
    assert details.initial_replication_processed_bytes == before.initial_replication_processed_bytes
    assert props.health_errors is not None
    assert props.health_errors[0].error_code == "78161"


def test_unsupported_os_shows_on_the_machine_and_fails_enablement(asr: AsrDriver) -> None:
    machine = asr.seed("10.30.0.8", os_name="Amazon Linux 2")
    props = asr.client.replication_protectable_items.get(*asr.scope, machine).properties
    assert props is not None
    assert props.supported_replication_providers == []
    assert props.protection_readiness_errors
    os_list = asr.client.supported_operating_systems.get(asr.rg, asr.vault, instance_type="InMageRcm")
    listed: Any = os_list.properties
    names = {entry.os_name for entry in listed.supported_os_list[0].supported_os}
    assert "Ubuntu" in names
    assert not any("Amazon" in str(n) for n in names)
    job = asr.enable("vm8", machine)
    assert asr.finish_job(job) == "Failed"
    errors = asr.job(job).properties.errors  # type: ignore[union-attr]
    assert errors is not None
    assert errors[0].service_error_details.code == "78180"  # type: ignore[union-attr]


def test_write_budget_throttles_bursts(asr: AsrDriver) -> None:
    machines = [asr.seed(f"10.30.1.{i}", disks=(8,)) for i in range(4)]
    asr.control.set_faults(max_writes_per_second=2, write_budget_retry_after_seconds=3)
    statuses: list[int | None] = []
    retry_after: set[str] = set()
    for index, machine in enumerate(machines):
        try:
            asr.enable(f"burst-{index}", machine)
            statuses.append(202)
        except HttpResponseError as exc:
            statuses.append(exc.status_code)
            retry_after.add(headers_of(exc)["Retry-After"])
    assert retry_after == {"3"}
    assert statuses[:2] == [202, 202]
    assert 429 in statuses[2:]
    stats = asr.control.stats()
    assert stats.peak_writes_per_second() >= 3  # attempts, throttled ones included
    assert stats.per_operation["ReplicationProtectedItems_Create"] == 4


def test_suspended_job_resumes_and_cancel_works(asr: AsrDriver) -> None:
    asr.control.set_faults(suspend_scenarios=("EnableDr",))
    job = asr.enable("vm9", asr.seed("10.30.0.9"))
    asr.advance(3600)
    assert asr.job(job).properties.state == "Suspended"  # type: ignore[union-attr]
    resumed = asr.client.replication_jobs.begin_resume(asr.rg, asr.vault, job, {"properties": {}}).result()
    assert resumed.properties.state == "InProgress"  # type: ignore[union-attr]
    cancelled = asr.client.replication_jobs.begin_cancel(asr.rg, asr.vault, job).result()
    assert cancelled.properties.state == "Cancelled"  # type: ignore[union-attr]
    assert state(asr, "vm9") == ("EnablingFailed", ["DisableProtection"])


# ---------------------------------------------------------------------- the SDK's own pollers


def drive(asr: AsrDriver, poller: Any, *, step: float = 120.0) -> Any:
    """Advance the virtual clock while the SDK's poller thread polls, until it finishes."""
    for _ in range(10_000):
        if poller.done():
            break
        asr.advance(step)
        poller.wait(0.01)
    return poller.result()


def test_begin_create_poller_completes(asr: AsrDriver) -> None:
    machine = asr.seed("10.30.2.1", disks=(8,))
    poller = asr.client.replication_protected_items.begin_create(*asr.scope, "polled", asr.enable_body(machine))
    item = drive(asr, poller)
    assert item.name == "polled"
    assert item.properties.protection_state == "InitialReplicationInProgress"


def test_failover_poller_completes_and_a_failed_job_raises(asr: AsrDriver) -> None:
    machine = asr.seed("10.30.2.2", disks=(8,))
    asr.protect("polled-fo", machine)
    items = asr.client.replication_protected_items
    item = drive(asr, items.begin_unplanned_failover(*asr.scope, "polled-fo", asr.failover_body()))
    assert item.properties.protection_state == "UnplannedFailoverCommitPendingStatesBegin"
    asr.control.set_faults(run=FaultRule(job_failure_rate=1.0))
    with pytest.raises(HttpResponseError):
        drive(asr, items.begin_failover_commit(*asr.scope, "polled-fo"))


def test_poller_resumes_from_a_continuation_token(asr: AsrDriver, asr_endpoint: AsrEndpoint) -> None:
    machine = asr.seed("10.30.2.3", disks=(8,))
    asr.protect("resumed", machine)
    body = asr.test_failover_body()
    responses: list[dict[str, str]] = []
    first = asr.client.replication_protected_items.begin_test_failover(
        *asr.scope, "resumed", body, raw_response_hook=lambda r: responses.append(dict(r.http_response.headers))
    )
    token = first.continuation_token()  # (NoPolling, i.e. polling=False, cannot make one in azure-core)
    job = job_name_from_operation_url(responses[0]["Azure-AsyncOperation"])
    other = make_client(asr_endpoint)  # another worker, later
    resumed = other.replication_protected_items.begin_test_failover(
        *asr.scope, "resumed", body, continuation_token=token
    )
    item = drive(asr, resumed)
    assert item.properties.test_failover_state == "WaitingForCompletion"
    assert asr.job(job).properties.state == "Succeeded"  # type: ignore[union-attr]
    assert drive(asr, first).name == "resumed"
    other.close()


# ---------------------------------------------------------------------- counters, log, paging, launcher, speed


def test_counters_and_request_log(asr: AsrDriver) -> None:
    machine = asr.seed("10.30.3.1")
    asr.enable("counted", machine)
    for _ in range(3):
        asr.item("counted")
    stats = asr.control.stats()
    assert (stats.reads, stats.writes, stats.total_requests) == (3, 1, 4)
    assert stats.per_operation == {"ReplicationProtectedItems_Create": 1, "ReplicationProtectedItems_Get": 3}
    assert stats.per_machine == {machine: 4}
    log = asr.control.requests()
    assert [r.operation for r in log] == ["ReplicationProtectedItems_Create"] + ["ReplicationProtectedItems_Get"] * 3
    assert [r.status for r in log] == [202, 200, 200, 200]
    assert asr.control.requests(since=3) == log[3:]


def test_lists_page_with_next_links(asr: AsrDriver) -> None:
    asr.control.configure(SimConfig(lro_retry_after_seconds=0, page_size=3))
    for index in range(7):
        asr.enable(f"paged-{index}", asr.seed(f"10.30.4.{index}", disks=(8,)))
    listed = list(asr.client.replication_protected_items.list(asr.rg, asr.vault))
    assert sorted(str(i.name) for i in listed) == [f"paged-{i}" for i in range(7)]
    jobs = list(asr.client.replication_jobs.list(asr.rg, asr.vault))
    assert len(jobs) == 7
    assert asr.control.stats().per_operation["ReplicationProtectedItems_List"] == 3


def test_starts_and_stops_under_the_launcher(tmp_path_factory: pytest.TempPathFactory) -> None:
    stack = Stack(tmp_path_factory.mktemp("asr-launch"))
    settings = stack.up(["asr"])
    try:
        assert settings.asr is not None
        assert settings.asr.base_url.startswith("https://127.0.0.1:")
        pid = stack.running()["asr"]
        with SimulatorControl.from_endpoint(settings.asr) as control:
            assert control.health()["ok"] is True
            infra = control.infrastructure()
        assert (infra.resource_group, infra.vault_name) == ("aws2azure-rg", "aws2azure-vault")
    finally:
        assert stack.down() == ["asr"]
    assert stack.running() == {}
    assert not Path(f"/proc/{pid}").exists()  # stopped and reaped


def test_a_get_takes_a_couple_of_milliseconds(asr: AsrDriver) -> None:
    for index in range(50):
        asr.enable(f"fast-{index}", asr.seed(f"10.30.5.{index}", disks=(8,)))
    asr.advance(3600)
    asr.control.reset()
    started = time.perf_counter()
    for index in range(300):
        asr.item(f"fast-{index % 50}")
    client_ms = (time.perf_counter() - started) * 1000 / 300
    server_ms = [r.duration_ms for r in asr.control.requests()]
    assert statistics.median(server_ms) < 2.0, statistics.median(server_ms)
    assert client_ms < 20.0, client_ms  # SDK, TLS and HTTP parsing included; typically 2-3 ms
