"""Schema-based fuzzing (schemathesis) of the running service: no input gives a 500.

The service runs under uvicorn (unauthenticated mode, so that generated requests reach
the hook logic instead of stopping at the JWT check); schemathesis reads the app's own
OpenAPI document from ``/openapi.json`` and sends schema-conforming (positive) and
schema-violating (negative) requests to every operation, checking for server errors and
conformance of status codes, content types and response bodies to the document.

Schemathesis' own pytest integration (``schema.parametrize``) fails under pytest 9
(``'Function' object has no attribute '_nodeid'``, schemathesis 4.32.5), so the
operation strategies are driven with hypothesis directly.  Bounded to 50 examples per
operation and mode.
"""

from __future__ import annotations

# schemathesis imports some modules lazily, deep inside a test's stack; pytest rewrites
# their asserts on import and CPython 3.11.7's compiler then fails with "AST constructor
# recursion depth mismatch".  Importing them here, at collection time, avoids it.
import pytest
import schemathesis
import schemathesis.specs.openapi.adapter
import schemathesis.specs.openapi.schemas
from cds_support import Service
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

OPERATIONS = [
    ("/cds-services", "GET"),
    ("/cds-services/{service_id}", "POST"),
    ("/cds-services/{service_id}/feedback", "POST"),
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("path,method", OPERATIONS)
def test_no_server_errors(insecure_service: Service, path: str, method: str,
                          mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(insecure_service.url + "/openapi.json")
    operation = schema[path][method]
    checks = [not_a_server_error]
    if mode is GenerationMode.POSITIVE:
        checks += [status_code_conformance, content_type_conformance,
                   response_schema_conformance]
    calls = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=50, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        response = case.call_and_validate(base_url=insecure_service.url, checks=checks)
        calls.append(response.status_code)

    run()
    assert calls and all(status < 500 for status in calls)
