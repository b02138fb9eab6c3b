"""The OpenAPI 3.1 document of the API, its schemas generated from the pydantic models it speaks."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from functions.api.models import (
    Accepted,
    ApproveRequest,
    CancelRequest,
    CutoverRequest,
    ErrorBody,
    JobResumed,
    MigrationDetail,
    ResumeRequest,
    RetryRequest,
    RollbackRequest,
    WaveCutoverRequest,
    WaveCutoverStarted,
)
from migration.events import MigrationRequested
from migration.lifecycle import Phase
from migration.queries import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from migration.records import Page, WaveSummary

API_VERSION = "1.0.0"
_REF = "#/components/schemas/{model}"
_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (Page, "serialization"),
    (MigrationDetail, "serialization"),
    (WaveSummary, "serialization"),
    (Accepted, "serialization"),
    (ErrorBody, "serialization"),
    (MigrationRequested, "validation"),
    (CutoverRequest, "validation"),
    (ApproveRequest, "validation"),
    (CancelRequest, "validation"),
    (RetryRequest, "validation"),
    (RollbackRequest, "validation"),
    (ResumeRequest, "validation"),
    (JobResumed, "serialization"),
    (WaveCutoverRequest, "validation"),
    (WaveCutoverStarted, "serialization"),
]


def _json(ref: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _errors(refs: dict[str, Any], *statuses: int) -> dict[str, Any]:
    words = {
        400: "The request is malformed; the body says what is wrong.",
        401: "No valid function key (x-functions-key header or code query parameter).",
        404: "No such migration or wave.",
        409: "The migration's state does not allow this; the body says why.",
        500: "Our fault; the body carries a correlation id that is in the log.",
        502: "A backend (Table Storage, the Durable Functions host) refused the request.",
        503: "A backend is busy or unreachable; retry after Retry-After seconds.",
    }
    return {str(status): _json(refs["ErrorBody"], words[status]) for status in statuses}


def _migration_id_parameter() -> dict[str, Any]:
    return {
        "name": "migration_id", "in": "path", "required": True,
        "description": "<account>-<region>-<instance id>, e.g. 123456789012-eu-west-1-i-0123456789abcdef0",
        "schema": {"type": "string"},
    }  # fmt: skip


def _signal(refs: dict[str, Any], body: str, summary: str, description: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": body.removesuffix("Request").lower() + "Migration",
            "summary": summary,
            "description": description,
            "parameters": [_migration_id_parameter()],
            "requestBody": {"required": False, "content": {"application/json": {"schema": refs[body]}}},
            "responses": {
                "202": _json(refs["Accepted"], "Handed to the migration's orchestration."),
                **_errors(refs, 400, 401, 404, 409, 500, 502, 503),
            },
        }
    }


@cache
def openapi_document() -> dict[str, Any]:
    keys, schemas = models_json_schema(_MODELS, ref_template=_REF)
    refs = {model.__name__: keys[(model, mode)] for model, mode in _MODELS}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "aws2azure migration API",
            "version": API_VERSION,
            "description": (
                "Status and control of EC2-to-Azure migrations run by Azure Site Recovery. Every route "
                'needs a function key. Errors are JSON: {"error": {"code", "message", "problems"}}.'
            ),
        },
        "servers": [{"url": "/api"}],
        "security": [{"functionKeyHeader": []}, {"functionKeyQuery": []}],
        "paths": {
            "/migrations": {
                "get": {
                    "operationId": "listMigrations",
                    "summary": "List migrations, by wave and phase, a page at a time",
                    "parameters": [
                        {"name": "wave", "in": "query", "required": False, "schema": {"type": "string"}},
                        {
                            "name": "phase",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": [p.value for p in Phase]},
                        },
                        {
                            "name": "page_size",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_PAGE_SIZE,
                                "default": DEFAULT_PAGE_SIZE,
                            },
                        },
                        {
                            "name": "continuation",
                            "in": "query",
                            "required": False,
                            "description": "The continuation of the previous page, with the same filters.",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _json(refs["Page"], "One page; pass continuation back for the next."),
                        **_errors(refs, 400, 401, 500, 502, 503),
                    },
                },
                "post": {
                    "operationId": "startMigration",
                    "summary": "Start a migration by hand",
                    "description": "The body is the same MigrationRequested CloudEvent the AWS side sends.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": refs["MigrationRequested"]}},
                    },
                    "responses": {
                        "202": _json(refs["Accepted"], "The migration's orchestration was started."),
                        **_errors(refs, 400, 401, 409, 500, 502, 503),
                    },
                },
            },
            "/migrations/{migration_id}": {
                "get": {
                    "operationId": "getMigration",
                    "summary": "A migration's record and its event history, oldest first",
                    "parameters": [_migration_id_parameter()],
                    "responses": {
                        "200": _json(refs["MigrationDetail"], "The migration."),
                        **_errors(refs, 400, 401, 404, 500, 502, 503),
                    },
                }
            },
            "/migrations/{migration_id}/cutover": _signal(
                refs,
                "CutoverRequest",
                "Cut over now",
                "Raises FailoverRequested; refused once the migration has failed over or is Migrated.",
            ),
            "/migrations/{migration_id}/approve": _signal(
                refs, "ApproveRequest", "Approve the migration at its approval gate", "Raises Approved."
            ),
            "/migrations/{migration_id}/cancel": _signal(
                refs,
                "CancelRequest",
                "Cancel before failover",
                "Raises CancelRequested; refused after failover started (ASR must never cancel a migration failover).",
            ),
            "/migrations/{migration_id}/resume": {
                "post": {
                    "operationId": "resumeMigrationJob",
                    "summary": "Resume the ASR job ASR suspended for an operator",
                    "description": "Calls ASR's replicationJobs resume on the job the migration waits on; its "
                    "orchestration goes on watching the job.",
                    "parameters": [_migration_id_parameter()],
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": refs["ResumeRequest"]}},
                    },
                    "responses": {
                        "200": _json(refs["JobResumed"], "ASR resumed the job."),
                        **_errors(refs, 400, 401, 404, 409, 500, 502, 503),
                    },
                }
            },
            "/migrations/{migration_id}/retry": _signal(
                refs,
                "RetryRequest",
                "Retry a Failed migration",
                "Starts the migration's orchestration again with its original request; it resumes from what ASR "
                "reports. Refused while the orchestration still runs.",
            ),
            "/migrations/{migration_id}/rollback": _signal(
                refs,
                "RollbackRequest",
                "Roll a failover back before its commit",
                "Raises RollbackRequested (or, for a Failed migration whose orchestration ended, starts one that rolls "
                "back): protection is disabled, the failed-over VM deleted, the source started again in AWS. Refused "
                "after the commit (ASR no longer goes back) and before any failover (cancel instead).",
            ),
            "/waves/{wave}": {
                "get": {
                    "operationId": "getWave",
                    "summary": "A wave's counts per phase and progress",
                    "parameters": [{"name": "wave", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": _json(refs["WaveSummary"], "The wave."),
                        **_errors(refs, 400, 401, 404, 500, 502, 503),
                    },
                }
            },
            "/waves/{wave}/cutover": {
                "post": {
                    "operationId": "cutOverWave",
                    "summary": "Cut a wave over together with recovery plans",
                    "description": "Claims the wave's members that ASR can fail over into recovery plans of at most "
                    "100 machines; members ASR no longer has, or cannot fail over now, are left out with a reason. "
                    "Refused unless the sources are confirmed stopped, and while the wave's cutover already runs.",
                    "parameters": [{"name": "wave", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": refs["WaveCutoverRequest"]}},
                    },
                    "responses": {
                        "202": _json(refs["WaveCutoverStarted"], "The wave's cutover orchestration was started."),
                        **_errors(refs, 400, 401, 404, 409, 500, 502, 503),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
                }
            },
        },
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "functionKeyHeader": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
    }
