"""A secret from Secrets Manager, kept for a while so that a warm Lambda does not read it on every call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from aws_lambda.adapters.aws_errors import translate
from migration.errors import PermanentCloudError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class CachedSecret:
    """One secret's string value, re-read after ``ttl_seconds`` or on ``refresh()`` (e.g. after a 403)."""

    def __init__(
        self,
        client: SecretsManagerClient,
        secret_id: str,
        *,
        ttl_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._secret_id = secret_id
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._value: str | None = None
        self._read_at = 0.0

    def get(self) -> str:
        with self._lock:
            if self._value is None or self._monotonic() - self._read_at >= self._ttl:
                self._value = self._read()
                self._read_at = self._monotonic()
            return self._value

    def refresh(self) -> str:
        with self._lock:
            self._value = None
        return self.get()

    def _read(self) -> str:
        try:
            response = self._client.get_secret_value(SecretId=self._secret_id)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read secret {self._secret_id}") from exc
        value = response.get("SecretString")
        if not value:
            raise PermanentCloudError(f"secret {self._secret_id} has no string value", code="EmptySecret")
        return value.strip()
