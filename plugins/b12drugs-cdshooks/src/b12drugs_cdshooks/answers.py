"""Models of what the service answers: cards, discovery, feedback receipts, errors.

The request models (:mod:`.hookrequest`) validate what comes in; these describe what
goes out, for the OpenAPI document (:mod:`.openapi`), which is generated from both.
The cards themselves are built as plain dicts (:mod:`.cards`): building models for
every card would add to each call's latency for nothing a test cannot check.  The
fault suite validates real answers against the schema generated from these models,
and schemathesis checks every answer it provokes, so the models and the answers are
held together by tests rather than by hand.

Optional fields default to ``None`` and are documented as absent-or-present, never
null: the specification says fields with no value are omitted (see
:class:`OmitNullGenerator`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Coding(_Answer):
    system: str
    code: str
    display: str | None = None


class Source(_Answer):
    label: str
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None


class Action(_Answer):
    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None
    resourceId: str | None = None


class Suggestion(_Answer):
    label: str
    uuid: str | None = None
    isRecommended: bool | None = None
    actions: list[Action] | None = None


class Link(_Answer):
    label: str
    url: str
    type: Literal["absolute", "smart"]
    appContext: str | None = None


class Card(_Answer):
    uuid: str | None = None
    summary: str = Field(min_length=1, max_length=139)
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = Field(default=None, min_length=1)
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[Coding] | None = Field(default=None, min_length=1)
    links: list[Link] | None = Field(default=None, min_length=1)


class CardsResponse(_Answer):
    """The answer of a hook call: cards, an empty list when there is nothing to say."""

    cards: list[Card]


class DiscoveryService(_Answer):
    hook: str
    id: str
    title: str | None = None
    description: str
    prefetch: dict[str, str] | None = None
    usageRequirements: str | None = None


class DiscoveryResponse(_Answer):
    services: list[DiscoveryService]


class FeedbackResponse(_Answer):
    """Feedback received, stored, and ignored as a repeat of feedback already stored."""

    received: int = Field(ge=0)
    stored: int = Field(ge=0)
    duplicates: int = Field(ge=0)


class Issue(_Answer):
    severity: Literal["fatal", "error", "warning", "information"]
    code: str
    diagnostics: str | None = None
    expression: list[str] | None = None


class OperationOutcome(_Answer):
    """Every refusal: a FHIR OperationOutcome (see :mod:`.outcome`)."""

    resourceType: Literal["OperationOutcome"]
    issue: list[Issue] = Field(min_length=1)
