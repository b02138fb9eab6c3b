"""A local Azure Event Grid topic (basic tier, CloudEvents 1.0 input schema), for tests and the demo.

As strict as the service where its documentation says what it refuses (sources in docs/NOTIFICATIONS.md):

- ``POST /api/events?api-version=2018-01-01`` only (``PublishCloudEventEvents`` in the data-plane spec
  ``specification/eventgrid/data-plane/Microsoft.EventGrid/stable/2018-01-01/EventGrid.json``; the query parameter
  is ``required``); a missing or unknown api-version is 400.
- Content type ``application/cloudevents-batch+json`` (the operation's ``consumes``; parameters such as
  ``charset=utf-8`` are allowed); anything else is 400.
- The topic's access key in header ``aeg-sas-key`` (or query parameter ``aeg-sas-key``); missing or wrong is 401.
  SAS tokens and Microsoft Entra bearer tokens are refused too (401): the stand-in knows keys only.
- The body: a JSON array of ``CloudEventEvent`` (required ``id``, ``source``, ``specversion``, ``type``; optional
  string attributes; ``data`` or ``data_base64``, not both); anything else is 400.
- A request over 1 MB, or an event in it over 1 MB, is 413 ("Payload Too Large").
- Accepted: 200 with an empty body (the SDK treats every other status as a failure).

Errors have the Azure error body ``{"error": {"code": ..., "message": ...}}``, which azure-core reads into
``HttpResponseError.message``.

Control API (JSON): ``GET /_control/events`` (every accepted event, duplicates included, in arrival order, and the
count of refused requests), ``POST /_control/down`` ``{"down": true|false}`` (while down, publishing answers 503),
``POST /_control/reset``, ``GET /_control/health``.

Run: ``python -m devstack.eventgrid_topic --port 8091 --key K`` (not in the local stack yet).
"""

from __future__ import annotations

import argparse
import hmac
import json
import secrets
import threading
import urllib.parse
import urllib.request
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack.webhook_receiver import ReceiverClient

PREFERRED_PORT = 8091
PUBLISH_PATH = "/api/events"
API_VERSIONS = frozenset({"2018-01-01"})
CONTENT_TYPE = "application/cloudevents-batch+json"
KEY_HEADER = "aeg-sas-key"
MAX_REQUEST_BYTES = 1024 * 1024
MAX_EVENT_BYTES = 1024 * 1024
_REQUIRED = ("id", "source", "specversion", "type")
_OPTIONAL_STRINGS = ("subject", "time", "datacontenttype", "dataschema", "data_base64")


class TopicState:
    def __init__(self, key: str) -> None:
        self.key = key
        self.lock = threading.Lock()
        self.down = False
        self.received: list[dict[str, Any]] = []
        self.refused = 0


class Refused(Exception):
    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def check_events(body: bytes) -> list[dict[str, Any]]:
    """The events of a publish request body, or Refused (400 / 413) as the service would answer."""
    if len(body) > MAX_REQUEST_BYTES:
        raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "RequestEntityTooLarge",
                      f"The request is {len(body)} bytes; the maximum is {MAX_REQUEST_BYTES}.")  # fmt: skip
    try:
        events = json.loads(body)
    except ValueError as exc:
        raise Refused(HTTPStatus.BAD_REQUEST, "BadRequest", f"The body is not JSON: {exc}.") from None
    if not isinstance(events, list) or not events:
        raise Refused(HTTPStatus.BAD_REQUEST, "BadRequest", "The body must be a non-empty JSON array of events.")
    for index, event in enumerate(events):
        _check_event(index, event)
    return events


def _check_event(index: int, event: Any) -> None:
    def bad(message: str) -> Refused:
        return Refused(HTTPStatus.BAD_REQUEST, "BadRequest", f"Event {index}: {message}")

    if not isinstance(event, dict):
        raise bad("not a JSON object.")
    size = len(json.dumps(event, separators=(",", ":")).encode())
    if size > MAX_EVENT_BYTES:
        raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "RequestEntityTooLarge",
                      f"Event {index} is {size} bytes; the maximum is {MAX_EVENT_BYTES}.")  # fmt: skip
    for name in _REQUIRED:
        if not isinstance(event.get(name), str) or not event[name]:
            raise bad(f"required attribute {name!r} is missing or not a non-empty string.")
    if event["specversion"] != "1.0":
        raise bad(f"specversion {event['specversion']!r} is not 1.0.")
    for name in _OPTIONAL_STRINGS:
        if name in event and not isinstance(event[name], str):
            raise bad(f"attribute {name!r} is not a string.")
    if "time" in event:
        try:
            datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
        except ValueError:
            raise bad(f"time {event['time']!r} is not an RFC 3339 timestamp.") from None
    if "data" in event and "data_base64" in event:
        raise bad("has both data and data_base64.")


def _handler(state: TopicState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, status: int, body: Any = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _refuse(self, refused: Refused) -> None:
            with state.lock:
                state.refused += 1
            self._answer(refused.status, {"error": {"code": refused.code, "message": refused.message}})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self) -> None:
            if self.path == "/_control/health":
                self._answer(HTTPStatus.OK, {"ok": True})
            elif self.path == "/_control/events":
                with state.lock:
                    self._answer(HTTPStatus.OK, {"events": list(state.received), "down": state.down,
                                                 "refused": state.refused})  # fmt: skip
            else:
                self._answer(HTTPStatus.NOT_FOUND, {"error": {"code": "NotFound", "message": "not found"}})

        def do_POST(self) -> None:
            body = self._body()
            if self.path == "/_control/down":
                with state.lock:
                    state.down = bool(json.loads(body or b"{}").get("down", True))
                self._answer(HTTPStatus.OK, {"down": state.down})
                return
            if self.path == "/_control/reset":
                with state.lock:
                    state.received.clear()
                    state.refused = 0
                self._answer(HTTPStatus.OK, {})
                return
            url = urllib.parse.urlsplit(self.path)
            if url.path != PUBLISH_PATH:
                self._refuse(Refused(HTTPStatus.NOT_FOUND, "NotFound", f"No such path {url.path!r}."))
                return
            try:
                events = self._check(urllib.parse.parse_qs(url.query), body)
            except Refused as refused:
                self._refuse(refused)
                return
            with state.lock:
                state.received.extend(events)
            self._answer(HTTPStatus.OK)

        def _check(self, query: dict[str, list[str]], body: bytes) -> list[dict[str, Any]]:
            with state.lock:
                down = state.down
            if down:
                raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, "ServiceUnavailable", "The topic is down (told so).")
            key = self.headers.get(KEY_HEADER) or next(iter(query.get(KEY_HEADER, [])), "")
            if not key:
                raise Refused(HTTPStatus.UNAUTHORIZED, "Unauthorized",
                              f"The request has no {KEY_HEADER} (this stand-in accepts access keys only).")  # fmt: skip
            if not hmac.compare_digest(key.encode(), state.key.encode()):
                host = self.headers.get("Host")
                raise Refused(HTTPStatus.UNAUTHORIZED, "Unauthorized",
                              f"The request authorization key is not authorized for {host}.")  # fmt: skip
            versions = query.get("api-version", [])
            if not versions:
                raise Refused(HTTPStatus.BAD_REQUEST, "BadRequest", "The api-version query parameter is required.")
            if versions[0] not in API_VERSIONS:
                supported = ", ".join(sorted(API_VERSIONS))
                raise Refused(HTTPStatus.BAD_REQUEST, "BadRequest",
                              f"Unsupported api-version {versions[0]!r}; supported: {supported}.")  # fmt: skip
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if content_type != CONTENT_TYPE:
                raise Refused(HTTPStatus.BAD_REQUEST, "BadRequest",
                              f"Content type {content_type!r}: a CloudEvents topic takes {CONTENT_TYPE}.")  # fmt: skip
            return check_events(body)

    return Handler


class EventGridTopic:
    """The topic in this process (tests), on an OS-assigned port unless one is given."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, key: str | None = None) -> None:
        self.key = key or secrets.token_urlsafe(32)
        self.state = TopicState(self.key)
        self.server = ThreadingHTTPServer((host, port), _handler(self.state))
        # A short poll, so that leaving the context (shutdown) takes milliseconds, not the default half second.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{PUBLISH_PATH}"

    def __enter__(self) -> EventGridTopic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class TopicClient(ReceiverClient):
    """Talks to a running topic's control API, the same as the webhook receiver's; only the base URL differs."""

    def __init__(self, endpoint: str) -> None:
        split = urllib.parse.urlsplit(endpoint)
        self.base = f"{split.scheme}://{split.netloc}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="local Event Grid topic for aws2azure notifications")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=PREFERRED_PORT)
    parser.add_argument("--key", required=True)
    args = parser.parse_args(argv)
    topic = EventGridTopic(host=args.host, port=args.port, key=args.key)
    topic.server.serve_forever()


if __name__ == "__main__":
    main()
