"""A typed client for the simulator's control API (``/_sim/``): seed machines, set faults, read counters.

control = SimulatorControl.from_endpoint(stack.asr)
name = control.seed_machine("10.0.1.15", "Linux", "Ubuntu 22.04", [64, 256], churn_mb_per_day=20_000)
control.set_faults(run=FaultRule(throttle_rate=0.05), machines={"10.0.1.15": FaultRule(stalled=True)})
control.stats().peak_writes_per_second()
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, urlparse

import httpx

from devstack.asr_sim.contract import (
    FaultPlan,
    FaultRule,
    Infrastructure,
    JobEnd,
    MachineInfo,
    MachineSeed,
    RequestPage,
    RequestRecord,
    ResetRequest,
    SimConfig,
    Stats,
)
from devstack.settings import AsrEndpoint


class SimulatorControlError(RuntimeError):
    """The control API refused a request; the message carries its answer."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"ASR simulator control API answered {status}: {body}")
        self.status = status


class SimulatorControl:
    def __init__(self, base_url: str, ca_cert: str, *, timeout: float = 30.0) -> None:
        tls = ssl.create_default_context(cafile=ca_cert)
        self._client = httpx.Client(base_url=base_url.rstrip("/") + "/_sim", verify=tls, timeout=timeout)

    @classmethod
    def from_endpoint(cls, endpoint: AsrEndpoint) -> SimulatorControl:
        return cls(endpoint.base_url, endpoint.ca_cert)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SimulatorControl:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        response = self._client.request(method, path, json=json, params=params)
        if response.status_code >= 400:
            raise SimulatorControlError(response.status_code, response.text)
        return response.json()

    # ------------------------------------------------------------------ discovery

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def infrastructure(self) -> Infrastructure:
        return Infrastructure.model_validate(self._call("GET", "/infrastructure"))

    def seed_machine(
        self,
        ip: str,
        os_type: Literal["Windows", "Linux"],
        os_name: str,
        disks_gib: Sequence[int],
        *,
        churn_mb_per_day: float = 10_240.0,
        friendly_name: str | None = None,
        upload_mb_per_s: float | None = None,
        agent_registered: bool = True,
    ) -> str:
        """Add a source machine (an EC2 instance); returns its machine name (the last segment of its OffAzure id).

        With ``agent_registered`` (the default) its Mobility agent has registered, so the appliance's OffAzure
        site lists it at once; otherwise it appears only after ``agent_registered(...)``.
        """
        return self.seed(
            MachineSeed(
                ip=ip,
                os_type=os_type,
                os_name=os_name,
                disks_gib=tuple(disks_gib),
                churn_mb_per_day=churn_mb_per_day,
                friendly_name=friendly_name,
                upload_mb_per_s=upload_mb_per_s,
                agent_registered=agent_registered,
            )
        ).name

    def agent_registered(self, key: str) -> MachineInfo:
        """The machine's Mobility agent registered with the appliance: the OffAzure site now lists it.
        ``key``: machine name, IP or friendly name."""
        return MachineInfo.model_validate(self._call("POST", f"/machines/{quote(key, safe='')}/agent-registered"))

    def seed(self, machine: MachineSeed) -> MachineInfo:
        return MachineInfo.model_validate(self._call("POST", "/machines", json=machine.model_dump(mode="json")))

    def machines(self) -> list[MachineInfo]:
        return [MachineInfo.model_validate(m) for m in self._call("GET", "/machines")]

    # ------------------------------------------------------------------ faults and configuration

    def set_faults(
        self,
        *,
        run: FaultRule | None = None,
        machines: Mapping[str, FaultRule] | None = None,
        seed: int = 0,
        max_writes_per_second: int | None = None,
        write_budget_retry_after_seconds: int = 1,
        suspend_scenarios: Sequence[str] = (),
        end_states: Mapping[str, JobEnd] | None = None,
    ) -> FaultPlan:
        """Replace every fault in force. ``machines`` keys: protectable item name, IP or friendly name."""
        plan = FaultPlan(
            seed=seed,
            run=run or FaultRule(),
            machines=dict(machines or {}),
            max_writes_per_second=max_writes_per_second,
            write_budget_retry_after_seconds=write_budget_retry_after_seconds,
            suspend_scenarios=tuple(suspend_scenarios),
            end_states=dict(end_states or {}),
        )
        return self.apply_faults(plan)

    def vm_fault(self, key: str, **vm: Any) -> FaultPlan:
        """Make one machine's failed-over VM unhealthy or slow, keeping every other fault in force: ``vm`` is
        FaultRule's vm_* fields without the prefix (boot_seconds=600, power_state="stopped", agent_ready=False)."""
        plan = self.faults()
        rule = plan.machines.get(key, FaultRule()).model_copy(update={f"vm_{k}": v for k, v in vm.items()})
        return self.apply_faults(plan.model_copy(update={"machines": {**plan.machines, key: rule}}))

    def apply_faults(self, plan: FaultPlan) -> FaultPlan:
        return FaultPlan.model_validate(self._call("PUT", "/faults", json=plan.model_dump(mode="json")))

    def faults(self) -> FaultPlan:
        return FaultPlan.model_validate(self._call("GET", "/faults"))

    def clear_faults(self) -> FaultPlan:
        return self.apply_faults(FaultPlan())

    def configure(self, config: SimConfig) -> SimConfig:
        return SimConfig.model_validate(self._call("PUT", "/config", json=config.model_dump(mode="json")))

    def config(self) -> SimConfig:
        return SimConfig.model_validate(self._call("GET", "/config"))

    # ------------------------------------------------------------------ observation

    def stats(self) -> Stats:
        return Stats.model_validate(self._call("GET", "/stats"))

    def requests(self, *, since: int = 0, limit: int = 10_000) -> list[RequestRecord]:
        """The request log, oldest first, from position ``since``."""
        return self.request_page(since=since, limit=limit).records

    def request_page(self, *, since: int = 0, limit: int = 10_000) -> RequestPage:
        return RequestPage.model_validate(self._call("GET", "/requests", params={"since": since, "limit": limit}))

    def reset(self, *, state: bool = False) -> None:
        """Clear counters, the request log and faults; with ``state=True`` also every machine, item and job."""
        self._call("POST", "/reset", json=ResetRequest(state=state).model_dump(mode="json"))


def job_name_from_operation_url(url: str) -> str:
    """The ASR job name in a 202's Azure-AsyncOperation or Location URL (their last path segment)."""
    return urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]
