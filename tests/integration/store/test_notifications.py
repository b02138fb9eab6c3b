"""Notifications end to end below the Functions host: the real steps write the outbox in Table Storage (Azurite),
the real delivery sweep posts CloudEvents to the local webhook receiver. Time is a manual clock: no sleeps."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from devstack.settings import StackSettings
from devstack.webhook_receiver import ReceiverClient, WebhookReceiver, by_subject
from functions.adapters.notification_store import TableOutbox
from functions.adapters.notify_sinks import SIGNATURE_HEADER, WebhookSink, signature
from functions.adapters.table_store import TableStore
from migration.events import MigrationRequestedData
from migration.lifecycle import Phase
from migration.notifications import PHASE_CHANGED, DeliveryPolicy, NotificationDelivery, NotificationSink, PhaseChanged
from migration.steps import MigrationSteps
from tests.fakes import FakeAsr, ManualClock

SECRET = "s3cret"


def _request(number: int) -> MigrationRequestedData:
    return MigrationRequestedData.model_validate({
        "instance": {"account_id": "123456789012", "region": "eu-west-1", "instance_id": f"i-{number:017x}"},
        "private_ip": f"10.0.1.{number}", "os_family": "linux", "request_id": f"r-{number}",
    })  # fmt: skip


class World:
    def __init__(self, conn: str, receiver: WebhookReceiver) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.store = TableStore.counted(conn, migrations_table=f"m{suffix}", events_table=f"e{suffix}")
        self.outbox = TableOutbox.from_connection_string(conn, table=f"n{suffix}")
        self.clock = ManualClock()
        self.asr = FakeAsr()
        self.steps = MigrationSteps(self.store, self.asr, self.clock, default_subnet="workloads", outbox=self.outbox)
        self.receiver = ReceiverClient(receiver.url)
        sinks: list[NotificationSink] = [WebhookSink(receiver.url, secret=SECRET)]
        policy = DeliveryPolicy(dead_letter_after=timedelta(hours=2))
        self.delivery = NotificationDelivery(self.outbox, sinks, self.store, self.clock, policy)

    def walk(self, migration_id: str, phases: list[Phase]) -> None:
        for phase in phases:
            self.clock.advance(timedelta(minutes=5))
            self.steps.record_phase(migration_id, phase)


@pytest.fixture
def world(azurite: StackSettings) -> Iterator[World]:
    assert azurite.azurite is not None
    with WebhookReceiver(secret=SECRET) as receiver:
        yield World(azurite.azurite.connection_string, receiver)


PATH = [Phase.ENABLING_REPLICATION, Phase.REPLICATING, Phase.READY_FOR_CUTOVER, Phase.AWAITING_CUTOVER]


def test_every_phase_change_is_one_signed_cloudevent_in_order(world: World) -> None:
    ids = [world.steps.register(_request(n)).migration_id for n in (1, 2)]
    for migration_id in ids:
        world.walk(migration_id, PATH)
        world.steps.record_phase(migration_id, Phase.AWAITING_CUTOVER, "waiting")  # same phase: no new event
    report = world.delivery.run()
    assert report.delivered == 2 * (1 + len(PATH))
    received = by_subject(world.receiver.events())
    for n in (1, 2):
        events = [PhaseChanged.model_validate(e) for e in received[f"i-{n:017x}"]]
        assert [e.data.sequence for e in events] == list(range(1, len(PATH) + 2))
        assert [e.data.phase for e in events] == [Phase.REQUESTED, *PATH]
        assert events[1].data.previous_phase is Phase.REQUESTED
        assert {e.type for e in events} == {PHASE_CHANGED}
    # Nothing is sent twice once delivered; the audit log says what was delivered.
    assert world.delivery.run().delivered == 0
    kinds = [e.kind for e in world.store.list_events(ids[0])]
    assert kinds.count("NotificationDelivered") == 1 + len(PATH)
    assert world.outbox.recent(ids[0], limit=2)[0].phase is Phase.AWAITING_CUTOVER


def test_a_rerun_of_the_same_step_queues_nothing_new(world: World) -> None:
    migration_id = world.steps.register(_request(3)).migration_id
    world.steps.register(_request(3))  # the activity ran again
    world.steps.record_phase(migration_id, Phase.ENABLING_REPLICATION)
    world.steps.record_phase(migration_id, Phase.ENABLING_REPLICATION)
    world.delivery.run()
    assert [e["data"]["sequence"] for e in world.receiver.events()] == [1, 2]


def test_a_receiver_down_for_a_while_still_gets_every_event_in_order(world: World) -> None:
    migration_id = world.steps.register(_request(4)).migration_id
    world.receiver.set_down(True)
    world.walk(migration_id, PATH)
    for _ in range(6):  # an hour of sweeps while it is down: attempts back off, none overtakes another
        world.delivery.run()
        world.clock.advance(timedelta(minutes=10))
    assert world.receiver.events() == []
    assert "NotificationDeliveryFailed" in [e.kind for e in world.store.list_events(migration_id)]
    world.receiver.set_down(False)
    world.clock.advance(timedelta(minutes=10))
    for _ in range(len(PATH) + 1):
        world.delivery.run()
    events = world.receiver.events()
    assert [e["data"]["sequence"] for e in events] == list(range(1, len(PATH) + 2))
    assert world.outbox.pending(migration_id) == []


def test_past_the_budget_a_notification_is_dead_lettered_and_the_next_ones_go_on(world: World) -> None:
    migration_id = world.steps.register(_request(5)).migration_id
    world.receiver.set_down(True)
    world.delivery.run()
    world.clock.advance(timedelta(hours=3))
    assert world.delivery.run().dead_lettered == 1  # still down, past the 2-hour budget
    world.receiver.set_down(False)
    world.clock.advance(timedelta(minutes=1))
    world.steps.record_phase(migration_id, Phase.ENABLING_REPLICATION)
    world.delivery.run()
    dead = [n for n in world.outbox.recent(migration_id) if n.status == "dead"]
    assert [n.sequence for n in dead] == [1]
    assert [e["data"]["sequence"] for e in world.receiver.events()] == [2]
    log = world.store.list_events(migration_id)
    assert any(e.kind == "NotificationDeadLettered" and "#1" in e.message for e in log)
    assert [n.sequence for n in world.outbox.recent(limit=5)][:2] == [2, 1]


def test_the_signature_is_hmac_sha256_of_the_body() -> None:
    body = json.dumps({"a": 1}).encode()
    assert signature(SECRET, body) == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert SIGNATURE_HEADER.startswith("X-")
