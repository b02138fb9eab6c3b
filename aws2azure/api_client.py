"""A small client of the aws2azure HTTP API, for the CLI and the demo."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from devstack.settings import StackSettings


class ApiError(RuntimeError):
    """The API refused a request; the message is the API's own."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class ApiTarget:
    base_url: str
    key: str

    @classmethod
    def resolve(cls, url: str | None = None, key: str | None = None) -> ApiTarget:
        """Flags first, then AWS2AZURE_API_URL / AWS2AZURE_API_KEY, then the running local stack."""
        url = url or os.environ.get("AWS2AZURE_API_URL")
        key = key or os.environ.get("AWS2AZURE_API_KEY")
        if url and key:
            return cls(url.rstrip("/"), key)
        try:
            stack = StackSettings.load()
        except FileNotFoundError:
            stack = None
        if stack is not None and stack.host is not None:
            return cls((url or stack.host.base_url).rstrip("/"), key or stack.host.master_key)
        raise ApiError(0, "NotConfigured", "give --url and --key (or AWS2AZURE_API_URL and AWS2AZURE_API_KEY), "
                       "or start the local stack")  # fmt: skip


class MigrationApi:
    def __init__(self, target: ApiTarget, *, client: httpx.Client | None = None, timeout: float = 30.0) -> None:
        self.target = target
        self.client = client or httpx.Client(timeout=timeout)

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None) -> Any:  # fmt: skip
        response = self.client.request(
            method, f"{self.target.base_url}/api/{path}", params={k: v for k, v in (params or {}).items() if v},
            json=body, headers={"x-functions-key": self.target.key},
        )  # fmt: skip
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise ApiError(response.status_code, error.get("code", "Error"), error.get("message", response.text))
            except (ValueError, KeyError, TypeError):
                raise ApiError(response.status_code, "HttpError", response.text[:500]) from None
        return response.json() if response.content else None

    def get(self, migration_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"migrations/{migration_id}")
        return result

    def iter_migrations(self, *, wave: str | None = None, phase: str | None = None) -> Iterator[dict[str, Any]]:
        continuation: str | None = None
        while True:
            page = self._call("GET", "migrations", params={"wave": wave, "phase": phase, "continuation": continuation})
            yield from page["items"]
            continuation = page.get("continuation")
            if not continuation:
                return

    def wave(self, wave: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"waves/{wave}")
        return result

    def act(self, migration_id: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"migrations/{migration_id}/{action}", body=body or {})
        return result

    def cut_over_wave(self, wave: str, *, source_stopped: bool = False, at: str | None = None) -> dict[str, Any]:
        """Without ``source_stopped`` the AWS side stops the wave's sources; each fails over once stopped.
        ``at`` (ISO 8601 with a zone) schedules the wave's cutover instead of starting it now."""
        body: dict[str, Any] = {"source_stopped": source_stopped} | ({"at": at} if at else {})
        result: dict[str, Any] = self._call("POST", f"waves/{wave}/cutover", body=body)
        return result

    def start(self, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "migrations", body=event)
        return result
