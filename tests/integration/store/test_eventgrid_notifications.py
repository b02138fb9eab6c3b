"""Notifications to an Event Grid topic below the Functions host: the real steps write the outbox in Table Storage
(Azurite), the real delivery sweep publishes through the real ``EventGridPublisherClient`` (our EventGridSink, the
topic's access key) to the local topic stand-in (devstack/eventgrid_topic.py). Time is a manual clock: no sleeps."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from devstack.eventgrid_topic import EventGridTopic, TopicClient
from devstack.settings import StackSettings
from devstack.webhook_receiver import by_subject
from functions.adapters.notification_store import TableOutbox
from functions.adapters.notify_sinks import EventGridSink
from functions.adapters.table_store import TableStore
from functions.bootstrap import Services
from functions.settings import FunctionSettings
from migration.events import MigrationRequestedData
from migration.lifecycle import Phase
from migration.notifications import PHASE_CHANGED, DeliveryPolicy, NotificationDelivery, NotificationSink, PhaseChanged
from migration.steps import MigrationSteps
from tests.fakes import FakeAsr, ManualClock

PATH = [Phase.ENABLING_REPLICATION, Phase.REPLICATING, Phase.READY_FOR_CUTOVER, Phase.AWAITING_CUTOVER]


def _request(number: int) -> MigrationRequestedData:
    return MigrationRequestedData.model_validate({
        "instance": {"account_id": "123456789012", "region": "eu-west-1", "instance_id": f"i-{number:017x}"},
        "private_ip": f"10.0.1.{number}", "os_family": "linux", "request_id": f"r-{number}",
    })  # fmt: skip


class World:
    def __init__(self, conn: str, topic: EventGridTopic) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.conn, self.topic = conn, topic
        self.store = TableStore.counted(conn, migrations_table=f"m{suffix}", events_table=f"e{suffix}")
        self.outbox = TableOutbox.from_connection_string(conn, table=f"n{suffix}")
        self.clock = ManualClock()
        self.steps = MigrationSteps(self.store, FakeAsr(), self.clock, default_subnet="workloads", outbox=self.outbox)
        self.control = TopicClient(topic.endpoint)
        # No SDK retries: each sweep's attempt is one request, so the topic's refusal count is the attempts.
        self.delivery = self.delivery_with(EventGridSink.with_access_key(topic.endpoint, topic.key, sdk_retries=0))

    def delivery_with(self, sink: NotificationSink) -> NotificationDelivery:
        policy = DeliveryPolicy(dead_letter_after=timedelta(hours=2))
        return NotificationDelivery(self.outbox, [sink], self.store, self.clock, policy)

    def walk(self, migration_id: str, phases: list[Phase]) -> None:
        for phase in phases:
            self.clock.advance(timedelta(minutes=5))
            self.steps.record_phase(migration_id, phase)


@pytest.fixture
def world(azurite: StackSettings) -> Iterator[World]:
    assert azurite.azurite is not None
    with EventGridTopic() as topic:
        yield World(azurite.azurite.connection_string, topic)


def test_every_phase_change_arrives_as_a_cloudevent_in_order(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    records = {n: world.steps.register(_request(n)) for n in (1, 2)}
    for record in records.values():
        world.walk(record.migration_id, PATH)
    report = world.delivery.run()
    assert report.delivered == 2 * (1 + len(PATH))
    received = by_subject(world.control.events())
    for n, record in records.items():
        raw = received[f"i-{n:017x}"]
        events = [PhaseChanged.model_validate(e) for e in raw]
        assert [e.id for e in events] == [f"{record.migration_id}:{s}" for s in range(1, len(PATH) + 2)]
        assert {e.type for e in events} == {PHASE_CHANGED}
        assert {e.subject for e in events} == {f"i-{n:017x}"}
        assert [e.data.phase for e in events] == [Phase.REQUESTED, *PATH]
        assert [e.data.sequence for e in events] == list(range(1, len(PATH) + 2))
        assert {e["datacontenttype"] for e in raw} == {"application/json"}
    assert world.delivery.run().delivered == 0  # nothing is published twice once delivered
    log = world.store.list_events(records[1].migration_id)
    delivered = [e for e in log if e.kind == "NotificationDelivered"]
    assert len(delivered) == 1 + len(PATH)
    assert all("eventgrid" in e.message for e in delivered)
    # The per-call retry keyword is not logged as an unknown CloudEvent attribute for every event.
    assert not [r for r in caplog.records if "is not a known attribute" in r.getMessage()]


def test_a_wrong_key_is_retried_later_and_the_right_key_delivers_the_same_events(world: World) -> None:
    migration_id = world.steps.register(_request(3)).migration_id
    world.walk(migration_id, PATH[:1])
    wrong = world.delivery_with(EventGridSink.with_access_key(world.topic.endpoint, "not-the-key", sdk_retries=0))
    report = wrong.run()
    assert (report.delivered, report.failed_attempts, report.dead_lettered) == (0, 1, 0)
    assert world.control.events() == []
    assert world.control.refused() == 1  # stopped at the first: the second never overtakes it
    [first, second] = world.outbox.pending(migration_id)
    assert first.attempts == 1
    assert first.next_attempt_at == world.clock.now() + timedelta(seconds=30)
    assert "refused the credential" in first.last_error
    assert "Unauthorized" in first.last_error
    assert second.attempts == 0
    failed = [e for e in world.store.list_events(migration_id) if e.kind == "NotificationDeliveryFailed"]
    assert len(failed) == 1
    # The operator fixes NOTIFY_EVENT_GRID_KEY: the next sweep after the backoff delivers both, in order.
    world.clock.advance(timedelta(seconds=30))
    assert world.delivery.run().delivered == 2
    assert [e["data"]["sequence"] for e in world.control.events()] == [1, 2]
    assert world.outbox.pending(migration_id) == []


def test_a_topic_down_for_a_while_gets_every_event_afterwards_in_order(world: World) -> None:
    migration_id = world.steps.register(_request(4)).migration_id
    world.control.set_down(True)
    world.walk(migration_id, PATH)
    attempts = 0
    for _ in range(6):  # an hour of sweeps while it is down: each attempt backs off, none overtakes another
        attempts += world.delivery.run().failed_attempts
        world.clock.advance(timedelta(minutes=10))
    assert world.control.events() == []
    assert world.control.refused() == attempts > 0
    assert "NotificationDeliveryFailed" in [e.kind for e in world.store.list_events(migration_id)]
    world.control.set_down(False)
    world.clock.advance(timedelta(minutes=10))
    assert world.delivery.run().delivered == 1 + len(PATH)  # the next sweep sends the whole backlog, in order
    assert [e["data"]["sequence"] for e in world.control.events()] == list(range(1, len(PATH) + 2))
    assert world.outbox.pending(migration_id) == []


def test_one_send_retries_briefly_within_the_sdk_then_the_sweep_takes_over(world: World) -> None:
    migration_id = world.steps.register(_request(5)).migration_id
    world.control.set_down(True)
    default = world.delivery_with(EventGridSink.with_access_key(world.topic.endpoint, world.topic.key))
    assert default.run().failed_attempts == 1
    assert world.control.refused() == 3  # the first request and SDK_RETRIES (2) more, not azure-core's 10
    world.control.set_down(False)
    world.clock.advance(timedelta(seconds=30))
    assert default.run().delivered == 1
    assert [e["id"] for e in world.control.events()] == [f"{migration_id}:1"]


def test_the_composition_root_publishes_with_the_key_when_it_is_set(world: World) -> None:
    env = {"STATE_STORAGE": world.conn, "ASR_SUBSCRIPTION_ID": "s", "ASR_RESOURCE_GROUP": "rg",
           "ASR_VAULT_NAME": "v", "TARGET_RESOURCE_GROUP_ID": "/subscriptions/s/resourceGroups/t",
           "TARGET_NETWORK_ID": "n", "TARGET_DEFAULT_SUBNET": "workloads",
           "ASR_CACHE_STORAGE_ACCOUNT_ID": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/"
                                           "storageAccounts/cache",
           "NOTIFY_EVENT_GRID_ENDPOINT": world.topic.endpoint, "NOTIFY_EVENT_GRID_KEY": world.topic.key}  # fmt: skip
    [sink] = Services(FunctionSettings.from_environment(env), outbox=world.outbox).notification_sinks
    assert sink.name == "eventgrid"
    migration_id = world.steps.register(_request(6)).migration_id
    assert world.delivery_with(sink).run().delivered == 1
    assert [e["id"] for e in world.control.events()] == [f"{migration_id}:1"]


def test_a_key_without_an_endpoint_fails_at_start_up_with_its_name() -> None:
    env = {"STATE_STORAGE": "UseDevelopmentStorage=true", "ASR_SUBSCRIPTION_ID": "s", "ASR_RESOURCE_GROUP": "rg",
           "ASR_VAULT_NAME": "v", "TARGET_RESOURCE_GROUP_ID": "t", "TARGET_NETWORK_ID": "n",
           "TARGET_DEFAULT_SUBNET": "w",
           "ASR_CACHE_STORAGE_ACCOUNT_ID": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/"
                                           "storageAccounts/cache",
           "NOTIFY_EVENT_GRID_KEY": "k"}  # fmt: skip
    with pytest.raises(RuntimeError, match="NOTIFY_EVENT_GRID_KEY"):
        FunctionSettings.from_environment(env)
