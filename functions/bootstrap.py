"""The Function App's composition root: settings read once, clients built once per worker.

Nothing is built at import time, so a missing setting fails the first invocation loudly with its
name, and the host can index the app without any cloud reachable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from functions.adapters.asr import (
    SDK_RETRY_SETTINGS,
    AzureSiteRecoveryGateway,
    build_asr_credential,
    build_site_recovery_client,
)
from functions.adapters.compute import ComputeVmInspector
from functions.adapters.notification_store import TableOutbox
from functions.adapters.notify_sinks import EventGridSink, WebhookSink
from functions.adapters.offazure import build_offazure_client
from functions.adapters.table_store import TableStore
from functions.adapters.write_budget import write_budget_from_settings
from functions.settings import FunctionSettings
from migration.clock import clock_from_factory
from migration.notifications import DeliveryPolicy, NotificationDelivery, NotificationOutbox, NotificationSink
from migration.ports import AsrGateway, Clock, MigrationStore, VmInspector
from migration.steps import MigrationSteps


class Services:
    """The worker's services, each built on first use from the settings; pass one in to replace it.

    The only composition root of the Function App: activities, orchestrations' activities and the HTTP
    API all take their dependencies from ``services()``; tests ``configure`` it with their own parts."""

    def __init__(self, settings: FunctionSettings, *, store: MigrationStore | None = None,
                 asr: AsrGateway | None = None, clock: Clock | None = None,
                 outbox: NotificationOutbox | None = None,
                 sinks: list[NotificationSink] | None = None,
                 vms: VmInspector | None = None) -> None:  # fmt: skip
        self.settings = settings
        self._store, self._asr, self._clock = store, asr, clock
        self._vms = vms
        self._lock = threading.Lock()
        self._steps: MigrationSteps | None = None
        self._outbox: NotificationOutbox | None = outbox
        self._sinks: list[NotificationSink] | None = sinks

    @property
    def store(self) -> MigrationStore:
        with self._lock:
            if self._store is None:
                self._store = TableStore.from_settings(self.settings)
            return self._store

    @property
    def clock(self) -> Clock:
        with self._lock:
            if self._clock is None:
                self._clock = clock_from_factory(self.settings.clock_factory)
            return self._clock

    @property
    def asr(self) -> AsrGateway:
        with self._lock:
            if self._asr is None:
                self._asr = _build_asr(self.settings)
            return self._asr

    @property
    def vms(self) -> VmInspector:
        """The failed-over VMs, read through Microsoft.Compute (the validation gate)."""
        with self._lock:
            if self._vms is None:
                self._vms = _build_vm_inspector(self.settings)
            return self._vms

    @property
    def notification_sinks(self) -> list[NotificationSink]:
        """The configured destinations (none: notifications are off)."""
        with self._lock:
            if self._sinks is None:
                self._sinks = _build_sinks(self.settings)
            return self._sinks

    @property
    def outbox(self) -> NotificationOutbox | None:
        """The notification outbox, when a destination is configured (or one was passed in)."""
        if not self.notification_sinks:
            return self._outbox
        with self._lock:
            if self._outbox is None:
                self._outbox = _build_outbox(self.settings)
            return self._outbox

    @property
    def delivery(self) -> NotificationDelivery | None:
        outbox, sinks = self.outbox, self.notification_sinks
        if outbox is None or not sinks:
            return None
        policy = DeliveryPolicy(dead_letter_after=timedelta(seconds=self.settings.notify_dead_letter_after_seconds))
        return NotificationDelivery(outbox, sinks, self.store, self.clock, policy)

    @property
    def steps(self) -> MigrationSteps:
        store, asr, clock, settings, outbox = self.store, self.asr, self.clock, self.settings, self.outbox
        vms = self.vms
        with self._lock:
            if self._steps is None:
                self._steps = MigrationSteps(
                    store, asr, clock, target_tags=settings.target_tags, default_subnet=settings.target_default_subnet,
                    default_vm_size=settings.target_default_vm_size,
                    discovery_timeout=timedelta(seconds=settings.discovery_timeout_seconds), outbox=outbox,
                    vms=vms, target_resource_group_id=settings.target_resource_group_id,
                )  # fmt: skip
            return self._steps


def _build_asr(settings: FunctionSettings) -> AsrGateway:
    # One write budget for every worker (a token bucket in Table Storage, functions/adapters/write_budget.py).
    limiter = write_budget_from_settings(settings)
    credential = build_asr_credential(settings)
    client = build_site_recovery_client(settings, credential, write_limiter=limiter)
    offazure = build_offazure_client(
        credential, base_url=settings.offazure_base_url or settings.asr_base_url, ca_bundle=settings.asr_ca_bundle,
        retry_settings=dict(SDK_RETRY_SETTINGS), write_limiter=limiter,
    )  # fmt: skip
    return AzureSiteRecoveryGateway.from_settings(client, settings, offazure=offazure)


def _build_vm_inspector(settings: FunctionSettings) -> VmInspector:
    # The same identity as ASR (the simulator's fixed token on loopback, else the managed identity); locally the
    # simulator serves Microsoft.Compute too (COMPUTE_BASE_URL, else ASR_BASE_URL), with its test CA.
    credential = build_asr_credential(settings)
    return ComputeVmInspector(credential, base_url=settings.compute_base_url or settings.asr_base_url,
                              ca_bundle=settings.asr_ca_bundle)  # fmt: skip


def _build_sinks(settings: FunctionSettings) -> list[NotificationSink]:
    sinks: list[NotificationSink] = []
    if settings.notify_webhook_url:
        sinks.append(WebhookSink(settings.notify_webhook_url, secret=settings.notify_webhook_secret))
    if settings.notify_event_grid_endpoint:
        if settings.notify_event_grid_key:  # the topic's access key; without it, the managed identity (the default)
            sinks.append(EventGridSink.with_access_key(settings.notify_event_grid_endpoint,
                                                       settings.notify_event_grid_key))  # fmt: skip
        else:
            sinks.append(EventGridSink.with_managed_identity(settings.notify_event_grid_endpoint))
    return sinks


def _build_outbox(settings: FunctionSettings) -> NotificationOutbox:
    if settings.state_storage_connection_string:
        return TableOutbox.from_connection_string(settings.state_storage_connection_string)
    from azure.data.tables import TableServiceClient
    from azure.identity import DefaultAzureCredential

    service = TableServiceClient(endpoint=str(settings.state_table_service_uri), credential=DefaultAzureCredential())
    return TableOutbox(service)


def build_services(settings: FunctionSettings) -> Services:
    """Every service, built now (a deployment check: each client constructs with these settings)."""
    built = Services(settings)
    _ = built.steps
    return built


class _Root:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.factory: Callable[[], Services] = lambda: Services(FunctionSettings.from_environment())
        self.built: Services | None = None


_ROOT = _Root()


def configure(factory: Callable[[], Services] | None = None) -> None:
    """Build the worker's services with ``factory`` on first use; None restores the settings' own."""
    with _ROOT.lock:
        _ROOT.factory = factory or _Root().factory
        _ROOT.built = None


def services() -> Services:
    built = _ROOT.built
    if built is None:
        with _ROOT.lock:
            if _ROOT.built is None:
                _ROOT.built = _ROOT.factory()
            built = _ROOT.built
    return built
