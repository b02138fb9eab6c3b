"""A local webhook receiver for notifications (CloudEvents over HTTP, structured mode), for tests and the demo.

It is as strict as a real receiver should be: only ``POST`` with ``Content-Type: application/cloudevents+json``
and a CloudEvents 1.0 body (``specversion``, ``id``, ``source``, ``type``) is accepted (202); a wrong signature is
401 when a secret is set. It can be told to be down (every delivery then answers 503) to show that a receiver
that was away still gets every event afterwards.

Control API (JSON): ``GET /_control/events`` (every delivery received, duplicates included, in arrival order),
``POST /_control/down`` ``{"down": true|false}``, ``POST /_control/reset``, ``GET /_control/health``.

Run: ``python -m devstack.webhook_receiver --port 8090 [--secret S]``; the stack launcher starts it as ``webhook``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from devstack.settings import WebhookEndpoint

if TYPE_CHECKING:
    from devstack.clock import FileClock
    from devstack.launcher import LaunchContext, ServiceSpec

PREFERRED_PORT = 8090
SIGNATURE_HEADER = "X-Aws2azure-Signature"
_REQUIRED = ("specversion", "id", "source", "type")


class ReceiverState:
    def __init__(self, secret: str | None) -> None:
        self.secret = secret
        self.lock = threading.Lock()
        self.down = False
        self.received: list[dict[str, Any]] = []
        self.refused = 0


def _handler(state: ReceiverState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, status: int, body: Any = None) -> None:
            data = json.dumps(body if body is not None else {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

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
                self._answer(HTTPStatus.NOT_FOUND, {"error": "not found"})

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
            with state.lock:
                if state.down:
                    state.refused += 1
                    self._answer(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "the receiver is down"})
                    return
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if content_type != "application/cloudevents+json":
                self._answer(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": f"content type {content_type!r}"})
                return
            if state.secret is not None:
                expected = "sha256=" + hmac.new(state.secret.encode(), body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(expected, self.headers.get(SIGNATURE_HEADER) or ""):
                    self._answer(HTTPStatus.UNAUTHORIZED, {"error": "bad signature"})
                    return
            try:
                event = json.loads(body)
            except ValueError:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": "not JSON"})
                return
            missing = [name for name in _REQUIRED if not isinstance(event, dict) or not event.get(name)]
            if missing or event.get("specversion") != "1.0":
                self._answer(HTTPStatus.BAD_REQUEST, {"error": f"not a CloudEvent 1.0 (missing {missing})"})
                return
            with state.lock:
                state.received.append(event)
            self._answer(HTTPStatus.ACCEPTED, {})

    return Handler


class WebhookReceiver:
    """The receiver in this process (tests), on an OS-assigned port unless one is given."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, secret: str | None = None) -> None:
        self.state = ReceiverState(secret)
        self.server = ThreadingHTTPServer((host, port), _handler(self.state))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/events"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class ReceiverClient:
    """Talks to a running receiver's control API."""

    def __init__(self, events_url: str) -> None:
        self.base = events_url.rsplit("/", 1)[0]

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
            return answer

    def events(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/_control/events")["events"])

    def refused(self) -> int:
        return int(self._call("GET", "/_control/events")["refused"])

    def set_down(self, down: bool) -> None:
        self._call("POST", "/_control/down", {"down": down})

    def reset(self) -> None:
        self._call("POST", "/_control/reset", {})


def by_subject(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each instance's events, duplicates (same id) dropped, in the order received."""
    seen: set[str] = set()
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event["id"] in seen:
            continue
        seen.add(event["id"])
        grouped.setdefault(str(event.get("subject")), []).append(event)
    return grouped


def service_spec(ctx: LaunchContext) -> ServiceSpec:
    from devstack.launcher import LOOPBACK, ServiceSpec, http_answers

    port = ctx.port(PREFERRED_PORT)
    endpoint = WebhookEndpoint(url=f"http://{LOOPBACK}:{port}/events", secret=secrets.token_hex(16))
    argv = [ctx.python, "-m", "devstack.webhook_receiver", "--host", LOOPBACK, "--port", str(port),
            "--secret", endpoint.secret]  # fmt: skip
    return ServiceSpec("webhook", argv, lambda: http_answers(f"http://{LOOPBACK}:{port}/_control/health"),
                       {"webhook": endpoint})  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="local webhook receiver for aws2azure notifications")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=PREFERRED_PORT)
    parser.add_argument("--secret", default=None)
    args = parser.parse_args(argv)
    receiver = WebhookReceiver(host=args.host, port=args.port, secret=args.secret)
    receiver.server.serve_forever()


if __name__ == "__main__":
    main()


def drain(events_url: str, clock: FileClock, records: list[dict[str, Any]], *,
          wall_timeout_s: float = 120.0) -> dict[str, Any]:  # fmt: skip
    """Bring the receiver up and wait until every phase change of ``records`` has arrived (moving the virtual clock a
    minute at a time, so the delivery timer sweeps); then count what arrived, per instance and in order."""
    receiver = ReceiverClient(events_url)
    receiver.set_down(False)
    expected = {
        str(r["instance"]["instance_id"]): int(r["last_change"]["sequence"]) for r in records if r.get("last_change")
    }
    deadline = time.monotonic() + wall_timeout_s
    raw, seen = receiver.events(), -1
    while time.monotonic() < deadline:
        raw = receiver.events()
        got = by_subject(raw)
        if all(len(got.get(instance, [])) >= count for instance, count in expected.items()):
            break
        if len(raw) == seen:  # nothing arrived since the last look: let the next minute's sweep run
            clock.advance_by(60)
        seen = len(raw)
        time.sleep(0.5)  # wall time for the host to run the sweep; the loop is bounded by the deadline
    got = by_subject(raw)
    in_order = [
        i for i, n in expected.items() if [e["data"]["sequence"] for e in got.get(i, [])] == list(range(1, n + 1))
    ]
    refused = 0
    with contextlib.suppress(OSError, KeyError, ValueError):
        refused = receiver.refused()
    return {
        "notifications_expected": sum(expected.values()),
        "notifications_delivered": sum(len(v) for v in got.values()),
        "notification_duplicates": len(raw) - sum(len(v) for v in got.values()),
        "instances_notified_in_order": len(in_order),
        "instances_notified_out_of_order_or_missing": sorted(set(expected) - set(in_order)),
        "deliveries_refused_while_down": refused,
    }
