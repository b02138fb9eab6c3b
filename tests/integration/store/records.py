"""Builders of valid records and events for store and API tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from migration.events import MigrationRequestedData
from migration.identity import InstanceRef
from migration.lifecycle import Phase
from migration.records import MigrationEvent, MigrationRecord

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def instance(number: int, *, account: str = "123456789012", region: str = "eu-west-1") -> InstanceRef:
    return InstanceRef(account_id=account, region=region, instance_id=f"i-{number:017x}")


def make_record(number: int, *, wave: str | None = None, phase: Phase = Phase.REQUESTED,
                **changes: Any) -> MigrationRecord:  # fmt: skip
    ref = instance(number)
    request: dict[str, Any] = {
        "instance": ref, "request_id": f"req-{number}", "private_ip": f"10.0.{number // 250}.{number % 250 + 1}",
        "os_family": "linux", "wave": wave,
    }  # fmt: skip
    # Changes to what the request says go into the request, the rest onto the record.
    request |= {key: changes.pop(key) for key in list(changes) if key in MigrationRequestedData.model_fields}
    fields: dict[str, Any] = {"phase": phase, "created_at": T0, "updated_at": T0 + timedelta(seconds=number)}
    return MigrationRecord(request=MigrationRequestedData.model_validate(request), **(fields | changes))


def make_event(migration_id: str, second: int, *, kind: str = "PhaseChanged",
               phase: Phase = Phase.REQUESTED, **details: Any) -> MigrationEvent:  # fmt: skip
    return MigrationEvent(
        migration_id=migration_id,
        at=T0 + timedelta(seconds=second),
        kind=kind,
        phase=phase,
        message=f"event at +{second}s",
        details=details,
    )


def content(record: MigrationRecord) -> dict[str, Any]:
    """What a record says, without the store's ETag (pydantic's == compares the ETag too)."""
    return record.model_dump()
