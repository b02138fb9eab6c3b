"""Sample app for the local host's conformance suite: one small orchestration per Durable feature.

Activities record each execution as a line in the folder named by the app setting
``FUNCHOST_SAMPLE_LOG`` (when set), so tests can count executions across host restarts.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

_attempts: dict[str, int] = {}
_attempts_lock = threading.Lock()


def _record(kind: str, value: Any) -> None:
    folder = os.environ.get("FUNCHOST_SAMPLE_LOG")
    if folder:
        with (Path(folder) / f"{kind}.log").open("a") as log:
            log.write(json.dumps(value) + "\n")


# --- HTTP starters and client operations (the durable client binding) --------------------------------
@app.route(route="orchestrators/{name}/{instance_id?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    payload = json.loads(body) if body else None
    try:
        instance_id = await client.start_new(req.route_params["name"], req.route_params.get("instance_id"), payload)
    except Exception as exc:
        return func.HttpResponse(json.dumps({"refused": str(exc)}), status_code=409, mimetype="application/json")
    response: func.HttpResponse = client.create_check_status_response(req, instance_id)
    return response


@app.route(route="client/{op}/{instance_id?}", methods=["GET", "POST", "DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@app.durable_client_input(client_name="client")
async def client_ops(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    op = req.route_params["op"]
    instance_id = req.route_params.get("instance_id") or ""
    result: Any
    if op == "status":
        status = await client.get_status(instance_id, show_history=req.params.get("history") == "1")
        result = status.to_json() if status else None
        if status and req.params.get("history") == "1":
            result["history"] = status.historyEvents if hasattr(status, "historyEvents") else status.history
    elif op == "by_status":
        statuses = [df.OrchestrationRuntimeStatus(s) for s in req.params["statuses"].split(",")]
        found = await client.get_status_by(runtime_status=statuses)
        result = sorted(s.instance_id for s in found)
    elif op == "raise":
        await client.raise_event(instance_id, req.params["event"], json.loads(req.get_body() or b"null"))
        result = "raised"
    elif op == "terminate":
        await client.terminate(instance_id, req.params.get("reason", "stopped"))
        result = "terminated"
    elif op == "purge":
        purged = await client.purge_instance_history(instance_id)
        result = purged.instances_deleted
    else:
        return func.HttpResponse(f"unknown op {op}", status_code=404)
    return func.HttpResponse(json.dumps(result, default=str), mimetype="application/json")


# --- queue trigger: the product's intake pattern (a message starts one orchestration) -----------------
@app.queue_trigger(arg_name="msg", queue_name="sample-requests", connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def intake(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    request = msg.get_json()
    _record("intake", {"id": msg.id, "dequeue_count": msg.dequeue_count, "body": request})
    if request.get("hold_seconds") and msg.dequeue_count == 1:
        # Keeps its first delivery in hand (a slow function, or one the test kills the host during).
        await asyncio.sleep(float(request["hold_seconds"]))
    if request.get("fail"):
        raise RuntimeError("this message always fails")
    await client.start_new("chain", request["instance_id"], request.get("input"))


@app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *")
def every_five_minutes(timer: func.TimerRequest) -> None:
    _record("timer", {"past_due": timer.past_due})


# --- orchestrations ----------------------------------------------------------------------------------
@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    name = context.get_input() or "world"
    first = yield context.call_activity("say_hello", name)
    second = yield context.call_activity("say_hello", first)
    return [first, second]


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    count = context.get_input()
    results = yield context.task_all([context.call_activity("square", i) for i in range(count)])
    return sum(results)


@app.orchestration_trigger(context_name="context")
def flaky(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    settings = context.get_input()
    options = df.RetryOptions(first_retry_interval_in_milliseconds=5000, max_number_of_attempts=settings["attempts"])
    try:
        value = yield context.call_activity_with_retry("fail_until", options, settings)
    except Exception as exc:
        return {"failed": str(exc).splitlines()[0]}
    after = yield context.call_activity("say_hello", "after")
    return {"value": value, "after": after}


@app.orchestration_trigger(context_name="context")
def fan_out_retry(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """Retries interleaved with fan-out: the task numbering the host must mirror."""
    options = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
    tasks = [
        context.call_activity_with_retry(
            "fail_until", options, {"key": f"{context.instance_id}-{i}", "failures": i % 3}
        )
        for i in range(4)
    ]
    tasks.append(context.call_activity("square", 7))
    results = yield context.task_all(tasks)
    tail = yield context.call_activity("square", 3)
    return [*results, tail]


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    seconds = context.get_input()
    started = context.current_utc_datetime
    yield context.create_timer(started + timedelta(seconds=seconds))
    return {"started": started.isoformat(), "woke": context.current_utc_datetime.isoformat()}


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    yield context.call_activity("say_hello", "before waiting")
    context.set_custom_status({"stage": "waiting for approval"})
    answer = yield context.wait_for_external_event("Approval")
    context.set_custom_status({"stage": "approved"})
    return answer


@app.orchestration_trigger(context_name="context")
def approval_or_timeout(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    deadline = context.current_utc_datetime + timedelta(hours=context.get_input())
    timeout = context.create_timer(deadline)
    event = context.wait_for_external_event("Approval")
    winner = yield context.task_any([event, timeout])
    if winner == event:
        timeout.cancel()
        return {"approved": event.result}
    return {"timed_out_at": context.current_utc_datetime.isoformat()}


@app.orchestration_trigger(context_name="context")
def collector(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """continue_as_new once per item: items raised while it restarts must not be lost."""
    state = context.get_input() or {"items": [], "target": 3}
    item = yield context.wait_for_external_event("Item")
    items = [*state["items"], item]
    if len(items) >= state["target"]:
        return items
    context.continue_as_new({"items": items, "target": state["target"]})
    return None


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    count = context.get_input()
    children = [context.call_sub_orchestrator("fan_out", i + 1) for i in range(count)]
    results = yield context.task_all(children)
    named = yield context.call_sub_orchestrator("chain", "child", f"{context.instance_id}-named")
    return {"sums": results, "named": named}


@app.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    yield context.call_activity("say_hello", "x")
    raise ValueError("orchestrator gave up")


@app.orchestration_trigger(context_name="context")
def parent_of_failing(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    try:
        yield context.call_sub_orchestrator("failing", None)
    except Exception as exc:
        return {"child_failed": "orchestrator gave up" in str(exc)}
    return {"child_failed": False}


@app.orchestration_trigger(context_name="context")
def forever(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    context.set_custom_status("waiting forever")
    yield context.wait_for_external_event("Never")
    return "unreachable"


@app.orchestration_trigger(context_name="context")
def big_fan_out(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """The crash test's fan-out: slow recorded activities, then a timer of several days."""
    settings = context.get_input()
    tasks = [
        context.call_activity("slow_square", {"instance": context.instance_id, "value": i})
        for i in range(settings["count"])
    ]
    results = yield context.task_all(tasks)
    context.set_custom_status("waiting on timer")
    yield context.create_timer(context.current_utc_datetime + timedelta(days=settings["days"]))
    context.set_custom_status("finishing")
    final = yield context.call_activity("slow_square", {"instance": context.instance_id, "value": 1000})
    return {"sum": sum(results), "final": final, "woke": context.current_utc_datetime.isoformat()}


# --- activities --------------------------------------------------------------------------------------
@app.activity_trigger(input_name="name")
def say_hello(name: str) -> str:
    return f"Hello {name}"


@app.activity_trigger(input_name="value")
def square(value: int) -> int:
    return value * value


@app.activity_trigger(input_name="work")
def slow_square(work: dict[str, Any]) -> int:
    import time

    time.sleep(float(os.environ.get("FUNCHOST_SAMPLE_SLOW", "0.05")))
    _record("slow_square", {**work, "pid": os.getpid()})
    value: int = work["value"]
    return value * value


@app.activity_trigger(input_name="settings")
def fail_until(settings: dict[str, Any]) -> str:
    """Fails ``failures`` times per key, then succeeds."""
    with _attempts_lock:
        attempt = _attempts.get(settings["key"], 0) + 1
        _attempts[settings["key"]] = attempt
    if attempt <= settings["failures"]:
        raise RuntimeError(f"attempt {attempt} failed")
    return f"succeeded on attempt {attempt}"
