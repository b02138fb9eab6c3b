from __future__ import annotations

import json
from typing import Any

import pytest

from migration.errors import InvalidInput
from migration.events import (
    CANCEL_REQUESTED,
    FAILOVER_REQUESTED,
    MIGRATION_REQUESTED,
    CancelRequested,
    FailoverRequested,
    MigrationRequested,
    parse_event,
)

INSTANCE = {"account_id": "123456789012", "region": "eu-west-1", "instance_id": "i-0123456789abcdef0"}


def migration_requested(**data_overrides: Any) -> dict[str, Any]:
    data = {
        "instance": dict(INSTANCE),
        "private_ip": "10.0.1.15",
        "os_family": "linux",
        "wave": "wave-1",
        "cutover_at": "2026-12-01T22:00:00Z",
        "request_id": "evt-1",
    }
    data.update(data_overrides)
    return {
        "specversion": "1.0",
        "id": "6d3c0c1e-0000-4000-8000-000000000001",
        "source": "aws2azure/intake/123456789012/eu-west-1",
        "type": MIGRATION_REQUESTED,
        "time": "2026-11-26T10:00:00Z",
        "subject": INSTANCE["instance_id"],
        "data": data,
    }


def test_a_valid_migration_requested_round_trips_through_json() -> None:
    event = parse_event(json.dumps(migration_requested()))
    assert isinstance(event, MigrationRequested)
    assert event.instance.migration_id == "123456789012-eu-west-1-i-0123456789abcdef0"
    assert event.data.cutover_at is not None
    assert event.data.cutover_at.utcoffset() is not None
    assert parse_event(event.to_json()) == event


def test_failover_and_cancel_events_parse_to_their_types() -> None:
    base = migration_requested()
    failover = {
        **base,
        "type": FAILOVER_REQUESTED,
        "data": {"instance": INSTANCE, "requested_by": "schedule", "source_stopped": True},
    }
    cancel = {**base, "type": CANCEL_REQUESTED, "data": {"instance": INSTANCE, "requested_by": "operator"}}
    assert isinstance(parse_event(failover), FailoverRequested)
    assert isinstance(parse_event(cancel), CancelRequested)


def test_unknown_type_is_named_in_the_error() -> None:
    with pytest.raises(InvalidInput, match=r"unknown event type 'io\.example\.Other\.v1'"):
        parse_event({**migration_requested(), "type": "io.example.Other.v1"})


def test_a_future_version_of_a_known_type_is_unknown() -> None:
    with pytest.raises(InvalidInput, match="unknown event type"):
        parse_event({**migration_requested(), "type": MIGRATION_REQUESTED.replace(".v1", ".v2")})


@pytest.mark.parametrize("field", ["specversion", "id", "source", "time", "subject", "data"])
def test_a_missing_envelope_field_is_named(field: str) -> None:
    event = migration_requested()
    del event[field]
    with pytest.raises(InvalidInput) as caught:
        parse_event(event)
    assert any(problem.startswith(field) for problem in caught.value.problems), caught.value.problems


def test_a_missing_data_field_is_named_with_its_path() -> None:
    event = migration_requested()
    del event["data"]["private_ip"]
    with pytest.raises(InvalidInput, match=r"data\.private_ip: Field required"):
        parse_event(event)


@pytest.mark.parametrize("bad_id", ["i-123", "i-0123456789ABCDEF0", "vol-0123456789abcdef0", "i-0123456789abcdef01"])
def test_a_bad_instance_id_is_rejected(bad_id: str) -> None:
    event = migration_requested(instance={**INSTANCE, "instance_id": bad_id})
    event["subject"] = bad_id
    with pytest.raises(InvalidInput, match="not a valid EC2 instance id"):
        parse_event(event)


@pytest.mark.parametrize("bad_region", ["eu-west", "EU-WEST-1", "mars-north-1", ""])
def test_a_bad_region_is_rejected(bad_region: str) -> None:
    with pytest.raises(InvalidInput, match="region"):
        parse_event(migration_requested(instance={**INSTANCE, "region": bad_region}))


@pytest.mark.parametrize("bad_time", ["yesterday", "2026-13-01T00:00:00Z", "2026-12-01T22:00:00"])
def test_a_bad_or_zoneless_time_is_rejected(bad_time: str) -> None:
    with pytest.raises(InvalidInput, match="time"):
        parse_event({**migration_requested(), "time": bad_time})
    with pytest.raises(InvalidInput, match="cutover_at"):
        parse_event(migration_requested(cutover_at=bad_time))


def test_subject_must_name_the_instance_in_data() -> None:
    with pytest.raises(InvalidInput, match="subject"):
        parse_event({**migration_requested(), "subject": "i-0000000000000000f"})


def test_unknown_data_fields_are_rejected_but_envelope_extensions_are_kept() -> None:
    with pytest.raises(InvalidInput, match=r"data\.colour"):
        parse_event(migration_requested(colour="blue"))
    event = parse_event({**migration_requested(), "traceparent": "00-abc-def-01"})
    assert event.model_extra == {"traceparent": "00-abc-def-01"}
    with pytest.raises(InvalidInput, match="extension attribute"):
        parse_event({**migration_requested(), "Bad_Name": "x"})


@pytest.mark.parametrize("raw", ["{not json", "[]", "42", b"\xff\xfe"])
def test_garbage_is_a_clear_error_not_a_crash(raw: str | bytes) -> None:
    with pytest.raises(InvalidInput):
        parse_event(raw)


def test_every_problem_is_reported_at_once() -> None:
    event = migration_requested(private_ip="not-an-ip", os_family="beos")
    with pytest.raises(InvalidInput) as caught:
        parse_event(event)
    paths = {problem.split(":")[0] for problem in caught.value.problems}
    assert {"data.private_ip", "data.os_family"} <= paths


def test_every_event_is_made_by_one_factory_with_the_instance_as_subject() -> None:
    from datetime import UTC, datetime

    from migration.events import (
        CancelRequested,
        CancelRequestedData,
        FailoverRequested,
        FailoverRequestedData,
        new_event,
        parse_event,
    )
    from migration.identity import InstanceRef

    instance = InstanceRef(account_id="123456789012", region="eu-west-1", instance_id="i-0123456789abcdef0")
    at = datetime(2026, 12, 1, 22, tzinfo=UTC)
    failover = new_event(FailoverRequestedData(instance=instance, requested_by="schedule", source_stopped=True),
                         component="cutover", at=at, event_id="fixed-id")  # fmt: skip
    assert isinstance(failover, FailoverRequested)
    assert (failover.id, failover.subject, failover.source) == (
        "fixed-id", "i-0123456789abcdef0", "aws2azure/cutover/123456789012/eu-west-1"
    )  # fmt: skip
    cancel = new_event(CancelRequestedData(instance=instance, requested_by="operator"), component="api", at=at)
    assert isinstance(cancel, CancelRequested)
    assert cancel.id != new_event(cancel.data, component="api", at=at).id  # a new id unless one is given
    assert parse_event(cancel.to_json()) == cancel  # what the factory makes, the contract accepts
