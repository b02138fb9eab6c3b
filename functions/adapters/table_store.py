"""``MigrationStore`` over Azure Table Storage (azure-data-tables).

Key design (table ``migrations``)
---------------------------------
Four kinds of entity share the table; the partition key says which:

* **Record**: ``PartitionKey = "wave~<wave>"`` (or ``"nowave~"``), ``RowKey = migration id``. The whole
  record, one property per field (the instance flattened to ``instance_*``), ``kind = "record"``.
  Listing a wave, with or without a phase filter, is one single-partition query, always consistent
  with the records themselves (there is no separate index that could lag behind).
* **Lookup**: ``PartitionKey = "id~"``, ``RowKey = migration id``, ``partition`` = where the record
  lives. A point read by id is two point reads: the lookup, then the record. The lookup is written
  once at create (``state = "pending"`` then ``"live"``) and again only when the wave changes.
* **Wave registry**: ``PartitionKey = "waves~"``, ``RowKey = wave``: one small partition to list all
  waves, and to walk every record partition in order when no wave filter is given.

* **Config**: ``PartitionKey = "config~"``: the key that signs continuation tokens (HMAC), made once.

``~`` cannot appear in a wave name (``migration.tags.WAVE_PATTERN``), so no wave can collide with the
lookup or registry partitions.

Why wave as the partition and not the id: "list by wave" then needs no secondary index kept in step
by a second, non-atomic write; the price is one extra point read per ``get`` and a careful move when
a migration changes wave (rare: only a re-request with a new ``wave`` tag). A move writes a
*tombstone* over the old record (ETag-guarded, so concurrent writers get 412), which carries the new
record; anyone who meets the tombstone (the mover, a reader) finishes the move: insert the new
record, re-point the lookup, delete the tombstone. So a crash mid-move loses nothing.

Create claims the id in the lookup partition first (``pending``), writes the record, then marks the
lookup ``live`` guarded by the claim's ETag; a ``pending`` claim left by a crash is taken over by the
next create. Every update is a Replace with ``If-Match: <etag>``.

Table ``migrationevents``: ``PartitionKey = migration id``, ``RowKey = <UTC time, microseconds>-
<append wall-clock ns>-<random>``: sorted by time, unique, and a listing is one partition query.

Every query names exactly one partition and uses ``parameters=`` (never string-built OData);
``table_scans`` counts, at the HTTP pipeline, every request that would not (functions/adapters/table_requests.py).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableEntity, TableServiceClient, UpdateMode

from functions.adapters.table_requests import TableRequest, TableRequestCounter
from functions.settings import EVENTS_TABLE, MIGRATIONS_TABLE
from migration.errors import (
    InvalidInput,
    NotFound,
    PermanentCloudError,
    PreconditionFailed,
    ThrottledError,
    TransientCloudError,
)
from migration.lifecycle import Phase
from migration.queries import (
    DEFAULT_PAGE_SIZE,
    ListPosition,
    check_page_size,
    check_phase,
    check_wave,
    decode_position,
    encode_position,
)
from migration.records import MigrationEvent, MigrationRecord, Page

if TYPE_CHECKING:
    from functions.settings import FunctionSettings

NO_WAVE_PARTITION = "nowave~"
WAVE_PARTITION_PREFIX = "wave~"
LOOKUP_PARTITION = "id~"
WAVE_REGISTRY_PARTITION = "waves~"
CONFIG_PARTITION = "config~"
TOKEN_KEY_ROW = "continuation-token-key"
RECORD_KIND = "record"
MOVED_KIND = "moved"
_LIVE = "live"
_PENDING = "pending"
_STORE_PROPERTIES = frozenset({"kind"})
# Characters Table Storage refuses in keys, plus control characters.
_FORBIDDEN_KEY_CHARS = frozenset("/\\#?") | {chr(c) for c in range(0x20)} | {chr(c) for c in range(0x7F, 0xA0)}
_MAX_KEY_CHARS = 512
_MAX_EVENT_DETAILS_CHARS = 30_000  # a string property holds at most 64 KiB (32K UTF-16 characters)
_GET_ATTEMPTS = 3

# The class has a method named ``list``; these keep annotations inside it unambiguous.
_Position = dict[str, str | None]  # the tables SDK's own continuation: next PartitionKey and RowKey
_Entities = list[TableEntity]
_Records = list[MigrationRecord]
_Events = list[MigrationEvent]
_Waves = list[str]


def record_partition(wave: str | None) -> str:
    return NO_WAVE_PARTITION if wave is None else WAVE_PARTITION_PREFIX + check_wave(wave)


def _wave_of_partition(partition: str) -> str | None:
    return None if partition == NO_WAVE_PARTITION else partition.removeprefix(WAVE_PARTITION_PREFIX)


def _is_record_partition(partition: str) -> bool:
    if partition == NO_WAVE_PARTITION:
        return True
    if not partition.startswith(WAVE_PARTITION_PREFIX):
        return False
    try:
        check_wave(partition.removeprefix(WAVE_PARTITION_PREFIX))
    except InvalidInput:
        return False
    return True


def check_key(what: str, value: str) -> str:
    if not value or len(value) > _MAX_KEY_CHARS or any(ch in _FORBIDDEN_KEY_CHARS for ch in value):
        raise InvalidInput(
            f"{what} {value!r} cannot be a storage key (empty, too long, or holds / \\ # ? or control characters)",
            problems=[f"{what}: not a valid key"],
        )
    return value


@contextlib.contextmanager
def translated_errors(action: str) -> Iterator[None]:
    """Turn azure-core errors into migration.errors types; callers decide by type."""
    try:
        yield
    except ResourceNotFoundError as exc:
        raise NotFound(f"{action}: not found", code="NotFound") from exc
    except ResourceModifiedError as exc:
        raise PreconditionFailed(
            f"{action}: the record changed since it was read (stale ETag); read it again and retry",
            code="EtagMismatch",
        ) from exc
    except ResourceExistsError as exc:
        raise PreconditionFailed(f"{action}: it already exists", code="AlreadyExists") from exc
    except HttpResponseError as exc:
        status = exc.status_code or 0
        error_code = getattr(exc, "error_code", None)  # set by the tables SDK's error decoding
        if isinstance(error_code, Enum):
            error_code = error_code.value
        if status == 412:
            raise PreconditionFailed(f"{action}: stale ETag", code="EtagMismatch") from exc
        if status == 429:
            raise ThrottledError(
                f"{action}: throttled by Table Storage", retry_after_seconds=_retry_after(exc)
            ) from exc
        if status == 408 or status >= 500:
            raise TransientCloudError(
                f"{action}: Table Storage answered {status}", retry_after_seconds=_retry_after(exc)
            ) from exc
        raise PermanentCloudError(
            f"{action}: Table Storage answered {status} {error_code or ''}".rstrip(),
            code=str(error_code) if error_code else None,
        ) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise TransientCloudError(f"{action}: Table Storage did not answer ({exc})") from exc


def _retry_after(exc: HttpResponseError) -> float | None:
    headers = getattr(exc.response, "headers", None) or {}
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _plain(value: Any) -> Any:
    """SDK values -> plain Python (TablesEntityDatetime -> an aware datetime)."""
    if isinstance(value, datetime):
        return datetime.fromisoformat(value.isoformat()).astimezone(UTC)
    return value


def record_to_entity(record: MigrationRecord, partition: str) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": partition,
        "RowKey": record.migration_id,
        "kind": RECORD_KIND,
    }
    # The instance (and the migration id) are derived from the request, which is kept once.
    for name, value in record.model_dump(mode="python", exclude={"instance", "etag"}).items():
        if value is None:
            continue  # Table Storage has no null: an absent property reads back as None
        if isinstance(value, dict):  # a sub-model (the request, the timeline): Table Storage keeps it as JSON text
            entity[name] = getattr(record, name).model_dump_json()
            continue
        entity[name] = value.value if isinstance(value, Enum) else value
    return entity


def entity_to_record(entity: TableEntity) -> MigrationRecord:
    fields = {
        key: _plain(value)
        for key, value in entity.items()
        if key not in {"PartitionKey", "RowKey"} and key not in _STORE_PROPERTIES
    }  # fmt: skip
    return MigrationRecord.model_validate(fields).model_copy(update={"etag": entity.metadata["etag"]})


def _tombstone(record: MigrationRecord, source: str, destination: str) -> dict[str, Any]:
    return {
        "PartitionKey": source,
        "RowKey": record.migration_id,
        "kind": MOVED_KIND,
        "moved_to": destination,
        "payload": record.model_dump_json(exclude={"etag"}),
    }


def _event_row_key(at: datetime) -> str:
    # Time first so the partition sorts oldest first; the append's wall-clock nanoseconds order
    # events that share one (virtual) instant; the random tail makes the key unique across writers.
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{stamp}-{time.time_ns():019d}-{secrets.token_hex(4)}"


class TableStore:
    """The migration store on Azure Table Storage. Build once per worker and share it."""

    def __init__(
        self,
        service: TableServiceClient,
        *,
        migrations_table: str = MIGRATIONS_TABLE,
        events_table: str = EVENTS_TABLE,
        create_tables: bool = True,
        requests: TableRequestCounter | None = None,
    ) -> None:
        self._service = service
        self._records: TableClient = service.get_table_client(migrations_table)
        self._events: TableClient = service.get_table_client(events_table)
        self.requests = requests
        self._token_key: bytes | None = None
        if create_tables:
            self.ensure_tables()

    @classmethod
    def from_settings(cls, settings: FunctionSettings) -> TableStore:
        requests = TableRequestCounter()
        if settings.state_storage_connection_string:
            service = TableServiceClient.from_connection_string(
                settings.state_storage_connection_string, raw_request_hook=requests.on_request
            )
        else:
            from azure.identity import DefaultAzureCredential

            # Managed identity in Azure (STATE_STORAGE__tableServiceUri), no keys.
            service = TableServiceClient(
                endpoint=str(settings.state_table_service_uri), credential=DefaultAzureCredential(),
                raw_request_hook=requests.on_request,
            )  # fmt: skip
        return cls(service, requests=requests)

    @classmethod
    def counted(cls, connection_string: str, **options: Any) -> TableStore:
        """A store on ``connection_string`` whose every request is counted by kind (``requests``)."""
        requests = TableRequestCounter()
        service = TableServiceClient.from_connection_string(connection_string, raw_request_hook=requests.on_request)
        return cls(service, requests=requests, **options)

    @property
    def table_scans(self) -> int:
        """Requests that read more than one partition, as the Table clients' pipeline saw them."""
        if self.requests is None:
            raise RuntimeError("this store's requests are not counted: build it with TableStore.counted()")
        return self.requests[TableRequest.SCAN]

    def ensure_tables(self) -> None:
        with translated_errors("create tables"):
            for name in (self._records.table_name, self._events.table_name):
                self._service.create_table_if_not_exists(name)

    # -- point reads -------------------------------------------------------------------------

    def _read(self, table: TableClient, partition: str, row: str) -> TableEntity:
        return table.get_entity(partition, row)

    def _live_partition(self, migration_id: str) -> tuple[str, TableEntity]:
        lookup = self._read(self._records, LOOKUP_PARTITION, migration_id)
        if lookup.get("state") != _LIVE:
            raise ResourceNotFoundError(f"migration {migration_id} is still being created")
        return str(lookup["partition"]), lookup

    def get(self, migration_id: str) -> MigrationRecord:
        check_key("migration id", migration_id)
        with translated_errors(f"get migration {migration_id}"):
            for _ in range(_GET_ATTEMPTS):
                partition, _lookup = self._live_partition(migration_id)
                try:
                    entity = self._read(self._records, partition, migration_id)
                except ResourceNotFoundError:
                    continue  # it moved between our two reads: read the lookup again
                if entity.get("kind") == MOVED_KIND:
                    return self._finish_move(
                        partition,
                        str(entity["moved_to"]),
                        str(entity["payload"]),
                        str(entity.metadata["etag"]),
                    )
                return entity_to_record(entity)
        raise NotFound(f"get migration {migration_id}: not found", code="NotFound")

    # -- create --------------------------------------------------------------------------------

    def create(self, record: MigrationRecord) -> MigrationRecord:
        migration_id = check_key("migration id", record.migration_id)
        partition = record_partition(record.wave)
        action = f"create migration {migration_id}"
        with translated_errors(action):
            claim_etag = self._claim(migration_id, partition)
            self._register_wave(record.wave)
            try:
                written = self._records.create_entity(record_to_entity(record, partition))
            except ResourceExistsError:
                raise PreconditionFailed(
                    f"{action}: another create of the same migration is running", code="AlreadyExists"
                ) from None
            try:
                self._records.update_entity(
                    {"PartitionKey": LOOKUP_PARTITION, "RowKey": migration_id, "partition": partition,
                     "state": _LIVE},
                    mode=UpdateMode.REPLACE, etag=claim_etag, match_condition=MatchConditions.IfNotModified,
                )  # fmt: skip
            except (ResourceModifiedError, ResourceNotFoundError):
                # Another create took the claim over while we wrote: back out our copy if it is ours.
                with contextlib.suppress(HttpResponseError):
                    self._records.delete_entity(
                        partition, migration_id, etag=written["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )  # fmt: skip
                raise PreconditionFailed(
                    f"{action}: another create of the same migration won", code="AlreadyExists"
                ) from None
        return record.model_copy(update={"etag": written["etag"]})

    def _claim(self, migration_id: str, partition: str) -> str:
        claim = {"PartitionKey": LOOKUP_PARTITION, "RowKey": migration_id, "partition": partition,
                 "state": _PENDING}  # fmt: skip
        try:
            return str(self._records.create_entity(claim)["etag"])
        except ResourceExistsError:
            pass
        existing = self._read(self._records, LOOKUP_PARTITION, migration_id)
        if existing.get("state") == _LIVE:
            raise PreconditionFailed(f"migration {migration_id} already exists", code="AlreadyExists")
        # A pending claim: a create that crashed half-way (or is running right now). Take it over,
        # guarded by its ETag so that only one taker wins, then clear what the old claimant left.
        try:
            taken = self._records.update_entity(
                claim, mode=UpdateMode.REPLACE, etag=existing.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )  # fmt: skip
        except ResourceModifiedError:
            raise PreconditionFailed(
                f"migration {migration_id} is being created by someone else", code="AlreadyExists"
            ) from None
        with contextlib.suppress(ResourceNotFoundError):
            self._records.delete_entity(str(existing["partition"]), migration_id)
        return str(taken["etag"])

    def _register_wave(self, wave: str | None) -> None:
        if wave is not None:
            self._records.upsert_entity(
                {"PartitionKey": WAVE_REGISTRY_PARTITION, "RowKey": check_wave(wave)}, mode=UpdateMode.MERGE
            )

    # -- update (and the rare move between waves) ------------------------------------------------

    def update(self, record: MigrationRecord) -> MigrationRecord:
        migration_id = check_key("migration id", record.migration_id)
        action = f"update migration {migration_id}"
        if record.etag is None:
            raise PreconditionFailed(f"{action}: no ETag; update a record you read with get()", code="NoEtag")
        partition = record_partition(record.wave)
        with translated_errors(action):
            stored: str | None = None
            try:
                written = self._records.update_entity(
                    record_to_entity(record, partition), mode=UpdateMode.REPLACE, etag=record.etag,
                    match_condition=MatchConditions.IfNotModified,
                )  # fmt: skip
                return record.model_copy(update={"etag": written["etag"]})
            except ResourceNotFoundError:
                pass  # not where its wave says: the wave changed (or the record does not exist)
            except ResourceModifiedError:
                stored, _ = self._live_partition(migration_id)
                if stored == partition:
                    raise
                # Only a tombstone left here by an older move; the record lives elsewhere.
            if stored is None:
                stored, _ = self._live_partition(migration_id)
            if stored == partition:
                raise ResourceNotFoundError(f"migration {migration_id} has no record in {partition}")
            tomb = _tombstone(record, stored, partition)
            written = self._records.update_entity(
                tomb, mode=UpdateMode.REPLACE, etag=record.etag, match_condition=MatchConditions.IfNotModified
            )
            return self._finish_move(stored, partition, str(tomb["payload"]), str(written["etag"]))

    def _finish_move(self, source: str, destination: str, payload: str, tombstone_etag: str) -> MigrationRecord:
        """Roll a move forward from its tombstone; safe to run twice or concurrently."""
        record = MigrationRecord.model_validate_json(payload)
        migration_id = record.migration_id
        self._register_wave(record.wave)
        new_entity = record_to_entity(record, destination)
        try:
            written = self._records.create_entity(new_entity)
            result = record.model_copy(update={"etag": written["etag"]})
        except ResourceExistsError:
            existing = self._read(self._records, destination, migration_id)
            if existing.get("kind") == MOVED_KIND:
                # A tombstone from an older move out of this partition: replace it, guarded.
                written = self._records.update_entity(
                    new_entity, mode=UpdateMode.REPLACE, etag=existing.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )  # fmt: skip
                result = record.model_copy(update={"etag": written["etag"]})
            else:
                result = entity_to_record(existing)  # someone else already finished this move
        lookup = self._read(self._records, LOOKUP_PARTITION, migration_id)
        if lookup.get("partition") == source:
            # Only from source to destination: a later move must never be undone by a late finisher.
            with contextlib.suppress(ResourceModifiedError):
                self._records.update_entity(
                    {"PartitionKey": LOOKUP_PARTITION, "RowKey": migration_id, "partition": destination,
                     "state": _LIVE},
                    mode=UpdateMode.REPLACE, etag=lookup.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )  # fmt: skip
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self._records.delete_entity(
                source, migration_id, etag=tombstone_etag, match_condition=MatchConditions.IfNotModified
            )
        return result

    # -- listing -------------------------------------------------------------------------------

    def _query_partition(
        self,
        table: TableClient,
        partition: str,
        *,
        extra_filter: str = "",
        parameters: dict[str, Any] | None = None,
        page_size: int,
        position: _Position | None = None,
    ) -> tuple[_Entities, _Position | None]:
        """One request of a single-partition query: its entities and the store's next position."""
        query_filter = "PartitionKey eq @partition" + (f" and {extra_filter}" if extra_filter else "")
        pages = table.query_entities(
            query_filter,
            parameters={"partition": partition, **(parameters or {})},
            results_per_page=page_size,
        ).by_page(continuation_token=position)  # type: ignore[arg-type]  # the tables SDK takes a dict
        entities = list(next(pages, []))
        token = getattr(pages, "continuation_token", None)
        return entities, (dict(token) if token else None)

    def list(
        self,
        *,
        wave: str | None = None,
        phase: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        continuation: str | None = None,
    ) -> Page:
        check_page_size(page_size)
        wanted_phase = check_phase(phase) if phase is not None else None
        if wave is not None:
            check_wave(wave)
        if continuation:
            with translated_errors("read the continuation token key"):
                key = self._continuation_key()
            start = decode_position(continuation, key=key, wave=wave, phase=wanted_phase)
            if not self._valid_position(start, wave):
                raise InvalidInput(
                    "continuation token is not valid for this listing",
                    problems=["continuation: not a token this API issued for these filters"],
                )
            partition: str | None = start.partition
            position = (
                {"PartitionKey": start.next_partition_key, "RowKey": start.next_row_key}
                if start.next_partition_key is not None or start.next_row_key is not None else None
            )  # fmt: skip
        else:
            partition, position = record_partition(wave) if wave is not None else NO_WAVE_PARTITION, None
        extra = "kind eq @kind"
        parameters: dict[str, Any] = {"kind": RECORD_KIND}
        if wanted_phase is not None:
            extra += " and phase eq @phase"
            parameters["phase"] = wanted_phase.value
        items: _Records = []
        with translated_errors("list migrations"):
            while partition is not None and len(items) < page_size:
                entities, position = self._query_partition(
                    self._records, partition, extra_filter=extra, parameters=parameters,
                    page_size=page_size - len(items), position=position,
                )  # fmt: skip
                items.extend(entity_to_record(e) for e in entities)
                if position is None:
                    partition = None if wave is not None else self._next_wave_partition(partition)
        if partition is None:
            return Page(items=items)
        token = ListPosition(
            wave=wave, phase=wanted_phase, partition=partition,
            next_partition_key=(position or {}).get("PartitionKey"),
            next_row_key=(position or {}).get("RowKey"),
        )  # fmt: skip
        with translated_errors("read the continuation token key"):
            key = self._continuation_key()
        return Page(items=items, continuation=encode_position(token, key=key))

    def _continuation_key(self) -> bytes:
        """The key that signs continuation tokens: made once, kept in the table, shared by all workers."""
        if self._token_key is None:
            # If it was made before (by another worker, or an earlier life of this one), use theirs.
            with contextlib.suppress(ResourceExistsError):
                self._records.create_entity(
                    {"PartitionKey": CONFIG_PARTITION, "RowKey": TOKEN_KEY_ROW, "key": secrets.token_hex(32)}
                )
            entity = self._read(self._records, CONFIG_PARTITION, TOKEN_KEY_ROW)
            self._token_key = bytes.fromhex(str(entity["key"]))
        return self._token_key

    def _valid_position(self, position: ListPosition, wave: str | None) -> bool:
        if wave is not None and position.partition != record_partition(wave):
            return False
        # Signed tokens are ours; this is defence in depth should the key ever leak.
        return _is_record_partition(position.partition)

    def _next_wave_partition(self, partition: str) -> str | None:
        """The record partition after ``partition`` when walking every wave in name order."""
        current = _wave_of_partition(partition)
        for wave in self.list_waves():
            if current is None or wave > current:
                return record_partition(wave)
        return None

    def list_waves(self) -> _Waves:
        waves: _Waves = []
        position: _Position | None = None
        with translated_errors("list waves"):
            while True:
                entities, position = self._query_partition(
                    self._records, WAVE_REGISTRY_PARTITION, page_size=1000, position=position
                )
                waves.extend(str(e["RowKey"]) for e in entities)
                if position is None:
                    return sorted(waves)

    # -- the event log -------------------------------------------------------------------------

    def append_event(self, event: MigrationEvent) -> None:
        migration_id = check_key("migration id", event.migration_id)
        details = json.dumps(event.details, separators=(",", ":"), default=str)
        if len(details) > _MAX_EVENT_DETAILS_CHARS:
            raise InvalidInput(
                f"event details of migration {migration_id} are too large ({len(details)} characters, "
                f"at most {_MAX_EVENT_DETAILS_CHARS})"
            )
        entity = {
            "PartitionKey": migration_id,
            "RowKey": _event_row_key(event.at),
            "at": event.at.astimezone(UTC),
            "kind": event.kind,
            "phase": event.phase.value,
            "message": event.message,
            "details": details,
        }
        with translated_errors(f"append an event to migration {migration_id}"):
            try:
                self._events.create_entity(entity)
            except ResourceExistsError:
                entity["RowKey"] = _event_row_key(event.at)  # astronomically unlikely; a new tail
                self._events.create_entity(entity)

    def list_events(self, migration_id: str, *, limit: int = 200) -> _Events:
        check_key("migration id", migration_id)
        check_page_size(limit)
        events: _Events = []
        position: _Position | None = None
        with translated_errors(f"list events of migration {migration_id}"):
            while len(events) < limit:
                entities, position = self._query_partition(
                    self._events, migration_id, page_size=limit - len(events), position=position
                )
                events.extend(
                    MigrationEvent(
                        migration_id=migration_id, at=_plain(e["at"]), kind=str(e["kind"]),
                        phase=Phase(e["phase"]), message=str(e["message"]),
                        details=json.loads(str(e.get("details") or "{}")),
                    )
                    for e in entities
                )  # fmt: skip
                if position is None:
                    break
        return events[:limit]
