"""Drive a wave through the Azure side of the local stack, as benchmarks and reliability runs do.

Machines are seeded in the ASR simulator with about three days of initial replication; requests
and cutovers go on the intake queue as the AWS side would send them.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from devstack.asr_sim.control import SimulatorControl
from devstack.clock import FileClock
from devstack.settings import StackSettings
from tests.e2e.support import ACCOUNT, REGION, api_of, intake_queue, send_event

# 756 GiB at 3 MB/s with 1 GiB/day of churn: about three days of initial replication per machine.
DISKS_GIB = (256, 500)
UPLOAD_MB_PER_S = 3.0
CHURN_MB_PER_DAY = 1024.0
FINAL = frozenset({"Migrated", "Failed", "Cancelled", "NotReady"})
# How long a run may go on with nothing moving (wall seconds), and how far in virtual time it may go.
STALL_SECONDS = 300.0
VIRTUAL_LIMIT = timedelta(days=30)


class Progress:
    """Whether a run still moves. A run's bound follows its progress, not the wall clock, so a slower machine only
    takes longer (issue 17: fixed wall-clock bounds failed full runs that were still moving). It stops moving when
    neither the virtual clock nor any record's phase or reason changed for ``stall_seconds`` of wall time, or when
    ``virtual_limit`` of virtual time has passed since it began."""

    def __init__(self, clock: FileClock, *, stall_seconds: float = STALL_SECONDS,
                 virtual_limit: timedelta = VIRTUAL_LIMIT) -> None:  # fmt: skip
        self.clock, self.stall_seconds, self.virtual_limit = clock, stall_seconds, virtual_limit
        self.began = clock.now()
        self._seen: object = None
        self._last_change = time.monotonic()

    def moving(self, records: Mapping[str, Mapping[str, object]]) -> bool:
        now = self.clock.now()
        seen = (now, sorted((key, str(r.get("phase")), str(r.get("reason", ""))) for key, r in records.items()))
        if seen != self._seen:
            self._seen, self._last_change = seen, time.monotonic()
        elif time.monotonic() - self._last_change > self.stall_seconds:
            return False
        return now - self.began <= self.virtual_limit


@dataclass
class WaveDriver:
    settings: StackSettings
    count: int
    wave: str = "bench"
    instances: list[str] = field(default_factory=list)
    items: dict[str, str] = field(default_factory=dict)  # instance -> protectable item
    cutover_sent: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        assert self.settings.asr is not None
        self.sim = SimulatorControl.from_endpoint(self.settings.asr)
        self.queue = intake_queue(self.settings)
        self.api = api_of(self.settings)
        self.instances = [f"i-{0xBE00000 + n:017x}" for n in range(self.count)]
        self.clock = FileClock(self.settings.clock_file)

    @staticmethod
    def ip(n: int) -> str:
        return f"10.{100 + n // 62500}.{n // 250 % 250}.{n % 250 + 1}"

    @staticmethod
    def migration_id(instance: str) -> str:
        return f"{ACCOUNT}-{REGION}-{instance}"

    def seed(self) -> None:
        for n, instance in enumerate(self.instances):
            self.items[instance] = self.sim.seed_machine(
                self.ip(n), "Linux", "Ubuntu 22.04 LTS", DISKS_GIB, churn_mb_per_day=CHURN_MB_PER_DAY,
                upload_mb_per_s=UPLOAD_MB_PER_S, friendly_name=instance,
            )  # fmt: skip

    def request_all(self, *, copies: int = 1) -> None:
        for n, instance in enumerate(self.instances):
            data = {"private_ip": self.ip(n), "os_family": "linux", "wave": self.wave, "request_id": f"r-{n}"}
            for _ in range(copies):
                send_event(self.queue, "MigrationRequested", instance, data)

    def send_at(self, event_type: str, instance: str, data: dict[str, Any], at: datetime) -> None:
        """One CloudEvent whose ``time`` is virtual ``at``: the AWS side stamps an event with its own clock, and
        the timeline's ``source_stopped_at`` is a FailoverRequested's ``time``."""
        event = {
            "specversion": "1.0", "id": str(uuid.uuid4()), "source": "aws2azure/bench", "time": at.isoformat(),
            "type": f"io.aws2azure.migration.{event_type}.v1", "subject": instance,
            "data": {"instance": {"account_id": ACCOUNT, "region": REGION, "instance_id": instance}, **data},
        }  # fmt: skip
        self.queue.send_message(base64.b64encode(json.dumps(event).encode()).decode())

    def cut_over(self, instance: str, *, copies: int = 1, requested_by: str = "schedule",
                 at: datetime | None = None) -> None:  # fmt: skip
        """The source stopped at ``at`` (virtual; default now) and the failover is requested."""
        stopped = at or self.clock.now()
        data = {"requested_by": requested_by, "source_stopped": True}
        for _ in range(copies):
            self.send_at("FailoverRequested", instance, data, stopped)
        self.cutover_sent.add(instance)

    def records(self) -> dict[str, dict[str, object]]:
        return {str(r["migration_id"]): r for r in self.api.iter_migrations(wave=self.wave)}

    def run_to_the_end(self, *, copies: int = 1,
                       on_tick: Callable[[float], None] | None = None) -> dict[str, dict[str, object]]:  # fmt: skip
        """Cut each instance over as soon as it awaits cutover; return the records when all are final, or when the
        run stops moving (``Progress``; the caller reports records not final as stuck)."""
        started = time.monotonic()
        progress = Progress(self.clock)
        records: dict[str, dict[str, object]] = {}
        while True:
            try:
                records = self.records()
            except Exception:  # the host may be down for a moment (crash scenarios): look again
                pass
            else:
                for instance in self.instances:
                    record = records.get(self.migration_id(instance))
                    if record and record["phase"] == "AwaitingCutover" and instance not in self.cutover_sent:
                        self.cut_over(instance, copies=copies)
                if len(records) == self.count and all(r["phase"] in FINAL for r in records.values()):
                    return records
            if not progress.moving(records):
                return records
            if on_tick is not None:
                on_tick(time.monotonic() - started)
            time.sleep(1.0)
