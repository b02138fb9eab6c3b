"""The simulator's control API contract, shared by the server and ``SimulatorControl``.

These models travel as JSON under ``/_sim/``; the ARM surface never sees them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FaultScope = Literal["all", "reads", "writes"]


class MachineSeed(BaseModel):
    """A discovered machine, as the replication appliance would report an EC2 instance."""

    model_config = ConfigDict(frozen=True)

    ip: str
    os_type: Literal["Windows", "Linux"]
    os_name: str
    disks_gib: tuple[int, ...] = Field(min_length=1)
    churn_mb_per_day: float = Field(default=10_240.0, ge=0)
    friendly_name: str | None = None
    # None: drawn deterministically from SimConfig.upload_mb_per_s_range for this machine.
    upload_mb_per_s: float | None = Field(default=None, gt=0)
    # True: the machine's Mobility agent registered with the appliance at seeding, so the appliance's
    # OffAzure site lists it at once. False: it appears only after POST /_sim/machines/{key}/agent-registered.
    agent_registered: bool = True


class MachineInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    id: str
    friendly_name: str
    ip: str
    os_type: str
    os_name: str
    os_supported: bool
    disks_gib: tuple[int, ...]
    disk_ids: tuple[str, ...]
    churn_mb_per_day: float
    upload_mb_per_s: float
    fabric_discovery_machine_id: str
    protected_item_name: str | None = None
    discovered: bool = True
    run_as_account_id: str = ""


class AsrErrorSpec(BaseModel):
    """The ASR error a failed job reports (serviceErrorDetails)."""

    model_config = ConfigDict(frozen=True)

    code: str = "28031"
    message: str = "The operation failed because of an internal error in the replication appliance."
    possible_causes: str = "A transient problem on the replication appliance or the Site Recovery service."
    recommended_action: str = "Retry the operation. If the issue persists, contact support."


class FaultRule(BaseModel):
    """Faults for the whole run or for one machine. Rates are fractions in [0, 1]."""

    model_config = ConfigDict(frozen=True)

    throttle_rate: float = Field(default=0.0, ge=0, le=1)
    throttle_retry_after_seconds: int = Field(default=5, ge=0)
    server_error_rate: float = Field(default=0.0, ge=0, le=1)
    # Served in turn when a 5xx is due (ARM answers both).
    server_error_statuses: tuple[int, ...] = (500, 503)
    # True: a write that draws a 5xx is carried out first, then answered 500/503 (did it happen or not?).
    server_errors_after_effect: bool = False
    slow_response_ms: int = Field(default=0, ge=0)
    # Which requests throttling, 5xx and slowness apply to.
    scope: FaultScope = "all"
    job_failure_rate: float = Field(default=0.0, ge=0, le=1)
    # Restrict job failures to these scenario names (e.g. "EnableDr"); empty means every job.
    job_failure_scenarios: tuple[str, ...] = ()
    job_failure_error: AsrErrorSpec = AsrErrorSpec()
    # Replication makes no progress from the moment this is set (health Critical, NoProgress).
    stalled: bool = False
    # The machine's OS counts as unsupported by InMageRcm whatever its name.
    unsupported_os: bool = False
    # The Azure VM a failover of this machine creates (Microsoft.Compute instance view): it shows PowerState/starting
    # and no VM agent for this many virtual seconds after the failover; a power state or provisioning state that
    # overrides the healthy one ("stopped", "deallocated"; "failed"); a VM agent that never reports Ready.
    vm_boot_seconds: int = Field(default=0, ge=0)
    vm_power_state: Literal["starting", "running", "stopping", "stopped", "deallocating", "deallocated"] | None = None
    vm_provisioning_state: Literal["succeeded", "failed", "creating", "updating"] | None = None
    vm_agent_ready: bool = True
    # Run Command in that VM (the validation gate's checks, docs/VALIDATION.md): the checks that fail (a TCP port
    # "443" or the URL as the script names it), and how many virtual seconds a run takes (Learn: about 20 at least).
    vm_check_fail: tuple[str, ...] = ()
    vm_check_seconds: int = Field(default=20, ge=0)


class JobEnd(BaseModel):
    """How an injected job ends: a state the SDK documents (JobProperties.state: NotStarted, InProgress,
    Succeeded, Failed, Cancelled, Suspended or Other) and a stateDescription (Completed, PartiallySucceeded,
    CompletedWithInformation, Skipped, ...)."""

    model_config = ConfigDict(frozen=True)

    state: Literal["Succeeded", "Other", "Cancelled"] = "Other"
    state_description: str = "CompletedWithInformation"


class FaultPlan(BaseModel):
    """Every fault in force. ``machines`` keys may be a protectable item name, IP or friendly name."""

    model_config = ConfigDict(frozen=True)

    seed: int = 0
    run: FaultRule = FaultRule()
    machines: dict[str, FaultRule] = Field(default_factory=dict)
    # ARM-style write budget: writes beyond this many in any rolling wall-clock second get 429.
    max_writes_per_second: int | None = Field(default=None, ge=1)
    write_budget_retry_after_seconds: int = Field(default=1, ge=0)
    # Jobs of these scenario names stop halfway in state Suspended until resumed.
    suspend_scenarios: tuple[str, ...] = ()
    # Jobs of these scenario names end in another state than their outcome: scenario -> end state.
    end_states: dict[str, JobEnd] = Field(default_factory=dict)


class SimConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Retry-After on 202s and on in-progress operation status (ASR says 30).
    lro_retry_after_seconds: int = Field(default=30, ge=0)
    page_size: int = Field(default=200, ge=1)
    upload_mb_per_s_range: tuple[float, float] = (3.0, 12.0)
    # Multiplies every job's virtual duration (1.0 = the simulator's realistic defaults).
    job_duration_scale: float = Field(default=1.0, gt=0)


class Infrastructure(BaseModel):
    """What the simulator created at start, so a client only needs to seed machines."""

    model_config = ConfigDict(frozen=True)

    subscription_id: str
    resource_group: str
    vault_name: str
    fabric_name: str
    fabric_id: str
    physical_site_id: str
    physical_site_name: str
    run_as_account_ids: tuple[str, ...] = ()
    process_server_id: str
    protection_container_name: str
    protection_container_id: str
    policy_name: str
    policy_id: str
    container_mapping_name: str
    container_mapping_id: str


class RequestRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int
    wall_time: float
    virtual_time: str
    method: str
    path: str
    operation: str
    kind: Literal["read", "write"]
    status: int
    machine: str | None = None
    duration_ms: float
    fault: str | None = None


class RequestPage(BaseModel):
    records: list[RequestRecord]
    next_seq: int


class Stats(BaseModel):
    total_requests: int = 0
    reads: int = 0
    writes: int = 0
    throttled_429: int = 0
    server_errors_5xx: int = 0
    client_errors_4xx: int = 0
    per_operation: dict[str, int] = Field(default_factory=dict)
    per_machine: dict[str, int] = Field(default_factory=dict)
    # Wall-clock epoch seconds of every ARM write, in arrival order.
    write_timestamps: list[float] = Field(default_factory=list)
    # Every unplannedFailover request naming the item (directly or through a recovery plan) ...
    failover_requests: dict[str, int] = Field(default_factory=dict)
    # ... and the ones that were accepted and started a failover job.
    failovers_started: dict[str, int] = Field(default_factory=dict)
    # Commit jobs started, per item (directly or through a recovery plan).
    commits_started: dict[str, int] = Field(default_factory=dict)
    # A failed failover job restarted through replicationJobs/restart (ASR offered Restart): per item. Not a
    # failover request by the client: the failed job took no effect, and ASR re-runs it.
    failover_restarts: dict[str, int] = Field(default_factory=dict)
    # Jobs restarted (replicationJobs/restart), per scenario.
    job_restarts: dict[str, int] = Field(default_factory=dict)
    jobs_started: dict[str, int] = Field(default_factory=dict)

    def peak_writes_per_second(self, window_seconds: float = 1.0) -> int:
        """The most writes that fell in any window of ``window_seconds`` (rolling, not aligned)."""
        stamps = sorted(self.write_timestamps)
        peak, start = 0, 0
        for end, stamp in enumerate(stamps):
            while stamp - stamps[start] >= window_seconds:
                start += 1
            peak = max(peak, end - start + 1)
        return peak


class ResetRequest(BaseModel):
    # False: counters, request log and faults only. True: also every machine, item, job and plan.
    state: bool = False
