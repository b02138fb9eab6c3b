"""The HTTP routes. Each parses its input, calls one ``logic`` function and maps the outcome.

Registered by ``function_app.py`` with ``app.register_functions(bp)``; every route needs a function key.
"""

from __future__ import annotations

import asyncio

import azure.durable_functions as df
import azure.functions as func

from functions import names
from functions.api import logic
from functions.api.durable_control import DurableControl
from functions.api.models import (
    ApproveRequest,
    CancelRequest,
    CutoverRequest,
    ResumeRequest,
    RetryRequest,
    RollbackRequest,
    WaveCutoverRequest,
    WaveCutoverStarted,
)
from functions.api.openapi import openapi_document
from functions.api.responses import (
    json_response,
    parse_body,
    parse_list_query,
    respond,
    respond_async,
    route_value,
)
from functions.bootstrap import services
from functions.dispatch import runtime_status
from migration.errors import InvalidInput, NotFound, PreconditionFailed
from migration.lifecycle import ACTIVE_RUNTIME_STATUSES
from migration.tags import WAVE_PATTERN
from migration.waves import WaveState, check_wave_window

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)


def control(client: df.DurableOrchestrationClient) -> DurableControl:
    built = services()
    return DurableControl(client, built.store, built.settings)


@bp.function_name("api_list_migrations")
@bp.route(route="migrations", methods=["GET"])
def list_migrations(req: func.HttpRequest) -> func.HttpResponse:
    return respond(lambda: logic.list_migrations(services().store, parse_list_query(req)))


@bp.function_name("api_get_migration")
@bp.route(route="migrations/{migration_id}", methods=["GET"])
def get_migration(req: func.HttpRequest) -> func.HttpResponse:
    return respond(
        lambda: logic.get_migration(services().store, route_value(req, "migration_id"), outbox=services().outbox)
    )


@bp.function_name("api_get_wave")
@bp.route(route="waves/{wave}", methods=["GET"])
def get_wave(req: func.HttpRequest) -> func.HttpResponse:
    return respond(lambda: logic.get_wave(services().store, route_value(req, "wave")))


@bp.function_name("api_openapi")
@bp.route(route="openapi.json", methods=["GET"])
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(openapi_document())


@bp.function_name("api_start_migration")
@bp.route(route="migrations", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_migration(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await respond_async(lambda: logic.start_migration(control(client), req.get_body()))


@bp.function_name("api_cutover")
@bp.route(route="migrations/{migration_id}/cutover", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def cutover(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await respond_async(
        lambda: logic.request_cutover(
            services().store, control(client), route_value(req, "migration_id"), parse_body(req, CutoverRequest)
        )
    )


@bp.function_name("api_approve")
@bp.route(route="migrations/{migration_id}/approve", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def approve(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await respond_async(
        lambda: logic.approve(
            services().store, control(client), route_value(req, "migration_id"), parse_body(req, ApproveRequest)
        )
    )


@bp.function_name("api_cancel")
@bp.route(route="migrations/{migration_id}/cancel", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def cancel(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await respond_async(
        lambda: logic.cancel(
            services().store, control(client), route_value(req, "migration_id"), parse_body(req, CancelRequest)
        )
    )


@bp.function_name("api_resume")
@bp.route(route="migrations/{migration_id}/resume", methods=["POST"])
async def resume(req: func.HttpRequest) -> func.HttpResponse:
    built = services()
    return await respond_async(
        lambda: logic.resume_job(built.store, built.steps, route_value(req, "migration_id"),
                                 parse_body(req, ResumeRequest)),
        status=200,
    )  # fmt: skip


@bp.function_name("api_retry")
@bp.route(route="migrations/{migration_id}/retry", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def retry(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await respond_async(
        lambda: logic.retry(
            services().store, control(client), route_value(req, "migration_id"), parse_body(req, RetryRequest)
        )
    )


@bp.function_name("api_rollback")
@bp.route(route="migrations/{migration_id}/rollback", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def rollback(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    built = services()
    return await respond_async(
        lambda: logic.rollback(built.store, control(client), built.steps, route_value(req, "migration_id"),
                               parse_body(req, RollbackRequest)),
    )  # fmt: skip


@bp.function_name("api_cut_over_wave")
@bp.route(route="waves/{wave}/cutover", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def cut_over_wave(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    async def start() -> WaveCutoverStarted:
        wave = route_value(req, "wave")
        if not WAVE_PATTERN.fullmatch(wave):
            raise InvalidInput(f"{wave!r} is not a wave name")
        request = parse_body(req, WaveCutoverRequest)
        built = services()
        store, settings = built.store, built.settings
        if not (await asyncio.to_thread(store.list, wave=wave, page_size=1)).items:
            raise NotFound(f"no migrations in wave {wave!r}", code="WaveNotFound")
        instance_id = names.wave_orchestration_id(wave)
        if await runtime_status(client, instance_id) in ACTIVE_RUNTIME_STATUSES:
            raise PreconditionFailed(f"wave {wave!r} is already being cut over", code="WaveCutoverRunning")
        check_wave_window(request.at, built.clock.now())
        # Without source_stopped the AWS side stops the sources (ASR cannot): members fail over as they stop.
        state = WaveState(
            wave=wave, stop_sources=not request.source_stopped, sequential=settings.wave_sequential_plans,
            max_parallel_plans=settings.wave_max_parallel_plans, stop_bound_seconds=settings.wave_stop_bound_seconds,
            cutover_at=request.at,
        )  # fmt: skip
        await client.start_new(names.MIGRATE_WAVE, instance_id, state.model_dump(mode="json"))
        return WaveCutoverStarted(wave=wave, orchestration_id=instance_id, at=request.at)

    return await respond_async(start)
