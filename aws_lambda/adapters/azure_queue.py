"""The Azure Storage queue the Function App reads, through azure-storage-queue with an add-only SAS.

Messages are base64 text, which is what the Functions queue trigger expects, and never expire: the event
must survive an Azure outage until the Function App is back.
"""

from __future__ import annotations

from azure.core.exceptions import AzureError, ServiceRequestError, ServiceResponseError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from aws_lambda.adapters.secrets import CachedSecret
from migration.errors import MigrationError, PermanentCloudError, ThrottledError, TransientCloudError
from migration.events import AnyEvent

NEVER_EXPIRE = -1


class AzureQueuePublisher:
    """Implements EventPublisher. The SAS comes from Secrets Manager and is re-read once when refused."""

    def __init__(self, queue_url: str, sas: CachedSecret, *, retry_total: int = 2) -> None:
        self._queue_url = queue_url
        self._sas = sas
        self._retry_total = retry_total
        self._client: QueueClient | None = None
        self._client_sas: str | None = None

    def publish(self, event: AnyEvent) -> None:
        body = event.to_json()
        try:
            self._queue(self._sas.get()).send_message(body, time_to_live=NEVER_EXPIRE)
            return
        except AzureError as exc:
            if _status(exc) != 403:
                raise _translate(exc, self._queue_url) from exc
        # Refused: the SAS may have been rotated since it was cached. Read it again and try once more.
        try:
            self._queue(self._sas.refresh()).send_message(body, time_to_live=NEVER_EXPIRE)
        except AzureError as exc:
            raise _translate(exc, self._queue_url) from exc

    def _queue(self, sas: str) -> QueueClient:
        if self._client is None or sas != self._client_sas:
            self._client = QueueClient.from_queue_url(
                self._queue_url,
                credential=sas.lstrip("?"),
                message_encode_policy=TextBase64EncodePolicy(),
                retry_total=self._retry_total,
            )
            self._client_sas = sas
        return self._client


def _status(error: AzureError) -> int:
    return int(getattr(error, "status_code", None) or 0)


def _translate(error: AzureError, queue_url: str) -> MigrationError:
    where = queue_url.split("?", 1)[0]
    status = _status(error)
    code = getattr(error, "error_code", "") or ""
    message = f"send to {where}: {type(error).__name__} {status or ''} {code}"
    if isinstance(error, ServiceRequestError | ServiceResponseError) or status >= 500:
        return TransientCloudError(message.strip())
    if status == 429:
        return ThrottledError(message.strip())
    return PermanentCloudError(message.strip(), code=str(code or status))
