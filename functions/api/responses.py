"""HTTP in and out: parse requests into models, turn results and errors into JSON responses.

Every client mistake is a 4xx that says what is wrong; only our own failures are 5xx, and those
carry a correlation id that is also in the log with the exception.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import azure.functions as func
from pydantic import BaseModel, ValidationError

from functions.api.models import ErrorBody, ErrorDetail, ListQuery
from migration.errors import (
    InvalidInput,
    MigrationError,
    NotFound,
    PermanentCloudError,
    PreconditionFailed,
    ThrottledError,
    TransientCloudError,
)

logger = logging.getLogger("aws2azure.api")
JSON = "application/json"
Body = TypeVar("Body", bound=BaseModel)
_LIST_PARAMETERS = ("wave", "phase", "page_size", "continuation")


def json_response(body: BaseModel | dict[str, Any], *, status: int = 200) -> func.HttpResponse:
    text = body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body)
    return func.HttpResponse(text, status_code=status, mimetype=JSON, charset="utf-8")


def error_response(
    status: int, code: str, message: str, *, problems: list[str] | None = None,
    correlation_id: str | None = None, headers: dict[str, str] | None = None,
) -> func.HttpResponse:  # fmt: skip
    body = ErrorBody(
        error=ErrorDetail(code=code, message=message, problems=problems or [], correlation_id=correlation_id)
    )
    response = json_response(body, status=status)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def response_for_error(error: BaseException) -> func.HttpResponse:
    if isinstance(error, InvalidInput):
        return error_response(400, "InvalidInput", str(error), problems=error.problems)
    if isinstance(error, NotFound):
        return error_response(404, error.code or "NotFound", str(error))
    if isinstance(error, PreconditionFailed):
        return error_response(409, error.code or "Conflict", str(error))
    if isinstance(error, TransientCloudError):
        retry_after = error.retry_after_seconds
        headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else {}
        code = "Throttled" if isinstance(error, ThrottledError) else "Unavailable"
        return error_response(503, code, f"{error}; try again later", headers=headers)
    correlation_id = uuid.uuid4().hex
    if isinstance(error, PermanentCloudError | MigrationError):
        logger.error("backend error [correlation_id=%s]", correlation_id, exc_info=error)
        return error_response(502, error.code if isinstance(error, PermanentCloudError) and error.code
                              else "BackendError", str(error), correlation_id=correlation_id)  # fmt: skip
    logger.error("unexpected error [correlation_id=%s]", correlation_id, exc_info=error)
    return error_response(
        500, "InternalError",
        f"an unexpected error occurred; quote correlation id {correlation_id} when you report it",
        correlation_id=correlation_id,
    )  # fmt: skip


def respond(action: Callable[[], BaseModel], *, status: int = 200) -> func.HttpResponse:
    try:
        return json_response(action(), status=status)
    except Exception as error:
        return response_for_error(error)


async def respond_async(action: Callable[[], Awaitable[BaseModel]], *, status: int = 202) -> func.HttpResponse:
    try:
        return json_response(await action(), status=status)
    except Exception as error:
        return response_for_error(error)


def parse_body(request: func.HttpRequest, model: type[Body]) -> Body:
    """The JSON body as ``model``; an empty body means all defaults."""
    raw = request.get_body()
    if not raw.strip():
        raw = b"{}"
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"request body must be a JSON object, not {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, "request body") from exc


def parse_list_query(request: func.HttpRequest) -> ListQuery:
    # Other query parameters (the function key's ``code``) are not ours to judge.
    values = {name: request.params[name] for name in _LIST_PARAMETERS if request.params.get(name)}
    try:
        return ListQuery.model_validate(values)
    except ValidationError as exc:
        raise invalid(exc, "query") from exc


def route_value(request: func.HttpRequest, name: str) -> str:
    value = request.route_params.get(name)
    if not value:
        raise InvalidInput(f"missing {name} in the path")
    return str(value)


def invalid(error: ValidationError, where: str) -> InvalidInput:
    problems = [f"{'.'.join(str(part) for part in item['loc']) or where}: {item['msg']}" for item in error.errors()]
    return InvalidInput(f"invalid {where}: " + "; ".join(problems), problems=problems)
