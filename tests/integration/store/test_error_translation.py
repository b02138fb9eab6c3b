"""azure-core errors become migration.errors types, judged by a Table endpoint that answers badly.

The Table service is a boundary we do not own; this small HTTP server stands in for it when it
throttles or fails, which Azurite never does.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.data.tables import TableServiceClient

from devstack.settings import AZURITE_ACCOUNT, AZURITE_KEY
from functions.adapters.table_store import TableStore
from migration.errors import NotFound, PermanentCloudError, ThrottledError, TransientCloudError
from tests.integration.store.records import make_record


class ScriptedTableService(ThreadingHTTPServer):
    """Answers every request with one status, a Retry-After header and an OData error body."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = 503
        self.retry_after: str | None = None
        self.error_code = "ServerBusy"
        self.requests = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{AZURITE_ACCOUNT}"


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedTableService

    def _answer(self) -> None:
        self.server.requests += 1
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        error = {"code": self.server.error_code, "message": {"lang": "en-US", "value": "scripted"}}
        body = json.dumps({"odata.error": error}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json;odata=minimalmetadata")
        self.send_header("x-ms-error-code", self.server.error_code)
        if self.server.retry_after is not None:
            self.send_header("Retry-After", self.server.retry_after)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def scripted() -> Iterator[ScriptedTableService]:
    server = ScriptedTableService()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _store(endpoint: str) -> TableStore:
    service = TableServiceClient(
        endpoint=endpoint, credential=AzureNamedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY), retry_total=0
    )
    return TableStore(service, create_tables=False)


def test_429_is_throttled_with_its_retry_after(scripted: ScriptedTableService) -> None:
    scripted.status, scripted.retry_after, scripted.error_code = 429, "7", "TooManyRequests"
    with pytest.raises(ThrottledError) as caught:
        _store(scripted.endpoint).get(make_record(1).migration_id)
    assert caught.value.retry_after_seconds == 7.0


@pytest.mark.parametrize("status", [500, 503, 408])
def test_5xx_and_timeouts_are_transient(scripted: ScriptedTableService, status: int) -> None:
    scripted.status = status
    with pytest.raises(TransientCloudError) as caught:
        _store(scripted.endpoint).list(wave="w1")
    assert not isinstance(caught.value, ThrottledError)


def test_404_is_not_found_and_other_4xx_are_permanent(scripted: ScriptedTableService) -> None:
    scripted.status, scripted.error_code = 404, "ResourceNotFound"
    with pytest.raises(NotFound):
        _store(scripted.endpoint).get(make_record(1).migration_id)
    scripted.status, scripted.error_code = 403, "AuthorizationFailure"
    with pytest.raises(PermanentCloudError) as caught:
        _store(scripted.endpoint).list_waves()
    assert caught.value.code == "AuthorizationFailure"


def test_nobody_listening_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransientCloudError):
        _store(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}").get(make_record(1).migration_id)
