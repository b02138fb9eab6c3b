"""The ASGI application: ARM checks, fault injection, accounting, then one handler per operation.

The control API lives under ``/_sim/`` (see ``control.py``); it is neither counted nor faulted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, unquote

from pydantic import BaseModel, ValidationError

from devstack.asr_sim import api, compute, offazure, routes, schema
from devstack.asr_sim.arm import API_VERSION, SUPPORTED_API_VERSIONS, iso
from devstack.asr_sim.contract import FaultPlan, MachineSeed, ResetRequest, SimConfig
from devstack.asr_sim.engine import Simulator
from devstack.asr_sim.errors import ArmError
from devstack.asr_sim.faults import FaultInjector

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CONTROL_PREFIX = "/_sim/"
LOG = logging.getLogger("devstack.asr_sim")


@dataclass(frozen=True)
class Incoming:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    base_url: str


class Clock(Protocol):
    def now(self) -> datetime: ...


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class AsrSimulatorApp:
    def __init__(self, sim: Simulator, clock: Clock) -> None:
        self.sim = sim
        self.clock = clock
        self.faults = FaultInjector()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        path: str = scope["path"]
        method: str = scope["method"]
        query = dict(parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True))
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        if path.startswith(CONTROL_PREFIX):
            status, payload = self._control(method, path[len(CONTROL_PREFIX) :], query, body)
            await _respond(send, status, payload, {})
            return
        incoming = Incoming(method, path, query, headers, body, _base_url(scope, headers))
        status, payload, out_headers = await self._arm(incoming)
        await _respond(send, status, payload, out_headers)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ the ARM surface

    async def _arm(self, incoming: Incoming) -> tuple[int, Any, dict[str, str]]:
        method, path = incoming.method, incoming.path
        started = time.perf_counter()
        wall = time.time()
        kind: Literal["read", "write"] = "read" if method in ("GET", "HEAD") else "write"
        operation, machine, fault_label = "Unknown", None, None
        now = self.clock.now()
        try:
            found, params = self._route(incoming)
            operation = found.operation
            machine = self._machine_of(params, incoming.body)
            decision = self.faults.decide(
                self.sim.faults, self.sim.machine_rule(machine), method=method, path=path, kind=kind, wall=wall
            )
            fault_label = decision.label
            if decision.slow_ms:
                await asyncio.sleep(decision.slow_ms / 1000)
                now = self.clock.now()
            if decision.status is not None and not decision.after_effect:
                status, payload, out = _fault_reply(decision.status, decision.retry_after_seconds)
            else:
                reply = self._handle(found.operation, params, incoming, now)
                status, payload, out = reply.status, reply.body, reply.headers
                if decision.status is not None:
                    status, payload, out = _fault_reply(decision.status, decision.retry_after_seconds)
        except ArmError as exc:
            status, payload, out = exc.status, exc.body(), {}
        except Exception:  # a simulator bug must still answer like ARM, and say so in the log
            LOG.exception("unhandled error in %s %s", method, path)
            status, payload, out = 500, {"error": {"code": "SimulatorError", "message": "see the simulator log"}}, {}
        out.setdefault("x-ms-request-id", f"{self.sim.recorder.total + 1:08d}")
        self.sim.recorder.request(
            wall_time=wall,
            virtual_time=now,
            method=method,
            path=path,
            operation=operation,
            kind=kind,
            status=status,
            machine=machine,
            duration_ms=(time.perf_counter() - started) * 1000,
            fault=fault_label,
        )
        return status, payload, out

    def _route(self, incoming: Incoming) -> tuple[routes.Match, dict[str, str]]:
        method, path, query, headers = incoming.method, incoming.path, incoming.query, incoming.headers
        if not headers.get("authorization", "").lower().startswith("bearer "):
            raise ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        discovery = offazure.route(self.sim, method, path, query.get("api-version"))
        if discovery is not None:
            return routes.Match(discovery[0], discovery[1]), discovery[1]
        vm = compute.route(method, path, query.get("api-version"))
        if vm is not None:
            return routes.Match(vm[0], vm[1]), vm[1]
        prefix = routes.VAULT_PREFIX.match(path)
        if prefix is None:
            raise ArmError(404, "InvalidResourceType", f"No route for '{path}'.")
        version = query.get("api-version")
        if not version:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if version not in SUPPORTED_API_VERSIONS:
            raise ArmError(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for location 'westeurope' and API version '{version}' "
                f"for type 'vaults'. The supported api-versions are '{API_VERSION}'. The supported locations "
                "are 'westeurope'.",
            )
        vault = self.sim.vault
        if prefix["subscription"] != vault.subscription_id:
            raise ArmError(
                404, "SubscriptionNotFound", f"The subscription '{prefix['subscription']}' could not be found."
            )
        if (
            prefix["resource_group"].lower() != vault.resource_group.lower()
            or prefix["vault"].lower() != vault.name.lower()
        ):
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.RecoveryServices/vaults/{prefix['vault']}' under resource group "
                f"'{prefix['resource_group']}' was not found.",
            )
        rest = prefix["rest"] or ""
        found = routes.match(method, rest)
        if found is None:
            if routes.path_exists(rest):
                raise ArmError(405, "MethodNotAllowed", f"The method '{method}' is not allowed on '{rest}'.")
            raise ArmError(404, "InvalidResourceType", f"The resource path '{rest}' is not known to this vault.")
        return found, found.params

    def _machine_of(self, params: dict[str, str], raw: bytes) -> str | None:
        if "vm" in params:
            return compute.machine_of(self.sim, params)
        if "item" in params:
            known = self.sim.item_machine.get(params["item"])
            # Enabling names the machine only in its body (protectableItemId ends with the machine name).
            if known is None and b"fabricDiscoveryMachineId" in raw:
                return _machine_in_body(raw, self.sim.machines)
            return known
        if "protectable" in params:
            return params["protectable"] if params["protectable"] in self.sim.machines else None
        if "machine" in params:
            return params["machine"] if params["machine"] in self.sim.machines else None
        for key in ("result", "job"):
            if key in params:
                return self.sim.machine_of_job(params[key])
        return None

    def _handle(self, operation: str, params: dict[str, str], incoming: Incoming, now: datetime) -> api.Reply:
        raw = incoming.body
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise ArmError(400, "InvalidRequestContent", f"The request content is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ArmError(400, "InvalidRequestContent", "The request content must be a JSON object.")
        schema.validate(operation, body)
        self.sim.settle(now)
        call = api.Call(self.sim, now, incoming.base_url, params, incoming.query, body)
        return api.HANDLERS[operation](call)

    # ------------------------------------------------------------------ the control API

    def _control(self, method: str, path: str, query: dict[str, str], raw: bytes) -> tuple[int, Any]:
        try:
            return self._control_dispatch(method, path, query, raw)
        except ValidationError as exc:
            return 422, {"error": {"code": "InvalidControlRequest", "message": str(exc)}}
        except ArmError as exc:
            return exc.status, exc.body()

    def _control_dispatch(self, method: str, path: str, query: dict[str, str], raw: bytes) -> tuple[int, Any]:
        sim, now = self.sim, self.clock.now()
        key = (method, path.rstrip("/"))
        if key == ("GET", "health"):
            return 200, {"ok": True, "virtual_now": iso(now)}
        if key == ("GET", "infrastructure"):
            return 200, _model(sim.infrastructure())
        if key == ("POST", "machines"):
            machine = sim.seed_machine(MachineSeed.model_validate_json(raw))
            return 201, _model(sim.machine_info(machine))
        if method == "POST" and path.startswith("machines/") and path.rstrip("/").endswith("/agent-registered"):
            key_part = path.rstrip("/")[len("machines/") : -len("/agent-registered")]
            return 200, _model(sim.machine_info(sim.register_agent(unquote(key_part), now)))
        if key == ("GET", "machines"):
            return 200, [_model(sim.machine_info(m)) for m in sim.machines.values()]
        if key == ("PUT", "faults"):
            return 200, _model(sim.set_faults(FaultPlan.model_validate_json(raw), now))
        if key == ("GET", "faults"):
            return 200, _model(sim.faults)
        if key == ("PUT", "config"):
            sim.config = SimConfig.model_validate_json(raw)
            return 200, _model(sim.config)
        if key == ("GET", "config"):
            return 200, _model(sim.config)
        if key == ("GET", "stats"):
            return 200, _model(sim.recorder.stats())
        if key == ("GET", "requests"):
            since, limit = int(query.get("since", "0")), int(query.get("limit", "10000"))
            return 200, _model(sim.recorder.page(since, limit))
        if key == ("POST", "reset"):
            request = ResetRequest.model_validate_json(raw or b"{}")
            sim.reset_observations()
            self.faults.reset()
            sim.set_faults(FaultPlan(seed=sim.seed), now)
            if request.state:
                sim.reset_state()
            return 200, {"ok": True}
        return 404, {"error": {"code": "NotFound", "message": f"no control endpoint {method} /_sim/{path}"}}


def _machine_in_body(raw: bytes, machines: Mapping[str, object]) -> str | None:
    try:
        protectable_id = json.loads(raw)["properties"]["providerSpecificDetails"]["fabricDiscoveryMachineId"]
    except (ValueError, KeyError, TypeError):
        return None
    name = str(protectable_id).rstrip("/").rsplit("/", 1)[-1]
    return name if name in machines else None


def _model(model: BaseModel) -> Any:
    return model.model_dump(mode="json")


def _fault_reply(status: int, retry_after: int | None) -> tuple[int, Any, dict[str, str]]:
    if status == 429:
        body = {
            "error": {
                "code": "TooManyRequests",
                "message": "The request is being throttled as the limit has been reached for operation type - "
                "Write_ObservationWindow_00:01:00. For more information, see - https://aka.ms/srsthrottlinglimits",
            }
        }
        return 429, body, {"Retry-After": str(retry_after or 0)}
    if status == 503:
        return 503, {"error": {"code": "ServiceUnavailable", "message": "The service is temporarily unavailable."}}, {}
    return status, {"error": {"code": "InternalServerError", "message": "An internal error occurred."}}, {}


def _base_url(scope: Scope, headers: dict[str, str]) -> str:
    host = headers.get("host")
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 443)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'https')}://{host}"


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, status: int, payload: Any, headers: dict[str, str]) -> None:
    body = b"" if payload is None or status == 204 else _dumps(payload)
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    if body:
        raw_headers.append((b"content-type", b"application/json; charset=utf-8"))
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
