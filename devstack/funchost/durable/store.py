"""Durable state in one Azurite table, written with group commits.

Layout (one table ``<hub>Durable``; instances spread over a few partitions, ``s00``..``s15``):

- ``i|<instance>``: the instance row (status, name, times, and a snapshot of the host's state);
  written when the instance is created, continues as new, or reaches a terminal status.
- ``h|<instance>|<generation>|<commit>``: one row per committed episode: the history events that
  episode appended, and the snapshot after it. The history of an execution is these rows in order.
- ``m|<instance>|<sequence>``: an inbox message that must survive a crash (external event,
  terminate), deleted in the same transaction as the episode that moves it into the history.

Everything an episode writes lives in the instance's partition, so it commits atomically in one
entity-group transaction. Writer threads (each owning some partitions) group the pending writes
of many episodes by partition into transactions of up to 99 operations: at a thousand concurrent
orchestrations this turns thousands of requests into a few dozen, and the Azure SDK's per-request
cost (about 4 ms of CPU per transaction) stops mattering. Several writers let the SDK encode one
transaction while Azurite stores another.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

log = logging.getLogger("funchost.store")

SHARDS = 16
MAX_BATCH_OPERATIONS = 99
MAX_BATCH_BYTES = 3_000_000
# A string property holds at most 32K UTF-16 characters; longer values spill into numbered properties.
PROPERTY_CHARS = 30_000
MAX_PROPERTY_PARTS = 14

Operation = tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], dict[str, Any]]
CommitCallback = Callable[[BaseException | None], None]


class PayloadTooLarge(RuntimeError):
    """A history chunk or message does not fit in a table entity (about 840K characters)."""


def shard_of(instance_id: str) -> str:
    return f"s{zlib.crc32(instance_id.encode()) % SHARDS:02d}"


def state_key(instance_id: str) -> str:
    return f"i|{instance_id}"


def chunk_key(instance_id: str, generation: int, commit: int) -> str:
    return f"h|{instance_id}|{generation:05d}|{commit:08d}"


def message_key(instance_id: str, sequence: str) -> str:
    return f"m|{instance_id}|{sequence}"


def pack(entity: dict[str, Any], name: str, text: str | None) -> None:
    if text is None:
        return
    parts = [text[i : i + PROPERTY_CHARS] for i in range(0, len(text), PROPERTY_CHARS)] or [""]
    if len(parts) > MAX_PROPERTY_PARTS:
        raise PayloadTooLarge(
            f"{name} of {entity['RowKey']} is {len(text)} characters; the limit is "
            f"{PROPERTY_CHARS * MAX_PROPERTY_PARTS}"
        )
    entity[name] = parts[0]
    for index, part in enumerate(parts[1:], start=1):
        entity[f"{name}_{index}"] = part


def unpack(entity: dict[str, Any], name: str) -> str | None:
    if name not in entity:
        return None
    pieces = [str(entity[name])]
    index = 1
    while f"{name}_{index}" in entity:
        pieces.append(str(entity[f"{name}_{index}"]))
        index += 1
    return "".join(pieces)


def _size(operation: Operation) -> int:
    return sum(len(str(v)) for v in operation[1].values()) * 2 + 200


@dataclass
class _Pending:
    shard: str
    operations: list[Operation]
    callback: CommitCallback | None
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


@dataclass
class StoredInstance:
    state: dict[str, Any]
    snapshot: dict[str, Any]
    history_json: list[str]
    messages: list[tuple[str, dict[str, Any]]]  # (row key, message JSON), oldest first


class DurableStore:
    def __init__(self, connection_string: str, task_hub: str, *, writers: int = 4) -> None:
        service = TableServiceClient.from_connection_string(connection_string)
        self.table_name = f"{task_hub}Durable"
        with contextlib.suppress(ResourceExistsError):
            service.create_table(self.table_name)
        self._table: TableClient = service.get_table_client(self.table_name)
        self._queues: list[list[_Pending]] = [[] for _ in range(writers)]
        self._cond = threading.Condition()
        self._running = False
        self._threads: list[threading.Thread] = []
        self.transactions = 0
        self.entities_written = 0
        self._sequence = 0

    # --- the writer ------------------------------------------------------------------------------
    def start(self) -> None:
        self._running = True
        for index in range(len(self._queues)):
            thread = threading.Thread(
                target=self._write_loop, args=(index,), name=f"durable-store-writer-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()

    def submit(self, shard: str, operations: list[Operation], callback: CommitCallback | None = None) -> _Pending:
        pending = _Pending(shard, operations, callback)
        with self._cond:
            self._queues[int(shard[1:]) % len(self._queues)].append(pending)
            self._cond.notify_all()
        return pending

    def write(self, shard: str, operations: list[Operation]) -> None:
        """Commit and wait (for client requests, which answer only once their write is durable)."""
        pending = self.submit(shard, operations)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error

    def _write_loop(self, index: int) -> None:
        while True:
            with self._cond:
                while self._running and not self._queues[index]:
                    self._cond.wait()
                if not self._queues[index] and not self._running:
                    return
                batch, self._queues[index] = self._queues[index], []
            by_shard: dict[str, list[_Pending]] = {}
            for pending in batch:
                by_shard.setdefault(pending.shard, []).append(pending)
            for shard, items in by_shard.items():
                self._commit_shard(shard, items)

    def _commit_shard(self, shard: str, items: list[_Pending]) -> None:
        group: list[_Pending] = []
        count = size = 0
        keys: set[str] = set()
        for item in items:
            item_keys = {op[1]["RowKey"] for op in item.operations}
            item_size = sum(_size(op) for op in item.operations)
            too_big = count + len(item.operations) > MAX_BATCH_OPERATIONS or size + item_size > MAX_BATCH_BYTES
            if group and (too_big or keys & item_keys):
                self._commit_group(shard, group)
                group, count, size, keys = [], 0, 0, set()
            group.append(item)
            count += len(item.operations)
            size += item_size
            keys |= item_keys
        if group:
            self._commit_group(shard, group)

    def _commit_group(self, shard: str, group: list[_Pending]) -> None:
        operations = [op for item in group for op in item.operations]
        error: BaseException | None = None
        try:
            self._transact(shard, operations)
        except Exception as exc:
            error = exc
        if error is not None and len(group) > 1:
            for item in group:  # isolate the item that made the transaction fail
                self._commit_group(shard, [item])
            return
        for item in group:
            item.error = error
            item.done.set()
            if error is not None:
                log.error("durable store write failed for %s: %s", shard, error)
            if item.callback is not None:
                try:
                    item.callback(error)
                except Exception:
                    log.exception("durable store commit callback failed")

    def _transact(self, shard: str, operations: list[Operation]) -> None:
        if not operations:
            return
        for start in range(0, len(operations), MAX_BATCH_OPERATIONS):
            chunk = operations[start : start + MAX_BATCH_OPERATIONS]
            for attempt in range(5):
                try:
                    self._table.submit_transaction(chunk)
                    break
                except TableTransactionError:
                    raise
                except Exception:
                    if attempt == 4:
                        raise
                    time.sleep(0.05 * 2**attempt)
            with self._cond:
                self.transactions += 1
                self.entities_written += len(chunk)

    # --- reads -------------------------------------------------------------------------------------
    def _range(self, shard: str, prefix: str, select: list[str] | None = None) -> Iterator[dict[str, Any]]:
        yield from self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
            parameters={"pk": shard, "lo": prefix, "hi": prefix[:-1] + chr(ord(prefix[-1]) + 1)},
            select=select,
        )

    def load_states(self) -> list[dict[str, Any]]:
        states: list[dict[str, Any]] = []
        for index in range(SHARDS):
            states.extend(self._range(f"s{index:02d}", "i|"))
        return states

    def load_instance(self, state: dict[str, Any]) -> StoredInstance:
        instance_id = str(state["InstanceId"])
        shard = shard_of(instance_id)
        snapshot = json.loads(unpack(state, "Snapshot") or "{}")
        generation = int(snapshot.get("generation", 0))
        history: list[str] = []
        latest = snapshot
        for row in self._range(shard, f"h|{instance_id}|{generation:05d}|"):
            history.extend(json.dumps(event) for event in json.loads(unpack(row, "Events") or "[]"))
            chunk_snapshot = json.loads(unpack(row, "Snapshot") or "{}")
            if chunk_snapshot.get("commits", -1) > latest.get("commits", -1):
                latest = chunk_snapshot
        messages = [
            (str(row["RowKey"]), json.loads(unpack(row, "Message") or "{}"))
            for row in self._range(shard, f"m|{instance_id}|")
        ]
        return StoredInstance(state=state, snapshot=latest, history_json=history, messages=messages)

    def load_history(self, instance_id: str, generation: int, length: int) -> list[str]:
        history: list[str] = []
        for row in self._range(shard_of(instance_id), f"h|{instance_id}|{generation:05d}|"):
            history.extend(json.dumps(event) for event in json.loads(unpack(row, "Events") or "[]"))
        return history[:length]

    def row_keys(self, instance_id: str, prefix: str) -> list[str]:
        return [str(r["RowKey"]) for r in self._range(shard_of(instance_id), prefix, select=["RowKey"])]

    # --- entity builders ---------------------------------------------------------------------------
    @staticmethod
    def state_entity(instance_id: str, summary: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": shard_of(instance_id),
            "RowKey": state_key(instance_id),
            "InstanceId": instance_id,
            **summary,
        }
        pack(entity, "Snapshot", json.dumps(snapshot))
        return entity

    @staticmethod
    def chunk_entity(
        instance_id: str, generation: int, commit: int, events: list[str], snapshot: dict[str, Any]
    ) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": shard_of(instance_id),
            "RowKey": chunk_key(instance_id, generation, commit),
        }
        pack(entity, "Events", "[" + ",".join(events) + "]")
        pack(entity, "Snapshot", json.dumps(snapshot))
        return entity

    def message_entity(self, instance_id: str, message: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            self._sequence += 1
            sequence = f"{time.time_ns():020d}-{self._sequence:06d}"
        entity: dict[str, Any] = {"PartitionKey": shard_of(instance_id), "RowKey": message_key(instance_id, sequence)}
        pack(entity, "Message", json.dumps(message))
        return entity

    @staticmethod
    def upsert(entity: dict[str, Any]) -> Operation:
        return ("upsert", entity, {"mode": UpdateMode.REPLACE})

    @staticmethod
    def delete(instance_id: str, row_key: str) -> Operation:
        return ("delete", {"PartitionKey": shard_of(instance_id), "RowKey": row_key})
