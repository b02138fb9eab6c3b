from __future__ import annotations

import itertools

import pytest

from migration.errors import InvalidTransition, PreconditionFailed
from migration.lifecycle import (
    ALLOWED_TRANSITIONS,
    FAILOVER_STARTED_PHASES,
    Phase,
    ensure_transition,
    is_cancellable,
)

HAPPY_PATH = [
    Phase.REQUESTED,
    Phase.ENABLING_REPLICATION,
    Phase.REPLICATING,
    Phase.READY_FOR_CUTOVER,
    Phase.TEST_FAILOVER,
    Phase.AWAITING_CUTOVER,
    Phase.FAILING_OVER,
    Phase.COMMITTING,
    Phase.COMPLETING,
    Phase.MIGRATED,
]


def test_every_phase_has_a_row_in_the_transition_table() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(Phase)


def test_the_happy_path_is_allowed_step_by_step() -> None:
    for current, following in itertools.pairwise(HAPPY_PATH):
        assert ensure_transition(current, following) is following


def test_staying_in_a_phase_is_a_progress_update_not_a_transition() -> None:
    assert ensure_transition("Replicating", "Replicating") is Phase.REPLICATING


@pytest.mark.parametrize(
    ("current", "requested"),
    [
        (Phase.REQUESTED, Phase.FAILING_OVER),
        (Phase.REPLICATING, Phase.MIGRATED),
        (Phase.MIGRATED, Phase.REQUESTED),
        (Phase.FAILING_OVER, Phase.CANCELLED),
        (Phase.COMMITTING, Phase.REPLICATING),
        (Phase.NOT_READY, Phase.ENABLING_REPLICATION),
    ],
)
def test_a_transition_outside_the_table_is_rejected_naming_both_phases(current: Phase, requested: Phase) -> None:
    with pytest.raises(InvalidTransition) as caught:
        ensure_transition(current, requested)
    assert current.value in str(caught.value)
    assert requested.value in str(caught.value)
    assert isinstance(caught.value, PreconditionFailed)


def test_an_unknown_phase_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="Exploded"):
        ensure_transition("Replicating", "Exploded")


def test_migrated_is_final() -> None:
    assert ALLOWED_TRANSITIONS[Phase.MIGRATED] == frozenset()


@pytest.mark.parametrize("phase", sorted(FAILOVER_STARTED_PHASES))
def test_cancel_is_refused_once_failover_has_started(phase: Phase) -> None:
    assert not is_cancellable(phase)
    assert Phase.CANCELLED not in ALLOWED_TRANSITIONS[phase]


@pytest.mark.parametrize("phase", [Phase.REQUESTED, Phase.REPLICATING, Phase.AWAITING_CUTOVER])
def test_cancel_is_allowed_before_failover(phase: Phase) -> None:
    assert is_cancellable(phase)
    assert ensure_transition(phase, Phase.CANCELLED) is Phase.CANCELLED


def test_failed_and_cancelled_can_be_requested_again() -> None:
    assert ensure_transition(Phase.FAILED, Phase.REQUESTED) is Phase.REQUESTED
    assert ensure_transition(Phase.CANCELLED, Phase.REQUESTED) is Phase.REQUESTED


def test_a_retry_resumes_a_failed_migration_where_asr_stands() -> None:
    assert ensure_transition(Phase.FAILED, Phase.COMMITTING) is Phase.COMMITTING
    with pytest.raises(InvalidTransition):
        ensure_transition(Phase.FAILED, Phase.MIGRATED)
    with pytest.raises(InvalidTransition):
        ensure_transition(Phase.CANCELLED, Phase.REPLICATING)
