"""TableStore against Azurite, through the real azure-data-tables SDK."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from datetime import timedelta

import pytest
from azure.data.tables import TableServiceClient

from functions.adapters.table_requests import TableRequest
from functions.adapters.table_store import (
    CONFIG_PARTITION,
    LOOKUP_PARTITION,
    MOVED_KIND,
    NO_WAVE_PARTITION,
    TOKEN_KEY_ROW,
    TableStore,
    record_partition,
)
from migration.errors import InvalidInput, NotFound, PreconditionFailed
from migration.lifecycle import Phase
from migration.queries import ListPosition, encode_position
from migration.records import MigrationRecord
from tests.integration.store.records import T0, content, make_event, make_record

pytestmark = pytest.mark.integration


def _all_pages(store: TableStore, **filters: object) -> tuple[list[MigrationRecord], int]:
    items: list[MigrationRecord] = []
    pages = 0
    token = None
    while True:
        page = store.list(continuation=token, **filters)  # type: ignore[arg-type]
        pages += 1
        items.extend(page.items)
        token = page.continuation
        if token is None:
            return items, pages


# -- create, get, update ---------------------------------------------------------------------------


def test_a_created_record_reads_back_equal_with_an_etag(store: TableStore) -> None:
    record = make_record(
        1, wave="w1", phase=Phase.REPLICATING, progress_percent=42, replication_health="Normal",
        rpo_seconds=90, cutover_at=T0 + timedelta(days=3), target_size="Standard_D4s_v5",
        test_failover=True, reason="replicating nicely",
    )  # fmt: skip
    created = store.create(record)
    assert created.etag

    read = store.get(record.migration_id)

    assert content(read) == content(record)
    assert read.etag == created.etag
    assert read.created_at == T0
    assert read.created_at.tzinfo is not None
    assert read.cutover_at == T0 + timedelta(days=3)
    assert read.failover_requested_at is None


def test_creating_the_same_migration_twice_is_refused(store: TableStore) -> None:
    store.create(make_record(2))
    with pytest.raises(PreconditionFailed):
        store.create(make_record(2, wave="other"))
    assert store.get(make_record(2).migration_id).wave is None


def test_an_unknown_id_is_not_found_and_a_malformed_one_is_invalid(store: TableStore) -> None:
    with pytest.raises(NotFound):
        store.get("123456789012-eu-west-1-i-0000000000000abcd")
    with pytest.raises(InvalidInput):
        store.get("a/b")


def test_update_with_the_current_etag_succeeds_and_a_stale_one_is_refused(store: TableStore) -> None:
    created = store.create(make_record(3))
    moved_on = store.update(created.model_copy(update={"phase": Phase.ENABLING_REPLICATION}))
    assert moved_on.etag != created.etag

    with pytest.raises(PreconditionFailed):
        store.update(created.model_copy(update={"phase": Phase.FAILED}))

    assert store.get(created.migration_id).phase is Phase.ENABLING_REPLICATION


def test_update_needs_an_etag_and_an_existing_record(store: TableStore) -> None:
    with pytest.raises(PreconditionFailed):
        store.update(make_record(4))
    with pytest.raises(NotFound):
        store.update(make_record(4).model_copy(update={"etag": "W/\"datetime'2026-01-01T00%3A00%3A00Z'\""}))


def test_two_racing_writers_that_retry_on_412_lose_no_update(store: TableStore) -> None:
    record = store.create(make_record(5, rpo_seconds=0))
    rounds = 15
    conflicts = [0, 0]
    # Both writers read before either writes on the first round, so at least one 412 is certain.
    first_round = threading.Barrier(2)

    def writer(slot: int) -> None:
        for round_number in range(rounds):
            while True:
                current = store.get(record.migration_id)
                if round_number == 0 and conflicts[slot] == 0:
                    first_round.wait(timeout=10)
                try:
                    store.update(current.model_copy(update={"rpo_seconds": (current.rpo_seconds or 0) + 1}))
                    break
                except PreconditionFailed:
                    conflicts[slot] += 1

    threads = [threading.Thread(target=writer, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert store.get(record.migration_id).rpo_seconds == 2 * rounds
    assert sum(conflicts) >= 1


# -- listing ---------------------------------------------------------------------------------------


@pytest.fixture
def fleet(store: TableStore) -> TableStore:
    """7 in wave w1 (3 Replicating), 3 in w2, 2 with no wave."""
    for number in range(10, 17):
        phase = Phase.REPLICATING if number % 2 == 0 else Phase.REQUESTED
        store.create(make_record(number, wave="w1", phase=phase))
    for number in range(20, 23):
        store.create(make_record(number, wave="w2", phase=Phase.MIGRATED))
    for number in range(30, 32):
        store.create(make_record(number))
    return store


def test_a_wave_lists_over_several_pages_without_duplicates(fleet: TableStore) -> None:
    items, pages = _all_pages(fleet, wave="w1", page_size=3)

    assert pages >= 3
    assert len(items) == 7
    assert len({r.migration_id for r in items}) == 7
    assert {r.wave for r in items} == {"w1"}
    assert fleet.table_scans == 0


def test_the_phase_filter_applies_inside_the_wave(fleet: TableStore) -> None:
    items, _ = _all_pages(fleet, wave="w1", phase="Replicating", page_size=2)
    assert sorted(int(r.instance.instance_id[2:], 16) for r in items) == [10, 12, 14, 16]
    items, _ = _all_pages(fleet, phase="Migrated", page_size=2)
    assert len(items) == 3


def test_listing_everything_walks_every_wave_partition(fleet: TableStore) -> None:
    items, pages = _all_pages(fleet, page_size=5)

    assert len(items) == 12
    assert len({r.migration_id for r in items}) == 12
    assert pages >= 3
    assert fleet.list_waves() == ["w1", "w2"]
    assert fleet.table_scans == 0


def test_a_page_ends_exactly_at_a_partition_boundary(fleet: TableStore) -> None:
    # 2 records without a wave, then the walk continues into w1 on the next page.
    first = fleet.list(page_size=2)
    assert len(first.items) == 2
    assert first.continuation
    second = fleet.list(page_size=2, continuation=first.continuation)
    assert {r.wave for r in second.items} == {"w1"}


def test_an_empty_wave_lists_nothing(fleet: TableStore) -> None:
    page = fleet.list(wave="nobody")
    assert page.items == []
    assert page.continuation is None


@pytest.mark.parametrize(
    ("wave", "phase"),
    [
        ("w1' or PartitionKey ne 'x", None),
        ("w1 or true", None),
        (None, "Replicating' or kind ne 'x"),
        (None, "Replicating or true"),
    ],
)
def test_injection_attempts_in_the_filters_are_refused_and_change_nothing(
    fleet: TableStore, wave: str | None, phase: str | None
) -> None:
    before = _all_pages(fleet, page_size=1000)[0]
    with pytest.raises(InvalidInput):
        fleet.list(wave=wave, phase=phase)
    after = _all_pages(fleet, page_size=1000)[0]
    assert after == before


def test_a_quote_in_an_id_is_a_parameter_not_odata(fleet: TableStore) -> None:
    some = make_record(10).migration_id
    fleet.append_event(make_event(some, 1))
    assert fleet.list_events(f"{some}' or PartitionKey ne 'x") == []
    with pytest.raises(NotFound):
        fleet.get(f"{some}' or RowKey ne 'x")


def _forged(raw: object, key: bytes) -> str:
    body = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")
    signature = base64.urlsafe_b64encode(hmac.new(key, body.encode(), hashlib.sha256).digest()[:18])
    return f"{body}.{signature.decode().rstrip('=')}"


def _stolen_key(store: TableStore, service: TableServiceClient) -> bytes:
    entity = service.get_table_client(store._records.table_name).get_entity(CONFIG_PARTITION, TOKEN_KEY_ROW)
    return bytes.fromhex(entity["key"])


WRONG_KEY = b"k" * 32


@pytest.mark.parametrize(
    "token",
    [
        "not a token",
        "%%%.%%%",
        "a.b.c",
        encode_position(ListPosition(wave="w1", partition=record_partition("w1")), key=WRONG_KEY),
        _forged({"v": 1, "wave": "w1", "partition": "wave~w1"}, WRONG_KEY),
        "A" * 5000,
    ],
)
def test_a_bad_or_forged_continuation_token_is_invalid_input(fleet: TableStore, token: str) -> None:
    with pytest.raises(InvalidInput):
        fleet.list(wave="w1", continuation=token)


@pytest.mark.parametrize(
    "position",
    [
        {"hello": "world"},
        [1, 2],
        {"v": 1, "wave": "w1", "partition": LOOKUP_PARTITION},  # the lookup partition
        {"v": 1, "wave": "w1", "partition": "waves~"},
        {"v": 1, "wave": "w1", "partition": record_partition("w2")},  # another wave's partition
        {"v": 2, "wave": "w1", "partition": record_partition("w1")},
        {"v": 1, "wave": "w2", "partition": record_partition("w2")},  # issued for other filters
        {"v": 1, "wave": "w1", "partition": "wave~w1", "next_row_key": "a\nb"},  # header injection
    ],
)
def test_even_with_the_signing_key_a_token_cannot_leave_the_listing(
    fleet: TableStore, service: TableServiceClient, position: object
) -> None:
    fleet.list(page_size=1)  # the key is made on the first listing
    with pytest.raises(InvalidInput):
        fleet.list(wave="w1", continuation=_forged(position, _stolen_key(fleet, service)))


def test_a_token_from_another_store_is_refused(fleet: TableStore, service: TableServiceClient) -> None:
    other = TableStore(service, migrations_table=fleet._records.table_name + "x", events_table="eventsx")
    other.create(make_record(99, wave="w1"))
    other.create(make_record(98, wave="w1"))
    token = other.list(wave="w1", page_size=1).continuation
    assert token
    with pytest.raises(InvalidInput):
        fleet.list(wave="w1", continuation=token)


def test_bad_page_sizes_are_invalid_input(fleet: TableStore) -> None:
    for size in (0, -1, 1001):
        with pytest.raises(InvalidInput):
            fleet.list(page_size=size)


# -- moving between waves --------------------------------------------------------------------------


def with_wave(record: MigrationRecord, wave: str | None, **changes: object) -> MigrationRecord:
    """The record of a new request that names another wave (the wave is part of the request)."""
    return record.model_copy(update={"request": record.request.model_copy(update={"wave": wave}), **changes})


def test_changing_the_wave_moves_the_record(store: TableStore) -> None:
    created = store.create(make_record(40, wave="old", phase=Phase.FAILED))
    moved = store.update(with_wave(created, "new", phase=Phase.REQUESTED))

    assert content(store.get(created.migration_id)) == content(moved)
    assert store.get(created.migration_id).etag == moved.etag
    assert store.list(wave="old").items == []
    assert [r.migration_id for r in store.list(wave="new").items] == [created.migration_id]
    assert store.list_waves() == ["new", "old"]
    with pytest.raises(PreconditionFailed):
        store.update(created.model_copy(update={"reason": "a writer that read before the move"}))
    # and back again, onto the partition it once left
    back = store.update(with_wave(moved, None))
    assert content(store.get(created.migration_id)) == content(back)
    assert [r.migration_id for r in store.list().items] == [created.migration_id]


def test_a_move_interrupted_after_its_tombstone_is_finished_by_the_next_reader(
    store: TableStore, service: TableServiceClient
) -> None:
    created = store.create(make_record(41, wave="a"))
    wanted = with_wave(created, "b", phase=Phase.ENABLING_REPLICATION)
    # What a mover that crashed right after its first write leaves behind: a tombstone, nothing else.
    records = service.get_table_client(store._records.table_name)
    records.upsert_entity(
        {"PartitionKey": record_partition("a"), "RowKey": created.migration_id, "kind": MOVED_KIND,
         "moved_to": record_partition("b"), "payload": wanted.model_dump_json()},
    )  # fmt: skip

    read = store.get(created.migration_id)

    assert content(read) == content(wanted)
    assert [r.migration_id for r in store.list(wave="b").items] == [created.migration_id]
    assert store.list(wave="a").items == []
    assert records.get_entity(LOOKUP_PARTITION, created.migration_id)["partition"] == record_partition("b")


def test_a_create_that_crashed_after_its_claim_does_not_block_the_next(
    store: TableStore, service: TableServiceClient
) -> None:
    record = make_record(42, wave="w")
    records = service.get_table_client(store._records.table_name)
    records.create_entity(
        {"PartitionKey": LOOKUP_PARTITION, "RowKey": record.migration_id, "partition": NO_WAVE_PARTITION,
         "state": "pending"}
    )  # fmt: skip
    records.create_entity({"PartitionKey": NO_WAVE_PARTITION, "RowKey": record.migration_id, "kind": "record",
                           "half": "written"})  # fmt: skip
    with pytest.raises(NotFound):
        store.get(record.migration_id)

    store.create(record)

    assert content(store.get(record.migration_id)) == content(record)
    assert [r.wave for r in store.list().items] == ["w"]  # the half-written copy without a wave is gone
    assert len(store.list(wave="w").items) == 1


# -- the event log ---------------------------------------------------------------------------------


def test_events_list_oldest_first_even_when_appended_out_of_order(store: TableStore) -> None:
    migration_id = make_record(50).migration_id
    for second in (5, 1, 3):
        store.append_event(make_event(migration_id, second))
    store.append_event(make_event(make_record(51).migration_id, 2))

    events = store.list_events(migration_id)

    assert [e.at for e in events] == [T0 + timedelta(seconds=s) for s in (1, 3, 5)]
    assert store.table_scans == 0


def test_events_at_the_same_instant_keep_their_append_order(store: TableStore) -> None:
    migration_id = make_record(52).migration_id
    for step in range(6):
        store.append_event(make_event(migration_id, 0, step=step, nested={"a": [1, 2]}))

    events = store.list_events(migration_id)

    assert [e.details["step"] for e in events] == list(range(6))
    assert events[0].details["nested"] == {"a": [1, 2]}
    assert [e.details["step"] for e in store.list_events(migration_id, limit=4)] == [0, 1, 2, 3]


def test_an_oversized_event_is_invalid_input(store: TableStore) -> None:
    with pytest.raises(InvalidInput):
        store.append_event(make_event(make_record(53).migration_id, 0, blob="x" * 40_000))


# -- cost ------------------------------------------------------------------------------------------


def test_what_each_operation_costs_in_requests(fleet: TableStore) -> None:
    assert fleet.requests is not None
    counts = fleet.requests
    migration_id = make_record(10).migration_id
    reads, queries = counts[TableRequest.POINT_READ], counts[TableRequest.PARTITION_QUERY]
    record = fleet.get(migration_id)
    assert (counts[TableRequest.POINT_READ] - reads, counts[TableRequest.PARTITION_QUERY] - queries) == (2, 0)

    reads, writes = counts[TableRequest.POINT_READ], counts[TableRequest.WRITE]
    fleet.update(record.model_copy(update={"progress_percent": 1}))
    assert counts[TableRequest.POINT_READ] == reads  # one conditional write, no read
    assert counts[TableRequest.WRITE] == writes + 1

    queries = counts[TableRequest.PARTITION_QUERY]
    _all_pages(fleet, wave="w1", page_size=3)
    assert counts[TableRequest.PARTITION_QUERY] - queries == 3  # one single-partition request per page of a wave
    assert fleet.table_scans == 0


def test_a_query_that_reads_the_whole_table_is_counted_as_a_scan(fleet: TableStore) -> None:
    """The count can count: a query by phase alone (no partition) is seen at the pipeline."""
    before = fleet.table_scans
    rows = list(fleet._records.query_entities("phase eq @phase", parameters={"phase": "Replicating"}))
    assert rows
    assert fleet.table_scans == before + 1
    # So is a query that names a partition but may leave it ("or").
    list(fleet._records.query_entities("PartitionKey eq @p or phase eq @phase",
                                       parameters={"p": "w1", "phase": "Migrated"}))  # fmt: skip
    assert fleet.table_scans == before + 2
