"""The app-wide ASR write budget: one token bucket entity in Azure Table Storage, updated with ETags.

Why a bucket in Table Storage: ARM's write limit is a token bucket per subscription and principal (200, refilled
10/s; Learn "Understand how Azure Resource Manager throttles requests"), and every Function App worker writes as
the same managed identity. A bucket that every worker reads and replaces with If-Match (optimistic concurrency)
is one budget however many workers run, needs no extra service (the app already has the storage account), and
fails closed: a worker that cannot update the bucket does not write to ASR. A single "paced path" (one queue
consumer sending every write) was the alternative; it would serialize all ASR writes behind one worker and
change how activities wait for their job ids, for the same guarantee.

Cost: one point read and one conditional update per ASR write (ASR writes are at most ~10/s; one partition takes
far more). Contention between workers shows as 412s that are retried at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from migration.pacing import BucketState, SharedWriteBudget

if TYPE_CHECKING:
    from functions.settings import FunctionSettings

PARTITION = "arm-write-budget"


class TableBucketStore:
    """``migration.pacing.BucketStore`` over one Table Storage entity."""

    def __init__(self, table: TableClient, key: str) -> None:
        self._table = table
        self._key = key

    def read(self) -> tuple[BucketState | None, str | None]:
        try:
            entity = self._table.get_entity(PARTITION, self._key)
        except ResourceNotFoundError:
            return None, None
        etag = entity.metadata.get("etag")
        return BucketState(float(entity["Tokens"]), float(entity["UpdatedAt"])), str(etag) if etag else None

    def write(self, state: BucketState, etag: str | None) -> bool:
        entity = {"PartitionKey": PARTITION, "RowKey": self._key, "Tokens": state.tokens, "UpdatedAt": state.updated_at}
        try:
            if etag is None:
                self._table.create_entity(entity)
            else:
                self._table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except ResourceExistsError:
            return False
        except HttpResponseError as exc:
            if exc.status_code == 412:
                return False
            raise
        return True


def table_service(settings: FunctionSettings) -> TableServiceClient:
    if settings.state_storage_connection_string:
        return TableServiceClient.from_connection_string(settings.state_storage_connection_string)
    from azure.identity import DefaultAzureCredential

    return TableServiceClient(endpoint=str(settings.state_table_service_uri), credential=DefaultAzureCredential())


def build_shared_write_budget(
    service: TableServiceClient, *, table_name: str, key: str, capacity: float, rate_per_second: float
) -> SharedWriteBudget:
    """``key`` names the budget: one per subscription and principal (what ARM's bucket is keyed by)."""
    service.create_table_if_not_exists(table_name)
    store = TableBucketStore(service.get_table_client(table_name), key)
    return SharedWriteBudget(store, capacity=capacity, rate_per_second=rate_per_second)


def write_budget_from_settings(settings: FunctionSettings) -> SharedWriteBudget:
    from functions.settings import WRITE_BUDGET_TABLE

    return build_shared_write_budget(
        table_service(settings),
        table_name=WRITE_BUDGET_TABLE,
        key=f"{settings.asr_subscription_id}-{settings.asr_vault_name}",
        capacity=settings.asr_write_budget_capacity,
        rate_per_second=settings.asr_write_budget_per_second,
    )
