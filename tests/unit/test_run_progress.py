"""bench.wave.Progress: a bench or reliability run is bounded by its progress, never by how fast the machine is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.wave import Progress
from devstack.clock import FileClock

START = datetime(2026, 12, 1, tzinfo=UTC)


def clock_in(tmp_path: Path) -> FileClock:
    return FileClock(tmp_path / "clock", start=START)


def test_a_run_whose_records_and_clock_do_not_change_stops_after_its_stall_bound(tmp_path: Path) -> None:
    progress = Progress(clock_in(tmp_path), stall_seconds=0.0)
    records = {"m-1": {"phase": "FailingOver", "reason": ""}}
    assert progress.moving(records)  # the first look is a change
    assert not progress.moving(records)  # nothing moved, and the bound (0 s) has passed


def test_a_moving_virtual_clock_or_a_phase_change_is_progress(tmp_path: Path) -> None:
    clock = clock_in(tmp_path)
    progress = Progress(clock, stall_seconds=0.0)
    records = {"m-1": {"phase": "FailingOver", "reason": ""}}
    assert progress.moving(records)
    clock.advance_by(60)
    assert progress.moving(records)
    assert progress.moving({"m-1": {"phase": "Validating", "reason": ""}})
    assert progress.moving({"m-1": {"phase": "Validating", "reason": "agent not ready"}})
    assert not progress.moving({"m-1": {"phase": "Validating", "reason": "agent not ready"}})


def test_a_generous_stall_bound_keeps_a_still_run_going(tmp_path: Path) -> None:
    progress = Progress(clock_in(tmp_path), stall_seconds=3600.0)
    assert all(progress.moving({}) for _ in range(3))


def test_a_run_past_its_virtual_limit_stops_even_while_the_clock_moves(tmp_path: Path) -> None:
    clock = clock_in(tmp_path)
    progress = Progress(clock, virtual_limit=timedelta(days=1))
    clock.advance_by(23 * 3600)
    assert progress.moving({})
    clock.advance_by(2 * 3600)
    assert not progress.moving({})
