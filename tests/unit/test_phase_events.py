"""The AWS side's phase-change CloudEvents: the model, the SNS request, and where intake and status sync announce."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser import parse
from botocore.stub import Stubber

from aws_lambda.adapters.sns import MESSAGE_MAX_BYTES, SnsPhaseAnnouncer, message_attributes, publish_request
from aws_lambda.logic.intake import Intake, IntakeDependencies
from aws_lambda.logic.status_sync import StatusSyncDependencies, sync_statuses
from aws_lambda.models.agent import CommandResult
from aws_lambda.models.cutover import CutoverRequest
from aws_lambda.models.inventory import TaggedInstance
from aws_lambda.models.phase_events import (
    AWS_PHASES,
    INSTANCE_PHASE_CHANGED,
    InstancePhaseChanged,
    instance_phase_changed,
    is_announced_here,
    phase_event_id,
)
from aws_lambda.models.tag_change import TagChangeEvent, tag_change_event
from migration.errors import InvalidInput, MigrationError, NotFound, ThrottledError, TransientCloudError
from migration.events import MigrationRequestedData
from migration.identity import InstanceRef
from migration.lifecycle import Phase
from migration.readiness import ApplianceLocation, InstanceDescription, OsFamily
from migration.records import MigrationRecord
from migration.tags import AGENT, MIGRATE, STATUS, UPDATED_AT, WAVE

REF = InstanceRef(account_id="123456789012", region="eu-west-1", instance_id="i-0123456789abcdef0")
NOW = datetime(2026, 12, 1, 22, 0, 5, tzinfo=UTC)
TOPIC = "arn:aws:sns:eu-west-1:123456789012:aws2azure-phases"


@pytest.fixture(autouse=True)
def _metrics_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    # The logic counts with Powertools' EMF metrics, which need a namespace (the template sets it).
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "aws2azure-test")


def event(phase: Phase = Phase.NOT_READY, key: str = "req-1", **kwargs: Any) -> InstancePhaseChanged:
    return instance_phase_changed(REF, phase, change_key=key, changed_at=NOW, **kwargs)


# ---------------------------------------------------------------- the model


def test_the_same_change_makes_the_same_event_and_id() -> None:
    first = event(previous_phase=None, reason="not running", wave="wave-a")
    again = event(previous_phase=None, reason="not running", wave="wave-a")

    assert first.id == again.id == "123456789012-eu-west-1-i-0123456789abcdef0:NotReady:req-1"
    assert first.to_json() == again.to_json()
    assert first.type == INSTANCE_PHASE_CHANGED
    assert first.source == "aws2azure/aws/123456789012/eu-west-1"
    assert first.subject == REF.instance_id
    body = json.loads(first.to_json())
    assert body["data"] == {
        "instance": REF.model_dump(), "migration_id": REF.migration_id, "phase": "NotReady",
        "reason": "not running", "wave": "wave-a", "changed_at": "2026-12-01T22:00:05Z",
    }  # fmt: skip


def test_a_retry_decided_later_keeps_the_id_and_another_change_gets_another() -> None:
    later = instance_phase_changed(REF, Phase.NOT_READY, change_key="req-1", changed_at=datetime.now(UTC))

    assert later.id == event().id
    assert event(key="req-2").id != event().id
    assert event(Phase.CANCELLED).id != event().id


def test_phases_mirrored_from_azure_are_never_announced_here() -> None:
    assert {Phase.REQUESTED, Phase.NOT_READY, Phase.INSTALLING_AGENT, Phase.AWAITING_DISCOVERY, Phase.FAILED,
            Phase.CANCELLED} == AWS_PHASES  # fmt: skip
    for phase in Phase:
        if phase not in AWS_PHASES:
            assert not is_announced_here(phase)
            with pytest.raises(ValueError, match="Azure announces it"):
                event(phase)


def test_a_change_key_is_required() -> None:
    with pytest.raises(ValueError, match="change key"):
        phase_event_id(REF, Phase.NOT_READY, "")


# ---------------------------------------------------------------- the SNS request


def test_publish_request_carries_the_event_and_filterable_string_attributes() -> None:
    request = publish_request(TOPIC, event(wave="wave-a"))

    assert request["TopicArn"] == TOPIC
    assert json.loads(request["Message"])["id"] == event().id
    assert request["MessageAttributes"] == {
        "type": {"DataType": "String", "StringValue": INSTANCE_PHASE_CHANGED},
        "phase": {"DataType": "String", "StringValue": "NotReady"},
        "wave": {"DataType": "String", "StringValue": "wave-a"},
    }
    # SNS refuses an empty attribute value: an unknown wave is left out.
    assert "wave" not in message_attributes(event())


def test_the_sns_adapter_sends_a_request_botocore_accepts_and_translates_errors() -> None:
    client = boto3.client("sns", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)  # validates the parameters against botocore's sns service model
    stub.add_response("publish", {"MessageId": "m-1"}, publish_request(TOPIC, event()))
    stub.add_client_error("publish", "Throttled", http_status_code=429)
    stub.add_client_error("publish", "InternalError", http_status_code=500)
    stub.add_client_error("publish", "InvalidParameter", http_status_code=400)
    announcer = SnsPhaseAnnouncer(client, TOPIC)
    with stub:
        assert announcer.announce(event()) == "m-1"
        with pytest.raises(ThrottledError):
            announcer.announce(event())
        with pytest.raises(TransientCloudError):
            announcer.announce(event())
        with pytest.raises(InvalidInput):
            announcer.announce(event())


def test_a_message_over_the_sns_limit_is_refused_before_sending() -> None:
    big = event().model_copy(update={"id": "x" * (MESSAGE_MAX_BYTES + 1)})
    with pytest.raises(InvalidInput, match="at most"):
        publish_request(TOPIC, big)


# ---------------------------------------------------------------- fakes


class Announcer:
    def __init__(self, failures: int = 0) -> None:
        self.sent: list[InstancePhaseChanged] = []
        self.failures = failures

    def announce(self, event: InstancePhaseChanged) -> str:
        if self.failures:
            self.failures -= 1
            raise TransientCloudError("publish: InternalError")
        self.sent.append(event)
        return f"m-{len(self.sent)}"


class Instances:
    def __init__(self, tags: dict[str, str], state: str = "stopped") -> None:
        self.tags = dict(tags)
        self.state = state
        self.writes: list[Mapping[str, Mapping[str, str]]] = []

    def describe(self, instance: InstanceRef) -> InstanceDescription:
        return InstanceDescription(
            instance=instance, state=self.state, architecture="x86_64", virtualization_type="hvm",
            private_ip="10.0.1.15", platform_details="Linux/UNIX", tags=dict(self.tags),
        )  # fmt: skip

    def list_tagged(self, tag_key: str) -> list[TaggedInstance]:
        return [TaggedInstance(instance=REF, state=self.state, tags=dict(self.tags))] if tag_key in self.tags else []

    def write_tags(self, updates: Mapping[str, Mapping[str, str]]) -> None:
        self.writes.append(updates)
        self.tags.update(updates[REF.instance_id])


class Schedules:
    def upsert(self, request: CutoverRequest, at: datetime) -> str:
        return "s"

    def delete(self, instance: InstanceRef) -> None:
        return None

    def scheduled_at(self, instance: InstanceRef) -> datetime | None:
        return None


class Queue:
    def publish(self, event: object) -> None:
        return None


class Clock:
    def now(self) -> datetime:
        return NOW


def intake(instances: Instances, announcer: Announcer) -> Intake:
    return Intake(
        IntakeDependencies(
            inventory=instances,
            tags=instances,
            schedules=Schedules(),
            publisher=Queue(),
            appliance=ApplianceLocation(cidr="10.0.200.0/28"),
            clock=Clock(),
            agent_install="manual",
            announcer=announcer,
        )
    )


def tag_change(changed: list[str], request_id: str = "req-1") -> TagChangeEvent:
    raw = tag_change_event(event_id=request_id, instance=REF, tags={}, changed_tag_keys=changed, version=2,
                           time="2026-12-01T22:00:00Z")  # fmt: skip
    return parse(event=raw, model=TagChangeEvent)


# ---------------------------------------------------------------- intake


def test_intake_announces_not_ready_with_the_request_wave_and_previous_phase() -> None:
    instances = Instances({MIGRATE: "true", WAVE: "wave-a"})
    announcer = Announcer()

    outcome = intake(instances, announcer).handle(tag_change([MIGRATE]))

    assert outcome.action == "not-ready"
    [sent] = announcer.sent
    assert sent.id == phase_event_id(REF, Phase.NOT_READY, "req-1")
    assert (sent.data.phase, sent.data.previous_phase, sent.data.wave) == (Phase.NOT_READY, None, "wave-a")
    assert sent.data.reason == outcome.reason
    assert instances.tags[STATUS] == "NotReady"


def test_a_refused_announcement_fails_intake_before_the_tags_and_the_retry_sends_the_same_id() -> None:
    instances = Instances({MIGRATE: "true"})
    announcer = Announcer(failures=1)
    app = intake(instances, announcer)

    with pytest.raises(MigrationError):
        app.handle(tag_change([MIGRATE]))
    assert instances.writes == []  # nothing written: the retry takes the same path

    app.handle(tag_change([MIGRATE]))

    [sent] = announcer.sent
    assert sent.id == phase_event_id(REF, Phase.NOT_READY, "req-1")
    assert instances.tags[STATUS] == "NotReady"


def test_intake_announces_cancelled_when_migrate_is_removed_from_a_not_ready_instance() -> None:
    instances = Instances({STATUS: "NotReady"})
    announcer = Announcer()

    outcome = intake(instances, announcer).handle(tag_change([MIGRATE], request_id="req-2"))

    assert outcome.action == "cancelled"
    [sent] = announcer.sent
    assert (sent.data.phase, sent.data.previous_phase) == (Phase.CANCELLED, Phase.NOT_READY)


def test_intake_without_a_topic_announces_nothing() -> None:
    instances = Instances({MIGRATE: "true"})
    app = Intake(
        IntakeDependencies(inventory=instances, tags=instances, schedules=Schedules(), publisher=Queue(),
                           appliance=ApplianceLocation(cidr="10.0.200.0/28"), clock=Clock(), agent_install="manual")
    )  # fmt: skip

    assert app.handle(tag_change([MIGRATE])).action == "not-ready"


# ---------------------------------------------------------------- status sync


class Agents:
    def __init__(self, status: str) -> None:
        self.status = status

    def ping_status(self, instance_id: str) -> str | None:
        return "Online"

    def send_install(self, instance_id: str, *, comment: str) -> str:
        return "c-1"

    def invocation(self, command_id: str, instance_id: str, os_family: OsFamily) -> CommandResult:
        return CommandResult(status=self.status, response_code=0 if self.status == "Success" else 1)


class StatusApi:
    def __init__(self, phase: Phase | None) -> None:
        self.phase = phase

    def get_migration(self, migration_id: str) -> MigrationRecord:
        if self.phase is None:
            raise NotFound(migration_id)
        request = MigrationRequestedData.model_validate(
            {"instance": REF, "private_ip": "10.0.1.15", "os_family": "linux", "request_id": "req-1"}
        )
        return MigrationRecord(request=request, phase=self.phase, created_at=NOW, updated_at=NOW)


def sync_deps(instances: Instances, announcer: Announcer, *, agent: str, azure: Phase | None) -> StatusSyncDependencies:
    return StatusSyncDependencies(inventory=instances, tags=instances, status_api=StatusApi(azure),
                                  agents=Agents(agent), announcer=announcer)  # fmt: skip


def installing() -> Instances:
    return Instances({MIGRATE: "true", WAVE: "wave-b", STATUS: "InstallingAgent", AGENT: "installing:c-1:linux"})


@pytest.mark.parametrize(("result", "phase"), [("Success", Phase.AWAITING_DISCOVERY), ("Failed", Phase.FAILED)])
def test_status_sync_announces_the_install_result_with_the_command_as_key(result: str, phase: Phase) -> None:
    instances = installing()
    announcer = Announcer()

    sync_statuses(sync_deps(instances, announcer, agent=result, azure=Phase.REQUESTED))

    [sent] = announcer.sent
    assert sent.id == phase_event_id(REF, phase, "c-1")
    assert (sent.data.phase, sent.data.previous_phase, sent.data.wave) == (phase, Phase.INSTALLING_AGENT, "wave-b")
    assert instances.tags[STATUS] == phase.value
    assert sent.data.changed_at.strftime("%Y-%m-%dT%H:%M:%SZ") == instances.tags[UPDATED_AT]


def test_a_refused_install_announcement_leaves_the_tags_for_the_next_run_which_sends_the_same_id() -> None:
    instances = installing()
    announcer = Announcer(failures=1)

    first = sync_statuses(sync_deps(instances, announcer, agent="Success", azure=Phase.REQUESTED))

    assert REF.instance_id in first.errors
    assert instances.writes == []
    sync_statuses(sync_deps(instances, announcer, agent="Success", azure=Phase.REQUESTED))
    [sent] = announcer.sent
    assert sent.id == phase_event_id(REF, Phase.AWAITING_DISCOVERY, "c-1")
    assert instances.tags[STATUS] == "AwaitingDiscovery"


def test_phases_copied_from_azure_are_not_announced_from_aws() -> None:
    instances = Instances({MIGRATE: "true", STATUS: "AwaitingDiscovery", AGENT: "installed:c-1:linux"})
    announcer = Announcer()

    sync_statuses(sync_deps(instances, announcer, agent="Success", azure=Phase.REPLICATING))

    assert instances.tags[STATUS] == "Replicating"
    assert announcer.sent == []
