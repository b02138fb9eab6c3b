"""The Function App's composition root: settings read once, clients built once per worker.

Nothing is built at import time, so a missing setting fails the first invocation loudly with its
name, and the host can index the app without any cloud reachable.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from functions.adapters.asr import (
    SDK_RETRY_SETTINGS,
    AzureSiteRecoveryGateway,
    build_asr_credential,
    build_site_recovery_client,
)
from functions.adapters.offazure import build_offazure_client
from functions.adapters.table_store import TableStore
from functions.adapters.write_budget import write_budget_from_settings
from functions.settings import FunctionSettings
from migration.clock import clock_from_factory
from migration.ports import AsrGateway, Clock, MigrationStore
from migration.steps import MigrationSteps


@dataclass(frozen=True)
class Services:
    settings: FunctionSettings
    store: MigrationStore
    asr: AsrGateway
    clock: Clock
    steps: MigrationSteps


def build_services(settings: FunctionSettings) -> Services:
    store = TableStore.from_settings(settings)
    # One write budget for every worker (a token bucket in Table Storage, functions/adapters/write_budget.py).
    limiter = write_budget_from_settings(settings)
    credential = build_asr_credential(settings)
    client = build_site_recovery_client(settings, credential, write_limiter=limiter)
    offazure = build_offazure_client(
        credential, base_url=settings.offazure_base_url or settings.asr_base_url, ca_bundle=settings.asr_ca_bundle,
        retry_settings=dict(SDK_RETRY_SETTINGS), write_limiter=limiter,
    )  # fmt: skip
    gateway = AzureSiteRecoveryGateway.from_settings(client, settings, offazure=offazure)
    asr: AsrGateway = gateway
    clock = clock_from_factory(settings.clock_factory)
    steps = MigrationSteps(
        store, asr, clock, target_tags=settings.target_tags, default_subnet=settings.target_default_subnet,
        default_vm_size=settings.target_default_vm_size,
    )  # fmt: skip
    return Services(settings=settings, store=store, asr=asr, clock=clock, steps=steps)


@functools.cache
def services() -> Services:
    return build_services(FunctionSettings.from_environment())
