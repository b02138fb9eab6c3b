"""The HTTP surface: the SSM JSON 1.1 protocol on ``POST /`` (``X-Amz-Target: AmazonSSM.<Operation>``) and the
control API under ``/_ssm/``.

JSON 1.1 as botocore speaks it (botocore/data/ssm/2014-11-06/service-2.json metadata: protocol json, jsonVersion
1.1, targetPrefix AmazonSSM): errors are HTTP 400 with ``{"__type": "<code>", "message": "..."}``, timestamps are
epoch seconds. An operation the stand-in does not serve answers ``UnknownOperationException``, as the service does
for a target it does not know, so a Lambda calling something new fails loudly here instead of passing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import ValidationError

from devstack.ssm_sim.contract import FaultPlan, ManagedNode, SsmDocument
from devstack.ssm_sim.engine import Engine, SsmError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TARGET_PREFIX = "AmazonSSM."
CONTROL_PREFIX = "/_ssm/"
LOG = logging.getLogger("devstack.ssm_sim")


class SsmSimulatorApp:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "DescribeInstanceInformation": engine.describe_instance_information,
            "SendCommand": engine.send_command,
            "GetCommandInvocation": engine.get_command_invocation,
        }
        self.calls: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        path: str = scope["path"]
        if path.startswith(CONTROL_PREFIX):
            status, payload = self._control(scope["method"], path[len(CONTROL_PREFIX) :], body)
            await _respond(send, status, payload, "application/json")
            return
        status, payload = self._api(scope["method"], headers, body)
        await _respond(send, status, payload, "application/x-amz-json-1.1")

    def _api(self, method: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        target = headers.get("x-amz-target", "")
        if method != "POST" or not target.startswith(TARGET_PREFIX):
            return 400, {"__type": "UnknownOperationException", "message": "no X-Amz-Target AmazonSSM.*"}
        if not headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 "):
            return 400, {"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"}
        operation = target[len(TARGET_PREFIX) :]
        handler = self.operations.get(operation)
        self.calls[operation] = self.calls.get(operation, 0) + 1
        if handler is None:
            return 400, {"__type": "UnknownOperationException", "message": f"{operation} is not served here"}
        try:
            body = json.loads(raw or b"{}")
            return 200, handler(body)
        except SsmError as exc:
            return exc.status, {"__type": exc.code, "message": exc.message}
        except (ValueError, TypeError) as exc:
            return 400, {"__type": "SerializationException", "message": str(exc)}
        except Exception:
            LOG.exception("unhandled error in %s", operation)
            return 500, {"__type": "InternalServerError", "message": "see the stand-in's log"}

    def _control(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        try:
            body = json.loads(raw) if raw else {}
            if (method, path) == ("GET", "health"):
                return 200, {"ok": True}
            if (method, path) == ("POST", "nodes"):
                node = ManagedNode.model_validate(body)
                self.engine.add_node(node)
                return 200, node.model_dump(mode="json")
            if (method, path) == ("GET", "nodes"):
                return 200, [n.model_dump(mode="json") for n in self.engine.nodes.values()]
            if (method, path) == ("POST", "documents"):
                document = SsmDocument.model_validate(body)
                return 200, {"name": document.name, "steps": self.engine.add_document(document)}
            if (method, path) == ("PUT", "faults"):
                plan = FaultPlan.model_validate(body)
                self.engine.set_faults(plan)
                return 200, plan.model_dump(mode="json")
            if (method, path) == ("GET", "faults"):
                return 200, self.engine.faults.model_dump(mode="json")
            if (method, path) == ("GET", "invocations"):
                return 200, [i.model_dump(mode="json") for i in self.engine.info()]
            if (method, path) == ("GET", "calls"):
                return 200, dict(self.calls)
        except ValidationError as exc:
            return 400, {"error": exc.errors(include_url=False, include_context=False)}
        except SsmError as exc:
            return 400, {"error": exc.code, "message": exc.message}
        return 404, {"error": f"no control route {method} /_ssm/{path}"}


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, status: int, payload: Any, content_type: str) -> None:
    data = json.dumps(payload, separators=(",", ":"), default=str).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})
