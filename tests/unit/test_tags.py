from __future__ import annotations

from datetime import UTC, datetime

import pytest

from migration import tags
from migration.errors import InvalidInput
from migration.tags import MigrationTags, status_tags


def test_a_full_request_is_parsed() -> None:
    parsed = MigrationTags.from_tags(
        {
            tags.MIGRATE: "true",
            tags.WAVE: "wave-1",
            tags.CUTOVER_AT: "2026-12-01T22:00:00Z",
            tags.TARGET_SIZE: "Standard_D4s_v5",
            tags.TARGET_SUBNET: "app-subnet",
            tags.TEST_FAILOVER: "Yes",
            "Name": "web-1",
        }
    )
    assert parsed == MigrationTags(
        migrate=True,
        wave="wave-1",
        cutover_at=datetime(2026, 12, 1, 22, tzinfo=UTC),
        target_size="Standard_D4s_v5",
        target_subnet="app-subnet",
        test_failover=True,
    )


def test_no_tags_means_no_migration() -> None:
    assert MigrationTags.from_tags({}) == MigrationTags(migrate=False)


def test_offsets_are_normalised_to_utc() -> None:
    parsed = MigrationTags.from_tags({tags.MIGRATE: "true", tags.CUTOVER_AT: "2026-12-01T23:00:00+01:00"})
    assert parsed.cutover_at == datetime(2026, 12, 1, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (tags.MIGRATE, "perhaps", "not a boolean"),
        (tags.TEST_FAILOVER, "2", "not a boolean"),
        (tags.CUTOVER_AT, "tomorrow night", "not an ISO-8601 time"),
        (tags.CUTOVER_AT, "2026-12-01T22:00:00", "no time zone"),
        (tags.WAVE, "wave one!", "not a valid wave name"),
        (tags.TARGET_SIZE, "D4s_v5", "not a valid Azure VM size"),
        (tags.TARGET_SUBNET, "a/b", "not a valid subnet name"),
    ],
)
def test_each_bad_value_names_the_tag(key: str, value: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        MigrationTags.from_tags({tags.MIGRATE: "true", key: value})
    assert key in str(caught.value)


def test_all_bad_values_are_reported_together() -> None:
    with pytest.raises(InvalidInput) as caught:
        MigrationTags.from_tags({tags.MIGRATE: "maybe", tags.WAVE: "!", tags.CUTOVER_AT: "soon"})
    assert len(caught.value.problems) == 3


def test_status_tags_are_bounded_and_in_utc() -> None:
    written = status_tags("NotReady", updated_at=datetime(2026, 11, 26, 10, tzinfo=UTC), reason="x" * 400, progress=140)
    assert written[tags.STATUS] == "NotReady"
    assert len(written[tags.REASON]) == tags.EC2_TAG_VALUE_MAX
    assert written[tags.PROGRESS] == "100"
    assert written[tags.UPDATED_AT] == "2026-11-26T10:00:00Z"
    assert all(key.startswith(tags.PREFIX) for key in written)
