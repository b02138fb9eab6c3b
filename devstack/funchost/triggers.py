"""Queue and timer triggers, with the Functions host's semantics.

Queue: messages are base64 (the extension's default ``messageEncoding``), read in batches
(``batchSize`` 16), retried by making them visible again (``visibilityTimeout`` 0) and moved to
``<queue>-poison`` once their dequeue count reaches ``maxDequeueCount`` (5). Polling backs off
while a queue is empty, up to ``maxPollingInterval``. A message is received on a lease (its
invisibility) that is renewed at half its length while the function runs, as the WebJobs queue
listener does (10 minutes, renewed); so a host that dies mid-message gives the message back once
the lease runs out. The lease is a setting here (``lease_seconds``): the local stack, whose clock
is virtual, takes a short one so that a killed host's messages come back in seconds, not minutes.

Timer: six-field NCRONTAB (``{second} {minute} {hour} {day} {month} {day-of-week}``) or a
TimeSpan (``hh:mm:ss``), read from the host's clock, so in virtual mode they fire whenever the
shared clock passes their next occurrence. They never move the clock themselves: a schedule
that always has a next occurrence would otherwise make virtual time run away.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from azure.storage.queue import QueueClient, QueueServiceClient
from croniter import croniter

from devstack.funchost.appmodel import FunctionInfo
from devstack.funchost.durable.engine import Clock, WorkTracker
from devstack.funchost.invoker import Invoker

log = logging.getLogger("funchost.triggers")

# The WebJobs queue listener receives a message for 10 minutes and renews that while the function runs.
DEFAULT_QUEUE_LEASE_SECONDS = 600.0


def _timespan(text: str) -> timedelta | None:
    parts = text.split(":")
    if len(parts) != 3 or not all(p.replace(".", "").isdigit() for p in parts):
        return None
    days, _, hours = parts[0].rpartition(".")
    return timedelta(days=int(days or 0), hours=int(hours), minutes=int(parts[1]), seconds=float(parts[2]))


class Schedule:
    """When a timer trigger fires next."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.interval = _timespan(expression)
        if self.interval is None:
            fields = expression.split()
            if len(fields) != 6:
                raise ValueError(
                    f"timer schedule '{expression}' is not a six-field NCRONTAB expression "
                    "({second} {minute} {hour} {day} {month} {day-of-week}) or a TimeSpan (hh:mm:ss)"
                )
            if not croniter.is_valid(expression, second_at_beginning=True):
                raise ValueError(f"timer schedule '{expression}' is not a valid NCRONTAB expression")

    def next_after(self, moment: datetime) -> datetime:
        if self.interval is not None:
            return moment + self.interval
        nxt: datetime = croniter(self.expression, moment, second_at_beginning=True).get_next(datetime)
        return nxt


class TimerTriggers:
    def __init__(
        self,
        functions: list[FunctionInfo],
        invoker: Invoker,
        clock: Clock,
        tracker: WorkTracker,
        *,
        virtual_clock: bool,
        extra_kwargs: Callable[[FunctionInfo], dict[str, Any]],
    ) -> None:
        self.invoker = invoker
        self.clock = clock
        self.tracker = tracker
        self.virtual_clock = virtual_clock
        self.extra_kwargs = extra_kwargs
        self._schedules = [(fn, Schedule(fn.schedule)) for fn in functions]
        self._next: dict[str, datetime] = {}
        self._running = False
        self._thread: threading.Thread | None = None
        self.fired: dict[str, int] = {fn.name: 0 for fn in functions}

    def start(self) -> None:
        if not self._schedules:
            return
        now = self.clock.now()
        for fn, schedule in self._schedules:
            self._next[fn.name] = schedule.next_after(now)
            if fn.run_on_startup:
                self._fire(fn, past_due=False, last=None, nxt=self._next[fn.name])
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="timer-triggers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=5)

    def next_occurrences(self) -> dict[str, datetime]:
        return dict(self._next)

    def _loop(self) -> None:
        while self._running:
            try:
                self._tick()
            except Exception:
                log.exception("timer trigger scheduling failed")
            time.sleep(0.02 if self.virtual_clock else self._real_wait())

    def _real_wait(self) -> float:
        return max(0.0, min(1.0, (min(self._next.values()) - self.clock.now()).total_seconds()))

    def _tick(self) -> None:
        now = self.clock.now()
        for fn, schedule in self._schedules:
            due = self._next[fn.name]
            if due <= now:
                # Like the host, fire once for a missed stretch and flag it past due.
                nxt = schedule.next_after(now)
                self._fire(fn, past_due=schedule.next_after(due) <= now, last=due, nxt=nxt)
                self._next[fn.name] = nxt

    def _fire(self, fn: FunctionInfo, *, past_due: bool, last: datetime | None, nxt: datetime) -> None:
        request = TimerRequest(
            past_due=past_due,
            schedule_status={"Last": last.isoformat() if last else None, "Next": nxt.isoformat()},
            schedule={"AdjustForDST": True},
        )
        self.fired[fn.name] += 1
        self.tracker.begin()

        def run() -> None:
            try:
                self.invoker.call(fn, {fn.trigger_param: request, **self.extra_kwargs(fn)}, reason="Timer")
            except Exception:
                log.exception("timer function %s failed", fn.name)
            finally:
                self.tracker.end()

        self.invoker.submit(run)


class QueueListener:
    """Polls one queue for one function."""

    def __init__(
        self,
        fn: FunctionInfo,
        connection_string: str,
        invoker: Invoker,
        tracker: WorkTracker,
        *,
        extra_kwargs: Callable[[FunctionInfo], dict[str, Any]],
        options: dict[str, Any],
        min_poll_seconds: float = 0.05,
        lease_seconds: float = DEFAULT_QUEUE_LEASE_SECONDS,
    ) -> None:
        self.fn = fn
        self.invoker = invoker
        self.tracker = tracker
        self.extra_kwargs = extra_kwargs
        service = QueueServiceClient.from_connection_string(connection_string)
        self.queue: QueueClient = service.get_queue_client(fn.queue_name)
        self.poison: QueueClient = service.get_queue_client(f"{fn.queue_name}-poison")
        self.batch_size = int(options.get("batchSize", 16))
        self.max_dequeue_count = int(options.get("maxDequeueCount", 5))
        visibility = _timespan(str(options.get("visibilityTimeout", "00:00:00"))) or timedelta()
        self.retry_visibility_seconds = int(visibility.total_seconds())
        self.max_poll_seconds = (
            _timespan(str(options.get("maxPollingInterval", "00:00:02"))) or timedelta(seconds=2)
        ).total_seconds()
        self.base64 = str(options.get("messageEncoding", "base64")).lower() == "base64"
        self.min_poll_seconds = min_poll_seconds
        if lease_seconds < 2:
            raise ValueError(f"a queue lease must be at least 2 seconds (renewed at half), not {lease_seconds}")
        self.lease_seconds = int(lease_seconds)
        # Per message of the batch in hand: a renewal and the delete never use one pop receipt at once.
        self._receipt_locks: dict[str, threading.Lock] = {}
        self._settled: set[str] = set()  # messages of the batch in hand that were deleted or released
        self.quiet_epoch = -1  # the tracker epoch at which the queue was last found empty
        self._running = False
        self._poke = threading.Event()
        self._thread: threading.Thread | None = None
        self.processed = 0
        self.poisoned = 0

    def start(self) -> None:
        for client in (self.queue, self.poison):
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
        self._running = True
        self._thread = threading.Thread(target=self._loop, name=f"queue-{self.fn.queue_name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        self._poke.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def poke(self) -> None:
        self._poke.set()

    def _loop(self) -> None:
        delay = self.min_poll_seconds
        while self._running:
            epoch = self.tracker.epoch
            try:
                messages = list(
                    self.queue.receive_messages(
                        messages_per_page=self.batch_size,
                        max_messages=self.batch_size,
                        visibility_timeout=self.lease_seconds,
                    )
                )
            except Exception as exc:
                log.warning("polling queue %s failed: %s", self.fn.queue_name, exc)
                messages = []
            if messages:
                delay = self.min_poll_seconds
                self.tracker.begin()
                try:
                    self._receipt_locks = {m.id: threading.Lock() for m in messages}
                    futures = {self.invoker.submit(self._process, m): m for m in messages}
                    self._hold_leases(futures)
                finally:
                    self._settled.clear()
                    self.tracker.end()
                continue
            if self.tracker.epoch == epoch:
                self.quiet_epoch = epoch
            self._poke.wait(delay)
            self._poke.clear()
            delay = min(self.max_poll_seconds, delay * 2)

    def _hold_leases(self, futures: dict[concurrent.futures.Future[None], Any]) -> None:
        """Wait for the batch, renewing the lease of every message still being handled at half its length."""
        pending = set(futures)
        while pending:
            _, pending = concurrent.futures.wait(pending, timeout=self.lease_seconds / 2)
            for future in pending:
                self._renew(futures[future])

    def _renew(self, message: Any) -> None:
        with self._receipt_locks[message.id]:
            if message.id in self._settled:
                return
            try:
                renewed = self.queue.update_message(
                    message.id, message.pop_receipt, visibility_timeout=self.lease_seconds
                )
            except Exception as exc:  # the lease may lapse: the message is then delivered again (at least once)
                log.warning("could not renew the lease of message %s on %s: %s", message.id, self.fn.queue_name, exc)
                return
            message.pop_receipt = renewed.pop_receipt

    def _settle(self, message: Any, settle: Callable[[str], object]) -> None:
        """Delete or release the message with its current pop receipt; no renewal runs after this."""
        with self._receipt_locks[message.id]:
            self._settled.add(message.id)
            settle(message.pop_receipt)

    def _process(self, message: Any) -> None:
        content = message.content or ""
        try:
            body = base64.b64decode(content, validate=True) if self.base64 else content.encode()
            queue_message = QueueMessage(  # type: ignore[no-untyped-call]
                id=message.id,
                body=body,
                dequeue_count=message.dequeue_count,
                expiration_time=message.expires_on,
                insertion_time=message.inserted_on,
                time_next_visible=message.next_visible_on,
                pop_receipt=message.pop_receipt,
            )
            self.invoker.call(
                self.fn,
                {self.fn.trigger_param: queue_message, **self.extra_kwargs(self.fn)},
                reason="New queue message detected",
            )
        except (binascii.Error, ValueError, Exception) as exc:
            self._failed(message, content, exc)
            return
        self._settle(message, lambda receipt: self.queue.delete_message(message.id, receipt))
        self.processed += 1

    def _failed(self, message: Any, content: str, exc: BaseException) -> None:
        if message.dequeue_count >= self.max_dequeue_count:
            log.warning(
                "message %s on %s failed %d times, moving it to %s-poison: %s",
                message.id,
                self.fn.queue_name,
                message.dequeue_count,
                self.fn.queue_name,
                exc,
            )
            self.poison.send_message(content)
            self._settle(message, lambda receipt: self.queue.delete_message(message.id, receipt))
            self.poisoned += 1
            return
        self._settle(
            message,
            lambda receipt: self.queue.update_message(
                message.id, receipt, visibility_timeout=self.retry_visibility_seconds
            ),
        )
