"""A stand-in for the Durable Functions extension's HTTP management API, recording every call.

The API's write routes talk to the Durable extension through the real ``DurableOrchestrationClient``,
over HTTP; the extension is a process we do not own, so the tests answer for it here (the local
Functions host serves the real thing; over-HTTP tests on it come later).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse

WEBHOOK_PATH = "/runtime/webhooks/durabletask/"
TASK_HUB = "aws2azure"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: Any


class RecordingDurableHost(ThreadingHTTPServer):
    """``statuses`` says which instances exist and how; ``refuse_starts`` makes start_new fail."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.statuses: dict[str, str] = {}
        self.refuse_starts = False
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def start(self) -> RecordingDurableHost:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    @property
    def client_json(self) -> str:
        """The durable client binding's value, as the Functions host passes it to a function."""
        base = f"http://127.0.0.1:{self.server_address[1]}{WEBHOOK_PATH}"
        return json.dumps({"taskHubName": TASK_HUB, "creationUrls": {}, "managementUrls": {}, "rpcBaseUrl": base})

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def writes(self) -> list[Call]:
        return [call for call in self.calls if call.method == "POST"]


class _Handler(BaseHTTPRequestHandler):
    server: RecordingDurableHost

    def _reply(self, status: int, body: Any = None) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _parts(self) -> list[str]:
        path = urlparse(self.path).path
        return [unquote(part) for part in path.removeprefix(WEBHOOK_PATH).split("/") if part]

    def do_GET(self) -> None:
        parts = self._parts()
        self.server.record(Call("GET", "/".join(parts), None))
        if len(parts) == 2 and parts[0] == "instances":
            status = self.server.statuses.get(parts[1])
            if status is None:
                self._reply(404)
                return
            status_body = {
                "name": "migrate_instance",
                "instanceId": parts[1],
                "runtimeStatus": status,
                "createdTime": "2026-03-01T12:00:00Z",
                "lastUpdatedTime": "2026-03-01T12:00:00Z",
            }
            self._reply(200, status_body)
            return
        self._reply(404)

    def do_POST(self) -> None:
        parts = self._parts()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        body = json.loads(raw) if raw else None
        self.server.record(Call("POST", "/".join(parts), body))
        if len(parts) == 3 and parts[0] == "orchestrators":
            if self.server.refuse_starts:
                self._reply(409, {"Message": "An instance with this id already exists"})
                return
            self.server.statuses[parts[2]] = "Pending"
            self._reply(202, {"id": parts[2]})
            return
        if len(parts) == 4 and parts[0] == "instances" and parts[2] == "raiseEvent":
            status = self.server.statuses.get(parts[1])
            if status is None:
                self._reply(404)
            elif status in {"Completed", "Failed", "Terminated", "Canceled"}:
                self._reply(410)
            else:
                self._reply(202)
            return
        self._reply(404)

    def log_message(self, format: str, *args: object) -> None:
        pass
