"""The Function App's composition root: settings read once, clients built once per worker.

Nothing is built at import time, so a missing setting fails the first invocation loudly with its
name, and the host can index the app without any cloud reachable.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from functions.adapters.asr import AzureSiteRecoveryGateway, build_asr_credential, build_site_recovery_client
from functions.adapters.table_store import TableStore
from functions.settings import FunctionSettings
from migration.clock import clock_from_factory
from migration.pacing import WriteLimiter
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
    limiter = WriteLimiter(settings.asr_writes_per_second)
    client = build_site_recovery_client(settings, build_asr_credential(settings), write_limiter=limiter)
    gateway = AzureSiteRecoveryGateway(
        client,
        resource_group=settings.asr_resource_group,
        vault_name=settings.asr_vault_name,
        policy_name=settings.asr_policy_name,
        target_resource_group_id=settings.target_resource_group_id,
        target_network_id=settings.target_network_id,
        default_subnet=settings.target_default_subnet,
        default_tags=settings.target_tags,
        default_vm_size=settings.target_default_vm_size,
    )
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
