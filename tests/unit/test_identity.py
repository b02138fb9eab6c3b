from __future__ import annotations

import pytest
from pydantic import ValidationError

from migration.identity import InstanceRef


def test_migration_id_round_trips_and_is_a_valid_durable_instance_id() -> None:
    ref = InstanceRef(account_id="123456789012", region="us-gov-west-1", instance_id="i-0abc12345678")
    assert InstanceRef.from_migration_id(ref.migration_id) == ref
    assert not set("/\\#?") & set(ref.migration_id)


def test_distinct_accounts_get_distinct_ids() -> None:
    a = InstanceRef(account_id="111111111111", region="eu-west-1", instance_id="i-0abc12345678")
    b = InstanceRef(account_id="222222222222", region="eu-west-1", instance_id="i-0abc12345678")
    assert a.migration_id != b.migration_id


@pytest.mark.parametrize("bad", ["", "123456789012-eu-west-1", "nonsense"])
def test_a_malformed_migration_id_is_rejected(bad: str) -> None:
    with pytest.raises((ValueError, ValidationError)):
        InstanceRef.from_migration_id(bad)
