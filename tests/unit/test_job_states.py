"""Finding 5 and 6: every ASR job state has a verdict (pure), and a committed migration never ends Failed for
want of a CompleteMigration that ASR does not offer."""

from __future__ import annotations

import pytest

from migration.errors import PreconditionFailed
from migration.lifecycle import Phase
from migration.monitoring import classify_job_state
from migration.steps import MigrationSteps
from migration.tags import MigrationTags
from tests.fakes import FakeAsr, InMemoryStore, ManualClock
from tests.unit.test_steps import IP, request


@pytest.mark.parametrize(
    ("state", "description", "verdict"),
    [
        ("NotStarted", None, "running"),
        ("InProgress", "InProgress", "running"),
        ("Cancelling", None, "running"),
        ("Suspended", "Suspended", "waiting_for_operator"),
        ("Succeeded", "Completed", "succeeded"),
        ("Succeeded", "PartiallySucceeded", "succeeded"),
        ("Other", "CompletedWithInformation", "succeeded"),
        ("Other", "Skipped", "succeeded"),
        ("Other", "Failed", "failed"),
        ("Other", "Something new", "failed"),
        ("Failed", "Failed", "failed"),
        ("Cancelled", "Cancelled", "cancelled"),
        ("Unheard-of", None, "failed"),
    ],
)
def test_every_state_has_a_verdict_and_none_polls_forever(state: str, description: str | None, verdict: str) -> None:
    result = classify_job_state(state, description)
    assert result.verdict == verdict
    assert result.finished is (verdict in ("succeeded", "failed", "cancelled"))
    if state in ("Other", "Cancelled", "Suspended") or description == "PartiallySucceeded":
        assert result.note  # the operator is told what ASR said


class NoCompleteMigration(FakeAsr):
    def begin_complete_migration(self, protected_item_name: str) -> str:
        raise PreconditionFailed("ASR offers neither", code="CompleteMigrationNotOffered")


def test_a_committed_migration_completes_with_a_note_when_complete_migration_is_not_offered() -> None:
    store, asr, clock = InMemoryStore(), NoCompleteMigration(), ManualClock()
    asr.add_machine(IP)
    steps = MigrationSteps(store, asr, clock, default_subnet="workloads")
    migration_id = steps.register(request()).migration_id
    item = steps.start_replication(migration_id).protected_item_name
    for phase in (Phase.REPLICATING, Phase.READY_FOR_CUTOVER, Phase.AWAITING_CUTOVER):
        steps.record_phase(migration_id, phase)
    asr.protect(item)
    steps.start_failover(migration_id)
    asr.failover_done(item)
    commit = steps.start_commit(migration_id)

    started = steps.start_complete_migration(migration_id)

    assert started.job_id == commit.job_id  # the commit job, which succeeded: the orchestration ends Migrated
    kinds = [e.kind for e in store.events if e.migration_id == migration_id]
    assert "CompleteMigrationSkipped" in kinds


def test_disk_type_and_hybrid_benefit_tags_are_parsed() -> None:
    tags = MigrationTags.from_tags(
        {"aws2azure:migrate": "true", "aws2azure:target-disk-type": "Premium_LRS", "aws2azure:hybrid-benefit": "true"}
    )
    assert (tags.target_disk_type, tags.hybrid_benefit) == ("Premium_LRS", True)
    assert MigrationTags.from_tags({"aws2azure:migrate": "true"}).hybrid_benefit is None
    with pytest.raises(Exception, match="disk type"):
        MigrationTags.from_tags({"aws2azure:migrate": "true", "aws2azure:target-disk-type": "Gold"})
