"""Counters and the request log the benchmarks and tests read."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Literal

from devstack.asr_sim.arm import iso
from devstack.asr_sim.contract import RequestPage, RequestRecord, Stats

MAX_LOG_RECORDS = 1_000_000
_LogEntry = tuple[int, float, datetime, str, str, str, str, int, str | None, float, str | None]


class Recorder:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total = 0
        self.reads = 0
        self.writes = 0
        self.throttled = 0
        self.server_errors = 0
        self.client_errors = 0
        self.per_operation: Counter[str] = Counter()
        self.per_machine: Counter[str] = Counter()
        self.write_timestamps: list[float] = []
        self.failover_requests: Counter[str] = Counter()
        self.failovers_started: Counter[str] = Counter()
        self.commits_started: Counter[str] = Counter()
        self.failover_restarts: Counter[str] = Counter()
        self.job_restarts: Counter[str] = Counter()
        self.jobs_started: Counter[str] = Counter()
        self.log: list[_LogEntry] = []
        self._seq = 0

    def request(
        self,
        *,
        wall_time: float,
        virtual_time: datetime,
        method: str,
        path: str,
        operation: str,
        kind: Literal["read", "write"],
        status: int,
        machine: str | None,
        duration_ms: float,
        fault: str | None,
    ) -> None:
        self.total += 1
        if kind == "read":
            self.reads += 1
        else:
            self.writes += 1
            self.write_timestamps.append(wall_time)
        if status == 429:
            self.throttled += 1
        elif status >= 500:
            self.server_errors += 1
        elif status >= 400:
            self.client_errors += 1
        self.per_operation[operation] += 1
        if machine is not None:
            self.per_machine[machine] += 1
        self._seq += 1
        if len(self.log) < MAX_LOG_RECORDS:
            # A plain tuple per request keeps the hot path cheap; records are built when read.
            self.log.append(
                (self._seq, wall_time, virtual_time, method, path, operation, kind, status, machine, duration_ms, fault)
            )

    def failover_requested(self, item_name: str) -> None:
        self.failover_requests[item_name] += 1

    def failover_started(self, item_name: str) -> None:
        self.failovers_started[item_name] += 1

    def commit_started(self, item_name: str) -> None:
        self.commits_started[item_name] += 1

    def job_restarted(self, scenario: str, item_name: str | None) -> None:
        self.job_restarts[scenario] += 1
        if scenario == "UnplannedFailover" and item_name is not None:
            self.failover_restarts[item_name] += 1

    def job_started(self, scenario: str) -> None:
        self.jobs_started[scenario] += 1

    def stats(self) -> Stats:
        return Stats(
            total_requests=self.total,
            reads=self.reads,
            writes=self.writes,
            throttled_429=self.throttled,
            server_errors_5xx=self.server_errors,
            client_errors_4xx=self.client_errors,
            per_operation=dict(self.per_operation),
            per_machine=dict(self.per_machine),
            write_timestamps=list(self.write_timestamps),
            failover_requests=dict(self.failover_requests),
            failovers_started=dict(self.failovers_started),
            commits_started=dict(self.commits_started),
            failover_restarts=dict(self.failover_restarts),
            job_restarts=dict(self.job_restarts),
            jobs_started=dict(self.jobs_started),
        )

    def page(self, since: int, limit: int) -> RequestPage:
        # seq starts at 1 and the log is append-only, so seq n sits at index n - 1.
        start = max(0, since)
        entries = self.log[start : start + limit]
        records = [
            RequestRecord(
                seq=seq,
                wall_time=wall,
                virtual_time=iso(virtual),
                method=method,
                path=path,
                operation=operation,
                kind=kind,
                status=status,
                machine=machine,
                duration_ms=round(duration, 3),
                fault=fault,
            )
            for seq, wall, virtual, method, path, operation, kind, status, machine, duration, fault in entries
        ]
        return RequestPage(records=records, next_seq=start + len(records))
