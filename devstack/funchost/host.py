"""``LocalHost``: the whole local Functions host in one object, in-process or behind the CLI.

host = LocalHost(app_dir, storage_connection_string, clock=FileClock(path), virtual_clock=True)
host.start()            # serves http://127.0.0.1:<port>/api/...
host.run_until_idle()   # everything runnable has run; virtual timers have fired
host.stop()
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from devstack.clock import SystemClock
from devstack.funchost.appmodel import AppModel, FunctionInfo, load_app
from devstack.funchost.durable import sdk
from devstack.funchost.durable.engine import Clock, DurableEngine, WorkTracker
from devstack.funchost.durable.management_api import ManagementApi
from devstack.funchost.durable.orchestration import InstanceView
from devstack.funchost.durable.store import DurableStore
from devstack.funchost.invoker import Invoker
from devstack.funchost.keys import HostKeys
from devstack.funchost.server import PUBLIC_DURABLE_PREFIX, RPC_DURABLE_PREFIX, HttpFrontEnd
from devstack.funchost.triggers import DEFAULT_QUEUE_LEASE_SECONDS, QueueListener, TimerTriggers

log = logging.getLogger("funchost")
LOOPBACK = "127.0.0.1"


class LocalHost:
    def __init__(
        self,
        app_dir: Path,
        storage_connection_string: str,
        *,
        clock: Clock | None = None,
        virtual_clock: bool = False,
        port: int = 0,
        state_dir: Path | None = None,
        app_settings: dict[str, str] | None = None,
        idle_grace_seconds: float = 0.0,
        episode_workers: int = 4,
        function_workers: int = 16,
        fast_replay: bool = True,
        queue_lease_seconds: float = DEFAULT_QUEUE_LEASE_SECONDS,
    ) -> None:
        if virtual_clock and not hasattr(clock, "advance_to"):
            raise ValueError("virtual clock mode needs a clock that can be advanced (devstack.clock.FileClock)")
        self.app_dir = Path(app_dir).resolve()
        self.storage_connection_string = storage_connection_string
        self.clock: Clock = clock or SystemClock()
        self.virtual_clock = virtual_clock
        self.requested_port = port
        self.state_dir = state_dir
        self.app_settings = dict(app_settings or {})
        self.idle_grace_seconds = idle_grace_seconds
        self.episode_workers = episode_workers
        self.function_workers = function_workers
        self.fast_replay = fast_replay
        self.queue_lease_seconds = queue_lease_seconds
        self.tracker = WorkTracker()
        self.port = 0
        self._saved_environ: dict[str, str | None] = {}
        self.app: AppModel
        self.keys: HostKeys
        self.engine: DurableEngine
        self.http: HttpFrontEnd
        self.queue_listeners: list[QueueListener] = []
        self.timers: TimerTriggers
        self._store: DurableStore | None = None
        self._invoker: Invoker | None = None
        self._started = False

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> LocalHost:
        self._apply_settings()
        if self.fast_replay:
            sdk.install_timestamp_cache()
        self.app = load_app(self.app_dir)
        keys_path = self.state_dir / "host_keys.json" if self.state_dir else None
        self.keys = HostKeys.load_or_create(keys_path)
        self.keys.ensure_functions([f.name for f in self.app.by_trigger("httpTrigger")])
        self.keys.save(keys_path)
        self._invoker = Invoker(str(self.app_dir), max_workers=self.function_workers)
        self._invoker.start()
        hub = re.sub(r"[^A-Za-z0-9]", "", self.app.task_hub) or "TestHubName"
        self._store = DurableStore(self.storage_connection_string, hub)
        self._store.start()
        self.engine = DurableEngine(
            self.app,
            self._store,
            self._invoker,
            self.clock,
            self.tracker,
            virtual_clock=self.virtual_clock,
            client_config=self.client_config,
            idle_grace_seconds=self.idle_grace_seconds,
            queues_quiet=self._queues_quiet,
            episode_workers=self.episode_workers,
        )
        management = ManagementApi(
            self.engine,
            public_base=lambda: self.base_url + PUBLIC_DURABLE_PREFIX,
            system_key=self.keys.durabletask_extension,
            task_hub=hub,
        )
        self._management = management
        self.http = HttpFrontEnd(self.app, self._invoker, self.keys, self.tracker, management, self.client_config)
        self.port = self.http.start(LOOPBACK, self.requested_port)
        queue_options = (self.app.host_json.get("extensions") or {}).get("queues") or {}
        for fn in self.app.by_trigger("queueTrigger"):
            listener = QueueListener(
                fn,
                self._connection(fn),
                self._invoker,
                self.tracker,
                extra_kwargs=self._binding_kwargs,
                options=queue_options,
                lease_seconds=self.queue_lease_seconds,
            )
            listener.start()
            self.queue_listeners.append(listener)
        self.engine.start()
        self.timers = TimerTriggers(
            self.app.by_trigger("timerTrigger"),
            self._invoker,
            self.clock,
            self.tracker,
            virtual_clock=self.virtual_clock,
            extra_kwargs=self._binding_kwargs,
        )
        self.timers.start()
        self._started = True
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self.timers.stop()
        for listener in self.queue_listeners:
            listener.stop()
        self.http.stop()
        self.engine.stop()
        if self._store is not None:
            self._store.stop()
        if self._invoker is not None:
            self._invoker.stop()
        self._restore_settings()

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- settings --------------------------------------------------------------------------------------
    def _apply_settings(self) -> None:
        settings = {"AzureWebJobsStorage": self.storage_connection_string, **self.app_settings}
        for name, value in settings.items():
            self._saved_environ.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _restore_settings(self) -> None:
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environ.clear()

    def _connection(self, fn: FunctionInfo) -> str:
        name = fn.connection
        value = os.environ.get(name) or os.environ.get(f"AzureWebJobs{name}")
        if not value:
            raise RuntimeError(
                f"function '{fn.name}' reads queue '{fn.queue_name}' through app setting '{name}', which is not set"
            )
        return value

    # --- what functions see ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def client_config(self) -> str:
        return self._management.client_binding(self.base_url + RPC_DURABLE_PREFIX + "/")

    def _binding_kwargs(self, fn: FunctionInfo) -> dict[str, Any]:
        return {fn.durable_client_param: self.client_config()} if fn.durable_client_param else {}

    def http_urls(self) -> dict[str, str]:
        prefix = f"/{self.app.route_prefix}" if self.app.route_prefix else ""
        return {fn.name: f"{self.base_url}{prefix}/{fn.route}" for fn in self.app.by_trigger("httpTrigger")}

    # --- waiting -----------------------------------------------------------------------------------------
    def _queues_quiet(self, epoch: int) -> bool:
        quiet = all(listener.quiet_epoch >= epoch for listener in self.queue_listeners)
        if not quiet:
            for listener in self.queue_listeners:
                listener.poke()
        return quiet

    def run_until_idle(self, timeout: float = 30.0, *, settle: float = 0.05) -> None:
        """Wait until nothing is runnable; in virtual mode also until no durable timer is pending."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            epoch = self.tracker.epoch
            idle = self.engine.is_idle() and self._queues_quiet(epoch)
            if idle and self.virtual_clock:
                idle = self.engine.pending_timers() == 0
            elif idle:
                nxt = self.engine.next_timer()
                idle = nxt is None or nxt > self.clock.now()
            if idle:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle:
                    return
            else:
                quiet_since = None
            self.tracker.wait(0.01)
        raise TimeoutError(
            f"the host did not become idle within {timeout}s: {self.tracker.inflight} invocation(s) in flight, "
            f"{self.engine.pending_timers()} timer(s) pending, stats {json.dumps(self.engine.stats)}"
        )

    def wait_for(self, instance_id: str, timeout: float = 30.0) -> InstanceView:
        instance = self.engine.wait_for(instance_id, timeout)
        if instance is None or not instance.status.is_terminal:
            state = instance.status.value if instance else "unknown"
            raise TimeoutError(f"orchestration {instance_id} did not finish within {timeout}s (status {state})")
        return instance
