"""Run Command (the validation gate's per-instance checks) through azure-mgmt-compute and the product's adapter
against the simulator over HTTPS: 202 + Location, 202 while the run lasts on the virtual clock, then 200 with the
RunCommandResult; a wrong body 400, an unknown VM 404, a second run while one is in progress 409; a fault makes one
check fail. No wall-clock waits: each look is one request, the clock is advanced by the test."""

from __future__ import annotations

import io

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.compute import models as compute

from migration.errors import NotFound, PreconditionFailed
from migration.events import VmChecks
from migration.vmchecks import read_results, script_for
from tests.integration.asr_sim.support import AsrDriver
from tests.integration.asr_sim.test_compute_sim import compute_client, failed_over, inspector, vm_id

CHECKS = VmChecks(tcp_ports=[443, 22], http_url="http://localhost:8080/health")


def test_the_adapter_starts_a_run_then_reads_its_result_after_it_ends(asr: AsrDriver) -> None:
    name = failed_over(asr, "10.41.0.1", "rc-a")
    script = script_for(CHECKS, "linux")
    assert script.command_id == "RunShellScript"
    vms = inspector(asr)
    started = vms.start_checks(vm_id(asr, name), script.command_id, script.script)
    assert started.state == "running"
    assert started.token
    # A second run while the first one is in progress: 409, and the adapter says PreconditionFailed.
    with pytest.raises(PreconditionFailed):
        vms.start_checks(vm_id(asr, name), script.command_id, script.script)
    still = vms.poll_checks(vm_id(asr, name), started.token)
    assert still.state == "running"
    asr.advance(20)
    done = vms.poll_checks(vm_id(asr, name), started.token)
    assert done.state == "done", done
    results = read_results(done.output, CHECKS)
    assert results.failed == ()
    assert results.missing == ()
    assert results.lines == ("tcp 443: ok (listening)", "tcp 22: ok (listening)",
                             "http http://localhost:8080/health: ok (HTTP 200)")  # fmt: skip
    # Done: a new run may be sent.
    again = vms.start_checks(vm_id(asr, name), script.command_id, script.script)
    assert again.state == "running"
    stats = asr.control.stats()
    assert stats.per_operation.get("VirtualMachines_RunCommand", 0) == 3


def test_a_fault_fails_one_check_in_the_guest(asr: AsrDriver) -> None:
    name = failed_over(asr, "10.41.0.2", "rc-b")
    asr.control.vm_fault("10.41.0.2", check_fail=("443",), check_seconds=40)
    script = script_for(CHECKS, "windows")
    assert script.command_id == "RunPowerShellScript"
    vms = inspector(asr)
    started = vms.start_checks(vm_id(asr, name), script.command_id, script.script)
    assert started.token
    asr.advance(20)
    assert vms.poll_checks(vm_id(asr, name), started.token).state == "running"
    asr.advance(20)
    done = vms.poll_checks(vm_id(asr, name), started.token)
    results = read_results(done.output, CHECKS)
    assert results.failed == ("tcp 443: FAILED (not listening)",)


def test_the_service_s_refusals_through_the_sdk(asr: AsrDriver) -> None:
    name = failed_over(asr, "10.41.0.3", "rc-c")
    client = compute_client(asr)
    with pytest.raises(HttpResponseError) as raised:
        client.virtual_machines.begin_run_command("aws2azure-target", name, io.BytesIO(b'{"script": ["echo hi"]}'),
                                                  polling=False)  # fmt: skip
    assert raised.value.status_code == 400
    assert raised.value.error is not None
    assert raised.value.error.code == "InvalidParameter"
    with pytest.raises(ResourceNotFoundError):
        client.virtual_machines.begin_run_command("aws2azure-target", "no-such-vm",
                                                  compute.RunCommandInput(command_id="RunShellScript"),
                                                  polling=False)  # fmt: skip
    with pytest.raises(NotFound):
        inspector(asr).start_checks(vm_id(asr, "no-such-vm"), "RunShellScript", ["echo hi"])
    client.virtual_machines.begin_run_command("aws2azure-target", name,
                                              compute.RunCommandInput(command_id="RunShellScript", script=["true"]),
                                              polling=False)  # fmt: skip
    with pytest.raises(ResourceExistsError) as conflict:
        client.virtual_machines.begin_run_command("aws2azure-target", name,
                                                  compute.RunCommandInput(command_id="RunShellScript"),
                                                  polling=False)  # fmt: skip
    assert conflict.value.status_code == 409
