"""The Azure Function App's HTTP status API, read with the standard library (no extra package in the Lambda).

``GET {base}/api/migrations/{migration_id}`` returns a MigrationRecord (and perhaps more keys, which are
ignored); the function key goes in ``x-functions-key`` and comes from Secrets Manager.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pydantic import ValidationError

from aws_lambda.adapters.secrets import CachedSecret
from migration.errors import (
    InvalidInput,
    MigrationError,
    NotFound,
    PermanentCloudError,
    ThrottledError,
    TransientCloudError,
)
from migration.records import MigrationRecord

_RECORD_FIELDS = frozenset(MigrationRecord.model_fields)


def _retry_after(headers: Any) -> float | None:
    try:
        return float(headers.get("Retry-After")) if headers and headers.get("Retry-After") else None
    except ValueError:
        return None


class StatusApiClient:
    """Implements StatusApi."""

    def __init__(self, base_url: str, key: CachedSecret, *, timeout_seconds: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._key = key
        self._timeout = timeout_seconds

    def get_migration(self, migration_id: str) -> MigrationRecord:
        url = f"{self._base}/api/migrations/{urllib.parse.quote(migration_id, safe='')}"
        try:
            body = self._get(url, self._key.get())
        except PermanentCloudError as exc:
            if exc.code not in ("401", "403"):
                raise
            body = self._get(url, self._key.refresh())  # the key may have been rotated since it was cached
        # The API answers {"migration": <record>, "events": [...]} (functions/api MigrationDetail).
        record = body.get("migration") if isinstance(body, dict) else None
        if not isinstance(record, dict):
            raise InvalidInput(f"GET {url}: expected a JSON object with a 'migration' record")
        try:
            return MigrationRecord.model_validate({k: v for k, v in record.items() if k in _RECORD_FIELDS})
        except ValidationError as exc:
            raise InvalidInput(f"GET {url}: not a migration record: {exc.error_count()} problems") from exc

    def _get(self, url: str, key: str) -> Any:
        request = urllib.request.Request(
            url, headers={"x-functions-key": key, "accept": "application/json"}, method="GET"
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise _http_error(url, exc) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise TransientCloudError(f"GET {url}: {exc}") from exc
        except ValueError as exc:
            raise InvalidInput(f"GET {url}: response is not JSON: {exc}") from exc


def _http_error(url: str, error: urllib.error.HTTPError) -> MigrationError:
    message = f"GET {url}: HTTP {error.code}"
    if error.code == 404:
        return NotFound(message, code="404")
    if error.code == 429:
        return ThrottledError(message, retry_after_seconds=_retry_after(error.headers))
    if error.code >= 500:
        return TransientCloudError(message, retry_after_seconds=_retry_after(error.headers))
    return PermanentCloudError(message, code=str(error.code))
