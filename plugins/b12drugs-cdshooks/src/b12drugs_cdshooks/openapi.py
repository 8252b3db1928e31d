"""OpenAPI 3.1 description of the service, served at ``/openapi.json``.

Generated from the models, never written by hand: the request models are the ones
that validate each call (:mod:`.hookrequest`), the answer models describe cards,
discovery, feedback receipts and errors (:mod:`.answers`).  A field added to a model
is in the document at once, so the document clients and schema-based fuzzers
(schemathesis) read cannot drift from what the service accepts.  OpenAPI 3.1 because
its schemas are JSON Schema 2020-12, the dialect pydantic writes.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import (
    GenerateJsonSchema,
    JsonSchemaMode,
    JsonSchemaValue,
    models_json_schema,
)
from pydantic_core import core_schema

from .answers import CardsResponse, DiscoveryResponse, FeedbackResponse, OperationOutcome
from .discovery import SERVICES
from .hookrequest import CONTEXTS, FeedbackRequest, HookRequest

DIALECT = "https://json-schema.org/draft/2020-12/schema"
REF = "#/components/schemas/{model}"


class OmitNullGenerator(GenerateJsonSchema):
    """Pydantic's JSON Schema, with optional fields documented as "absent or a value".

    CDS Hooks omits fields without a value and never sends ``null``: an optional
    ``str | None = None`` field is documented as a string that may be left out.
    """

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if "default" in json_schema and json_schema["default"] is None:
            del json_schema["default"]
        return json_schema


_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (HookRequest, "validation"),
    *[(model, "validation") for model in dict.fromkeys(CONTEXTS.values())],
    (FeedbackRequest, "validation"),
    (CardsResponse, "serialization"),
    (DiscoveryResponse, "serialization"),
    (FeedbackResponse, "serialization"),
    (OperationOutcome, "serialization"),
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


@functools.lru_cache(maxsize=1)
def component_schemas() -> dict[str, Any]:
    """``components.schemas``: every model, by class name.

    The envelope reads ``context`` as an object and validates it afterwards against
    the model of the hook called; the document says which: one of the three.
    """
    _, top = models_json_schema(_MODELS, ref_template=REF, schema_generator=OmitNullGenerator)
    schemas: dict[str, Any] = top["$defs"]
    contexts = [_ref(model) for model in dict.fromkeys(CONTEXTS.values())]
    schemas["HookRequest"]["properties"]["context"] = {"anyOf": contexts}
    return schemas


_ERRORS = {
    400: "Malformed or invalid request (the diagnostics say what and where)",
    401: "Missing or invalid JWT: 'invalid token (<reason class>)'",
    404: "No such service",
    412: "Required FHIR data was neither prefetched nor fetchable",
    413: "Request body or content too large",
    415: "Content-Type is not application/json",
    503: "Timed out or temporarily unable to verify",
}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    content = {"application/fhir+json": {"schema": _ref(OperationOutcome)}}
    return {str(c): {"description": _ERRORS[c], "content": content} for c in codes}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(model)}}}


def openapi_document(base_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document; ``servers`` names ``base_url`` when configured."""
    path_param = {
        "name": "service_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [s.id for s in SERVICES]},
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "jsonSchemaDialect": DIALECT,
        "info": {
            "title": "b12drugs CDS Hooks service",
            "version": "1.0",
            "description": "Screens draft and active medication orders for drugs that lower "
                           "vitamin B12 (CDS Hooks 2.0: order-select, order-sign, patient-view).",
        },
        "security": [{"cdsHooksJwt": []}],
        "paths": {
            "/cds-services": {"get": {
                "operationId": "discovery",
                "responses": {"200": _json(DiscoveryResponse, "The services offered"),
                              **_errors(401)},
            }},
            "/cds-services/{service_id}": {"post": {
                "operationId": "callService",
                "parameters": [path_param],
                "requestBody": _body(HookRequest),
                "responses": {
                    "200": _json(CardsResponse, "Cards (empty when there is nothing to say)"),
                    **_errors(400, 401, 404, 412, 413, 415, 503),
                },
            }},
            "/cds-services/{service_id}/feedback": {"post": {
                "operationId": "feedback",
                "parameters": [path_param],
                "requestBody": _body(FeedbackRequest),
                "responses": {
                    "200": _json(FeedbackResponse, "Feedback stored (duplicates are ignored)"),
                    **_errors(400, 401, 404, 413, 415, 503),
                },
            }},
        },
        "components": {
            "securitySchemes": {
                "cdsHooksJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": component_schemas(),
        },
    }
    if base_url:
        doc["servers"] = [{"url": base_url}]
    return doc
