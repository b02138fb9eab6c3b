"""Status sync: copy what Azure reports for each migration in flight onto its EC2 instance's tags."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aws_lambda.logic.intake import current_phase
from aws_lambda.models.inventory import TaggedInstance
from aws_lambda.models.outcomes import StatusSyncOutcome
from aws_lambda.observability import count, logger
from aws_lambda.ports import InstanceInventory, StatusApi, TagWriter
from migration.errors import MigrationError, NotFound
from migration.phases import Phase
from migration.records import MigrationRecord
from migration.tags import STATUS, STATUS_TAGS, status_tags

# Nothing more will change for these (NotReady never reached Azure); a new request re-tags them first.
_SETTLED = frozenset({Phase.NOT_READY, Phase.MIGRATED, Phase.CANCELLED})


@dataclass(frozen=True)
class StatusSyncDependencies:
    inventory: InstanceInventory
    tags: TagWriter
    status_api: StatusApi
    max_parallel_reads: int = 8


def _needs_sync(tagged: TaggedInstance) -> bool:
    phase = current_phase(tagged.tags)
    return phase is not None and phase not in _SETTLED


def desired_tags(record: MigrationRecord) -> dict[str, str]:
    return status_tags(
        record.phase.value,
        updated_at=record.updated_at,
        reason=record.reason,
        progress=record.progress_percent,
    )


def _differs(current: Mapping[str, str], desired: Mapping[str, str]) -> bool:
    return any(current.get(key) != value for key, value in desired.items() if key in STATUS_TAGS)


def sync_statuses(deps: StatusSyncDependencies) -> StatusSyncOutcome:
    in_flight = [t for t in deps.inventory.list_tagged(STATUS) if _needs_sync(t)]

    def read(tagged: TaggedInstance) -> MigrationRecord | MigrationError:
        try:
            return deps.status_api.get_migration(tagged.instance.migration_id)
        except MigrationError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=deps.max_parallel_reads) as pool:
        results = list(pool.map(read, in_flight))

    updates: dict[str, dict[str, str]] = {}
    not_in_azure: list[str] = []
    errors: dict[str, str] = {}
    for tagged, result in zip(in_flight, results, strict=True):
        instance_id = tagged.instance.instance_id
        if isinstance(result, NotFound):
            # Requested but not yet picked up from the queue (or Azure is behind): next run will see it.
            not_in_azure.append(instance_id)
        elif isinstance(result, MigrationError):
            errors[instance_id] = str(result)
        else:
            wanted = desired_tags(result)
            if _differs(tagged.tags, wanted):
                updates[instance_id] = wanted
    if updates:
        deps.tags.write_tags(updates)
    count("StatusTagsUpdated", len(updates))
    if errors:
        count("StatusSyncErrors", len(errors))
        logger.warning("status API errors", extra={"errors": errors})
    outcome = StatusSyncOutcome(
        checked=len(in_flight),
        updated=sorted(updates),
        unchanged=len(in_flight) - len(updates) - len(not_in_azure) - len(errors),
        not_in_azure=not_in_azure,
        errors=errors,
    )
    logger.info("status sync done", extra=outcome.model_dump())
    return outcome
