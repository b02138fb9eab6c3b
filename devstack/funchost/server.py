"""The host's HTTP side: HTTP triggers under the route prefix, the Durable management API, and a
couple of admin endpoints. HTTP functions get real ``azure.functions.HttpRequest`` objects and
return ``HttpResponse`` (or a string), as with the Python worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import azure.functions as func
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from devstack.funchost.appmodel import AppModel, FunctionInfo
from devstack.funchost.durable.engine import WorkTracker
from devstack.funchost.durable.management_api import ManagementApi
from devstack.funchost.invoker import Invoker
from devstack.funchost.keys import HostKeys
from devstack.funchost.routes import RouteTemplate

log = logging.getLogger("funchost.http")
PUBLIC_DURABLE_PREFIX = "/runtime/webhooks/durabletask"
RPC_DURABLE_PREFIX = "/durabletask"


def presented_key(request: Request) -> str | None:
    return request.headers.get("x-functions-key") or request.query_params.get("code")


def to_response(result: Any) -> Response:
    if isinstance(result, func.HttpResponse):
        headers = dict(result.headers.items())
        media_type = None if any(k.lower() == "content-type" for k in headers) else result.mimetype
        return Response(result.get_body(), status_code=result.status_code, headers=headers, media_type=media_type)
    if result is None:
        return Response(status_code=204)
    if isinstance(result, bytes):
        return Response(result, media_type="application/octet-stream")
    return PlainTextResponse(str(result))


# Requests that read and never schedule work (RFC 9110 safe methods the API serves).
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class HttpFrontEnd:
    def __init__(
        self,
        app: AppModel,
        invoker: Invoker,
        keys: HostKeys,
        tracker: WorkTracker,
        management: ManagementApi | None,
        client_config: Callable[[], str],
    ) -> None:
        self.app = app
        self.invoker = invoker
        self.keys = keys
        self.tracker = tracker
        self.management = management
        self.client_config = client_config
        self.http_functions = sorted(
            ((fn, RouteTemplate(fn.route)) for fn in app.by_trigger("httpTrigger")), key=lambda p: p[1].sort_key
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- the ASGI app --------------------------------------------------------------------------------
    def asgi(self) -> Starlette:
        routes: list[Route] = [
            Route("/admin/host/ping", self.ping, methods=["GET", "POST"]),
            Route("/admin/host/status", self.host_status, methods=["GET"]),
        ]
        if self.management is not None:
            routes += [self._with_system_key(r) for r in self.management.routes(PUBLIC_DURABLE_PREFIX)]
            routes += self.management.routes(RPC_DURABLE_PREFIX)
        prefix = self.app.route_prefix
        routes.append(
            Route(
                f"/{prefix}/{{path:path}}" if prefix else "/{path:path}",
                self.trigger,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
            )
        )
        if prefix:
            routes.append(Route(f"/{prefix}", self.trigger, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]))
        return Starlette(routes=routes)

    def _with_system_key(self, route: Route) -> Route:
        endpoint = route.endpoint

        async def guarded(request: Request) -> Response:
            if not self.keys.allows_system(presented_key(request)):
                return Response(status_code=401)
            response: Response = await endpoint(request)
            return response

        return Route(route.path, guarded, methods=list(route.methods or []))

    async def ping(self, request: Request) -> Response:
        return Response(status_code=200)

    async def host_status(self, request: Request) -> Response:
        if not self.keys.allows("", "admin", presented_key(request)):
            return Response(status_code=401)
        status: dict[str, Any] = {"state": "Running", "functions": [f.name for f in self.app.functions]}
        if self.management is not None:
            status["durable"] = dict(self.management.engine.stats)
        return JSONResponse(status)

    async def trigger(self, request: Request) -> Response:
        path = request.path_params.get("path", "")
        method_mismatch = False
        for fn, template in self.http_functions:
            params = template.match(path)
            if params is None:
                continue
            if request.method not in fn.methods:
                method_mismatch = True
                continue
            if not self.keys.allows(fn.name, fn.auth_level, presented_key(request)):
                return Response(status_code=401)
            return await self._invoke(fn, request, params)
        return Response(status_code=405 if method_mismatch else 404)

    async def _invoke(self, fn: FunctionInfo, request: Request, route_params: dict[str, str]) -> Response:
        body = await request.body()
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            params=dict(request.query_params),
            route_params=route_params,
            body=body,
        )
        kwargs: dict[str, Any] = {fn.trigger_param: http_request}
        if fn.durable_client_param:
            kwargs[fn.durable_client_param] = self.client_config()
        # Virtual time waits for work, never for reads: a GET (the API's get/list, a durable status query,
        # the status page) schedules nothing, so a client polling in a tight loop must not hold the clock.
        tracked = request.method not in READ_METHODS
        if tracked:
            self.tracker.begin()
        try:
            result = await self.invoker.call_async(
                fn, kwargs, reason="This function was programmatically called via the host APIs."
            )
        except Exception as exc:
            log.error("HTTP function %s failed: %s: %s", fn.name, type(exc).__name__, exc)
            return PlainTextResponse("Internal Server Error", status_code=500)
        finally:
            if tracked:
                self.tracker.end()
        return to_response(result)

    # --- serving -------------------------------------------------------------------------------------
    def start(self, host: str, port: int) -> int:
        config = uvicorn.Config(
            self.asgi(), host=host, port=port, log_level="warning", lifespan="off", access_log=False, loop="asyncio"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the HTTP server could not listen on {host}:{port}")
            threading.Event().wait(0.02)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])
        return self.port

    def _serve(self) -> None:
        assert self._server is not None
        asyncio.run(self._server.serve())

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
