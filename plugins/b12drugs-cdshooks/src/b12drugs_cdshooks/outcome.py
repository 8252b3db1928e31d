"""Errors as FHIR OperationOutcome responses.

Every refusal the service makes (bad JSON, failed authentication, oversize body,
missing data) is raised as a :class:`Problem` and rendered as an OperationOutcome with
a 4xx status.  Messages name what was wrong and where (a JSON pointer) but never echo
the submitted values, so nothing from the request (patient data) is reflected back or
logged.
"""

from __future__ import annotations

from typing import Any

from .responses import JSONResponse

FHIR_JSON = "application/fhir+json"


class Problem(Exception):
    """A request the service refuses, with the HTTP status and a FHIR issue code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str = "invalid",
        where: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.where = where
        self.headers = headers or {}


def operation_outcome(message: str, *, code: str = "invalid", where: str | None = None,
                      severity: str = "error") -> dict[str, Any]:
    """A minimal OperationOutcome with one issue (``expression`` = the JSON pointer)."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": message}
    if where:
        issue["expression"] = [where]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def problem_response(problem: Problem) -> JSONResponse:
    return JSONResponse(
        operation_outcome(problem.message, code=problem.code, where=problem.where),
        status_code=problem.status,
        headers=problem.headers,
        media_type=FHIR_JSON,
    )
