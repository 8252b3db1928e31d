"""Domain models shared by the core and every plugin.

Adapters translate foreign data (FHIR, HL7 v2, NCPDP, CSV ...) into these models and
never pass foreign dicts further in.  All models are frozen pydantic v2 models that
forbid unknown fields, so a typo in an adapter fails loudly instead of silently
dropping data.  Collections are tuples so that models stay hashable and immutable.

The JSON report (:class:`Report`) is a contract with the systems that read it: its
shape is versioned with :data:`SCHEMA_VERSION` and its JSON schema is snapshot-tested.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION = "1.1"

#: Upper bound for any free-text field coming from outside (drug text, condition text).
MAX_TEXT = 2000

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")

RXNORM_SYSTEM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC_SYSTEM = "http://hl7.org/fhir/sid/ndc"
ATC_SYSTEM = "http://www.whocc.no/atc"
SNOMED_SYSTEM = "http://snomed.info/sct"
ICD10_SYSTEMS = ("http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm")
LOINC_SYSTEM = "http://loinc.org"

_DIGITS = re.compile(r"^\d{1,10}$")
_NDC_LIKE = re.compile(r"^\d{4,5}-\d{3,4}-\d{1,2}$|^\d{11}$")


def _check_rxcui(value: str) -> str:
    value = value.strip()
    if not _DIGITS.match(value):
        raise ValueError(f"an RxCUI is 1-10 digits, got {value!r}")
    return value


def normalize_ndc(value: str) -> str:
    """Normalise an NDC to the 11-digit 5-4-2 form used by RxNorm.

    Accepts the 10-digit hyphenated layouts 4-4-2, 5-3-2 and 5-4-1 (zero-padding the
    short segment), an 11-digit string with or without hyphens, and the 2-segment
    ``labeler-product`` form is refused because it does not name a package.
    """
    raw = value.strip()
    if "-" in raw:
        parts = raw.split("-")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ValueError(f"NDC {value!r} is not in a 4-4-2, 5-3-2, 5-4-1 or 5-4-2 layout")
        a, b, c = parts
        layout = (len(a), len(b), len(c))
        if layout == (4, 4, 2):
            a = "0" + a
        elif layout == (5, 3, 2):
            b = "0" + b
        elif layout == (5, 4, 1):
            c = "0" + c
        elif layout != (5, 4, 2):
            raise ValueError(f"NDC {value!r} has segment lengths {layout}, not 4-4-2/5-3-2/5-4-1")
        return a + b + c
    if raw.isdigit() and len(raw) == 11:
        return raw
    raise ValueError(f"NDC {value!r} must be 11 digits or a hyphenated 10-digit code")


RxCUI = Annotated[str, AfterValidator(_check_rxcui)]
NDC11 = Annotated[str, AfterValidator(normalize_ndc)]
ClassId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,63}$")]
CardSummary = Annotated[str, StringConstraints(max_length=139)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
ShortText = Annotated[str, StringConstraints(max_length=256)]


class Model(BaseModel):
    """Base for our own models: frozen, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceLocation(Model):
    """Where a record came from, for error messages and provenance.

    ``pointer`` is format specific: a JSON pointer, an HL7 ``message 3, RXE-2`` path or an
    XPath.  ``line`` is 1-based.
    """

    file: ShortText | None = None
    line: int | None = None
    pointer: ShortText | None = None

    def __str__(self) -> str:
        out = self.file or "<input>"
        if self.line is not None:
            out += f":{self.line}"
        if self.pointer:
            out += f" {self.pointer}"
        return out


class Coding(Model):
    """A code in a code system (RxNorm, NDC, ATC, SNOMED CT, a vendor's local codes)."""

    system: ShortText
    code: ShortText
    display: Text | None = None


OrderStatus = str
ACTIVE_STATUSES = frozenset(
    {"active", "draft", "on-hold", "intended", "new", "dispensed", "completed-dispense", ""}
)
INACTIVE_STATUSES = frozenset(
    {
        "stopped",
        "completed",
        "cancelled",
        "canceled",
        "entered-in-error",
        "discontinued",
        "revoked",
        "not-taken",
        "inactive",
        "declined",
    }
)


class Order(Model):
    """One prescription, order, dispense or medication-list entry.

    At least one of ``codings`` and ``text`` should be present; an order with neither
    ends as an ``unresolved`` notice.  ``status`` uses FHIR-like words (``active``,
    ``stopped`` ...); adapters map their own vocabulary to these.
    """

    id: ShortText
    patient_id: ShortText | None = None
    codings: tuple[Coding, ...] = ()
    text: Text | None = None
    dose: ShortText | None = None
    strength: ShortText | None = None
    daily_dose_mg: float | None = Field(default=None, ge=0)
    frequency: ShortText | None = None
    route: ShortText | None = None
    start_date: dt.date | None = None
    days_supply: int | None = Field(default=None, ge=0, le=36500)
    status: ShortText | None = None
    source: SourceLocation | None = None

    def rxnorm_codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.codings if c.system == RXNORM_SYSTEM)

    def ndc_codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.codings if c.system == NDC_SYSTEM)

    def texts(self) -> tuple[str, ...]:
        """Free text and coding displays, most specific first, without repeats."""
        return DrugQuery.from_parts(self.codings, self.text).texts


class Condition(Model):
    """A diagnosis or problem-list entry, coded and/or as text."""

    system: ShortText | None = None
    code: ShortText | None = None
    text: Text | None = None
    active: bool = True


LabKind = Literal["b12", "holotc", "mma", "homocysteine", "folate", "other"]
#: A lab's own flag (``high`` for MMA/homocysteine; ``borderline`` from a lab or a
#: b12drugs reading of the grey zone, see :mod:`b12drugs.assess.monitoring`).
Interpretation = Literal["low", "borderline", "normal", "high"]


class LabResult(Model):
    """A laboratory result relevant to B12 status (``holotc``: holotranscobalamin)."""

    kind: LabKind
    value: float | None = None
    unit: ShortText | None = None
    code: ShortText | None = None
    date: dt.date | None = None
    interpretation: Interpretation | None = None


B12Status = Literal["low", "borderline", "normal"]


class LastResult(Model):
    """The patient's latest B12 status test as monitoring reads it: the value in the
    kind's normalised unit (B12 pg/mL, holotranscobalamin pmol/L, MMA nmol/L,
    homocysteine umol/L) and what it says about B12 status."""

    kind: LabKind
    value: float | None = None
    unit: ShortText | None = None
    date: dt.date | None = None
    interpretation: B12Status


class Monitoring(Model):
    """Whether the patient is due for a B12 status test for this alert's class.

    ``due_date``: when the next test is (or was) due; ``None`` when never tested."""

    last_result: LastResult | None = None
    due: bool
    due_date: dt.date | None = None


Diet = Literal["omnivore", "vegetarian", "vegan"]


class PatientContext(Model):
    """What is known about a patient that changes how an alert is weighed."""

    id: ShortText
    birth_date: dt.date | None = None
    age: int | None = Field(default=None, ge=0, le=150)
    sex: ShortText | None = None
    conditions: tuple[Condition, ...] = ()
    diet: Diet | None = None
    labs: tuple[LabResult, ...] = ()
    source: SourceLocation | None = None

    def merged(self, other: PatientContext) -> PatientContext:
        """Combine two partial views of the same patient (later values fill gaps)."""
        conditions = self.conditions + tuple(
            c for c in other.conditions if c not in self.conditions
        )
        labs = self.labs + tuple(lab for lab in other.labs if lab not in self.labs)
        return self.model_copy(
            update={
                "birth_date": self.birth_date or other.birth_date,
                "age": self.age if self.age is not None else other.age,
                "sex": self.sex or other.sex,
                "diet": self.diet or other.diet,
                "conditions": conditions,
                "labs": labs,
            }
        )


class Rejection(Model):
    """A record an input parser could not read: where and why.

    Parsers yield these instead of raising so that the rest of the input is still read.
    """

    location: SourceLocation
    reason: Text
    record_id: ShortText | None = None


class Skip(Model):
    """A record a parser read and deliberately did not screen (e.g. a resource type
    that carries no medication), with the reason, so that it is still counted."""

    location: SourceLocation
    reason: Text
    record_id: ShortText | None = None


class PatientEnd(Model):
    """Marker from a parser: every record of this patient has been read.

    Lets the engine finish a patient early and keep memory flat on streams that are
    grouped by patient (FHIR bundles, HL7 messages).  Optional.
    """

    patient_id: ShortText


MatchMethod = Literal[
    "rxcui", "ndc", "exact_name", "synonym", "brand", "approximate", "atc", "local_index", "rxnav"
]


class IngredientMatch(Model):
    """One ingredient an order was resolved to, with how it was found."""

    name: ShortText
    rxcui: RxCUI | None = None
    method: MatchMethod
    confidence: float = Field(ge=0.0, le=1.0)
    score: float | None = None
    atc: tuple[str, ...] = ()
    source: ShortText = "knowledge-base"
    matched_text: Text | None = None
    detail: Text | None = None


class DrugQuery(Model):
    """What a resolver is asked: the codes and texts of one distinct drug.

    Many orders share one query; resolution is done once per distinct query.
    """

    rxcuis: tuple[str, ...] = ()
    ndcs: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    other_codings: tuple[Coding, ...] = ()

    @classmethod
    def from_order(cls, order: Order) -> DrugQuery:
        return cls.from_parts(order.codings, order.text)

    @classmethod
    def from_parts(cls, codings: tuple[Coding, ...], text: str | None) -> DrugQuery:
        texts: list[str] = []
        for t in (text, *(c.display for c in codings)):
            if t and t not in texts:
                texts.append(t)
        return cls(
            rxcuis=tuple(c.code for c in codings if c.system == RXNORM_SYSTEM),
            ndcs=tuple(c.code for c in codings if c.system == NDC_SYSTEM),
            texts=tuple(texts),
            other_codings=tuple(c for c in codings if c.system not in (RXNORM_SYSTEM, NDC_SYSTEM)),
        )

    @classmethod
    def from_user_input(cls, text: str) -> DrugQuery:
        """A query from what a person typed: an NDC (hyphenated or 11 digits), an RxCUI
        (digits), or drug text."""
        value = text.strip()
        if _NDC_LIKE.match(value):
            try:
                return cls(ndcs=(normalize_ndc(value),))
            except ValueError:
                pass
        if _DIGITS.match(value):
            return cls(rxcuis=(value,))
        return cls(texts=(value[:MAX_TEXT],))

    def describe(self) -> str:
        parts = [f"RxCUI {c}" for c in self.rxcuis] + [f"NDC {c}" for c in self.ndcs]
        parts += [f"ATC {c.code}" for c in self.other_codings if c.system == ATC_SYSTEM]
        parts += [repr(t) for t in self.texts[:1]]
        return ", ".join(parts) or "no code or text"


NoticeKind = Literal[
    "unresolved", "skipped", "rejected", "source_unavailable", "approximate", "info",
    "plugin_error",
]


class Notice(Model):
    """Something the reader of a report must know: nothing is dropped silently."""

    kind: NoticeKind
    message: Text
    order_id: ShortText | None = None
    patient_id: ShortText | None = None
    location: ShortText | None = None
    source: ShortText | None = None


class Resolution(Model):
    """A resolver's answer for one :class:`DrugQuery`.

    ``ingredients`` empty with ``resolved=True`` means "known drug, no ingredient of
    interest" (checked, nothing found).  ``notices`` carry e.g. ``source_unavailable``.
    """

    resolved: bool
    ingredients: tuple[IngredientMatch, ...] = ()
    resolver: ShortText
    notices: tuple[Notice, ...] = ()
    data_version: ShortText | None = None


class ClassHit(Model):
    """An ingredient of an order that belongs to a B12 class or context role."""

    class_id: ClassId
    role: Literal["alert", "context"]
    ingredient: ShortText
    rxcui: RxCUI | None = None
    method: MatchMethod
    confidence: float


class Alert(Model):
    """One alert: one patient, one class, every contributing order."""

    patient_id: ShortText | None
    class_id: ClassId
    severity: Severity
    summary: CardSummary
    detail: Text
    orders: tuple[ShortText, ...]
    drugs: tuple[ShortText, ...]
    risk_factors: tuple[ShortText, ...] = ()
    recommendation: Text
    evidence: ShortText
    references: tuple[Text, ...] = ()
    rule: ShortText
    sources: tuple[ShortText, ...] = ()
    #: B12 monitoring status (lab history), for the classes that lower B12.
    monitoring: Monitoring | None = None


class Counts(Model):
    """Accounting: ``read == screened + skipped + rejected`` always."""

    read: int = 0
    screened: int = 0
    skipped: int = 0
    rejected: int = 0


class Report(Model):
    """The result of a screening run; serialised as the JSON report contract."""

    schema_version: str = SCHEMA_VERSION
    generated_at: dt.datetime
    b12drugs_version: str
    knowledge_version: str
    sources: tuple[str, ...] = ()
    alerts: tuple[Alert, ...] = ()
    notices: tuple[Notice, ...] = ()
    counts: Counts = Counts()

    def max_severity(self) -> Severity | None:
        if not self.alerts:
            return None
        return max((a.severity for a in self.alerts), key=SEVERITIES.index)
