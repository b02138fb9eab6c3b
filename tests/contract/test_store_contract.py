"""The MigrationStore contract, run against the lead's in-memory fake and the Table Storage adapter.

Only what the port promises is asserted here; adapter-specific behaviour is in test_table_store.
"""

from __future__ import annotations

import uuid

import pytest

from devstack.settings import StackSettings
from functions.adapters.table_store import TableStore
from migration.errors import NotFound, PreconditionFailed
from migration.lifecycle import Phase
from migration.ports import MigrationStore
from tests.fakes import InMemoryStore
from tests.integration.store.records import content, make_event, make_record

pytestmark = pytest.mark.integration


@pytest.fixture(params=["in-memory", "table-storage"])
def any_store(request: pytest.FixtureRequest) -> MigrationStore:
    if request.param == "in-memory":
        return InMemoryStore()
    azurite: StackSettings = request.getfixturevalue("azurite")
    assert azurite.azurite is not None
    suffix = uuid.uuid4().hex[:12]
    return TableStore.counted(
        azurite.azurite.connection_string, migrations_table=f"c{suffix}", events_table=f"d{suffix}"
    )


def test_create_then_get_returns_the_record_with_an_etag(any_store: MigrationStore) -> None:
    record = make_record(1, wave="w", phase=Phase.REPLICATING, progress_percent=12)
    created = any_store.create(record)
    read = any_store.get(record.migration_id)
    assert created.etag
    assert read.etag == created.etag
    assert content(read) == content(record)


def test_create_refuses_a_duplicate_and_get_an_unknown(any_store: MigrationStore) -> None:
    any_store.create(make_record(2))
    with pytest.raises(PreconditionFailed):
        any_store.create(make_record(2))
    with pytest.raises(NotFound):
        any_store.get(make_record(3).migration_id)


def test_update_needs_the_current_etag(any_store: MigrationStore) -> None:
    created = any_store.create(make_record(4))
    updated = any_store.update(created.model_copy(update={"phase": Phase.ENABLING_REPLICATION}))
    assert updated.etag != created.etag
    with pytest.raises(PreconditionFailed):
        any_store.update(created.model_copy(update={"phase": Phase.FAILED}))
    assert any_store.get(created.migration_id).phase is Phase.ENABLING_REPLICATION


def test_listing_a_wave_in_pages_returns_each_member_once(any_store: MigrationStore) -> None:
    for number in range(10, 17):
        any_store.create(make_record(number, wave="w1", phase=Phase.REPLICATING if number % 2 else Phase.REQUESTED))
    any_store.create(make_record(30, wave="w2"))
    seen: list[str] = []
    continuation = None
    while True:
        page = any_store.list(wave="w1", page_size=3, continuation=continuation)
        seen.extend(r.migration_id for r in page.items)
        continuation = page.continuation
        if continuation is None:
            break
    assert sorted(seen) == sorted(make_record(n).migration_id for n in range(10, 17))
    assert len(any_store.list(wave="w1", phase="Replicating").items) == 3
    assert any_store.list_waves() == ["w1", "w2"]


def test_events_come_back_oldest_first_up_to_the_limit(any_store: MigrationStore) -> None:
    migration_id = make_record(40).migration_id
    for second in range(5):
        any_store.append_event(make_event(migration_id, second, step=second))
    any_store.append_event(make_event(make_record(41).migration_id, 0))
    assert [e.details["step"] for e in any_store.list_events(migration_id)] == [0, 1, 2, 3, 4]
    assert [e.details["step"] for e in any_store.list_events(migration_id, limit=2)] == [0, 1]
