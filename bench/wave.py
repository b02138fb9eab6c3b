"""Drive a wave through the Azure side of the local stack, as benchmarks and reliability runs do.

Machines are seeded in the ASR simulator with about three days of initial replication; requests
and cutovers go on the intake queue as the AWS side would send them.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
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

    def run_to_the_end(
        self,
        *,
        stall_seconds: float = STALL_SECONDS,
        virtual_limit: timedelta = VIRTUAL_LIMIT,
        copies: int = 1,
        on_tick: Callable[[float], None] | None = None,
    ) -> dict[str, dict[str, object]]:
        """Cut each instance over as soon as it awaits cutover; return the records when all are final.

        Also returns (with records not final, which the caller reports as stuck) when nothing moved for
        ``stall_seconds`` of wall time (neither the virtual clock nor any record's phase or reason), or when
        ``virtual_limit`` of virtual time has passed: the bounds follow progress, so a slower machine only takes
        longer, it does not fail a run (a fixed wall-clock bound did, issue 17).
        """
        started = time.monotonic()
        began = self.clock.now()
        records: dict[str, dict[str, object]] = {}
        last_seen: object = None
        last_move = started
        while True:
            try:
                records = self.records()
            except Exception:  # the host may be down for a moment (crash scenarios): look again
                records = records or {}
            else:
                for instance in self.instances:
                    record = records.get(self.migration_id(instance))
                    if record and record["phase"] == "AwaitingCutover" and instance not in self.cutover_sent:
                        self.cut_over(instance, copies=copies)
                if len(records) == self.count and all(r["phase"] in FINAL for r in records.values()):
                    return records
            now = self.clock.now()
            seen = (now, sorted((key, str(r["phase"]), str(r.get("reason", ""))) for key, r in records.items()))
            if seen != last_seen:
                last_seen, last_move = seen, time.monotonic()
            elif time.monotonic() - last_move > stall_seconds:
                return records
            if now - began > virtual_limit:
                return records
            if on_tick is not None:
                on_tick(time.monotonic() - started)
            time.sleep(1.0)
