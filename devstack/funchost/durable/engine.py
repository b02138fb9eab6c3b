"""The Durable Functions runtime of the local host: schedules episodes, activities and timers.

Each instance runs at most one episode at a time; messages that arrive meanwhile wait in its
mailbox. An episode's effects (activities to run, timers, children) are carried out only after
its writes are committed, so a crash at any point loses no committed step: on restart the
engine reloads every unfinished instance, reruns the activities it was waiting for (activities
are at-least-once, as on Azure), re-arms its timers and redelivers stored messages.

Threads. One scheduler thread owns every scheduling structure (mailboxes, which instances are
busy, the timer heap); activity workers, the store's writer and client requests hand it work
through a queue instead of sharing a lock. Under the GIL a shared lock turned into a convoy at a
thousand concurrent orchestrations (5 ms per delivery); the queue keeps deliveries cheap.

Virtual time: when nothing is runnable (no episode, activity, HTTP request or queue message in
flight, and the queues were just polled empty) the engine moves the shared clock to the
earliest pending durable timer and fires it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import heapq
import json
import logging
import queue
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from azure.functions import _durable_functions, meta

from devstack.funchost.appmodel import AppModel, FunctionInfo
from devstack.funchost.durable.orchestration import (
    CancelTimer,
    Effect,
    EpisodeOutcome,
    Instance,
    InstanceView,
    Message,
    MessageKind,
    NotifyParent,
    ParentLink,
    RunActivity,
    RuntimeStatus,
    StartChild,
    StartTimer,
)
from devstack.funchost.durable.protocol import format_timestamp
from devstack.funchost.durable.sdk import invoke_orchestrator
from devstack.funchost.durable.store import DurableStore, StoredInstance, shard_of, state_key, unpack
from devstack.funchost.invoker import Invoker

log = logging.getLogger("funchost.durable")

ACTIVE_STATUSES = (
    RuntimeStatus.PENDING,
    RuntimeStatus.RUNNING,
    RuntimeStatus.CONTINUED_AS_NEW,
    RuntimeStatus.SUSPENDED,
)


class Clock(Protocol):
    def now(self) -> datetime: ...


class VirtualClock(Clock, Protocol):
    def advance_to(self, when: datetime) -> datetime: ...


class InstanceNotFound(LookupError):
    pass


class InstanceGone(RuntimeError):
    """The instance has finished; it takes no more events or terminate requests."""


class InstanceAlreadyRunning(RuntimeError):
    """Singleton start refused: an instance with this id is pending or running."""


class UnknownOrchestrator(ValueError):
    pass


class WorkTracker:
    """Counts work in flight anywhere in the host, so virtual time only moves when all is quiet."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._inflight = 0
        self.epoch = 0  # bumps whenever work ends, so quiet queue polls can be matched to it

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        self.begin()
        try:
            yield
        finally:
            self.end()

    def begin(self) -> None:
        with self._cond:
            self._inflight += 1

    def end(self, *, changed: bool = True) -> None:
        """``changed=False`` for work that cannot have created more work (a plain read), so that a
        client polling a status API does not hold the virtual clock still."""
        with self._cond:
            self._inflight -= 1
            if changed:
                self.epoch += 1
            self._cond.notify_all()

    @property
    def inflight(self) -> int:
        return self._inflight

    def wait(self, timeout: float) -> None:
        with self._cond:
            self._cond.wait(timeout)

    def notify(self) -> None:
        with self._cond:
            self.epoch += 1
            self._cond.notify_all()


@dataclass(order=True)
class _Timer:
    fire_at: datetime
    instance_id: str
    execution_id: str
    task_id: int


class DurableEngine:
    def __init__(
        self,
        app: AppModel,
        store: DurableStore,
        invoker: Invoker,
        clock: Clock,
        tracker: WorkTracker,
        *,
        virtual_clock: bool,
        client_config: Callable[[], str],
        idle_grace_seconds: float = 0.0,
        queues_quiet: Callable[[int], bool] = lambda epoch: True,
        episode_workers: int = 4,
    ) -> None:
        self.app = app
        self.store = store
        self.invoker = invoker
        self.clock = clock
        self.tracker = tracker
        self.virtual_clock = virtual_clock
        self.client_config = client_config
        self.idle_grace_seconds = idle_grace_seconds
        self.queues_quiet = queues_quiet
        self._orchestrators = app.orchestrators
        self._activities = app.activities
        self._start_lock = threading.Lock()  # singleton starts: check and register atomically
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._queued = 0  # items handed to the scheduler and not yet done (read by is_idle)
        self._instances: dict[str, Instance] = {}
        self._views: dict[str, InstanceView] = {}  # as committed; what status queries see
        self._mailbox: dict[str, list[Message]] = {}
        self._busy: set[str] = set()
        self._broken: set[str] = set()  # instances whose episode failed inside the host; retried on restart
        self._timers: list[_Timer] = []
        self._cancelled: set[tuple[str, str, int]] = set()
        self._episodes = concurrent.futures.ThreadPoolExecutor(episode_workers, thread_name_prefix="orchestrator")
        self._running = False
        self._dispatcher: threading.Thread | None = None
        self._finished = threading.Condition()
        self.stats = {"episodes": 0, "activities": 0, "timers_fired": 0, "clock_jumps": 0, "replayed_events": 0}

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._running = True
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="durable-scheduler", daemon=True)
        self._dispatcher.start()
        self._recover()

    def stop(self) -> None:
        self._running = False
        self._schedule(lambda: None)
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=5)
        self._episodes.shutdown(wait=True, cancel_futures=True)

    def _recover(self) -> None:
        """Load every instance first, then resume the unfinished ones: a parent's resumption looks
        its children up, so they must all be known before any resumption runs."""
        unfinished: list[StoredInstance] = []
        for state in self.store.load_states():
            if RuntimeStatus(state["RuntimeStatus"]).is_terminal:
                snapshot = json.loads(unpack(state, "Snapshot") or "{}")
                instance = Instance.from_snapshot(snapshot, [])
                self._instances[instance.instance_id] = instance
                self._views[instance.instance_id] = instance.view()
            else:
                unfinished.append(self.store.load_instance(state))
        resumptions = [self._restore(stored) for stored in unfinished]
        for resume in resumptions:
            self._schedule(resume)
        if unfinished:
            log.info("recovered %d unfinished orchestration instance(s) from storage", len(unfinished))

    def _restore(self, stored: StoredInstance) -> Callable[[], None]:
        instance = Instance.from_snapshot(stored.snapshot, stored.history_json)
        iid = instance.instance_id
        self._instances[iid] = instance
        self._views[iid] = instance.view()
        messages = []
        for row_key, data in stored.messages:
            message = Message.from_json(data)
            message.durable_key = row_key
            messages.append(message)

        def resume() -> None:
            self._mailbox.setdefault(iid, []).extend(messages)
            for effect in instance.pending_effects():
                self._carry_out(effect)
            self._kick(iid)

        return resume

    # --- client operations (the HTTP management API calls these) ---------------------------------
    def start_new(self, name: str, instance_id: str | None, input_json: str | None) -> str:
        if name not in self._orchestrators:
            raise UnknownOrchestrator(
                f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator function."
            )
        iid = instance_id or uuid.uuid4().hex
        with self._start_lock:
            existing = self._instances.get(iid)
            if existing is not None and existing.status in ACTIVE_STATUSES:
                raise InstanceAlreadyRunning(
                    f"An Orchestration instance with the status {existing.status.value} already exists."
                )
            instance = Instance(iid, name, input_json, format_timestamp(self.clock.now()))
            self._instances[iid] = instance  # claims the id; the scheduler ignores it until it is registered
        try:
            if existing is not None:
                self._purge_rows(iid)
            self._write_state(instance)
        except BaseException:
            if existing is not None:
                self._instances[iid] = existing
            else:
                self._instances.pop(iid, None)
            raise
        self._views[iid] = instance.view()

        def register() -> None:
            self._mailbox.pop(iid, None)
            self._broken.discard(iid)
            self._kick(iid)

        self._schedule(register)
        return iid

    def raise_event(self, instance_id: str, name: str, input_json: str | None) -> None:
        self._post(instance_id, Message(MessageKind.EVENT, name=name, payload=input_json), gone_when_failed=True)

    def terminate(self, instance_id: str, reason: str) -> None:
        self._post(instance_id, Message(MessageKind.TERMINATE, payload=reason), gone_when_failed=True)

    def _post(self, instance_id: str, message: Message, *, gone_when_failed: bool) -> None:
        instance = self._instances.get(instance_id)
        if instance is None:
            raise InstanceNotFound(instance_id)
        if instance.status.is_terminal:
            raise InstanceGone(instance_id)
        entity = self.store.message_entity(instance_id, message.to_json())
        self.store.write(shard_of(instance_id), [self.store.upsert(entity)])
        message.durable_key = str(entity["RowKey"])
        self._deliver(instance_id, message)

    def status(self, instance_id: str) -> InstanceView | None:
        return self._views.get(instance_id)

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        view = self._views.get(instance_id)
        instance = self._instances.get(instance_id)
        if view is None or instance is None:
            return []
        history = list(instance.history_json[: view.history_length])
        if len(history) < view.history_length:
            history = self.store.load_history(instance_id, view.generation, view.history_length)
        return [json.loads(event) for event in history]

    def instances(self) -> list[InstanceView]:
        return list(self._views.values())

    def purge(self, instance_id: str) -> int:
        with self._start_lock:
            instance = self._instances.get(instance_id)
            view = self._views.get(instance_id)
            if instance is None or view is None or not view.status.is_terminal:
                return 0
            del self._instances[instance_id]
            self._views.pop(instance_id, None)
        self._purge_rows(instance_id)
        return 1

    def _purge_rows(self, instance_id: str) -> None:
        keys = self.store.row_keys(instance_id, f"h|{instance_id}|") + self.store.row_keys(
            instance_id, f"m|{instance_id}|"
        )
        keys.append(state_key(instance_id))
        operations = [self.store.delete(instance_id, key) for key in keys]
        with contextlib.suppress(Exception):  # the state row may already be gone
            self.store.write(shard_of(instance_id), operations)

    def wait_for(self, instance_id: str, timeout: float) -> InstanceView | None:
        deadline = time.monotonic() + timeout
        with self._finished:
            while True:
                instance = self._views.get(instance_id)
                if instance is not None and instance.status.is_terminal:
                    return instance
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return instance
                self._finished.wait(remaining)

    # --- idle / virtual time -----------------------------------------------------------------------
    def is_idle(self) -> bool:
        return self._queued == 0 and not self._busy and self.tracker.inflight == 0

    def pending_timers(self) -> int:
        timers = list(self._timers)
        cancelled = set(self._cancelled)
        return sum(1 for t in timers if (t.instance_id, t.execution_id, t.task_id) not in cancelled)

    def next_timer(self) -> datetime | None:
        cancelled = set(self._cancelled)
        live = [t.fire_at for t in list(self._timers) if (t.instance_id, t.execution_id, t.task_id) not in cancelled]
        return min(live) if live else None

    # --- scheduling (everything below runs on the scheduler thread, unless it says otherwise) -------
    def _schedule(self, work: Callable[[], None]) -> None:
        """Hand work to the scheduler thread (safe from any thread)."""
        with self._finished:
            self._queued += 1
        self._work.put(work)

    def _deliver(self, instance_id: str, message: Message) -> None:
        """Safe from any thread."""
        self._schedule(lambda: self._deliver_now(instance_id, message))

    def _deliver_now(self, instance_id: str, message: Message) -> None:
        if instance_id not in self._instances:
            return
        self._mailbox.setdefault(instance_id, []).append(message)
        self._kick(instance_id)

    def _kick(self, instance_id: str) -> None:
        if instance_id in self._busy or instance_id in self._broken:
            return
        instance = self._instances.get(instance_id)
        if instance is None:
            return
        for message in self._mailbox.pop(instance_id, []):
            if not instance.accept(message) and message.durable_key:
                self._forget_message(instance_id, message.durable_key)
        if not instance.has_work():
            return
        self._busy.add(instance_id)
        self.tracker.begin()
        self._episodes.submit(self._run_episode, instance)

    def _forget_message(self, instance_id: str, key: str) -> None:
        self.store.submit(shard_of(instance_id), [self.store.delete(instance_id, key)])

    def _run_episode(self, instance: Instance) -> None:
        iid = instance.instance_id
        try:
            generation = instance.generation
            was_started = instance.started
            orchestrator = self._orchestrators.get(instance.name)
            if orchestrator is None:
                raise UnknownOrchestrator(f"orchestrator '{instance.name}' is not defined by this app")
            started = time.perf_counter()
            outcome = instance.run_episode(self.clock.now(), self._invoker_for(orchestrator))
            self.stats["episodes"] += 1
            self.stats["replayed_events"] += outcome.replayed_events
            # The longest single-execution history each orchestrator has replayed (benchmarks read it).
            longest = f"max_history_events:{instance.name}"
            self.stats[longest] = max(self.stats.get(longest, 0), outcome.replayed_events)
            if log.isEnabledFor(logging.INFO) and outcome.invoked:
                log.info(
                    "Executed 'Functions.%s' (Orchestrator, InstanceId=%s, Status=%s, "
                    "HistoryEvents=%d, Duration=%.1fms)",
                    orchestrator.name,
                    iid,
                    instance.status.value,
                    outcome.replayed_events,
                    (time.perf_counter() - started) * 1000,
                )
            instance.episodes += 1
            instance.commits += 1
            self._commit(instance, outcome, generation, not was_started)
        except Exception:
            log.exception("episode of %s failed in the host; it is retried when the host restarts", iid)
            self._schedule(lambda: self._episode_done(iid, None, broken=True))

    def _invoker_for(self, orchestrator: FunctionInfo) -> Callable[[str], str]:
        handle = orchestrator.user_function
        return lambda context_json: invoke_orchestrator(handle, context_json)

    def _commit(self, instance: Instance, outcome: EpisodeOutcome, generation: int, first: bool) -> None:
        iid = instance.instance_id
        snapshot = instance.snapshot()
        operations = [
            self.store.upsert(self.store.chunk_entity(iid, generation, instance.commits, outcome.new_events, snapshot))
        ]
        if instance.generation != generation or instance.status.is_terminal or first:
            operations.append(self.store.upsert(self.store.state_entity(iid, self._summary(instance), snapshot)))
        operations.extend(self.store.delete(iid, key) for key in outcome.consumed_keys)
        continued = instance.generation != generation
        committed_view = instance.view()

        def after_commit() -> None:
            self._views[iid] = committed_view
            for effect in outcome.effects:
                self._carry_out(effect)
            if continued:
                self._delete_generation(iid, generation)
            self._episode_done(iid, instance)

        def committed(error: BaseException | None) -> None:  # on the store's writer thread
            if error is not None:
                log.error("could not commit an episode of %s: %s; it is retried when the host restarts", iid, error)
                self._schedule(lambda: self._episode_done(iid, None, broken=True))
            else:
                self._schedule(after_commit)

        self.store.submit(shard_of(iid), operations, committed)

    def _episode_done(self, iid: str, instance: Instance | None, *, broken: bool = False) -> None:
        self._busy.discard(iid)
        if broken:
            self._broken.add(iid)
        if instance is not None and instance.status.is_terminal:
            instance.stored_history_length = len(instance.history_json)
            instance.history_json = []  # kept in storage; loaded again if someone asks for it
            self._mailbox.pop(iid, None)
            with self._finished:
                self._finished.notify_all()
        self._kick(iid)
        self.tracker.end()

    def _delete_generation(self, iid: str, generation: int) -> None:
        def delete() -> None:
            keys = self.store.row_keys(iid, f"h|{iid}|{generation:05d}|")
            for start in range(0, len(keys), 90):
                self.store.submit(shard_of(iid), [self.store.delete(iid, k) for k in keys[start : start + 90]])

        self.invoker.submit(delete)

    def _summary(self, instance: Instance) -> dict[str, Any]:
        return {
            "Name": instance.name,
            "RuntimeStatus": instance.status.value,
            "CreatedTime": instance.created_time,
            "LastUpdatedTime": instance.last_updated_time,
        }

    def _write_state(self, instance: Instance) -> None:
        entity = self.store.state_entity(instance.instance_id, self._summary(instance), instance.snapshot())
        self.store.write(shard_of(instance.instance_id), [self.store.upsert(entity)])

    # --- effects -----------------------------------------------------------------------------------
    def _carry_out(self, effect: Effect) -> None:
        if isinstance(effect, RunActivity):
            self.tracker.begin()
            self.invoker.submit(self._run_activity, effect)
        elif isinstance(effect, StartTimer):
            heapq.heappush(
                self._timers, _Timer(effect.fire_at, effect.instance_id, effect.execution_id, effect.task_id)
            )
        elif isinstance(effect, CancelTimer):
            self._cancelled.add((effect.instance_id, effect.execution_id, effect.task_id))
        elif isinstance(effect, StartChild):
            self._start_child(effect)
        elif isinstance(effect, NotifyParent):
            self._deliver_now(effect.parent_instance_id, effect.message)

    def _start_child(self, effect: StartChild) -> None:
        existing = self._instances.get(effect.instance_id)
        if existing is not None and existing.parent == effect.parent:
            if existing.status.is_terminal:  # it finished before a crash let the parent hear of it
                self._deliver_now(effect.parent.instance_id, _result_for_parent(existing, effect.parent))
            return
        if existing is not None and existing.status in ACTIVE_STATUSES:
            message = Message(
                MessageKind.SUB_FAILED,
                effect.parent.execution_id,
                effect.parent.task_id,
                reason=f"An Orchestration instance with the status {existing.status.value} already exists.",
            )
            self._deliver_now(effect.parent.instance_id, message)
            return
        if effect.name not in self._orchestrators:
            message = Message(
                MessageKind.SUB_FAILED,
                effect.parent.execution_id,
                effect.parent.task_id,
                reason=f"The orchestrator function '{effect.name}' doesn't exist.",
            )
            self._deliver_now(effect.parent.instance_id, message)
            return
        child = Instance(
            effect.instance_id, effect.name, effect.input_json, format_timestamp(self.clock.now()), parent=effect.parent
        )
        entity = self.store.state_entity(child.instance_id, self._summary(child), child.snapshot())
        self.tracker.begin()

        def register() -> None:
            self._instances[child.instance_id] = child
            self._views[child.instance_id] = child.view()
            self._kick(child.instance_id)

        def created(error: BaseException | None) -> None:  # on the store's writer thread
            try:
                if error is None:
                    self._schedule(register)
                else:
                    log.error("could not create sub-orchestration %s: %s", child.instance_id, error)
            finally:
                self.tracker.end()

        def replace_then_create() -> None:
            # This runs off the store's writer thread: it waits for writes of its own.
            self._purge_rows(effect.instance_id)
            self.store.submit(shard_of(child.instance_id), [self.store.upsert(entity)], created)

        if existing is not None:  # a finished instance with this explicit id: replaced, as start_new does
            self.invoker.submit(replace_then_create)
        else:
            self.store.submit(shard_of(child.instance_id), [self.store.upsert(entity)], created)

    def _run_activity(self, effect: RunActivity) -> None:
        try:
            message = self._activity_result(effect)
            self.stats["activities"] += 1
            self._deliver(effect.instance_id, message)
        finally:
            self.tracker.end()

    def _activity_result(self, effect: RunActivity) -> Message:
        info = self._activities.get(effect.name)
        if info is None:
            return Message(
                MessageKind.TASK_FAILED,
                effect.execution_id,
                effect.task_id,
                reason=f"The function '{effect.name}' doesn't exist, is disabled, or is not an activity function.",
            )
        try:
            value = _durable_functions_decode(effect.input)
            kwargs: dict[str, Any] = {info.trigger_param: value}
            if info.durable_client_param:
                kwargs[info.durable_client_param] = self.client_config()
            result = self.invoker.call(info, kwargs, reason="ActivityTrigger", instance_id=effect.instance_id)
            payload = _durable_functions_encode(result)
        except Exception as exc:
            return Message(
                MessageKind.TASK_FAILED,
                effect.execution_id,
                effect.task_id,
                reason=f"Activity function '{effect.name}' failed: {type(exc).__name__}: {exc}",
                details="".join(traceback.format_exception(exc)),
            )
        return Message(MessageKind.TASK_COMPLETED, effect.execution_id, effect.task_id, payload=payload)

    # --- timers and virtual time -------------------------------------------------------------------
    def _drop_cancelled_timers(self) -> None:
        while self._timers:
            top = self._timers[0]
            key = (top.instance_id, top.execution_id, top.task_id)
            if key not in self._cancelled:
                return
            heapq.heappop(self._timers)
            self._cancelled.discard(key)

    def _fire_due_timers(self) -> datetime | None:
        """Fire every timer that is due; return when the next one is due (or None)."""
        self._drop_cancelled_timers()
        if not self._timers:
            return None
        now = self.clock.now()
        while self._timers and self._timers[0].fire_at <= now:
            timer = heapq.heappop(self._timers)
            self.stats["timers_fired"] += 1
            self._deliver_now(timer.instance_id, Message(MessageKind.TIMER_FIRED, timer.execution_id, timer.task_id))
            self._drop_cancelled_timers()
        return self._timers[0].fire_at if self._timers else None

    def _dispatch_loop(self) -> None:
        quiet_since: float | None = None
        quiet_epoch = -1
        timeout = 0.0
        while self._running:
            try:
                work = self._work.get(timeout=timeout) if timeout > 0 else self._work.get_nowait()
            except queue.Empty:
                work = None
            if work is not None:
                try:
                    work()
                except Exception:
                    log.exception("the durable scheduler failed on a work item")
                finally:
                    with self._finished:
                        self._queued -= 1
                timeout = 0.0
                continue
            next_fire = self._fire_due_timers()
            if not self._work.empty():
                continue
            if self.virtual_clock and next_fire is not None:
                epoch = self.tracker.epoch
                if self.is_idle() and self.queues_quiet(epoch):
                    if quiet_since is None or quiet_epoch != epoch:
                        quiet_since, quiet_epoch = time.monotonic(), epoch
                    if time.monotonic() - quiet_since >= self.idle_grace_seconds:
                        assert hasattr(self.clock, "advance_to")
                        self.clock.advance_to(next_fire)
                        self.stats["clock_jumps"] += 1
                        quiet_since = None
                        timeout = 0.0
                        continue
                else:
                    quiet_since = None
                timeout = 0.01
            elif next_fire is not None:
                timeout = max(0.001, min(1.0, (next_fire - self.clock.now()).total_seconds()))
            else:
                timeout = 0.05


def _durable_functions_decode(input_json: str | None) -> Any:
    from azure.functions.durable_functions import ActivityTriggerConverter

    return ActivityTriggerConverter.decode(meta.Datum(type="string", value=input_json), trigger_metadata=None)


def _durable_functions_encode(result: Any) -> str:
    from azure.functions.durable_functions import ActivityTriggerConverter

    datum = ActivityTriggerConverter.encode(result, expected_type=None)
    return str(datum.value)


def _result_for_parent(child: Instance, parent: ParentLink) -> Message:
    if child.status == RuntimeStatus.COMPLETED:
        return Message(MessageKind.SUB_COMPLETED, parent.execution_id, parent.task_id, payload=child.output_json)
    return Message(
        MessageKind.SUB_FAILED,
        parent.execution_id,
        parent.task_id,
        reason=f"Orchestrator function '{child.name}' failed: {child.failure_details or child.status.value}",
        details=child.failure_details or "",
    )


__all__ = ["DurableEngine", "WorkTracker", "_durable_functions"]
