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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION = "1.0"

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


#: Builds a patient context from a reader's raw patient fields (see :class:`OrderRow`).
PatientFactory = Callable[[str, tuple[str, ...], "SourceLocation"], "PatientContext"]


class OrderRow(NamedTuple):
    """The fast path for high-volume readers (dispensing exports with millions of rows).

    A plain tuple, not a validated model: the engine resolves it by ``(codings, text)``
    like an :class:`Order` and only validates it into an :class:`Order` (and builds its
    patient context) when it contributes to an alert.  A reader that yields these must
    bound field sizes itself (``MAX_TEXT``) and check dates, numbers and statuses, so
    that rows without findings are as trustworthy as validated ones.

    ``patient_fields`` are the reader's raw patient columns; ``make_patient`` turns them
    into a :class:`PatientContext` for the patients that need one.
    """

    id: str
    patient_id: str | None
    text: str | None
    codings: tuple[Coding, ...] = ()
    status: str | None = None
    start_date: dt.date | None = None
    days_supply: int | None = None
    daily_dose_mg: float | None = None
    file: str | None = None
    line: int | None = None
    patient_fields: tuple[str, ...] | None = None
    make_patient: PatientFactory | None = None

    def location(self) -> SourceLocation:
        return SourceLocation(file=self.file, line=self.line)

    def to_order(self, where: SourceLocation | None = None) -> Order:
        """The validated order (raises ``pydantic.ValidationError``).

        ``where`` is this row's :meth:`location` when the caller already has it.
        Without it the location is validated with the order, in one call (the order's
        ``source`` can then serve its patient context too).  Validated by the model's
        own validator (``model_validate`` without its Python frame: rows with findings
        are the hot path).
        """
        order: Order = Order.__pydantic_validator__.validate_python({
            "id": self.id,
            "patient_id": self.patient_id,
            "codings": self.codings,
            "text": self.text,
            "status": self.status,
            "start_date": self.start_date,
            "days_supply": self.days_supply,
            "daily_dose_mg": self.daily_dose_mg,
            "source": where or {"file": self.file, "line": self.line},
        })
        return order

    def patient(self, where: SourceLocation | None = None) -> PatientContext | None:
        """The patient context built from this row's patient columns, if it has any."""
        if self.make_patient is None or not self.patient_fields or not self.patient_id:
            return None
        return self.make_patient(self.patient_id, self.patient_fields, where or self.location())


@dataclass(frozen=True, slots=True)
class OrderBlock:
    """Many :class:`OrderRow` at once, column by column: the fastest path.

    A dispensing export is read in blocks of a few hundred rows; handing the engine a
    block's columns lets it look up every row's drug, status and patient columns with
    C-level loops (``map`` over a column) instead of a Python step per row.  Row ``i``
    is exactly ``OrderRow(ids[i], patient_ids[i], ...)`` (:meth:`row`); every column has
    one entry per row.  The reader's duties are those of :class:`OrderRow` (bounded
    sizes, checked dates, numbers and statuses).  Code that wants rows uses
    :meth:`rows` or :func:`b12drugs.records.iter_rows`.
    """

    ids: Sequence[str]
    patient_ids: Sequence[str | None]
    texts: Sequence[str | None]
    codings: Sequence[tuple[Coding, ...]]
    statuses: Sequence[str | None]
    start_dates: Sequence[dt.date | None]
    days_supply: Sequence[int | None]
    daily_dose_mg: Sequence[float | None]
    lines: Sequence[int]
    patient_fields: Sequence[tuple[str, ...] | None]
    file: str | None = None
    make_patient: PatientFactory | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, i: int) -> OrderRow:
        """Row ``i`` as an :class:`OrderRow`."""
        fields = self.patient_fields[i]
        return OrderRow(self.ids[i], self.patient_ids[i], self.texts[i], self.codings[i],
                        self.statuses[i], self.start_dates[i], self.days_supply[i],
                        self.daily_dose_mg[i], self.file, self.lines[i], fields,
                        self.make_patient if fields else None)

    def rows(self) -> Iterator[OrderRow]:
        """Every row, in order."""
        return map(self.row, range(len(self.ids)))


class Condition(Model):
    """A diagnosis or problem-list entry, coded and/or as text."""

    system: ShortText | None = None
    code: ShortText | None = None
    text: Text | None = None
    active: bool = True


LabKind = Literal["b12", "mma", "homocysteine", "folate", "other"]


class LabResult(Model):
    """A laboratory result relevant to B12 status."""

    kind: LabKind
    value: float | None = None
    unit: ShortText | None = None
    code: ShortText | None = None
    date: dt.date | None = None
    interpretation: Literal["low", "normal", "high"] | None = None


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
    def from_order(cls, order: Order | OrderRow) -> DrugQuery:
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
