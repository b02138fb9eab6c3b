"""The whole stack, as the end-to-end tests drive it."""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from aws2azure.api_client import ApiError, ApiTarget, MigrationApi
from devstack.launcher import Stack, http_answers
from devstack.settings import StackSettings
from functions.settings import INTAKE_QUEUE

ACCOUNT, REGION = "123456789012", "eu-west-1"


def api_of(settings: StackSettings) -> MigrationApi:
    assert settings.host is not None
    return MigrationApi(ApiTarget(settings.host.base_url, settings.host.master_key))


def intake_queue(settings: StackSettings) -> QueueClient:
    assert settings.azurite is not None
    queue = QueueClient.from_connection_string(settings.azurite.connection_string, INTAKE_QUEUE)
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    return queue


def send_event(queue: QueueClient, event_type: str, instance_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Put one CloudEvent on the intake queue, base64-encoded as the AWS side sends it."""
    event = {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": "aws2azure/e2e", "time": datetime.now(UTC).isoformat(),
        "type": f"io.aws2azure.migration.{event_type}.v1", "subject": instance_id,
        "data": {"instance": {"account_id": ACCOUNT, "region": REGION, "instance_id": instance_id}, **data},
    }  # fmt: skip
    queue.send_message(base64.b64encode(json.dumps(event).encode()).decode())
    return event


def migration_id(instance_id: str) -> str:
    return f"{ACCOUNT}-{REGION}-{instance_id}"


def wait_for(condition: Callable[[], Any], *, timeout: float = 90.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except ApiError as exc:
            last = exc
            if exc.status != 404:
                raise
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")


def phase_of(api: MigrationApi, instance_id: str) -> str:
    phase: str = api.get(migration_id(instance_id))["migration"]["phase"]
    return phase


def restart_host(stack: Stack, settings: StackSettings) -> None:
    assert settings.host is not None
    ping = f"{settings.host.base_url}/admin/host/ping"
    stack.restart("host", lambda: http_answers(ping))
