"""A synchronous, in-memory driver for ``Instance``: unit tests of the replay protocol without
storage or threads. It runs the real SDK and the sample app's real functions; only time and
scheduling are simulated (activities run at once, timers fire in order of due time)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.funchost.appmodel import AppModel, load_app
from devstack.funchost.durable.engine import _durable_functions_decode, _durable_functions_encode
from devstack.funchost.durable.orchestration import (
    CancelTimer,
    Instance,
    Message,
    MessageKind,
    NotifyParent,
    RunActivity,
    StartChild,
    StartTimer,
)
from devstack.funchost.durable.protocol import format_timestamp
from devstack.funchost.durable.sdk import invoke_orchestrator

SAMPLE_APP = Path(__file__).parent / "apps" / "conformance"


def sdk_encoded(value: Any) -> str:
    """How a value the SDK client sends (start_new input, raise_event data) ends up stored."""
    return json.dumps(json.dumps(value))


class Driver:
    def __init__(self, app: AppModel | None = None, *, start: datetime | None = None) -> None:
        self.app = app or load_app(SAMPLE_APP)
        self.now = start or datetime(2030, 1, 1, tzinfo=UTC)
        self.instances: dict[str, Instance] = {}
        self.timers: list[StartTimer] = []
        self.activity_calls: list[str] = []
        self.episodes = 0

    def start(self, name: str, value: Any = None, instance_id: str | None = None) -> Instance:
        iid = instance_id or f"{name}-{len(self.instances)}"
        instance = Instance(iid, name, None if value is None else sdk_encoded(value), format_timestamp(self.now))
        self.instances[iid] = instance
        return instance

    def raise_event(self, instance_id: str, name: str, value: Any) -> None:
        self.instances[instance_id].accept(Message(MessageKind.EVENT, name=name, payload=sdk_encoded(value)))

    def terminate(self, instance_id: str, reason: str) -> None:
        self.instances[instance_id].accept(Message(MessageKind.TERMINATE, payload=reason))

    def step(self) -> bool:
        """Run one episode of some instance with work; False when none has any."""
        for instance in list(self.instances.values()):
            if instance.has_work():
                handle = self.app.orchestrators[instance.name].user_function

                def invoke(context: str, handle: Any = handle) -> str:
                    return invoke_orchestrator(handle, context)

                outcome = instance.run_episode(self.now, invoke)
                self.episodes += 1
                for effect in outcome.effects:
                    self._apply(effect)
                return True
        return False

    def run(self, *, fire_timers: bool = True, max_steps: int = 10_000) -> None:
        for _ in range(max_steps):
            if self.step():
                continue
            if not fire_timers or not self.timers:
                return
            self.timers.sort(key=lambda t: t.fire_at)
            timer = self.timers.pop(0)
            self.now = max(self.now, timer.fire_at)
            self.instances[timer.instance_id].accept(
                Message(MessageKind.TIMER_FIRED, timer.execution_id, timer.task_id)
            )
        raise AssertionError("the orchestrations did not settle")

    def _apply(self, effect: object) -> None:
        if isinstance(effect, RunActivity):
            self.activity_calls.append(effect.name)
            info = self.app.activities[effect.name]
            try:
                result = info.user_function(**{info.trigger_param: _durable_functions_decode(effect.input)})
                message = Message(
                    MessageKind.TASK_COMPLETED,
                    effect.execution_id,
                    effect.task_id,
                    payload=_durable_functions_encode(result),
                )
            except Exception as exc:
                message = Message(
                    MessageKind.TASK_FAILED, effect.execution_id, effect.task_id, reason=f"{type(exc).__name__}: {exc}"
                )
            self.instances[effect.instance_id].accept(message)
        elif isinstance(effect, StartTimer):
            self.timers.append(effect)
        elif isinstance(effect, CancelTimer):
            self.timers = [
                t
                for t in self.timers
                if (t.instance_id, t.execution_id, t.task_id)
                != (effect.instance_id, effect.execution_id, effect.task_id)
            ]
        elif isinstance(effect, StartChild):
            self.instances[effect.instance_id] = Instance(
                effect.instance_id, effect.name, effect.input_json, format_timestamp(self.now), parent=effect.parent
            )
        elif isinstance(effect, NotifyParent):
            self.instances[effect.parent_instance_id].accept(effect.message)

    def output(self, instance_id: str) -> Any:
        raw = self.instances[instance_id].output_json
        return None if raw is None else json.loads(raw)

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.instances[instance_id].history_json]
