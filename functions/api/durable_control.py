"""``OrchestrationControl`` over the Durable Functions client binding (azure-functions-durable).

The SDK reports most failures as a bare ``Exception`` with a message; rather than read the message,
a failed call is judged by asking the orchestration's status again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import azure.durable_functions as df

from functions.dispatch import dispatch
from functions.settings import FunctionSettings
from migration.errors import MigrationError, PermanentCloudError, PreconditionFailed, TransientCloudError
from migration.events import MigrationRequested
from migration.intake import IntakeDecision
from migration.lifecycle import ACTIVE_RUNTIME_STATUSES
from migration.ports import MigrationStore

_UNREACHABLE = (aiohttp.ClientError, asyncio.TimeoutError)


class DurableControl:
    def __init__(
        self, client: df.DurableOrchestrationClient, store: MigrationStore, settings: FunctionSettings
    ) -> None:
        self._client = client
        self._store = store
        self._settings = settings

    async def runtime_status(self, instance_id: str) -> str | None:
        try:
            status = await self._client.get_status(instance_id)
        except _UNREACHABLE as exc:
            raise TransientCloudError(f"the Durable Functions host did not answer: {exc}") from exc
        except Exception as exc:  # the SDK's own "unexpected status code" error
            raise TransientCloudError(f"the Durable Functions host failed a status query: {exc}") from exc
        runtime_status = getattr(status, "runtime_status", None)
        return None if runtime_status is None else str(runtime_status.value)

    async def request_migration(self, event: MigrationRequested) -> IntakeDecision:
        # The queue intake's own path (functions.dispatch): same decision, same orchestration input.
        try:
            return await dispatch(event, self._client, self._store, self._settings)
        except MigrationError:
            raise
        except _UNREACHABLE as exc:
            raise TransientCloudError(f"the Durable Functions host did not answer: {exc}") from exc
        except Exception as exc:
            raise PermanentCloudError(
                f"the Durable Functions host refused to start migration {event.instance.migration_id}: {exc}",
                code="OrchestrationStartRefused",
            ) from exc

    async def raise_event(self, instance_id: str, event_name: str, payload: dict[str, Any]) -> None:
        status = await self.runtime_status(instance_id)
        if status not in ACTIVE_RUNTIME_STATUSES:
            raise PreconditionFailed(
                f"migration {instance_id} has no running orchestration to receive {event_name} "
                f"(its status is {status or 'unknown: it never ran here'})",
                code="OrchestrationNotRunning",
            )
        try:
            await self._client.raise_event(instance_id, event_name, payload)
        except _UNREACHABLE as exc:
            raise TransientCloudError(f"the Durable Functions host did not answer: {exc}") from exc
        except Exception as exc:
            status = await self.runtime_status(instance_id)
            if status not in ACTIVE_RUNTIME_STATUSES:
                raise PreconditionFailed(
                    f"migration {instance_id}'s orchestration ended ({status}) before {event_name} arrived",
                    code="OrchestrationNotRunning",
                ) from exc
            raise PermanentCloudError(
                f"the Durable Functions host refused {event_name} for {instance_id}: {exc}",
                code="RaiseEventRefused",
            ) from exc
