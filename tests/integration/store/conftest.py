"""Azurite for the store tests: one per session, a fresh pair of tables per test."""

from __future__ import annotations

import uuid

import pytest
from azure.data.tables import TableServiceClient

from devstack.settings import StackSettings
from functions.adapters.table_store import TableStore


@pytest.fixture
def service(azurite: StackSettings) -> TableServiceClient:
    assert azurite.azurite is not None
    return TableServiceClient.from_connection_string(azurite.azurite.connection_string)


@pytest.fixture
def store(azurite: StackSettings) -> TableStore:
    """A store on fresh tables whose every request is counted by kind (point read, partition query, scan)."""
    assert azurite.azurite is not None
    suffix = uuid.uuid4().hex[:12]
    return TableStore.counted(azurite.azurite.connection_string, migrations_table=f"m{suffix}",
                              events_table=f"e{suffix}")  # fmt: skip
