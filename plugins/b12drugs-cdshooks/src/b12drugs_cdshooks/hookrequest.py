"""The CDS Hooks request envelope and hook contexts, validated.

Validation errors become 400 OperationOutcomes naming the JSON pointer of each bad
field; the submitted values are never echoed.  ``patientId`` and ``encounterId`` must
be FHIR ids (``[A-Za-z0-9\\-.]{1,64}``) because they are substituted into FHIR query
URLs when data is fetched on demand.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.config import JsonDict

from .outcome import Problem

FhirId = str
_ID_PATTERN = r"^[A-Za-z0-9\-.]{1,64}$"


class _Open(BaseModel):
    """Spec objects may carry extensions; unknown fields are ignored, not refused."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class FhirAuthorization(_Open):
    access_token: str = Field(min_length=1, max_length=8192)
    token_type: Literal["Bearer"]
    expires_in: int | None = Field(default=None, ge=0)
    scope: str = Field(max_length=8192)
    subject: str = Field(max_length=1024)


class Context(_Open):
    userId: str = Field(min_length=1, max_length=256)
    patientId: str = Field(pattern=_ID_PATTERN)
    encounterId: str | None = Field(default=None, pattern=_ID_PATTERN)


#: What :func:`parse_request` checks of ``draftOrders``, for the OpenAPI document.
_BUNDLE_SCHEMA: JsonDict = {
    "required": ["resourceType"],
    "properties": {"resourceType": {"const": "Bundle"},
                   "entry": {"type": "array", "items": {"type": "object"}}},
}


class OrderSelectContext(Context):
    selections: tuple[str, ...] = Field(min_length=1, max_length=1000)
    draftOrders: dict[str, Any] = Field(json_schema_extra=_BUNDLE_SCHEMA)


class OrderSignContext(Context):
    draftOrders: dict[str, Any] = Field(json_schema_extra=_BUNDLE_SCHEMA)


CONTEXTS: dict[str, type[Context]] = {
    "order-select": OrderSelectContext,
    "order-sign": OrderSignContext,
    "patient-view": Context,
}


class HookRequest(_Open):
    hook: str = Field(min_length=1, max_length=128)
    hookInstance: str = Field(min_length=1, max_length=128)
    fhirServer: str | None = Field(default=None, max_length=2048)
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _auth_needs_server(self) -> HookRequest:
        if self.fhirAuthorization is not None and not self.fhirServer:
            raise ValueError("fhirAuthorization requires fhirServer")
        return self


def _pointer(loc: tuple[int | str, ...], prefix: str = "") -> str:
    return prefix + "".join(f"/{p}" for p in loc)


def _problem(exc: ValidationError, prefix: str = "") -> Problem:
    errors = exc.errors(include_input=False, include_url=False)
    parts = [f"{_pointer(tuple(e['loc']), prefix) or '/'}: {e['msg']}" for e in errors[:10]]
    first = _pointer(tuple(errors[0]["loc"]), prefix) or "/" if errors else None
    return Problem(400, "invalid CDS Hooks request: " + "; ".join(parts), where=first)


def parse_request(data: dict[str, Any], expected_hook: str) -> tuple[HookRequest, Context]:
    """Validate the envelope and the context of ``expected_hook``."""
    try:
        request = HookRequest.model_validate(data)
    except ValidationError as exc:
        raise _problem(exc) from None
    if request.hook != expected_hook:
        raise Problem(400, f"this service answers the {expected_hook!r} hook", where="/hook")
    try:
        context = CONTEXTS[expected_hook].model_validate(request.context)
    except ValidationError as exc:
        raise _problem(exc, "/context") from None
    if isinstance(context, (OrderSelectContext, OrderSignContext)):
        bundle = context.draftOrders
        if bundle.get("resourceType") != "Bundle" or not isinstance(bundle.get("entry", []), list):
            raise Problem(400, "draftOrders must be a FHIR Bundle", where="/context/draftOrders")
    if request.prefetch is not None:
        for key, value in request.prefetch.items():
            if value is not None and not isinstance(value, dict):
                raise Problem(400, "a prefetch value must be a FHIR resource or null",
                              where=f"/prefetch/{key}")
    return request, context


# Feedback ----------------------------------------------------------------------------


class FeedbackCoding(_Open):
    code: str = Field(min_length=1, max_length=256)
    system: str = Field(min_length=1, max_length=1024)
    display: str | None = Field(default=None, max_length=1024)


class OverrideReason(_Open):
    reason: FeedbackCoding | None = None
    userComment: str | None = Field(default=None, max_length=4000)


class AcceptedSuggestion(_Open):
    id: str = Field(min_length=1, max_length=128)


class FeedbackItem(_Open):
    card: str = Field(min_length=1, max_length=128)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: tuple[AcceptedSuggestion, ...] = Field(
        default=(), max_length=100
    )
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: str = Field(
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
    )

    @model_validator(mode="after")
    def _accepted_needs_suggestions(self) -> FeedbackItem:
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is required for an accepted outcome")
        return self


class FeedbackRequest(_Open):
    feedback: tuple[FeedbackItem, ...] = Field(min_length=1, max_length=1000)


def parse_feedback(data: dict[str, Any]) -> FeedbackRequest:
    try:
        return FeedbackRequest.model_validate(data)
    except ValidationError as exc:
        raise _problem(exc) from None
