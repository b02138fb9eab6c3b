"""Where notifications go: a webhook (CloudEvents HTTP structured mode) and an Event Grid topic (CloudEvent schema).

Both raise only ``migration.errors`` types, so the delivery sweep (migration/notifications.py) decides by type.

- Webhook: ``POST`` with ``Content-Type: application/cloudevents+json; charset=utf-8`` and the event as the body
  (CloudEvents HTTP protocol binding 1.0, structured content mode). With a secret (NOTIFY_WEBHOOK_SECRET) the body
  is signed: ``X-Aws2azure-Signature: sha256=<hex HMAC-SHA256 of the body>``. Any 2xx is delivery; anything else,
  or no answer, is retried by the sweep.
- Event Grid: ``azure.eventgrid.EventGridPublisherClient(endpoint, credential).send(CloudEvent)`` with the Function
  App's managed identity (DefaultAzureCredential); the identity needs the "EventGrid Data Sender" role on the topic.
"""

from __future__ import annotations

import hashlib
import hmac
import json
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


class EventGridSink:
    name = "eventgrid"

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def with_managed_identity(cls, endpoint: str) -> EventGridSink:
        from azure.eventgrid import EventGridPublisherClient
        from azure.identity import DefaultAzureCredential

        return cls(EventGridPublisherClient(endpoint, DefaultAzureCredential()))

    def send(self, event_json: str) -> None:
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
        from azure.core.messaging import CloudEvent

        event: CloudEvent[Any] = CloudEvent.from_dict(json.loads(event_json))
        try:
            self._client.send(event)
        except ClientAuthenticationError as exc:
            raise TransientCloudError(f"Event Grid refused the identity: {exc.message}") from exc
        except HttpResponseError as exc:
            status = exc.status_code or 0
            if status in (400, 413):
                raise PermanentCloudError(f"Event Grid refused the event ({status}): {exc.message}") from exc
            raise TransientCloudError(f"Event Grid answered {status}: {exc.message}") from exc
        except ServiceRequestError as exc:
            raise TransientCloudError(f"Event Grid did not answer: {exc}") from exc
