"""The documented Durable Functions HTTP management API, served by the local host.

The SDK's ``DurableOrchestrationClient`` calls it through the ``rpcBaseUrl`` the client binding
gives it; people call it through the URLs of ``create_check_status_response``. Routes, query
parameters, status codes and payload fields follow the extension's HttpApiHandler.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devstack.funchost.durable.engine import (
    DurableEngine,
    InstanceAlreadyRunning,
    InstanceGone,
    InstanceNotFound,
    UnknownOrchestrator,
)
from devstack.funchost.durable.orchestration import InstanceView, RuntimeStatus
from devstack.funchost.durable.protocol import EventType, parse_timestamp

INSTANCE_ID_PLACEHOLDER = "INSTANCEID"


def json_token(text: str | None) -> Any:
    """The extension's ParseToJToken: stored JSON text as a value; unparsable text as itself."""
    if text is None:
        return None
    stripped = text.strip()
    if not stripped:
        return ""
    try:
        return json.loads(stripped)
    except ValueError:
        return stripped


def _api_time(stamp: str) -> str:
    return parse_timestamp(stamp).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_payload(
    instance: InstanceView,
    *,
    show_input: bool = True,
    history: list[dict[str, Any]] | None = None,
    show_history_output: bool = False,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": instance.name,
        "instanceId": instance.instance_id,
        "runtimeStatus": instance.status.value,
        "input": json_token(instance.input_json) if show_input else None,
        "customStatus": json_token(instance.custom_status_json),
        "output": json_token(instance.output_json),
        "createdTime": _api_time(instance.created_time),
        "lastUpdatedTime": _api_time(instance.last_updated_time),
    }
    if history is not None:
        payload["historyEvents"] = [_history_entry(e, show_history_output) for e in history]
    return payload


def _history_entry(event: dict[str, Any], show_output: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "EventType": EventType(event["EventType"]).name.title().replace("_", ""),
        "Timestamp": event["Timestamp"],
    }
    for key in (
        "EventId",
        "Name",
        "TaskScheduledId",
        "TimerId",
        "FireAt",
        "InstanceId",
        "Reason",
        "OrchestrationStatus",
    ):
        if key in event and event[key] not in (None, -1):
            entry[key] = event[key]
    if show_output:
        for key in ("Input", "Result"):
            if event.get(key) is not None:
                entry[key] = json_token(event[key])
    return entry


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    return default if value is None else value.lower() == "true"


def _error(status: int, message: str, exception_message: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"Message": message}
    if exception_message is not None:
        body["ExceptionMessage"] = exception_message
    return JSONResponse(body, status_code=status)


class ManagementApi:
    def __init__(
        self, engine: DurableEngine, *, public_base: Callable[[], str], system_key: str, task_hub: str
    ) -> None:
        self.engine = engine
        self.public_base = public_base  # e.g. http://127.0.0.1:7071/runtime/webhooks/durabletask
        self.system_key = system_key
        self.task_hub = task_hub

    def routes(self, prefix: str) -> list[Route]:
        start, query, instance = _threaded(self.start), _threaded(self.query_or_purge), _threaded(self.get_or_delete)
        return [
            Route(prefix + "/orchestrators/{function_name}", start, methods=["POST"]),
            Route(prefix + "/orchestrators/{function_name}/{instance_id}", start, methods=["POST"]),
            Route(prefix + "/instances", query, methods=["GET", "DELETE"]),
            Route(prefix + "/instances/", query, methods=["GET", "DELETE"]),
            Route(prefix + "/instances/{instance_id}", instance, methods=["GET", "DELETE"]),
            Route(
                prefix + "/instances/{instance_id}/raiseEvent/{event_name}",
                _threaded(self.raise_event),
                methods=["POST"],
            ),
            Route(prefix + "/instances/{instance_id}/{operation}", _threaded(self.operation), methods=["POST"]),
        ]

    # --- payloads ------------------------------------------------------------------------------------
    def management_urls(self, instance_id: str, base: str | None = None) -> dict[str, str]:
        root = (base or self.public_base()).rstrip("/")
        instance = f"{root}/instances/{quote(instance_id, safe='')}"
        suffix = f"taskHub={self.task_hub}&connection=Storage&code={self.system_key}"
        return {
            "id": instance_id,
            "statusQueryGetUri": f"{instance}?{suffix}",
            "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{suffix}",
            "terminatePostUri": f"{instance}/terminate?reason={{text}}&{suffix}",
            "rewindPostUri": f"{instance}/rewind?reason={{text}}&{suffix}",
            "purgeHistoryDeleteUri": f"{instance}?{suffix}",
            "restartPostUri": f"{instance}/restart?{suffix}",
            "suspendPostUri": f"{instance}/suspend?reason={{text}}&{suffix}",
            "resumePostUri": f"{instance}/resume?reason={{text}}&{suffix}",
        }

    def client_binding(self, rpc_base_url: str) -> str:
        """The durable client binding's value: what the extension hands the Python worker."""
        root = self.public_base().rstrip("/")
        return json.dumps(
            {
                "taskHubName": self.task_hub,
                "creationUrls": {
                    "createNewInstancePostUri": (
                        f"{root}/orchestrators/{{functionName}}[/{{instanceId}}]?code={self.system_key}"
                    ),
                    "createAndWaitOnNewInstancePostUri": (
                        f"{root}/orchestrators/{{functionName}}[/{{instanceId}}]?timeout={{timeoutInSeconds}}"
                        f"&pollingInterval={{intervalInSeconds}}&code={self.system_key}"
                    ),
                },
                "managementUrls": self.management_urls(INSTANCE_ID_PLACEHOLDER),
                "baseUrl": root,
                "requiredQueryStringParameters": f"code={self.system_key}",
                "rpcBaseUrl": rpc_base_url,
            }
        )

    # --- handlers: run on a worker thread, since they wait for storage ------------------------------
    def start(self, request: Request, body: str) -> Response:
        try:
            input_json = None if not body.strip() else json.dumps(json.loads(body))
        except ValueError as exc:
            return _error(400, "Invalid JSON content", str(exc))
        try:
            instance_id = self.engine.start_new(
                request.path_params["function_name"], request.path_params.get("instance_id"), input_json
            )
        except UnknownOrchestrator as exc:
            return _error(400, "One or more of the arguments submitted is incorrect", str(exc))
        except InstanceAlreadyRunning as exc:
            return _error(409, "An orchestration with this instance ID is already running", str(exc))
        base = str(request.base_url).rstrip("/") + "/runtime/webhooks/durabletask"
        payload = self.management_urls(instance_id, base)
        return JSONResponse(
            payload, status_code=202, headers={"Location": payload["statusQueryGetUri"], "Retry-After": "10"}
        )

    def get_or_delete(self, request: Request, body: str) -> Response:
        instance_id = request.path_params["instance_id"]
        instance = self.engine.status(instance_id)
        if instance is None:
            return Response(status_code=404)
        if request.method == "DELETE":
            return JSONResponse({"instancesDeleted": self.engine.purge(instance_id)})
        history = self.engine.history(instance_id) if _flag(request, "showHistory", False) else None
        payload = status_payload(
            instance,
            show_input=_flag(request, "showInput", True),
            history=history,
            show_history_output=_flag(request, "showHistoryOutput", False),
        )
        if instance.status.is_terminal:
            failed = instance.status == RuntimeStatus.FAILED and _flag(
                request, "returnInternalServerErrorOnFailure", False
            )
            return JSONResponse(payload, status_code=500 if failed else 200)
        return JSONResponse(payload, status_code=202, headers={"Location": str(request.url), "Retry-After": "5"})

    def _matching(self, request: Request) -> list[InstanceView]:
        created_from = _query_time(request, "createdTimeFrom")
        created_to = _query_time(request, "createdTimeTo")
        statuses = {s.strip() for s in ",".join(request.query_params.getlist("runtimeStatus")).split(",") if s.strip()}
        prefix = request.query_params.get("instanceIdPrefix")
        found = []
        for instance in self.engine.instances():
            created = parse_timestamp(instance.created_time)
            if created_from and created < created_from:
                continue
            if created_to and created > created_to:
                continue
            if statuses and instance.status.value not in statuses:
                continue
            if prefix and not instance.instance_id.startswith(prefix):
                continue
            found.append(instance)
        return sorted(found, key=lambda i: (i.created_time, i.instance_id))

    def query_or_purge(self, request: Request, body: str) -> Response:
        if request.method == "DELETE":
            if request.query_params.get("createdTimeFrom") is None:
                return JSONResponse("Please provide value for 'createdTimeFrom' parameter.", status_code=400)
            deleted = sum(self.engine.purge(i.instance_id) for i in self._matching(request) if i.status.is_terminal)
            if deleted == 0:
                return Response(status_code=404)
            return JSONResponse({"instancesDeleted": deleted})
        show_input = _flag(request, "showInput", True)
        payload = [status_payload(i, show_input=show_input) for i in self._matching(request)]
        return JSONResponse(payload, headers={"x-ms-continuation-token": "null"})

    def raise_event(self, request: Request, body: str) -> Response:
        instance_id = request.path_params["instance_id"]
        if self.engine.status(instance_id) is None:
            return Response(status_code=404)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            return _error(400, "Only application/json request content is supported")
        try:
            data = json.loads(body) if body.strip() else None
        except ValueError as exc:
            return _error(400, "Invalid JSON content", str(exc))
        try:
            self.engine.raise_event(instance_id, request.path_params["event_name"], json.dumps(data))
        except InstanceNotFound:
            return Response(status_code=404)
        except InstanceGone:
            return Response(status_code=410)
        return Response(status_code=202)

    def operation(self, request: Request, body: str) -> Response:
        instance_id = request.path_params["instance_id"]
        operation = request.path_params["operation"].lower()
        if operation != "terminate":
            return _error(501, f"'{operation}' is not supported by the local Functions host")
        try:
            self.engine.terminate(instance_id, request.query_params.get("reason", ""))
        except InstanceNotFound:
            return Response(status_code=404)
        except InstanceGone:
            return Response(status_code=410)
        return Response(status_code=202)


def _threaded(handler: Callable[[Request, str], Response]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body = (await request.body()).decode("utf-8")
        return await run_in_threadpool(handler, request, body)

    return endpoint


def _query_time(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    return parse_timestamp(value) if value else None
