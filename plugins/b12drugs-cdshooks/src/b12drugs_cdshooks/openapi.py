"""OpenAPI 3.0 description of the service, served at ``/openapi.json``.

Written by hand from the CDS Hooks specification (discovery, service call, feedback)
so that clients and schema-based fuzzers (schemathesis) see what the service accepts.
"""

from __future__ import annotations

from typing import Any

from .discovery import SERVICES

_CODING = {
    "type": "object",
    "required": ["code", "system"],
    "properties": {
        "code": {"type": "string"},
        "system": {"type": "string"},
        "display": {"type": "string"},
    },
}

_OUTCOME = {
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string"},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

_CARD = {
    "type": "object",
    "required": ["summary", "indicator", "source"],
    "properties": {
        "uuid": {"type": "string"},
        "summary": {"type": "string", "maxLength": 139},
        "detail": {"type": "string"},
        "indicator": {"type": "string", "enum": ["info", "warning", "critical"]},
        "source": {
            "type": "object",
            "required": ["label"],
            "properties": {
                "label": {"type": "string"},
                "url": {"type": "string"},
                "topic": {"$ref": "#/components/schemas/Coding"},
            },
        },
        "suggestions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["label"],
                "properties": {
                    "label": {"type": "string"},
                    "uuid": {"type": "string"},
                    "isRecommended": {"type": "boolean"},
                    "actions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["type", "description"],
                            "properties": {
                                "type": {"type": "string",
                                         "enum": ["create", "update", "delete"]},
                                "description": {"type": "string"},
                                "resource": {"type": "object"},
                            },
                        },
                    },
                },
            },
        },
        "selectionBehavior": {"type": "string", "enum": ["at-most-one", "any"]},
        "overrideReasons": {"type": "array", "items": {"$ref": "#/components/schemas/Coding"}},
    },
}

_BUNDLE = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["Bundle"]},
        "entry": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"resource": {"type": "object"}, "fullUrl": {"type": "string"}},
            },
        },
    },
}

_FHIR_ID = {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"}

_HOOK_REQUEST = {
    "type": "object",
    "required": ["hook", "hookInstance", "context"],
    "properties": {
        "hook": {"type": "string", "enum": ["order-select", "order-sign", "patient-view"]},
        "hookInstance": {"type": "string", "format": "uuid"},
        "fhirServer": {"type": "string", "format": "uri"},
        "fhirAuthorization": {
            "type": "object",
            "required": ["access_token", "token_type", "scope", "subject"],
            "properties": {
                "access_token": {"type": "string"},
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer"},
                "scope": {"type": "string"},
                "subject": {"type": "string"},
            },
        },
        "context": {
            "type": "object",
            "required": ["userId", "patientId"],
            "properties": {
                "userId": {"type": "string"},
                "patientId": _FHIR_ID,
                "encounterId": _FHIR_ID,
                "selections": {"type": "array", "items": {"type": "string"}},
                "draftOrders": {"$ref": "#/components/schemas/Bundle"},
            },
        },
        "prefetch": {
            "type": "object",
            "additionalProperties": {"type": "object", "nullable": True},
        },
    },
}

_FEEDBACK = {
    "type": "object",
    "required": ["feedback"],
    "properties": {
        "feedback": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["card", "outcome", "outcomeTimestamp"],
                "properties": {
                    "card": {"type": "string"},
                    "outcome": {"type": "string", "enum": ["accepted", "overridden"]},
                    "acceptedSuggestions": {
                        "type": "array",
                        "items": {"type": "object", "required": ["id"],
                                  "properties": {"id": {"type": "string"}}},
                    },
                    "overrideReason": {
                        "type": "object",
                        "properties": {
                            "reason": {"$ref": "#/components/schemas/Coding"},
                            "userComment": {"type": "string"},
                        },
                    },
                    "outcomeTimestamp": {"type": "string", "format": "date-time"},
                },
            },
        }
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    content = {"application/fhir+json": {
        "schema": {"$ref": "#/components/schemas/OperationOutcome"}}}
    descriptions = {
        400: "Malformed or invalid request",
        401: "Missing or invalid JWT",
        404: "No such service",
        412: "Required FHIR data was neither prefetched nor fetchable",
        413: "Request body or content too large",
        503: "Timed out or temporarily unable to verify",
    }
    return {str(c): {"description": descriptions[c], "content": content} for c in codes}


def openapi_document(base_url: str | None = None) -> dict[str, Any]:
    service_ids = [s.id for s in SERVICES]
    path_param = {
        "name": "service_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": service_ids},
    }
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "b12drugs CDS Hooks service",
            "version": "1.0",
            "description": "Screens draft and active medication orders for drugs that lower "
                           "vitamin B12 (CDS Hooks 2.0: order-select, order-sign, patient-view).",
        },
        "security": [{"cdsHooksJwt": []}],
        "paths": {
            "/cds-services": {
                "get": {
                    "operationId": "discovery",
                    "responses": {
                        "200": {
                            "description": "The services offered",
                            "content": {"application/json": {"schema": {
                                "type": "object", "required": ["services"],
                                "properties": {"services": {"type": "array",
                                                            "items": {"type": "object"}}},
                            }}},
                        },
                        **_errors(401),
                    },
                }
            },
            "/cds-services/{service_id}": {
                "post": {
                    "operationId": "callService",
                    "parameters": [path_param],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/HookRequest"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "Cards (empty when there is nothing to say)",
                            "content": {"application/json": {"schema": {
                                "type": "object", "required": ["cards"],
                                "properties": {"cards": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Card"}}},
                            }}},
                        },
                        **_errors(400, 401, 404, 412, 413, 503),
                    },
                }
            },
            "/cds-services/{service_id}/feedback": {
                "post": {
                    "operationId": "feedback",
                    "parameters": [path_param],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Feedback"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "Feedback stored (duplicates are ignored)",
                            "content": {"application/json": {"schema": {
                                "type": "object",
                                "properties": {
                                    "received": {"type": "integer"},
                                    "stored": {"type": "integer"},
                                    "duplicates": {"type": "integer"},
                                },
                            }}},
                        },
                        **_errors(400, 401, 404, 413, 503),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "cdsHooksJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": {
                "Coding": _CODING,
                "Card": _CARD,
                "Bundle": _BUNDLE,
                "HookRequest": _HOOK_REQUEST,
                "Feedback": _FEEDBACK,
                "OperationOutcome": _OUTCOME,
            },
        },
    }
    if base_url:
        doc["servers"] = [{"url": base_url}]
    return doc
