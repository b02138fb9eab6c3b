"""The downtime bench's arithmetic (bench/downtime.py): per-machine downtime from timelines, percentiles, goals."""

from __future__ import annotations

from typing import Any

import pytest

from bench.downtime import derive, downtime_minutes, percentile, summarize, wait_minutes


def _record(stopped: str | None, started: str | None, done: str | None) -> dict[str, Any]:
    return {"timeline": {"source_stopped_at": stopped, "failover_started_at": started, "failover_done_at": done}}


def test_downtime_is_failover_done_minus_source_stopped_and_skips_incomplete_timelines() -> None:
    records: list[dict[str, Any]] = [
        _record("2026-12-01T10:00:00+00:00", "2026-12-01T10:02:00+00:00", "2026-12-01T10:14:30+00:00"),
        _record("2026-12-01T10:00:00+00:00", None, None),
        {"timeline": {}},
    ]
    assert downtime_minutes(records) == [14.5]
    assert wait_minutes(records) == [2.0]


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_summary_keys_are_tagged() -> None:
    figures = summarize("wave_100", [10.0, 12.0, 20.0], [1.0, 2.0, 3.0])
    assert figures["cutover_downtime_p99_min_wave_100"] == 20.0
    assert figures["cutover_downtime_p50_min_wave_100"] == 12.0
    assert figures["cutover_wait_p99_min_wave_100"] == 3.0


def test_goal_ratios_appear_only_when_their_inputs_were_measured() -> None:
    assert derive({"source_stop_min": 4.0}) == {}
    small = {"source_stop_min": 4.0, "failover_job_min_wave_100": 12.0, "cutover_downtime_p99_min_wave_100": 16.0}
    assert derive(small) == {"failover_job_min": 12.0, "cutover_downtime_goal_ratio_wave_100": 1.0}
    both = small | {"failover_job_min_wave_1000": 11.0, "cutover_downtime_p99_min_wave_1000": 18.0}
    derived = derive(both)
    assert derived["failover_job_min"] == 11.0  # the wave of 1,000's when it was measured
    assert derived["cutover_downtime_goal_ratio_wave_1000"] == 1.2
    assert derived["cutover_downtime_ratio_wave_1000_100"] == 1.125
