"""``python -m devstack.funchost.bench``: how fast the local host runs orchestrations.

1. A wave of N orchestrations (default 1,000), each fanning out to a few trivial activities:
   orchestrations completed per second, from the first start to the last completion.
2. Optionally the same wave as sequential chains (``--chain-steps 30``), the shape of the
   product's migration orchestration.
3. The time one orchestrator replay takes at 100, 1,000 and 5,000 history events, with the
   SDK's timestamp parser as shipped and with the host's memoized one.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import typer

from devstack.funchost.durable import sdk
from devstack.funchost.durable.protocol import EventType, format_timestamp, history_event, orchestration_context

BENCH_APP = Path(__file__).parent / "benchapp"


def run_wave(host: Any, orchestrator: str, count: int, value: int) -> dict[str, Any]:
    engine = host.engine
    stats_before = dict(engine.stats)
    store = host._store
    tx_before, entities_before = store.transactions, store.entities_written
    cpu_before = time.process_time()
    started = time.perf_counter()
    with ThreadPoolExecutor(32) as pool:
        ids = list(
            pool.map(lambda i: engine.start_new(orchestrator, None, json.dumps(json.dumps(value))), range(count))
        )
    started_all = time.perf_counter()
    for instance_id in ids:
        view = host.wait_for(instance_id, timeout=600)
        if view.status.value != "Completed":
            raise RuntimeError(f"{instance_id} ended {view.status.value}: {view.output_json}")
    elapsed = time.perf_counter() - started
    return {
        "orchestrator": orchestrator,
        "instances": count,
        "input": value,
        "seconds": round(elapsed, 2),
        "start_seconds": round(started_all - started, 2),
        "orchestrations_per_second": round(count / elapsed, 1),
        "episodes": engine.stats["episodes"] - stats_before["episodes"],
        "activities": engine.stats["activities"] - stats_before["activities"],
        "replayed_events": engine.stats["replayed_events"] - stats_before["replayed_events"],
        "table_transactions": store.transactions - tx_before,
        "entities_written": store.entities_written - entities_before,
        "host_cpu_seconds": round(time.process_time() - cpu_before, 1),
    }


def replay_history(events: int) -> tuple[list[str], str]:
    """A bench_chain history of about ``events`` events (four per completed step)."""
    stamp = format_timestamp(__import__("datetime").datetime(2030, 1, 1, tzinfo=__import__("datetime").UTC))
    steps = max(0, (events - 2) // 4)
    history = [
        history_event(EventType.ORCHESTRATOR_STARTED, stamp),
        history_event(EventType.EXECUTION_STARTED, stamp, Name="bench_chain", Version="", Input="1000000"),
    ]
    for step in range(steps):
        # Distinct timestamps per episode, as in a real history (each defeats a naive cache).
        moment = f"2030-01-01T{step // 3600 % 24:02d}:{step // 60 % 60:02d}:{step % 60:02d}.{step % 1000000:06d}Z"
        history += [
            history_event(EventType.TASK_SCHEDULED, moment, step, Name="bench_noop", Input=json.dumps(step)),
            history_event(EventType.ORCHESTRATOR_COMPLETED, moment),
            history_event(EventType.ORCHESTRATOR_STARTED, moment),
            history_event(EventType.TASK_COMPLETED, moment, TaskScheduledId=step, Result=json.dumps(step)),
        ]
    return [json.dumps(e) for e in history], "bench_chain"


def measure_replays(sizes: list[int], repeats: int = 5) -> list[dict[str, Any]]:
    from devstack.funchost.appmodel import load_app

    app = load_app(BENCH_APP)
    handle = app.orchestrators["bench_chain"].user_function
    rows = []
    for size in sizes:
        history, _ = replay_history(size)
        context = orchestration_context(
            instance_id="bench", history_json=history, input_value="1000000", parent_instance_id=None
        )
        row: dict[str, Any] = {"history_events": len(history)}
        for label, cached in (("sdk_as_shipped_ms", False), ("memoized_timestamps_ms", True)):
            sdk.uninstall_timestamp_cache()
            if cached:
                sdk.install_timestamp_cache()
                sdk.invoke_orchestrator(handle, context)  # warm: an episode replays what the last one parsed
            timings = []
            for _ in range(repeats):
                begin = time.perf_counter()
                sdk.invoke_orchestrator(handle, context)
                timings.append((time.perf_counter() - begin) * 1000)
            row[label] = round(statistics.median(timings), 2)
        rows.append(row)
    sdk.install_timestamp_cache()
    return rows


def bench(
    instances: Annotated[int, typer.Option(help="Orchestrations in the wave")] = 1000,
    fan_out: Annotated[int, typer.Option("--fan-out", help="Activities per orchestration")] = 3,
    chain_steps: Annotated[
        int, typer.Option("--chain-steps", help="Also run a wave of sequential chains of N steps (0: skip)")
    ] = 0,
    replay_sizes: Annotated[str, typer.Option("--replay-sizes")] = "100,1000,5000",
) -> None:
    """Print orchestrations/second for a wave, and replay times at several history sizes."""
    from devstack.funchost.host import LocalHost
    from devstack.launcher import Stack

    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {os.cpu_count()} CPU(s)")
    replays = measure_replays([int(s) for s in replay_sizes.split(",") if s])
    for row in replays:
        print(
            f"replay of {row['history_events']:>5} history events: {row['sdk_as_shipped_ms']:>8.1f} ms as shipped, "
            f"{row['memoized_timestamps_ms']:>7.1f} ms with the host's memoized timestamps"
        )
    with tempfile.TemporaryDirectory(prefix="funchost-bench-") as root:
        stack = Stack(Path(root))
        settings = stack.up(["azurite"], quiet=True)
        assert settings.azurite is not None
        host = LocalHost(BENCH_APP, settings.azurite.connection_string, state_dir=Path(root) / "host")
        try:
            host.start()
            waves = [run_wave(host, "bench_fan_out", instances, fan_out)]
            if chain_steps:
                waves.append(run_wave(host, "bench_chain", instances, chain_steps))
        finally:
            host.stop()
            stack.down(quiet=True)
    for wave in waves:
        print(
            f"{wave['instances']} x {wave['orchestrator']}({wave['input']}): {wave['orchestrations_per_second']} "
            f"orchestrations/s ({wave['seconds']} s; {wave['episodes']} episodes, {wave['activities']} activities, "
            f"{wave['table_transactions']} table transactions for {wave['entities_written']} entities, "
            f"{wave['host_cpu_seconds']} s host CPU)"
        )
    print(json.dumps({"replays": replays, "waves": waves}, indent=2))


def main() -> None:
    typer.run(bench)


if __name__ == "__main__":
    main()
