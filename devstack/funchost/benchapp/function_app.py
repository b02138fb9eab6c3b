"""The bench's function app: trivial activities, so the figures measure the host, not the work."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.orchestration_trigger(context_name="context")
def bench_fan_out(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    width = context.get_input()
    results = yield context.task_all([context.call_activity("bench_noop", i) for i in range(width)])
    return sum(results)


@app.orchestration_trigger(context_name="context")
def bench_chain(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    steps = context.get_input()
    total = 0
    for step in range(steps):
        total += yield context.call_activity("bench_noop", step)
    return total


@app.activity_trigger(input_name="value")
def bench_noop(value: int) -> int:
    return value
