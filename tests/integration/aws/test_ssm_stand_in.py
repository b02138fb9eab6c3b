"""Issue 15 on the local stack: the SSM stand-in is as strict as the service, an install registers the machine
with the appliance's discovery, a failed install ends Failed with its output's tail, and EC2 state-change events
(which moto never emits) drive the failover; a stop that never completes is reported by the follow-up instead.

The Lambdas run in-process with their real handlers against moto, Azurite, the ASR simulator and the SSM
stand-in; time is the stack's virtual clock, moved by the test (no fixed sleeps: waits follow the stand-in).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, Literal

import boto3
import pytest
from azure.storage.queue import QueueClient
from botocore.exceptions import ClientError

from devstack.asr_sim.control import SimulatorControl
from devstack.aws_local import QUEUE_NAME, SCHEDULER_GROUP, provision
from devstack.clock import FileClock, clock_environment
from devstack.ec2_events import CUTOVER_RULE_PATTERN, Ec2StateChanges
from devstack.launcher import Stack
from devstack.ssm_sim.contract import FaultPlan, ManagedNode, SsmDocument
from devstack.ssm_sim.control import TEMPLATE, SsmSimControl, SsmSimControlError, install_document
from migration.events import FailoverRequested
from migration.tags import AGENT, CUTOVER_AT, CUTOVER_STOP, MIGRATE, REASON, STATUS
from tests.integration.aws.aws_test_support import AMI_UBUNTU, AMI_WINDOWS, LocalAws, QueueReader

pytestmark = pytest.mark.integration
SYNC_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event"}


class World:
    def __init__(self, aws: LocalAws, ssm: SsmSimControl, asr: SimulatorControl, clock: FileClock) -> None:
        self.aws, self.ssm, self.asr, self.clock = aws, ssm, asr, clock
        self.intake = aws.handler("intake")
        self.cutover = aws.handler("cutover")
        self.status_sync = aws.handler("status_sync")
        self.group = aws.workload_group("ssm-workload", ingress=[])

    def managed(
        self, image: str = AMI_UBUNTU, *, os_type: Literal["Linux", "Windows"] = "Linux", seed_asr: bool = True
    ) -> str:
        instance_id = self.aws.launch(image, groups=[self.group])
        raw = self.aws.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        ip = raw["PrivateIpAddress"]
        self.ssm.add_node(ManagedNode(instance_id=instance_id, platform_type=os_type,
                                      platform_name="Ubuntu" if os_type == "Linux" else "Windows Server 2016",
                                      ip_address=ip, computer_name=f"ip-{ip.replace('.', '-')}"))  # fmt: skip
        if seed_asr:
            self.asr.seed_machine(ip, os_type, "Ubuntu 22.04 LTS" if os_type == "Linux" else
                                  "Windows Server 2016 Datacenter", [64], friendly_name=instance_id,
                                  agent_registered=False)  # fmt: skip
        return instance_id

    def request(self, instance_id: str, **tags: str) -> dict[str, Any]:
        self.aws.set_tags(instance_id, {MIGRATE: "true", **tags})
        outcome = self.aws.invoke(self.intake, self.aws.tag_change(instance_id, [MIGRATE, *tags]))
        assert outcome["action"] == "requested", outcome
        return outcome

    def finish_installs(self, *instance_ids: str, timeout: float = 60) -> None:
        """Move virtual time past the install and wait, on the stand-in's own answer, until each has ended."""
        self.clock.advance_by(self.ssm.faults().install_seconds + 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ended = {i.instance_id for i in self.ssm.invocations() if i.status not in ("Pending", "InProgress")}
            if set(instance_ids) <= ended:
                return
            time.sleep(0.05)
        raise AssertionError(f"installs on {instance_ids} did not end: {self.ssm.invocations()}")

    def discovered(self, instance_id: str) -> bool:
        return any(m.friendly_name == instance_id and m.discovered for m in self.asr.machines())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    stack = Stack(tmp_path_factory.mktemp("ssm-stack"))
    settings = stack.up(["moto", "azurite", "asr", "ssm"], quiet=True)
    try:
        assert settings.ssm is not None
        assert settings.asr is not None
        assert settings.moto is not None
        side = provision(settings)
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                        region_name=side.region)  # fmt: skip
        reader = QueueReader(
            QueueClient.from_connection_string(settings.azurite.connection_string, QUEUE_NAME)  # type: ignore[union-attr]
        )
        aws = LocalAws(stack=settings, side=side, ec2=session.client("ec2", endpoint_url=settings.moto.url),
                       queue=reader, session=session)  # fmt: skip
        aws.set_env(side.lambda_environment() | clock_environment(settings.clock_file))
        with SsmSimControl(settings.ssm.url) as ssm, SimulatorControl.from_endpoint(settings.asr) as asr:
            try:
                yield World(aws, ssm, asr, FileClock(settings.clock_file))
            finally:
                aws.restore_env()
    finally:
        stack.down(quiet=True)


@pytest.fixture
def ssm_client(world: World) -> Any:
    return world.aws.session.client("ssm", endpoint_url=world.aws.side.ssm_url)


def _code(call: Callable[[], object]) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


# ---------------------------------------------------------------- strict as the service


def test_the_lambdas_are_pointed_at_the_stand_in_and_install_through_ssm(world: World) -> None:
    environment = world.aws.side.lambda_environment()
    assert environment["AWS_ENDPOINT_URL_SSM"] == world.aws.side.ssm_url
    assert environment["AGENT_INSTALL"] == "ssm"
    assert environment["AGENT_INSTALL_DOCUMENT"] == "MobilityInstall-aws2azure"


def test_send_command_refuses_what_ssm_refuses(world: World, ssm_client: Any) -> None:
    managed = world.managed(seed_asr=False)
    unmanaged = world.aws.launch(AMI_UBUNTU, groups=[world.group])
    document = world.aws.side.install_document

    assert _code(lambda: ssm_client.send_command(InstanceIds=[managed], DocumentName="NoSuchDocument")) == (
        "InvalidDocument"
    )
    assert _code(lambda: ssm_client.send_command(InstanceIds=[unmanaged], DocumentName=document)) == (
        "InvalidInstanceId"
    )
    fifty_one = [f"i-{n:017x}" for n in range(51)]
    assert _code(lambda: ssm_client.send_command(InstanceIds=fifty_one, DocumentName=document)) == (
        "ValidationException"
    )
    assert _code(lambda: ssm_client.send_command(InstanceIds=[managed, managed], DocumentName=document)) == (
        "DuplicateInstanceId"
    )
    assert _code(
        lambda: ssm_client.send_command(InstanceIds=[managed], DocumentName=document, Parameters={"nope": ["x"]})
    ) == ("InvalidParameters")


def test_get_command_invocation_and_describe_are_as_strict(world: World, ssm_client: Any) -> None:
    managed = world.managed(seed_asr=False)
    command_id = ssm_client.send_command(InstanceIds=[managed], DocumentName=world.aws.side.install_document)[
        "Command"
    ]["CommandId"]

    # The install document has two steps: GetCommandInvocation must name one.
    assert _code(lambda: ssm_client.get_command_invocation(CommandId=command_id, InstanceId=managed)) == (
        "InvalidPluginName"
    )
    other = world.managed(seed_asr=False)
    assert _code(
        lambda: ssm_client.get_command_invocation(
            CommandId=command_id, InstanceId=other, PluginName="installMobilityLinux"
        )
    ) == ("InvocationDoesNotExist")
    assert _code(
        lambda: ssm_client.get_command_invocation(
            CommandId=str(uuid.uuid4()), InstanceId=managed, PluginName="installMobilityLinux"
        )
    ) == ("InvalidCommandId")
    running = ssm_client.get_command_invocation(CommandId=command_id, InstanceId=managed,
                                                PluginName="installMobilityLinux")  # fmt: skip
    assert running["Status"] == "InProgress"

    assert _code(lambda: ssm_client.describe_instance_information(Filters=[{"Key": "Nope", "Values": ["x"]}])) == (
        "InvalidFilterKey"
    )
    assert _code(lambda: ssm_client.describe_instance_information(MaxResults=51)) == "ValidationException"
    assert _code(
        lambda: ssm_client.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": ["nope"]}])
    ) == ("InvalidInstanceId")
    listed = ssm_client.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [managed]}])
    [info] = listed["InstanceInformationList"]
    assert (info["InstanceId"], info["PingStatus"], info["PlatformType"]) == (managed, "Online", "Linux")
    # An operation the stand-in does not serve fails loudly rather than answering something made up.
    assert _code(ssm_client.list_commands) == "UnknownOperationException"


def test_documents_follow_the_service_rules(world: World) -> None:
    content = install_document().content
    with pytest.raises(SsmSimControlError, match="ValidationException"):
        world.ssm.add_document(SsmDocument(name="aws2azure-install", content=content))  # reserved prefix "aws"
    assert world.ssm.add_document(SsmDocument(name="MobilityInstall-copy", content=content)) == [
        "installMobilityLinux",
        "installMobilityWindows",
    ]


def test_the_rule_the_stack_plays_is_the_templates(world: World) -> None:
    from infra.tools.cfn_yaml import load_sam

    rule = load_sam(TEMPLATE)["Resources"]["CutoverStateChangeRule"]["Properties"]
    assert rule["EventPattern"] == CUTOVER_RULE_PATTERN


# ---------------------------------------------------------------- the appliance's part


def test_an_install_registers_the_machine_with_discovery(world: World) -> None:
    linux = world.managed()
    windows = world.managed(AMI_WINDOWS, os_type="Windows")
    for instance_id in (linux, windows):
        world.request(instance_id)
        assert world.aws.tags_of(instance_id)[STATUS] == "InstallingAgent"
    world.aws.invoke(world.status_sync, SYNC_EVENT)
    assert world.aws.tags_of(linux)[STATUS] == "InstallingAgent"  # still running on virtual time
    assert not world.discovered(linux)

    world.finish_installs(linux, windows)
    world.aws.invoke(world.status_sync, SYNC_EVENT)

    for instance_id in (linux, windows):
        assert world.discovered(instance_id)
        tags = world.aws.tags_of(instance_id)
        assert tags[STATUS] == "AwaitingDiscovery"
        assert tags[AGENT].startswith("installed:")


def test_a_failed_install_is_failed_with_the_tail_of_its_output(world: World) -> None:
    instance_id = world.managed()
    world.ssm.set_faults(FaultPlan(instances={instance_id: "install-fails"}))
    try:
        world.request(instance_id)
        world.finish_installs(instance_id)
        world.aws.invoke(world.status_sync, SYNC_EVENT)
    finally:
        world.ssm.set_faults(FaultPlan())
    tags = world.aws.tags_of(instance_id)
    assert tags[STATUS] == "Failed"
    assert tags[REASON].startswith("agent install Failed, exit 1: ")
    assert tags[REASON].endswith("See /var/log/ua_install.log")
    assert not world.discovered(instance_id)


def test_a_machine_never_discovered_stays_undiscovered_after_a_successful_install(world: World) -> None:
    instance_id = world.managed()
    world.ssm.set_faults(FaultPlan(instances={instance_id: "never-discovered"}))
    try:
        world.request(instance_id)
        world.finish_installs(instance_id)
        world.aws.invoke(world.status_sync, SYNC_EVENT)
    finally:
        world.ssm.set_faults(FaultPlan())
    assert world.aws.tags_of(instance_id)[STATUS] == "AwaitingDiscovery"
    assert not world.discovered(instance_id)  # the Azure side's discovery bound takes it from here


def test_an_unmanaged_instance_is_not_ready(world: World) -> None:
    instance_id = world.aws.launch(AMI_UBUNTU, groups=[world.group])
    world.aws.set_tags(instance_id, {MIGRATE: "true"})
    outcome = world.aws.invoke(world.intake, world.aws.tag_change(instance_id, [MIGRATE]))
    assert outcome["action"] == "not-ready", outcome
    assert "SSM managed" in world.aws.tags_of(instance_id)[REASON]


# ---------------------------------------------------------------- EC2 state-change events


def _cutover_payload(world: World, instance_id: str) -> dict[str, Any]:
    outcome = world.request(instance_id, **{CUTOVER_AT: "2099-06-01T01:00:00Z"})
    schedule = world.aws.scheduler().get_schedule(Name=outcome["cutover_schedule"], GroupName=SCHEDULER_GROUP)
    world.aws.set_tags(instance_id, {STATUS: "AwaitingCutover"})  # what status sync reports by then
    payload: dict[str, Any] = json.loads(schedule["Target"]["Input"])
    return payload


def _watcher(world: World, results: list[dict[str, Any]], cutover: ModuleType) -> Ec2StateChanges:
    def deliver(event: dict[str, Any]) -> None:
        results.append(world.aws.invoke(cutover, event))

    watcher = Ec2StateChanges(
        world.aws.ec2, account=world.aws.side.account_id, region=world.aws.side.region, deliver=deliver,
        clock=world.clock,
        never_stops=lambda: [i for i, f in world.ssm.faults().instances.items() if f == "stop-never-completes"],
    )  # fmt: skip
    watcher.poll()
    return watcher


def _failovers(world: World, instance_id: str) -> list[FailoverRequested]:
    world.aws.queue.drain()
    return [e for e in world.aws.queue.events_for(instance_id) if isinstance(e, FailoverRequested)]


def test_a_stop_comes_back_as_a_state_change_event_and_fails_over(world: World) -> None:
    instance_id = world.managed()
    payload = _cutover_payload(world, instance_id)
    results: list[dict[str, Any]] = []
    watcher = _watcher(world, results, world.cutover)

    assert world.aws.invoke(world.cutover, payload)["action"] == "stop-requested"
    delivered = watcher.poll()

    [event] = [e for e in delivered if e["detail"]["instance-id"] == instance_id]
    assert (event["source"], event["detail-type"], event["detail"]["state"]) == (
        "aws.ec2", "EC2 Instance State-change Notification", "stopped",
    )  # fmt: skip
    assert event["resources"] == [f"arn:aws:ec2:{world.aws.side.region}:{world.aws.side.account_id}:instance/"
                                  f"{instance_id}"]  # fmt: skip
    assert [r["action"] for r in results if r.get("instance_id") == instance_id] == ["failover-requested"]
    [failover] = _failovers(world, instance_id)
    assert failover.data.source_stopped is True
    assert world.aws.tags_of(instance_id)[CUTOVER_STOP].startswith("sent:")
    assert watcher.poll() == []  # nothing changed, nothing emitted again


def test_a_stop_that_never_completes_is_reported_by_the_follow_up_and_not_failed_over(world: World) -> None:
    instance_id = world.managed()
    payload = _cutover_payload(world, instance_id)
    results: list[dict[str, Any]] = []
    watcher = _watcher(world, results, world.cutover)
    world.ssm.set_faults(FaultPlan(instances={instance_id: "stop-never-completes"}))
    try:
        assert world.aws.invoke(world.cutover, payload)["action"] == "stop-requested"
        assert watcher.poll() == []
        assert world.aws.state_of(instance_id) != "stopped"
        # The one-time follow-up the cutover scheduled, fired as EventBridge Scheduler would at its time.
        scheduler = world.aws.scheduler()
        names = [s["Name"] for s in scheduler.list_schedules(GroupName=SCHEDULER_GROUP)["Schedules"]
                 if s["Name"].startswith("aws2azure-stop-check-")]  # fmt: skip
        follow_ups = [json.loads(scheduler.get_schedule(Name=n, GroupName=SCHEDULER_GROUP)["Target"]["Input"])
                      for n in names]  # fmt: skip
        [follow_up] = [f for f in follow_ups if instance_id in {i["instance_id"] for i in f["instances"]}]
        world.clock.advance_by(follow_up["bound_seconds"])
        outcome = world.aws.invoke(world.cutover, follow_up)
    finally:
        world.ssm.set_faults(FaultPlan())
    [reported] = [o for o in outcome["outcomes"] if o["instance_id"] == instance_id]
    assert reported["action"] == "source-not-stopped"
    assert "did not stop" in world.aws.tags_of(instance_id)[REASON]
    assert world.aws.tags_of(instance_id)[CUTOVER_STOP].startswith("not-stopped:")
    assert _failovers(world, instance_id) == []
