"""Running user functions as the Python worker does: sync ones on a thread pool, async ones on one
long-lived event loop. The Durable client SDK keeps one aiohttp session per *process*, bound to
the loop it was first used on, so every async invocation in the process shares one loop, even
with several hosts in one test process. Every invocation is logged with the function name, its
id, the orchestration instance when there is one, and its duration.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import itertools
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from devstack.funchost.appmodel import FunctionInfo

log = logging.getLogger("funchost.invocations")
_shared: dict[str, asyncio.AbstractEventLoop] = {}
_shared_lock = threading.Lock()


def shared_event_loop() -> asyncio.AbstractEventLoop:
    """The process's loop for async functions, started on first use and closed at exit."""
    with _shared_lock:
        loop = _shared.get("loop")
        if loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="fn-async-loop", daemon=True).start()
            _shared["loop"] = loop
            atexit.register(_close_durable_client_session, loop)
        return loop


def _close_durable_client_session(loop: asyncio.AbstractEventLoop) -> None:
    """Close the Durable client SDK's aiohttp session on its own loop (no 'unclosed session' noise)."""
    from azure.durable_functions.models.utils import http_utils

    if getattr(http_utils, "_client_session", None) is None:
        return
    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(http_utils._close_session(), loop).result(timeout=5)


@dataclass(frozen=True)
class InvocationContext:
    """What ``context: func.Context`` gives a function (the subset the local host knows)."""

    invocation_id: str
    function_name: str
    function_directory: str

    @property
    def trace_context(self) -> None:
        return None

    @property
    def retry_context(self) -> None:
        return None


class Invoker:
    def __init__(self, app_dir: str, *, max_workers: int = 16) -> None:
        self._app_dir = app_dir
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="fn")
        self._loop = shared_event_loop()
        # GUID-shaped invocation ids without an os.urandom call per invocation (measurably slow here).
        self._id_base = random.getrandbits(128) & ~((1 << 48) - 1)
        self._ids = itertools.count(1)

    def _invocation_id(self) -> str:
        return str(uuid.UUID(int=self._id_base | next(self._ids)))

    def start(self) -> None:
        """Nothing to start: the pool starts threads on demand and the async loop is shared."""

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def pool(self) -> concurrent.futures.ThreadPoolExecutor:
        return self._pool

    def _arguments(self, info: FunctionInfo, kwargs: dict[str, Any], invocation_id: str) -> dict[str, Any]:
        if info.wants_context and "context" not in kwargs:
            kwargs = {**kwargs, "context": InvocationContext(invocation_id, info.name, self._app_dir)}
        return kwargs

    def call(self, info: FunctionInfo, kwargs: dict[str, Any], *, reason: str, instance_id: str | None = None) -> Any:
        """Run a function to completion from a worker thread (never from the event loop)."""
        invocation_id = self._invocation_id()
        arguments = self._arguments(info, kwargs, invocation_id)
        started = time.perf_counter()
        try:
            if info.is_async:
                coroutine: Coroutine[Any, Any, Any] = info.user_function(**arguments)
                result = asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()
            else:
                result = info.user_function(**arguments)
        except BaseException as exc:
            _log_done(info, invocation_id, reason, instance_id, started, exc)
            raise
        _log_done(info, invocation_id, reason, instance_id, started, None)
        return result

    async def call_async(
        self, info: FunctionInfo, kwargs: dict[str, Any], *, reason: str, instance_id: str | None = None
    ) -> Any:
        """Run a function from another event loop (the HTTP server's), without blocking that loop."""
        future = self._pool.submit(self.call, info, kwargs, reason=reason, instance_id=instance_id)
        return await asyncio.wrap_future(future)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        return self._pool.submit(fn, *args, **kwargs)


def _log_done(
    info: FunctionInfo,
    invocation_id: str,
    reason: str,
    instance_id: str | None,
    started: float,
    error: BaseException | None,
) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    duration_ms = (time.perf_counter() - started) * 1000
    instance = f", InstanceId={instance_id}" if instance_id else ""
    outcome = "Succeeded" if error is None else f"Failed: {type(error).__name__}: {error}"
    log.info(
        "Executed 'Functions.%s' (%s, Reason=%s, Id=%s%s, Duration=%.1fms)",
        info.name,
        outcome.splitlines()[0] if outcome else outcome,
        reason,
        invocation_id,
        instance,
        duration_ms,
    )
