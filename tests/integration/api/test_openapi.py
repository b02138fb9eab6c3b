"""The OpenAPI document is valid OpenAPI 3.1 and describes exactly the routes the blueprint serves."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from functions.api.openapi import openapi_document
from migration.events import MigrationRequested
from tests.integration.api.conftest import Caller

pytestmark = pytest.mark.integration


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(document).validate()  # raises, naming the fault, on an invalid document


def test_the_validator_would_catch_a_broken_document() -> None:
    broken = {**openapi_document(), "paths": {"/migrations": {"get": {"responses": {"200": {}}}}}}
    with pytest.raises(OpenAPIValidationError, match="description"):
        OpenAPIV31SpecValidator(broken).validate()


def test_it_is_served_as_json_under_the_function_key(call: Caller, functions: dict[str, Any]) -> None:
    response = call("api_openapi", "GET", "openapi.json")
    assert response.status_code == 200
    assert json.loads(response.get_body()) == openapi_document()
    assert functions["api_openapi"].get_trigger().auth_level.value == "function"


def test_every_route_is_documented_and_nothing_else(functions: dict[str, Any]) -> None:
    served = set()
    for function in functions.values():
        trigger = function.get_trigger()
        for method in trigger.methods:
            served.add((method.value.lower(), "/" + trigger.route))
    documented = {(method, path) for path, item in openapi_document()["paths"].items() for method in item}
    assert documented == served


def test_schemas_come_from_the_models() -> None:
    schemas = openapi_document()["components"]["schemas"]
    assert (
        schemas["MigrationRequested"]["properties"]["type"]["const"] == MigrationRequested.model_fields["type"].default
    )
    assert "etag" not in schemas["MigrationRecord"]["properties"]
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(openapi_document()))
    assert refs
    assert set(refs) <= set(schemas)
