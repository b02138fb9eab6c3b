"""A local stand-in for the Lambda service's Invoke API, for the asynchronous (``Event``) invocations the Lambdas
make of each other (status sync -> cutover with a wave's stops, reconcile -> intake).

moto's server accepts an Invoke but cannot run a Lambda without Docker, so the product's ``LambdaIntakeInvoker``
(real boto3) would hand its event to nobody. This answers botocore's Invoke as the service does
(``POST /2015-03-31/functions/{FunctionName}/invocations``, rest-json): ``X-Amz-Invocation-Type: Event`` -> 202
with an empty body, the event queued; ``DryRun`` -> 204; an unknown function (by name or ARN) -> 404
``ResourceNotFoundException``; a payload that is not JSON -> 400 ``InvalidRequestContentException``. It takes no
synchronous invocations (nothing here calls one): ``RequestResponse`` -> 400 ``InvalidParameterValueException``.

Whoever runs the stand-in drains the queue (``drain()``) and runs the named handler, as Lambda's own async queue
would. Point only the Lambda client at it: ``AWS_ENDPOINT_URL_LAMBDA`` (botocore's service-specific endpoint
variable; the other clients keep ``AWS_ENDPOINT_URL``, moto).

    with LambdaInvokeStandIn(["aws2azure-cutover"], region="eu-west-1", account_id="123456789012") as lambdas:
        environment["AWS_ENDPOINT_URL_LAMBDA"] = lambdas.url
        ...
        for invocation in lambdas.drain():
            run(invocation.function_name, invocation.event())
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<function>[^/]+)/invocations$")
# Invoke (Lambda API reference): "For asynchronous invocations, the maximum payload size is 1 MB"; more is
# RequestTooLargeException, HTTP 413 (botocore's lambda service model).
ASYNC_PAYLOAD_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Invocation:
    """One accepted asynchronous invocation: the function's name (an ARN in the request is resolved) and payload."""

    function_name: str
    payload: bytes
    request_id: str

    def event(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.payload or b"{}")
        return loaded


class LambdaInvokeStandIn:
    """Lambda's Invoke for the named functions, on 127.0.0.1 (a free port unless ``port`` is given)."""

    def __init__(self, functions: Iterable[str], *, region: str, account_id: str, port: int = 0) -> None:
        names = list(functions)
        # A function is addressed by its name or its ARN (unqualified, or qualified with $LATEST).
        self._known: dict[str, str] = {}
        for name in names:
            arn = f"arn:aws:lambda:{region}:{account_id}:function:{name}"
            for key in (name, arn, f"{name}:$LATEST", f"{arn}:$LATEST"):
                self._known[key] = name
        self._lock = threading.Lock()
        self._queue: list[Invocation] = []
        self.accepted = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="lambda-invoke", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LambdaInvokeStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LambdaInvokeStandIn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def resolve(self, function: str, qualifier: str | None) -> str | None:
        if qualifier not in (None, "$LATEST"):
            return None
        return self._known.get(function)

    def enqueue(self, invocation: Invocation) -> None:
        with self._lock:
            self._queue.append(invocation)
            self.accepted += 1

    def drain(self) -> list[Invocation]:
        """Every invocation accepted since the last drain, oldest first."""
        with self._lock:
            taken, self._queue = self._queue, []
        return taken

    def requeue(self, invocation: Invocation) -> None:
        """Put back an invocation whose handler failed (Lambda retries a failed async invocation)."""
        with self._lock:
            self._queue.append(invocation)


def _handler(standin: LambdaInvokeStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, status: int, request_id: str, body: bytes = b"", error: str | None = None) -> None:
            self.send_response(status)
            self.send_header("x-amzn-RequestId", request_id)
            if error is not None:
                self.send_header("x-amzn-ErrorType", error)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _refuse(self, status: int, request_id: str, error: str, message: str) -> None:
            # Lambda's rest-json error: the code in x-amzn-ErrorType, {"Type": "User", "message": ...} as the body.
            body = json.dumps({"Type": "User", "message": message}).encode()
            self._answer(status, request_id, body, error)

        def do_POST(self) -> None:
            request_id = str(uuid.uuid4())
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            match = INVOKE_PATH.match(parts.path)
            if match is None:
                self._refuse(404, request_id, "UnknownOperationException", f"no such operation: {parts.path}")
                return
            function = unquote(match["function"])
            qualifier = next((unquote(q.split("=", 1)[1]) for q in parts.query.split("&")
                              if q.startswith("Qualifier=")), None)  # fmt: skip
            name = standin.resolve(function, qualifier)
            if name is None:
                shown = f"{function}:{qualifier}" if qualifier else function
                self._refuse(404, request_id, "ResourceNotFoundException", f"Function not found: {shown}")
                return
            kind = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
            if kind not in ("Event", "DryRun"):
                self._refuse(400, request_id, "InvalidParameterValueException",
                             f"the local stand-in takes only asynchronous (Event) invocations, not {kind}")  # fmt: skip
                return
            if kind == "Event" and len(payload) > ASYNC_PAYLOAD_LIMIT:
                limit = f"Request must be smaller than {ASYNC_PAYLOAD_LIMIT} bytes for the Event invocation type"
                self._refuse(413, request_id, "RequestTooLargeException", limit)
                return
            try:
                json.loads(payload or b"{}")
            except ValueError:
                self._refuse(400, request_id, "InvalidRequestContentException",
                             "Could not parse request body into json")  # fmt: skip
                return
            if kind == "DryRun":
                self._answer(HTTPStatus.NO_CONTENT, request_id)
                return
            standin.enqueue(Invocation(function_name=name, payload=payload, request_id=request_id))
            self._answer(HTTPStatus.ACCEPTED, request_id)

    return Handler
