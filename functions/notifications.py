"""Timer trigger: every minute, deliver pending notifications (migration/notifications.py), in order per migration."""

from __future__ import annotations

import logging

import azure.functions as func

from functions.bootstrap import services

bp = func.Blueprint()  # type: ignore[no-untyped-call]
logger = logging.getLogger("aws2azure.notifications")
SCHEDULE = "0 */1 * * * *"


@bp.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=False)
def deliver_notifications(timer: func.TimerRequest) -> None:
    delivery = services().delivery
    if delivery is None:
        return  # no destination configured
    report = delivery.run()
    if report.migrations:
        logger.info("notification sweep: %d delivered, %d failed attempts, %d dead-lettered, %d waiting (%d ids)",
                    report.delivered, report.failed_attempts, report.dead_lettered, report.waiting,
                    report.migrations)  # fmt: skip
