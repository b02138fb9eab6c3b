"""Where notifications go: a webhook (CloudEvents HTTP structured mode) and an Event Grid topic (CloudEvent schema).

Both raise only ``migration.errors`` types, so the delivery sweep (migration/notifications.py) decides by type.

- Webhook: ``POST`` with ``Content-Type: application/cloudevents+json; charset=utf-8`` and the event as the body
  (CloudEvents HTTP protocol binding 1.0, structured content mode). With a secret (NOTIFY_WEBHOOK_SECRET) the body
  is signed: ``X-Aws2azure-Signature: sha256=<hex HMAC-SHA256 of the body>``. Any 2xx is delivery; anything else,
  or no answer, is retried by the sweep.
- Event Grid: ``azure.eventgrid.EventGridPublisherClient(endpoint, credential).send(CloudEvent)`` (a basic topic
  with the CloudEvents 1.0 input schema): by default with the Function App's managed identity
  (DefaultAzureCredential), which needs the "EventGrid Data Sender" role on the topic; with NOTIFY_EVENT_GRID_KEY
  set, with the topic's access key instead (``AzureKeyCredential``, sent as header ``aeg-sas-key``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from typing import Any

from migration.errors import PermanentCloudError, TransientCloudError

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
SIGNATURE_HEADER = "X-Aws2azure-Signature"
TIMEOUT_SECONDS = 10.0


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSink:
    name = "webhook"

    def __init__(self, url: str, *, secret: str | None = None, timeout: float = TIMEOUT_SECONDS) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"NOTIFY_WEBHOOK_URL {url!r} is not an http(s) URL")
        self.url, self.secret, self.timeout = url, secret, timeout

    def send(self, event_json: str) -> None:
        body = event_json.encode()
        headers = {"Content-Type": CONTENT_TYPE, "User-Agent": "aws2azure-notifications/1"}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            raise TransientCloudError(f"webhook answered {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise TransientCloudError(f"webhook did not answer: {exc}") from exc
        if not 200 <= status < 300:
            raise TransientCloudError(f"webhook answered {status}")


# The SDK's retry policy (azure-core RetryPolicy) retries a POST answered 500/503/504, or not answered, up to 10
# times with backoff up to 2 minutes: several minutes inside one sweep while a topic is down. The sweep retries
# anyway (30 s doubling), so one send retries only briefly.
SDK_RETRIES = 2
# The basic-tier client takes no retry settings at construction, only per call (azure-core's ``retry_total``
# operation keyword); it also hands the call's keywords to its CloudEvent model, which logs each unknown one as
# "... is not a known attribute ... and will be ignored". That one record is dropped, nothing else.
_SDK_MODEL_LOGGER = "azure.eventgrid._legacy._generated._serialization"


class _DropRetryKeywordWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (record.msg == "%s is not a known attribute of class %s and will be ignored"
                    and bool(args) and str(args[0]).startswith("retry_"))  # fmt: skip


_RETRY_KEYWORD_FILTER = _DropRetryKeywordWarning()


class EventGridSink:
    name = "eventgrid"

    def __init__(self, client: Any, *, sdk_retries: int = SDK_RETRIES) -> None:
        # sdk_retries: how often the SDK retries one send before the sweep's own retry takes over (tests: 0).
        self._client, self._sdk_retries = client, sdk_retries
        logging.getLogger(_SDK_MODEL_LOGGER).addFilter(_RETRY_KEYWORD_FILTER)  # idempotent: the same filter object

    @classmethod
    def with_managed_identity(cls, endpoint: str, *, sdk_retries: int = SDK_RETRIES) -> EventGridSink:
        from azure.eventgrid import EventGridPublisherClient
        from azure.identity import DefaultAzureCredential

        return cls(EventGridPublisherClient(endpoint, DefaultAzureCredential()), sdk_retries=sdk_retries)

    @classmethod
    def with_access_key(cls, endpoint: str, key: str, *, sdk_retries: int = SDK_RETRIES) -> EventGridSink:
        """The topic's access key instead of an identity (NOTIFY_EVENT_GRID_KEY): for operators without managed
        identity, and the local stand-in (devstack/eventgrid_topic.py)."""
        from azure.core.credentials import AzureKeyCredential
        from azure.eventgrid import EventGridPublisherClient

        if not key:
            raise ValueError("NOTIFY_EVENT_GRID_KEY is empty")
        return cls(EventGridPublisherClient(endpoint, AzureKeyCredential(key)), sdk_retries=sdk_retries)

    def send(self, event_json: str) -> None:
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
        from azure.core.messaging import CloudEvent

        event: CloudEvent[Any] = CloudEvent.from_dict(json.loads(event_json))
        try:
            self._client.send(event, retry_total=self._sdk_retries)
        except ClientAuthenticationError as exc:
            # 401: a wrong or rotated key, or a role not yet assigned. Retried (the sweep backs off up to its
            # budget): fixing the setting or the role assignment lets the waiting events go on, in order.
            raise TransientCloudError(f"Event Grid refused the credential: {exc.message}") from exc
        except HttpResponseError as exc:
            status = exc.status_code or 0
            if status in (400, 413):
                raise PermanentCloudError(f"Event Grid refused the event ({status}): {exc.message}") from exc
            raise TransientCloudError(f"Event Grid answered {status}: {exc.message}") from exc
        except ServiceRequestError as exc:
            raise TransientCloudError(f"Event Grid did not answer: {exc}") from exc
