"""The per-instance checks of the validation gate (aws2azure:check-tcp / aws2azure:check-http): the tags, the
request field, the Run Command script and its output, the gate step with a fake runner, and the gate's decision."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from pydantic import ValidationError

from aws_lambda.logic.intake import Intake, IntakeDependencies
from migration.errors import InvalidInput, PreconditionFailed
from migration.events import MigrationRequestedData, VmChecks
from migration.identity import InstanceRef
from migration.lifecycle import CHECK_FAILED_RUNS, Note, Phase, Stage, WorkflowState, after_validation
from migration.ports import CheckRun, VmCheckRunner, VmHealth
from migration.readiness import ApplianceLocation, InstanceDescription, SecurityRule
from migration.steps import MigrationSteps
from migration.tags import CHECK_HTTP, CHECK_TCP, MIGRATE, MigrationTags
from migration.vmchecks import read_results, script_for
from tests.fakes import FakeAsr, InMemoryStore, ManualClock
from tests.unit.test_phase_events import Announcer, Clock, Instances, Schedules, tag_change
from tests.unit.test_steps import INSTANCE, IP

URL = "http://localhost:8080/health"

# ---------------------------------------------------------------- tags


def test_the_check_tags_are_parsed() -> None:
    wanted = MigrationTags.from_tags({MIGRATE: "true", CHECK_TCP: " 443, 22,443 ", CHECK_HTTP: URL})
    assert wanted.check_tcp == (443, 22)
    assert wanted.check_http == URL
    assert MigrationTags.from_tags({MIGRATE: "true", CHECK_TCP: "", CHECK_HTTP: " "}).check_tcp == ()


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        (CHECK_TCP, "0", "is not a TCP port"),
        (CHECK_TCP, "65536", "is not a TCP port"),
        (CHECK_TCP, "https", "is not a TCP port"),
        (CHECK_TCP, "443;22", "is not a TCP port"),
        (CHECK_TCP, "1,2,3,4,5", "at most 4"),
        (CHECK_HTTP, "ftp://localhost/x", "is not an http(s) URL"),
        (CHECK_HTTP, "http://localhost/a b", "is not an http(s) URL"),
        (CHECK_HTTP, "http://localhost/'$(reboot)'", "is not an http(s) URL"),
        (CHECK_HTTP, "http://localhost/" + "a" * 200, "is not an http(s) URL"),
        (CHECK_HTTP, "http://localhost:99999/health", "port 99999 is not 1-65535"),
    ],
)
def test_a_bad_check_tag_is_refused_with_its_reason(key: str, value: str, words: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        MigrationTags.from_tags({MIGRATE: "true", key: value})
    assert words in str(raised.value)
    assert key in str(raised.value)


def test_every_bad_check_tag_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as raised:
        MigrationTags.from_tags({MIGRATE: "true", CHECK_TCP: "0", CHECK_HTTP: "gopher://x"})
    assert len(raised.value.problems) == 2


# ---------------------------------------------------------------- the request


def data(**extra: object) -> MigrationRequestedData:
    return MigrationRequestedData.model_validate(
        {"instance": INSTANCE, "private_ip": IP, "os_family": "linux", "request_id": "r-1", **extra}
    )


def test_a_request_without_checks_parses_and_is_written_as_before() -> None:
    old = data()
    assert old.checks is None
    assert "checks" not in old.model_dump_json(exclude_none=True)
    new = data(checks={"tcp_ports": [443], "http_url": URL})
    assert new.checks == VmChecks(tcp_ports=[443], http_url=URL)
    assert MigrationRequestedData.model_validate_json(new.model_dump_json()) == new


@pytest.mark.parametrize(
    "checks",
    [{"tcp_ports": [0]}, {"tcp_ports": [1, 2, 3, 4, 5]}, {"http_url": "file:///etc/passwd"}, {"ports": [443]}],
)
def test_the_request_refuses_checks_the_tags_would_refuse(checks: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        data(checks=checks)


@pytest.fixture
def _metrics_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    # The AWS logic counts with Powertools' EMF metrics, which need a namespace (the template sets it).
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "aws2azure-test")


class Queue:
    def __init__(self) -> None:
        self.events: list[object] = []

    def publish(self, event: object) -> None:
        self.events.append(event)


class ReadyInstances(Instances):
    """A running Linux instance whose security group lets it reach the appliance (everything out)."""

    def describe(self, instance: InstanceRef) -> InstanceDescription:
        egress = SecurityRule(group_id="sg-1", direction="egress", protocol="-1", cidrs=("0.0.0.0/0",))
        return (
            super().describe(instance).model_copy(update={"security_group_ids": ("sg-1",), "security_rules": (egress,)})
        )


def aws_intake(instances: Instances, queue: Queue) -> Intake:
    return Intake(IntakeDependencies(inventory=instances, tags=instances, schedules=Schedules(), publisher=queue,
                                     appliance=ApplianceLocation(cidr="10.0.200.0/28"), clock=Clock(),
                                     agent_install="manual", announcer=Announcer()))  # fmt: skip


@pytest.mark.usefixtures("_metrics_namespace")
def test_the_aws_intake_carries_the_checks_in_the_request() -> None:
    instances, queue = ReadyInstances({MIGRATE: "true", CHECK_TCP: "443", CHECK_HTTP: URL}, state="running"), Queue()
    outcome = aws_intake(instances, queue).handle(tag_change([MIGRATE]))
    assert outcome.action != "not-ready", outcome.reason
    [event] = queue.events
    assert event.data.checks == VmChecks(tcp_ports=[443], http_url=URL)  # type: ignore[attr-defined]


@pytest.mark.usefixtures("_metrics_namespace")
def test_the_aws_intake_marks_an_instance_with_a_bad_check_tag_not_ready_with_the_reason() -> None:
    instances, queue = ReadyInstances({MIGRATE: "true", CHECK_TCP: "80,http"}, state="running"), Queue()
    outcome = aws_intake(instances, queue).handle(tag_change([CHECK_TCP]))
    assert outcome.action == "not-ready"
    assert CHECK_TCP in outcome.reason
    assert queue.events == []
    assert instances.tags["aws2azure:status"] == "NotReady"


# ---------------------------------------------------------------- the script and its output

CHECKS = VmChecks(tcp_ports=[443, 22], http_url=URL)


def test_linux_and_windows_scripts() -> None:
    linux = script_for(CHECKS, "linux")
    windows = script_for(CHECKS, "windows")
    assert (linux.command_id, windows.command_id) == ("RunShellScript", "RunPowerShellScript")
    assert linux.script[0] == windows.script[0] == f"# aws2azure-checks tcp=443,22 http={URL}"
    assert "/dev/tcp/127.0.0.1/443" in linux.script[1]
    assert f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 '{URL}'" in linux.script[3]
    assert "Test-NetConnection -ComputerName localhost -Port 22" in windows.script[2]
    assert f"Invoke-WebRequest -Uri '{URL}'" in windows.script[3]


def test_the_output_is_read_per_check() -> None:
    output = (
        "Enable succeeded: \n[stdout]\naws2azure-check tcp 443 ok listening\n"
        f"aws2azure-check tcp 22 fail not listening\nnoise\naws2azure-check http {URL} ok HTTP 204\n[stderr]\n"
    )
    results = read_results(output, CHECKS)
    assert results.failed == ("tcp 22: FAILED (not listening)",)
    assert results.missing == ()
    assert results.lines[2] == f"http {URL}: ok (HTTP 204)"
    assert read_results("aws2azure-check tcp 443 ok x", CHECKS).missing == ("tcp 22", f"http {URL}")


# ---------------------------------------------------------------- the gate step


class CheckingVms:
    """A VM whose instance view passes, and a Run Command whose runs take one more look each."""

    def __init__(self, outputs: list[str], conflicts: int = 0) -> None:
        self.outputs = outputs
        self.conflicts = conflicts
        self.started: list[tuple[str, tuple[str, ...]]] = []
        self.polls = 0

    def inspect(self, vm_id: str) -> VmHealth:
        return VmHealth.judge(vm_id, provisioning_state="succeeded", power_state="running", agent_status="Ready")

    def delete(self, vm_id: str) -> bool:  # pragma: no cover - not used here
        return True

    def start_checks(self, vm_id: str, command_id: str, script: Sequence[str]) -> CheckRun:
        if self.conflicts:
            self.conflicts -= 1
            raise PreconditionFailed("run the checks: Compute answered 409 Conflict", code="Conflict")
        self.started.append((command_id, tuple(script)))
        return CheckRun(state="running", token=f"token-{len(self.started)}")

    def poll_checks(self, vm_id: str, token: str) -> CheckRun:
        self.polls += 1
        assert token == f"token-{len(self.started)}"
        return CheckRun(state="done", output=self.outputs[len(self.started) - 1])


ALL_OK = f"aws2azure-check tcp 443 ok listening\naws2azure-check http {URL} ok HTTP 200"
PORT_DOWN = f"aws2azure-check tcp 443 fail not listening\naws2azure-check http {URL} ok HTTP 200"


def gate(vms: CheckingVms, checks: VmChecks | None) -> tuple[MigrationSteps, str, InMemoryStore]:
    store, asr, clock = InMemoryStore(), FakeAsr(), ManualClock()
    asr.add_machine(IP)
    steps = MigrationSteps(store, asr, clock, default_subnet="workloads", vms=vms,
                           target_resource_group_id="/subscriptions/s/resourceGroups/aws2azure-target")  # fmt: skip
    migration_id = steps.register(data(checks=checks.model_dump() if checks else None)).migration_id
    steps.start_replication(migration_id)
    asr.protect("machine-1")
    steps.observe_replication(migration_id)
    steps.record_phase(migration_id, Phase.READY_FOR_CUTOVER)
    steps.record_phase(migration_id, Phase.AWAITING_CUTOVER)
    steps.start_failover(migration_id)
    asr.failover_done("machine-1")
    steps.record_phase(migration_id, Phase.VALIDATING)
    return steps, migration_id, store


def test_the_runner_port_is_what_the_fake_implements() -> None:
    assert isinstance(CheckingVms([]), VmCheckRunner)


def test_checks_are_sent_once_then_read_and_pass() -> None:
    vms = CheckingVms([ALL_OK])
    steps, migration_id, store = gate(vms, VmChecks(tcp_ports=[443], http_url=URL))
    first = steps.validate_failover(migration_id)
    assert first.verdict == "pending"
    assert first.findings == ("the checks are running in the VM (Run Command)",)
    record = store.get(migration_id)
    assert record.validation is not None
    assert record.validation.run_command == "token-1"
    assert record.reason == "validating the failed-over VM: the checks are running in the VM (Run Command)"
    second = steps.validate_failover(migration_id)
    assert second.passed, second.findings
    assert second.checks == ("tcp 443: ok (listening)", f"http {URL}: ok (HTTP 200)")
    assert "checks: tcp 443: ok" in second.summary()
    assert [c for c, _ in vms.started] == ["RunShellScript"]  # one run, polled once: never a second one in flight
    assert vms.polls == 1
    saved = store.get(migration_id).validation
    assert saved is not None
    assert saved.run_command is None
    assert saved.checks == list(second.checks)


def test_a_record_without_checks_never_runs_a_command() -> None:
    vms = CheckingVms([])
    steps, migration_id, _ = gate(vms, None)
    assert steps.validate_failover(migration_id).passed
    assert vms.started == []


def test_a_conflict_is_pending_and_the_next_look_sends_the_run() -> None:
    vms = CheckingVms([ALL_OK], conflicts=1)
    steps, migration_id, store = gate(vms, VmChecks(tcp_ports=[443], http_url=URL))
    busy = steps.validate_failover(migration_id)
    assert busy.verdict == "pending"
    assert "the checks could not run yet" in busy.findings[0]
    assert store.get(migration_id).validation.run_command is None  # type: ignore[union-attr]
    assert steps.validate_failover(migration_id).verdict == "pending"  # sent now
    assert steps.validate_failover(migration_id).passed


def test_a_check_that_keeps_failing_fails_the_gate_and_the_decision_rolls_back() -> None:
    vms = CheckingVms([PORT_DOWN] * CHECK_FAILED_RUNS)
    steps, migration_id, store = gate(vms, VmChecks(tcp_ports=[443], http_url=URL))
    looks: list[VmHealth] = []
    for _ in range(CHECK_FAILED_RUNS):
        looks.append(steps.validate_failover(migration_id))  # sent
        looks.append(steps.validate_failover(migration_id))  # read
    assert [h.verdict for h in looks] == ["pending"] * (2 * CHECK_FAILED_RUNS - 1) + ["failed"]
    assert "run 1 of 3 found a check failed; running them again" in looks[1].findings
    health = looks[-1]
    assert health.findings == ("check tcp 443: FAILED (not listening)",)
    assert len(vms.started) == CHECK_FAILED_RUNS
    assert store.get(migration_id).phase is Phase.VALIDATING

    state = WorkflowState.model_validate({"request": store.get(migration_id).request.model_dump(mode="json")})
    state.stage = Stage.VALIDATE
    now = ManualClock().now()
    decision = after_validation(state, health, None, now + timedelta(minutes=5))
    notes = [c for c in decision.commands if isinstance(c, Note)]
    assert notes[0].kind == "ValidationFailed"
    assert "check tcp 443: FAILED" in notes[0].message
    assert state.stage is Stage.ROLLBACK  # rolled back, never committed


def test_a_passing_run_after_a_failed_one_commits() -> None:
    vms = CheckingVms([PORT_DOWN, ALL_OK])
    steps, migration_id, _ = gate(vms, VmChecks(tcp_ports=[443], http_url=URL))
    steps.validate_failover(migration_id)
    failed_once = steps.validate_failover(migration_id)
    assert failed_once.verdict == "pending"
    assert failed_once.failed_runs == 1
    steps.validate_failover(migration_id)
    passed = steps.validate_failover(migration_id)
    assert passed.passed
    assert passed.failed_runs == 0


def test_a_retry_after_a_failed_gate_counts_the_failed_runs_afresh() -> None:
    vms = CheckingVms([PORT_DOWN] * (CHECK_FAILED_RUNS + 1))
    steps, migration_id, _ = gate(vms, VmChecks(tcp_ports=[443], http_url=URL))
    for _ in range(CHECK_FAILED_RUNS):
        steps.validate_failover(migration_id)
        last = steps.validate_failover(migration_id)
    assert last.verdict == "failed"
    steps.validate_failover(migration_id)  # the retry's gate sends a new run
    again = steps.validate_failover(migration_id)
    assert again.verdict == "pending"
    assert again.failed_runs == 1
