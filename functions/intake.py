"""Queue trigger: CloudEvents from the AWS side start or signal migrations.

An invalid message raises, so the host retries it and then moves it to the poison queue
(``migration-requests-poison``) with the validation error in the log: nothing is dropped silently.
"""

from __future__ import annotations

import logging

import azure.durable_functions as df
import azure.functions as func

from functions.bootstrap import services
from functions.dispatch import dispatch
from functions.settings import INTAKE_QUEUE, INTAKE_QUEUE_CONNECTION
from migration.errors import InvalidInput
from migration.events import parse_event

bp = df.Blueprint()
logger = logging.getLogger("aws2azure.intake")


@bp.queue_trigger(arg_name="message", queue_name=INTAKE_QUEUE, connection=INTAKE_QUEUE_CONNECTION)
@bp.durable_client_input(client_name="client")
async def intake(message: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    try:
        event = parse_event(message.get_body())
    except InvalidInput as exc:
        logger.error("rejected message %s (attempt %s): %s", message.id, message.dequeue_count, exc)
        raise
    runtime = services()
    await dispatch(event, client, runtime.store, runtime.settings)
