"""The notification outbox (``migration.notifications.NotificationOutbox``) over Azure Table Storage.

Table ``notifications``, three kinds of entity:

* **Entry**: ``PartitionKey = migration id``, ``RowKey = sequence`` (zero-padded, so a partition query lists a
  migration's notifications in order). Inserted once (a second insert of the same change answers 409: a no-op).
* **Pending mark**: ``PartitionKey = "pending~"``, ``RowKey = migration id``: the migrations the delivery sweep
  visits, one partition query. Upserted after each entry with the entry's sequence, so its ETag changes; the sweep
  removes it If-Match the ETag it read, so a mark never disappears under a notification added meanwhile.
* **Recent**: ``PartitionKey = "recent~"``, ``RowKey = inverted time + id``: each delivered or dead-lettered
  notification, newest first, for the status page (a top-N query of one partition).

``~`` is in no migration id (``account-region-instance``), so the partitions cannot collide.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, TableServiceClient, UpdateMode

from functions.adapters.table_store import check_key, translated_errors
from functions.settings import NOTIFICATIONS_TABLE
from migration.errors import NotFound, PreconditionFailed
from migration.lifecycle import Phase
from migration.notifications import LEASE, Notification

PENDING_PARTITION = "pending~"
RECENT_PARTITION = "recent~"
_RELEASED = datetime(2000, 1, 1, tzinfo=UTC)
_EPOCH_LIMIT_US = 10**17  # microseconds; inverted so the newest sorts first


def _row(sequence: int) -> str:
    return f"{sequence:010d}"


def _plain_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return datetime.fromisoformat(value.isoformat()).astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def _to_entity(notification: Notification, partition: str, row: str) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": partition, "RowKey": row}
    for name, value in notification.model_dump(mode="python").items():
        if value is None:
            continue
        if name == "delivered_to":
            entity[name] = json.dumps(value)
        elif isinstance(value, Phase):
            entity[name] = value.value
        elif isinstance(value, datetime):
            entity[name] = value.astimezone(UTC)
        else:
            entity[name] = value
    return entity


def _from_entity(entity: TableEntity) -> Notification:
    fields = {k: v for k, v in entity.items() if k not in {"PartitionKey", "RowKey"}}
    for name in ("created_at", "next_attempt_at", "finished_at"):
        if name in fields:
            fields[name] = _plain_time(fields[name])
    fields["delivered_to"] = json.loads(str(fields.get("delivered_to") or "[]"))
    etag = entity.metadata.get("etag") if hasattr(entity, "metadata") else None
    return Notification.model_validate(fields).model_copy(update={"etag": etag})


class TableOutbox:
    """Build once per worker and share it."""

    def __init__(self, service: TableServiceClient, *, table: str = NOTIFICATIONS_TABLE,
                 create_table: bool = True) -> None:  # fmt: skip
        self._service = service
        self._table: TableClient = service.get_table_client(table)
        if create_table:
            with translated_errors("create the notifications table"):
                service.create_table_if_not_exists(table)

    @classmethod
    def from_connection_string(cls, connection_string: str, **options: Any) -> TableOutbox:
        return cls(TableServiceClient.from_connection_string(connection_string), **options)

    def add(self, notification: Notification) -> None:
        migration_id = check_key("migration id", notification.migration_id)
        entity = _to_entity(notification, migration_id, _row(notification.sequence))
        with translated_errors(f"add notification {notification.event_id}"):
            try:
                self._table.create_entity(entity)
            except ResourceExistsError:
                return  # this change is already queued (a rerun of its step)
            mark = {"PartitionKey": PENDING_PARTITION, "RowKey": migration_id, "sequence": notification.sequence}
            self._table.upsert_entity(mark, mode=UpdateMode.REPLACE)

    def migrations_pending(self) -> list[tuple[str, str]]:
        with translated_errors("list migrations with pending notifications"):
            entities = self._table.query_entities(
                "PartitionKey eq @partition", parameters={"partition": PENDING_PARTITION}
            )
            return [(str(e["RowKey"]), str(e.metadata["etag"])) for e in entities]

    def lease(self, migration_id: str, mark: str, until: datetime) -> str | None:
        with translated_errors(f"read the pending mark of {migration_id}"):
            try:
                current = self._table.get_entity(PENDING_PARTITION, check_key("migration id", migration_id))
            except ResourceNotFoundError:
                return None
        held = _plain_time(current.get("leased_until"))
        if held is not None and held > until - LEASE:
            return None  # another sweep holds it
        mark = str(current.metadata["etag"])
        entity = {"PartitionKey": PENDING_PARTITION, "RowKey": check_key("migration id", migration_id),
                  "leased_until": until.astimezone(UTC)}  # fmt: skip
        try:
            with translated_errors(f"lease the notifications of {migration_id}"):
                written = self._table.update_entity(entity, mode=UpdateMode.MERGE, etag=mark,
                                                    match_condition=MatchConditions.IfNotModified)  # fmt: skip
        except (PreconditionFailed, NotFound):
            return None
        return str(written["etag"])

    def pending(self, migration_id: str) -> list[Notification]:
        check_key("migration id", migration_id)
        with translated_errors(f"list pending notifications of {migration_id}"):
            entities = self._table.query_entities(
                "PartitionKey eq @partition and status eq @status",
                parameters={"partition": migration_id, "status": "pending"},
            )
            found = [_from_entity(e) for e in entities]
        return sorted(found, key=lambda n: n.sequence)

    def save(self, notification: Notification) -> Notification:
        migration_id = check_key("migration id", notification.migration_id)
        entity = _to_entity(notification, migration_id, _row(notification.sequence))
        with translated_errors(f"save notification {notification.event_id}"):
            if notification.etag is None:
                written = self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
            else:
                written = self._table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=notification.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            if notification.status != "pending" and notification.finished_at is not None:
                micros = int(notification.finished_at.timestamp() * 1_000_000)
                row = f"{_EPOCH_LIMIT_US - micros:017d}-{migration_id}-{_row(notification.sequence)}"
                recent = {**entity, "PartitionKey": RECENT_PARTITION, "RowKey": row}
                self._table.upsert_entity(recent, mode=UpdateMode.REPLACE)
        return notification.model_copy(update={"etag": written.get("etag")})

    def release(self, migration_id: str, mark: str) -> None:
        entity = {"PartitionKey": PENDING_PARTITION, "RowKey": migration_id, "leased_until": _RELEASED}
        with contextlib.suppress(PreconditionFailed, NotFound), translated_errors(f"release {migration_id}"):
            self._table.update_entity(entity, mode=UpdateMode.MERGE, etag=mark,
                                      match_condition=MatchConditions.IfNotModified)  # fmt: skip

    def clear_pending(self, migration_id: str, mark: str) -> bool:
        check_key("migration id", migration_id)
        try:
            with translated_errors(f"clear the pending mark of {migration_id}"):
                self._table.delete_entity(PENDING_PARTITION, migration_id, etag=mark,
                                          match_condition=MatchConditions.IfNotModified)  # fmt: skip
        except (PreconditionFailed, NotFound):  # a notification was added since the mark was read: keep it
            return False
        return True

    def recent(self, migration_id: str | None = None, *, limit: int = 20) -> list[Notification]:
        if migration_id is None:
            with translated_errors("list recent notifications"):
                pages = self._table.query_entities(
                    "PartitionKey eq @partition", parameters={"partition": RECENT_PARTITION}, results_per_page=limit
                ).by_page()
                return [_from_entity(e) for e in next(pages, [])][:limit]
        check_key("migration id", migration_id)
        with translated_errors(f"list notifications of {migration_id}"):
            entities = self._table.query_entities("PartitionKey eq @partition", parameters={"partition": migration_id})
            found = [_from_entity(e) for e in entities]
        return sorted(found, key=lambda n: n.sequence, reverse=True)[:limit]
