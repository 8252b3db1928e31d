"""FHIR R4 resources to b12drugs records: the adapter's public conversion API.

These functions are used by the ``fhir`` input format and by the CDS Hooks service
(``b12drugs-cdshooks``), so their names and signatures are stable:

* :func:`order_from_resource` - one MedicationRequest / MedicationDispense /
  MedicationStatement to an :class:`~b12drugs.models.Order` (or a
  :class:`~b12drugs.models.Rejection` naming the JSON pointer of the bad field).
* :func:`record_from_resource` - the same, plus the parser's own screening decision
  (a :class:`~b12drugs.models.Skip` for status ``unknown``).
* :func:`order_records` - that record followed by its ``info`` notices (left-out detail,
  dropped codes): what the input format yields.
* :func:`patient_context` - Patient, Conditions and Observations to a
  :class:`~b12drugs.models.PatientContext`.
* :func:`records_from_bundle` - a whole Bundle to records grouped by patient.

Decisions (documented in the README):

* **Status.** A Bundle is the patient's current medication list.  FHIR status words are
  passed through (the engine skips ``stopped``, ``completed``, ``cancelled``,
  ``entered-in-error``, ``not-taken`` ...).  MedicationDispense ``completed`` means
  "handed over" and becomes ``dispensed`` (screened); ``preparation``/``in-progress``
  become ``active``.  ``unknown`` (and any word outside the FHIR value set) becomes a
  Skip with the reason.  A MedicationRequest with ``doNotPerform: true`` forbids the drug,
  so its status becomes ``not-taken`` and it is not screened as a prescription.
* **Medication references.** ``#id`` is looked up in ``contained``; other references
  in ``medications`` (a Bundle's Medication entries by ``Medication/<id>`` and by
  ``fullUrl``).  A reference that cannot be found yields an Order without codings
  whose text is the reference's ``display`` when the sender gave one (the drug's name,
  still screened by name) or else the sentence "Medication reference '...' could not be
  found in the input", so that the engine reports the order as ``unresolved`` (not
  checked) with that reason.
* **Codes.** RxNorm codes must be 1-10 digits and NDCs must normalise to 11 digits; a
  code that does not is left out of the order's codings with an ``info`` notice naming
  the coding's JSON pointer and why (the code shown truncated), its ``display`` is kept
  as text, and when nothing else identifies the drug the order's text names the invalid
  code, so the report's ``unresolved`` notice shows it.  Other codings (SNOMED CT, ATC,
  local codes) are passed through as fall-backs; WHO ATC codings
  (``http://www.whocc.no/atc`` or its OID ``urn:oid:2.16.840.1.113883.6.73``) under
  the one system URI the resolvers read.
* **Bad data: identity vs detail.** *Identity* is what decides whether and what to
  screen: ``resourceType``, ``id``, ``status``, ``doNotPerform``, ``subject``/``patient``
  and the medication (``medicationCodeableConcept``/``medicationReference``/R5
  ``medication`` and the referenced Medication's ``code``/``ingredient``).  A field of
  the wrong JSON type, a value out of range or a text longer than the models allow there
  makes the whole order a Rejection naming the field's JSON pointer; nothing is guessed.
  *Detail* is everything else the order carries: ``dosageInstruction``/``dosage``
  (dose, frequency, route, daily dose: left out whole, keeping the first instruction's
  ``text``, since a partial dosage could under-state the daily dose), start dates
  (``authoredOn``, ``dispenseRequest.validityPeriod``, ``whenHandedOver``,
  ``whenPrepared``, ``effective[x]``, ``dateAsserted``: the next one is tried) and the
  supply (``dispenseRequest.expectedSupplyDuration``, ``daysSupply``).  Unreadable detail
  is left out and the order is still screened, with an ``info`` notice
  ``<JSON pointer>: <what> could not be read (<why>); screened without it``.  Messages
  name fields, never the patient's values.  Notices are only made for orders that will
  be screened (not for Skips or inactive statuses).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from pydantic import ValidationError

from b12drugs import labcodes
from b12drugs.models import (
    ACTIVE_STATUSES,
    ATC_SYSTEM,
    INACTIVE_STATUSES,
    LOINC_SYSTEM,
    MAX_TEXT,
    NDC_SYSTEM,
    RXNORM_SYSTEM,
    Coding,
    Condition,
    LabResult,
    Notice,
    Order,
    PatientContext,
    PatientEnd,
    Rejection,
    Skip,
    SourceLocation,
    normalize_ndc,
)
from b12drugs.records import Record

from .dosage import DAYS_PER_UNIT, DoseFacts, dose_facts
from .fields import (
    MAX_SHORT,
    FhirDataError,
    escape,
    get_bool,
    get_date,
    get_num,
    get_obj,
    get_str,
    is_fhir_id,
    json_type,
    objects,
    reference_id,
)

__all__ = [
    "MEDICATION_TYPES",
    "FhirDataError",
    "condition_from_resource",
    "lab_from_observation",
    "order_from_resource",
    "order_records",
    "patient_context",
    "record_from_resource",
    "records_from_bundle",
    "records_from_resource",
]

#: A model read from a resource (condition or lab result).
_M = TypeVar("_M", Condition, LabResult)

MEDICATION_TYPES = frozenset({"MedicationRequest", "MedicationDispense", "MedicationStatement"})

#: Per resource type: FHIR status -> the word the engine understands.
_STATUS = {
    "MedicationRequest": {
        s: s
        for s in (
            "active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped",
            "draft", "unknown",
        )
    },
    "MedicationDispense": {
        "preparation": "active",
        "in-progress": "active",
        "on-hold": "on-hold",
        "completed": "dispensed",
        "cancelled": "cancelled",
        "entered-in-error": "entered-in-error",
        "stopped": "stopped",
        "declined": "declined",
        "unknown": "unknown",
    },
    "MedicationStatement": {
        s: s
        for s in (
            "active", "completed", "entered-in-error", "intended", "stopped", "on-hold",
            "unknown", "not-taken",
        )
    },
}

_RXNORM_SYSTEMS = frozenset({RXNORM_SYSTEM, RXNORM_SYSTEM + "/"})
_NDC_SYSTEMS = frozenset({NDC_SYSTEM, NDC_SYSTEM + "/"})
#: WHO ATC: the FHIR URI (HL7 Terminology NamingSystem v3-WC) and its OID form.
_ATC_SYSTEMS = frozenset({ATC_SYSTEM, ATC_SYSTEM + "/", "urn:oid:2.16.840.1.113883.6.73"})

#: Observation codes that identify the labs the policy uses: the core's table
#: (:mod:`b12drugs.labcodes`; serum B12, holotranscobalamin, methylmalonic acid,
#: homocysteine), every code read in a public source.  Folate is matched by text only.
LAB_LOINC = labcodes.LAB_LOINC
_LAB_TEXT = labcodes.LAB_TEXT
_INTERPRETATION = labcodes.FLAGS
#: Statuses of an Observation that carry no result yet (``registered``) or a withdrawn one.
_NO_RESULT = frozenset({"registered", "cancelled", "entered-in-error"})

_ACTIVE_CONDITION = frozenset({"active", "recurrence", "relapse"})


@dataclass
class _Where:
    """Where a resource is: file, line and the JSON pointer of the resource."""

    source: str = ""
    line: int | None = None
    pointer: str = ""

    def at(self, pointer: str | None = None) -> SourceLocation:
        ptr = self.pointer if pointer is None else pointer
        return SourceLocation(
            file=_tail(self.source) or None, line=self.line, pointer=_tail(ptr) or None
        )


def _tail(text: str, limit: int = MAX_SHORT) -> str:
    """Keep the end of long names/pointers (the informative part) within ShortText."""
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid"))


# -- medication -------------------------------------------------------------------------
@dataclass
class _Drug:
    codings: list[Coding] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    #: (JSON pointer, why) of each RxNorm/NDC coding left out, for an ``info`` notice.
    dropped: list[tuple[str, str]] = field(default_factory=list)


def _shown(code: str) -> str:
    """A drug code as shown in a notice: codes are not patient data, but a misfiled
    field could be, so only the first characters are shown."""
    return repr(code if len(code) <= 20 else code[:20] + "…")


def _ndc_problem(code: str) -> str:
    if "-" in code:
        return "is not a hyphenated 10-digit NDC (4-4-2, 5-3-2, 5-4-1) or 5-4-2 NDC"
    return "is not 10/11 digits (11 digits, or 10 digits with hyphens)"


def _codeable_drug(cc: Mapping[str, Any], ptr: str, drug: _Drug) -> None:
    text = get_str(cc, "text", ptr, max_len=MAX_TEXT)
    if text and text.strip():
        drug.texts.append(text.strip())
    for c, cptr in objects(cc, "coding", ptr):
        system = get_str(c, "system", cptr, max_len=MAX_SHORT)
        code = get_str(c, "code", cptr, max_len=MAX_SHORT)
        display = get_str(c, "display", cptr, max_len=MAX_TEXT)
        display = display.strip() if display and display.strip() else None
        code = code.strip() if code else None
        if not code:
            if display:
                drug.texts.append(display)
            continue
        if system in _RXNORM_SYSTEMS:
            if code.isdigit() and len(code) <= 10:
                drug.codings.append(Coding(system=RXNORM_SYSTEM, code=code, display=display))
                continue
            drug.invalid.append(f"invalid RxNorm code {code[:40]!r}")
            drug.dropped.append((cptr, f"RxNorm code {_shown(code)} is not 1-10 digits"))
        elif system in _NDC_SYSTEMS:
            try:
                ndc = normalize_ndc(code)
            except ValueError:
                drug.invalid.append(f"invalid NDC {code[:40]!r}")
                drug.dropped.append((cptr, f"NDC {_shown(code)} {_ndc_problem(code)}"))
            else:
                drug.codings.append(Coding(system=NDC_SYSTEM, code=ndc, display=display))
                continue
        elif system in _ATC_SYSTEMS:
            # Handed on as an ATC coding; the resolver says when a code is not well formed.
            drug.codings.append(Coding(system=ATC_SYSTEM, code=code, display=display))
            continue
        elif system:
            drug.codings.append(Coding(system=system, code=code, display=display))
            continue
        if display:  # an invalid or system-less code: keep what it says in words
            drug.texts.append(display)


def _medication_resource(med: Mapping[str, Any], ptr: str, drug: _Drug) -> None:
    code = get_obj(med, "code", ptr)
    if code is not None:
        _codeable_drug(code, f"{ptr}/code", drug)
    if drug.codings or drug.texts:
        return
    # No product code: a compounded/ingredient-list Medication.  Use the ingredients.
    for ing, iptr in objects(med, "ingredient", ptr):
        item = get_obj(ing, "itemCodeableConcept", iptr)
        if item is not None:
            _codeable_drug(item, f"{iptr}/itemCodeableConcept", drug)
            continue
        r5 = get_obj(ing, "item", iptr)  # R5 CodeableReference
        concept = get_obj(r5, "concept", f"{iptr}/item") if r5 is not None else None
        if concept is not None:
            _codeable_drug(concept, f"{iptr}/item/concept", drug)


def _find_medication(
    reference: str,
    resource: Mapping[str, Any],
    ptr: str,
    medications: Mapping[str, Mapping[str, Any]],
) -> tuple[Mapping[str, Any], str] | None:
    """The referenced Medication and its pointer (or the reference key), if found."""
    if reference.startswith("#"):
        for res, rptr in objects(resource, "contained", ptr):
            if res.get("id") == reference[1:] and res.get("resourceType") == "Medication":
                return res, rptr
        return None
    for key in (reference, reference.split("/_history/")[0]):
        found = medications.get(key)
        if found is not None:
            return found, key
    mid = reference_id(reference, "Medication")
    if mid is not None:
        for key in (f"Medication/{mid}", f"urn:uuid:{mid}"):
            found = medications.get(key)
            if found is not None:
                return found, key
    return None


def _drug(
    resource: Mapping[str, Any], ptr: str, medications: Mapping[str, Mapping[str, Any]]
) -> _Drug:
    drug = _Drug()
    cc = get_obj(resource, "medicationCodeableConcept", ptr)
    ref = get_obj(resource, "medicationReference", ptr)
    ref_ptr = f"{ptr}/medicationReference"
    r5 = get_obj(resource, "medication", ptr)  # R5: medication is a CodeableReference
    if r5 is not None and cc is None and ref is None:
        cc = get_obj(r5, "concept", f"{ptr}/medication")
        ref = get_obj(r5, "reference", f"{ptr}/medication")
        ref_ptr = f"{ptr}/medication/reference"
    if cc is not None:
        _codeable_drug(cc, f"{ptr}/medicationCodeableConcept", drug)
    elif ref is not None:
        reference = get_str(ref, "reference", ref_ptr, max_len=MAX_SHORT)
        display = get_str(ref, "display", ref_ptr, max_len=MAX_TEXT)
        found = _find_medication(reference, resource, ptr, medications) if reference else None
        if found is not None:
            med, med_ptr = found
            if not isinstance(med, Mapping):
                raise FhirDataError(ref_ptr, "referenced Medication is not an object")
            _medication_resource(med, med_ptr if med_ptr.startswith("/") else ptr, drug)
        if not drug.codings and not drug.texts:
            if display and display.strip():
                drug.texts.append(display.strip())
            elif found is None:
                what = reference[:200] if reference else "(no reference)"
                drug.texts.append(f"Medication reference {what!r} could not be found in the input")
    else:
        raise FhirDataError(ptr, "no medicationCodeableConcept or medicationReference")
    return drug


# -- orders -----------------------------------------------------------------------------
def _status(resource: Mapping[str, Any], rtype: str, ptr: str) -> str | None:
    raw = get_str(resource, "status", ptr, max_len=64)
    if raw is None:
        return None  # required in FHIR; screened rather than silently dropped
    word = raw.strip().lower()
    return _STATUS[rtype].get(word, word)


def _days(duration: Mapping[str, Any], ptr: str) -> int | None:
    value = get_num(duration, "value", ptr)
    if value is None:
        return None
    key = "code" if get_str(duration, "code", ptr) else "unit"
    unit = get_str(duration, key, ptr) or "d"
    unit = unit.strip().lower()
    unit = {"day": "d", "days": "d", "week": "wk", "weeks": "wk", "month": "mo",
            "months": "mo", "year": "a", "years": "a", "hour": "h", "hours": "h"}.get(unit, unit)
    per = DAYS_PER_UNIT.get(unit)
    if per is None:
        raise FhirDataError(f"{ptr}/{key}", "not a duration unit (h, d, wk, mo, a)")
    days = round(value * per)
    if not 0 <= days <= 36500:
        raise FhirDataError(f"{ptr}/value", "supply duration out of range (0 to 100 years)")
    return days



def _order_id(resource: Mapping[str, Any], rtype: str, where: _Where) -> str:
    rid = resource.get("id")
    if isinstance(rid, str) and is_fhir_id(rid):
        return f"{rtype}/{rid}"
    if rid is not None and not isinstance(rid, str):
        raise FhirDataError(f"{where.pointer}/id", f"expected a string, got {json_type(rid)}")
    at = f"line {where.line}" if where.line is not None else ""
    at += where.pointer
    return _tail(f"{rtype}@{at or 'input'}")


def _subject_patient(resource: Mapping[str, Any], ptr: str) -> str | None:
    for key in ("subject", "patient"):
        ref = get_obj(resource, key, f"{ptr}")
        if ref is None:
            continue
        reference = get_str(ref, "reference", f"{ptr}/{key}", max_len=MAX_SHORT)
        if reference:
            return reference_id(reference, "Patient")
    return None


# -- optional detail ------------------------------------------------------------------------
#: A note about an order that is still screened: (JSON pointer, message).  Turned into an
#: ``info`` :class:`~b12drugs.models.Notice` by :func:`order_records`.
_Note = tuple[str, str]

#: Where each medication resource type keeps its start date, in order of preference.
_START_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "MedicationRequest": (("authoredOn",), ("dispenseRequest", "validityPeriod", "start")),
    "MedicationDispense": (("whenHandedOver",), ("whenPrepared",)),
    "MedicationStatement": (("effectiveDateTime",), ("effectivePeriod", "start"),
                            ("dateAsserted",)),
}

#: Order fields filled from optional detail, and the resource field each comes from.
_DETAIL_FIELDS = ("dose", "frequency", "route", "daily_dose_mg", "start_date", "days_supply")


def _dropped(exc: FhirDataError, what: str, rest: str = "screened without it") -> _Note:
    """A note for optional detail left out.  ``exc.message`` never holds the value."""
    return exc.pointer, f"{_tail(exc.pointer)}: {what} could not be read ({exc.message}); {rest}"


def _clip(text: str | None) -> str | None:
    return text if text is None or len(text) <= MAX_SHORT else text[: MAX_SHORT - 1] + "…"


def _dosage_text(raw: object) -> str | None:
    """The first instruction's free text, kept when the structured dosage is unreadable."""
    first = raw[0] if isinstance(raw, list) and raw else raw
    text = first.get("text") if isinstance(first, Mapping) else None
    return _clip(text.strip()) if isinstance(text, str) and text.strip() else None


def _dosage(resource: Mapping[str, Any], key: str, ptr: str, notes: list[_Note]) -> DoseFacts:
    """Dose facts; an unreadable dosage is left out whole (a partial one could
    under-estimate the daily dose), keeping the first instruction's text."""
    try:
        facts = dose_facts(objects(resource, key, ptr))
    except FhirDataError as exc:
        text = _dosage_text(resource.get(key))
        notes.append(_dropped(exc, "the dosage", "screened without it" if text is None
                              else "screened without it (its text is kept)"))
        return DoseFacts(dose=text)
    facts.dose, facts.frequency, facts.route = (
        _clip(facts.dose), _clip(facts.frequency), _clip(facts.route))
    daily = facts.daily_dose_mg
    if daily is not None and not (0 <= daily < float("inf")):
        notes.append(_dropped(FhirDataError(f"{ptr}/{key}", "out of range"), "the daily dose"))
        facts.daily_dose_mg = None
    return facts


def _date_at(resource: Mapping[str, Any], path: tuple[str, ...], ptr: str) -> date | None:
    obj: Mapping[str, Any] | None = resource
    for key in path[:-1]:
        assert obj is not None
        obj = get_obj(obj, key, ptr)
        if obj is None:
            return None
        ptr = f"{ptr}/{escape(key)}"
    assert obj is not None
    return get_date(obj, path[-1], ptr)


def _start_date(
    resource: Mapping[str, Any], rtype: str, ptr: str, notes: list[_Note]
) -> date | None:
    """The first readable start date; an unreadable one is left out (the next is tried)."""
    for path in _START_PATHS[rtype]:
        try:
            when = _date_at(resource, path, ptr)
        except FhirDataError as exc:
            notes.append(_dropped(exc, f"the start date ({'.'.join(path)})"))
            continue
        if when is not None:
            return when
    return None


def _days_supply(
    resource: Mapping[str, Any], rtype: str, ptr: str, notes: list[_Note]
) -> int | None:
    try:
        if rtype == "MedicationDispense":
            ds = get_obj(resource, "daysSupply", ptr)
            return _days(ds, f"{ptr}/daysSupply") if ds is not None else None
        if rtype == "MedicationRequest":
            dispense = get_obj(resource, "dispenseRequest", ptr)
            dptr = f"{ptr}/dispenseRequest"
            esd = get_obj(dispense, "expectedSupplyDuration", dptr) if dispense else None
            return _days(esd, f"{dptr}/expectedSupplyDuration") if esd is not None else None
    except FhirDataError as exc:
        notes.append(_dropped(exc, "the days supply"))
    return None


def _convert_order(
    resource: Mapping[str, Any],
    medications: Mapping[str, Mapping[str, Any]],
    where: _Where,
    patient_id: str | None,
    notes: list[_Note],
) -> Order:
    """Identity fields raise :class:`FhirDataError` (the order is rejected); optional
    detail that cannot be read is left out with a note in ``notes``."""
    ptr = where.pointer
    rtype = resource.get("resourceType")
    if rtype not in MEDICATION_TYPES:
        raise FhirDataError(f"{ptr}/resourceType", f"not a medication resource: {rtype!r:.60}")
    # -- identity: what the drug is, whose, and whether it is current ----------------------
    order_id = _order_id(resource, rtype, where)
    status = _status(resource, rtype, ptr)
    if rtype == "MedicationRequest" and get_bool(resource, "doNotPerform", ptr):
        status = "not-taken"
    if patient_id is None:
        patient_id = _subject_patient(resource, ptr)
    drug = _drug(resource, ptr, medications)
    texts = list(dict.fromkeys(drug.texts))
    identified = bool(drug.codings or texts)
    for cptr, why in drug.dropped:
        notes.append((cptr, f"{_tail(cptr)}: {why}; the coding was left out and the order "
                            "screened on its other codes and text" if identified else
                            f"{_tail(cptr)}: {why}; nothing else names the drug, so it is "
                            "reported as not recognised"))
    if not identified and drug.invalid:
        texts = ["; ".join(drug.invalid)]
    text = texts[0] if texts else None

    # -- optional detail: left out with a note when unreadable ----------------------------
    dosage_key = "dosage" if rtype == "MedicationStatement" else "dosageInstruction"
    facts = _dosage(resource, dosage_key, ptr, notes)
    detail: dict[str, Any] = {
        "dose": facts.dose,
        "frequency": facts.frequency,
        "route": facts.route,
        "daily_dose_mg": facts.daily_dose_mg,
        "days_supply": _days_supply(resource, rtype, ptr, notes),
        "start_date": _start_date(resource, rtype, ptr, notes),
    }
    identity: dict[str, Any] = {
        "id": order_id,
        "patient_id": patient_id,
        "codings": tuple(dict.fromkeys(drug.codings)),
        "text": text,
        "status": status,
        "source": where.at(),
    }
    try:
        return Order(**identity, **detail)
    except ValidationError as exc:  # a detail value the model refuses: leave it out too
        bad = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
        if not bad or not bad <= set(_DETAIL_FIELDS):
            raise
        for name in sorted(bad):
            fptr = f"{ptr}/{dosage_key}" if name in ("dose", "frequency", "route",
                                                      "daily_dose_mg") else ptr
            notes.append(_dropped(FhirDataError(fptr, "value out of range"),
                                  f"the {name.replace('_', ' ')}"))
            detail[name] = None
        return Order(**identity, **detail)



def _rejection(where: _Where, exc: Exception, resource: object) -> Rejection:
    if isinstance(exc, FhirDataError):
        loc, reason = where.at(exc.pointer), exc.message
    elif isinstance(exc, ValidationError):
        loc, reason = where.at(), f"value not accepted ({_first_error(exc)})"
    else:  # a bug in this adapter must not stop the rest of the input
        loc, reason = where.at(), f"internal error converting resource ({type(exc).__name__})"
    rid = resource.get("id") if isinstance(resource, Mapping) else None
    record_id = rid if isinstance(rid, str) and is_fhir_id(rid) else None
    return Rejection(location=loc, reason=reason[:MAX_TEXT], record_id=record_id)


def _order_or_rejection(
    resource: Mapping[str, Any],
    medications: Mapping[str, Mapping[str, Any]] | None,
    where: _Where,
    patient_id: str | None = None,
    notes: list[_Note] | None = None,
) -> Order | Rejection:
    try:
        return _convert_order(resource, medications or {}, where, patient_id,
                              notes if notes is not None else [])
    except (FhirDataError, ValidationError) as exc:
        return _rejection(where, exc, resource)
    except (TypeError, AttributeError, KeyError, IndexError, RecursionError) as exc:
        return _rejection(where, exc, resource)


def order_from_resource(
    resource: Mapping[str, Any],
    *,
    medications: Mapping[str, Mapping[str, Any]] | None = None,
    source: str = "",
    pointer: str = "",
) -> Order | Rejection:
    """Convert a MedicationRequest, MedicationDispense or MedicationStatement.

    :param resource: the resource as parsed JSON.
    :param medications: Medication resources by reference key (``Medication/<id>``,
        a Bundle entry's ``fullUrl``); ``#id`` references are looked up in the
        resource's own ``contained``.
    :param source: file or request the resource came from (for locations).
    :param pointer: JSON pointer of the resource in its document (``/entry/3/resource``).
    :return: an :class:`Order` whose ``id`` is ``<resourceType>/<id>`` and whose
        ``status`` is mapped as the module docstring says (``unknown`` is kept: callers
        that screen should not screen it, see :func:`record_from_resource`), or a
        :class:`Rejection` naming the JSON pointer of the field that could not be read.
        Optional detail that could not be read (dosage, dates, supply) and invalid
        RxNorm/NDC codings are left out of the Order; the notices saying so are only
        available from :func:`order_records` (this function keeps its old return type).
    """
    return _order_or_rejection(resource, medications, _Where(source, None, pointer))


def _decide(record: Order | Rejection, where: _Where) -> Order | Skip | Rejection:
    if isinstance(record, Order) and record.status is not None:
        status = record.status
        if status == "unknown":
            return Skip(location=where.at(), record_id=record.id,
                        reason="status 'unknown': the sender does not know whether the "
                               "medication is current, so it was not screened")
        if status not in ACTIVE_STATUSES and status not in INACTIVE_STATUSES:
            return Skip(location=where.at(), record_id=record.id,
                        reason=f"status {status[:40]!r} is not a FHIR medication status; "
                               "not screened")
    return record


def record_from_resource(
    resource: Mapping[str, Any],
    *,
    medications: Mapping[str, Mapping[str, Any]] | None = None,
    source: str = "",
    pointer: str = "",
    line: int | None = None,
    patient_id: str | None = None,
) -> Order | Skip | Rejection:
    """Like :func:`order_from_resource`, with the parser's screening decision.

    Status ``unknown`` or a word outside the FHIR value sets becomes a
    :class:`Skip` with the reason.  ``patient_id`` overrides the id derived from
    ``subject`` (a Bundle resolves ``urn:uuid`` subjects through its ``fullUrl``).
    Kept for compatibility: it drops the notices about left-out detail and codes;
    :func:`order_records` returns them too (and is what the input format uses).
    """
    where = _Where(source, line, pointer)
    return _decide(_order_or_rejection(resource, medications, where, patient_id), where)


def order_records(
    resource: Mapping[str, Any],
    *,
    medications: Mapping[str, Mapping[str, Any]] | None = None,
    source: str = "",
    pointer: str = "",
    line: int | None = None,
    patient_id: str | None = None,
    decide: bool = True,
) -> list[Record]:
    """:func:`record_from_resource` followed by its ``info`` notices.

    One Order/Skip/Rejection, then, for an Order that will be screened (not a Skip, not
    an inactive status), one :class:`~b12drugs.models.Notice` per optional detail left
    out (unreadable dosage, date or supply) and per invalid RxNorm/NDC coding dropped,
    each naming the JSON pointer and never the patient's value.  ``decide=False`` skips
    the parser's screening decision (status ``unknown`` stays on the Order, as with
    :func:`order_from_resource`) for callers that decide themselves.
    """
    where = _Where(source, line, pointer)
    notes: list[_Note] = []
    got = _order_or_rejection(resource, medications, where, patient_id, notes)
    record = _decide(got, where) if decide else got
    if not notes or not isinstance(record, Order) or (record.status or "") in INACTIVE_STATUSES:
        return [record]
    out: list[Record] = [record]
    seen: set[str] = set()
    for note_ptr, message in notes:
        if note_ptr in seen:  # e.g. one bad dispenseRequest read for supply and date
            continue
        seen.add(note_ptr)
        out.append(Notice(kind="info", message=message[:MAX_TEXT], order_id=record.id,
                          patient_id=record.patient_id,
                          location=str(where.at(note_ptr))[:MAX_SHORT]))
    return out


# -- patient context ----------------------------------------------------------------------
def _plain_status(cc: object) -> set[str] | None:
    """The codes of a well-typed status CodeableConcept, lower case, without building a
    JSON pointer; ``None`` sends it to the checked path (:func:`_checked_status`), which
    reads the same codes or names the bad field."""
    if cc is None:
        return set()
    if type(cc) is not dict:
        return None
    codings = cc.get("coding")
    if codings is None:
        return set()
    if type(codings) is not list:
        return None
    codes = set()
    for c in codings:
        code = c.get("code", "") if type(c) is dict else None
        if type(code) is not str:
            return None
        codes.add(code.lower())
    return codes


def _status_codes(resource: Mapping[str, Any], key: str, ptr: str) -> set[str]:
    codes = _plain_status(resource.get(key))
    return codes if codes is not None else _checked_status(resource, key, ptr)


def _checked_status(resource: Mapping[str, Any], key: str, ptr: str) -> set[str]:
    cc = get_obj(resource, key, ptr)
    if cc is None:
        return set()
    checked = objects(cc, "coding", f"{ptr}/{key}")
    return {(get_str(c, "code", cptr) or "").lower() for c, cptr in checked}


def _short(value: object, limit: int) -> bool:
    return value is None or (type(value) is str and len(value) <= limit)


def _pick_code(text: str | None, codings: Iterable[tuple[Any, Any, Any]]
               ) -> tuple[str | None, str | None, str | None]:
    """``(system, code, text)`` from a concept's text and its codings' ``(system, code,
    display)``: the first coding with a code, and the text or else a display."""
    system = value = None
    for s, v, d in codings:
        if system is None and v:
            system, value = s, v
        text = text or d
    return system, value, text


def _plain_code(code: Mapping[str, Any]) -> tuple[str | None, str | None, str | None] | None:
    """``(system, code, text)`` of a well-typed CodeableConcept without building JSON
    pointers (15 conditions a call; half their reading time went to pointers); ``None``
    sends it to the checked path (:func:`_checked_code`), which reads the same values
    or names the bad field."""
    text = code.get("text")
    codings = code.get("coding")
    if not _short(text, MAX_TEXT) or not (codings is None or type(codings) is list):
        return None
    triples = []
    for c in codings or ():
        if type(c) is not dict:
            return None
        s, v, d = c.get("system"), c.get("code"), c.get("display")
        if not (_short(s, MAX_SHORT) and _short(v, MAX_SHORT) and _short(d, MAX_TEXT)):
            return None
        triples.append((s, v, d))
    return _pick_code(text, triples)


def _checked_code(code: Mapping[str, Any], cptr: str) -> tuple[str | None, str | None,
                                                               str | None]:
    text = get_str(code, "text", cptr, max_len=MAX_TEXT)
    return _pick_code(text, (
        (get_str(c, "system", p, max_len=MAX_SHORT), get_str(c, "code", p, max_len=MAX_SHORT),
         get_str(c, "display", p, max_len=MAX_TEXT))
        for c, p in objects(code, "coding", cptr)))


def condition_from_resource(resource: Mapping[str, Any], pointer: str = "") -> Condition | None:
    """A Condition resource as a :class:`Condition`; ``None`` when it was entered in
    error or refuted.  Clinical status active/recurrence/relapse, or absent, is active.

    :raises FhirDataError: a field has the wrong type.
    """
    ptr = pointer
    if {"entered-in-error", "refuted"} & _status_codes(resource, "verificationStatus", ptr):
        return None
    clinical = _status_codes(resource, "clinicalStatus", ptr)
    active = not clinical or bool(_ACTIVE_CONDITION & clinical)
    code = get_obj(resource, "code", ptr)
    if code is None:
        return None
    system, value, text = _plain_code(code) or _checked_code(code, f"{ptr}/code")
    if value is None and not text:
        return None
    return Condition(system=system, code=value, text=text, active=active)


def _lab_kind(code: Mapping[str, Any], ptr: str) -> tuple[str | None, str | None]:
    loinc = None
    texts = [get_str(code, "text", ptr) or ""]
    for c, cptr in objects(code, "coding", ptr):
        system = get_str(c, "system", cptr)
        value = get_str(c, "code", cptr)
        texts.append(get_str(c, "display", cptr) or "")
        if system == LOINC_SYSTEM and value in LAB_LOINC:
            return LAB_LOINC[value], value
        if system == LOINC_SYSTEM and value:
            loinc = loinc or value
    joined = " ".join(texts).lower()
    for needle, kind in _LAB_TEXT:
        if needle in joined:
            return kind, loinc
    return None, loinc


def lab_from_observation(resource: Mapping[str, Any], pointer: str = "") -> LabResult | None:
    """An Observation of serum B12, MMA, homocysteine or folate as a :class:`LabResult`.

    Recognised by LOINC code (:data:`LAB_LOINC`) or by words in its text/displays.
    Interpretation comes from ``interpretation`` (L/LL/H/HH/N) or else from comparing
    the value with ``referenceRange`` low/high.  Other observations, and cancelled or
    entered-in-error ones, give ``None``.

    :raises FhirDataError: a field has the wrong type.
    """
    ptr = pointer
    status = get_str(resource, "status", ptr)
    if status in _NO_RESULT:
        return None
    code = get_obj(resource, "code", ptr)
    if code is None:
        return None
    kind, loinc = _lab_kind(code, f"{ptr}/code")
    if kind is None:
        return None
    value = unit = None
    q = get_obj(resource, "valueQuantity", ptr)
    text_value = get_str(resource, "valueString", ptr, max_len=MAX_SHORT)
    if q is None and text_value:
        value, unit = _value_string(text_value)
    if q is not None:
        value = get_num(q, "value", f"{ptr}/valueQuantity")
        unit = get_str(q, "unit", f"{ptr}/valueQuantity", max_len=MAX_SHORT) or get_str(
            q, "code", f"{ptr}/valueQuantity", max_len=MAX_SHORT
        )
    when = get_date(resource, "effectiveDateTime", ptr) or get_date(
        resource, "effectiveInstant", ptr)
    period = get_obj(resource, "effectivePeriod", ptr)
    if when is None and period is not None:
        when = get_date(period, "start", f"{ptr}/effectivePeriod")
    when = when or get_date(resource, "issued", ptr)
    interpretation = None
    for cc, iptr in objects(resource, "interpretation", ptr):
        for c, cptr in objects(cc, "coding", iptr):
            interpretation = interpretation or _INTERPRETATION.get(
                (get_str(c, "code", cptr) or "").upper()
            )
    if interpretation is None and value is not None:
        for rr, rptr in objects(resource, "referenceRange", ptr)[:1]:
            low = get_obj(rr, "low", rptr)
            high = get_obj(rr, "high", rptr)
            lo = get_num(low, "value", f"{rptr}/low") if low is not None else None
            hi = get_num(high, "value", f"{rptr}/high") if high is not None else None
            if lo is not None and value < lo:
                interpretation = "low"
            elif hi is not None and value > hi:
                interpretation = "high"
            elif lo is not None or hi is not None:
                interpretation = "normal"
    return LabResult(
        kind=kind,  # type: ignore[arg-type]
        value=value,
        unit=unit,
        code=loinc,
        date=when,
        interpretation=interpretation,  # type: ignore[arg-type]
    )


_VALUE_STRING = re.compile(r"^\s*[<>]?=?\s*(\d+(?:[.,]\d+)?)\s*([A-Za-z\u00b5\u03bc/]+)?\s*$")


def _value_string(text: str) -> tuple[float | None, str | None]:
    """A number (and unit) written as text, as some labs send ``"<150 pg/mL"``."""
    m = _VALUE_STRING.match(text)
    if m is None:
        return None, None
    return float(m.group(1).replace(",", ".")), m.group(2)


def _patient_facts(patient: Mapping[str, Any], ptr: str) -> tuple[date | None, str | None]:
    birth = get_date(patient, "birthDate", ptr, latest=True)  # age never overstated
    gender = get_str(patient, "gender", ptr, max_len=MAX_SHORT)
    return birth, gender


def _context(
    patient_id: str,
    patient: tuple[Mapping[str, Any], str] | None,
    conditions: Iterable[tuple[Mapping[str, Any], str]],
    observations: Iterable[tuple[Mapping[str, Any], str]],
    where: _Where,
    rejections: list[Rejection] | None,
) -> PatientContext:
    birth = sex = None

    def bad(exc: Exception, res: object, ptr: str) -> None:
        if rejections is not None:
            rejections.append(_rejection(_Where(where.source, where.line, ptr), exc, res))

    def read_all(items: Iterable[tuple[Mapping[str, Any], str]],
                 convert: Callable[[Mapping[str, Any], str], _M | None]) -> tuple[_M, ...]:
        """Each resource converted (a bad one rejected), repeats dropped in order.  By
        hash (frozen models): a list membership test compares field by field and made a
        patient's context quadratic in its conditions."""
        out: list[_M] = []
        for res, ptr in items:
            try:
                got = convert(res, ptr)
            except (FhirDataError, ValidationError) as exc:
                bad(exc, res, ptr)
                continue
            if got is not None:
                out.append(got)
        return tuple(dict.fromkeys(out))

    if patient is not None:
        try:
            birth, sex = _patient_facts(*patient)
        except (FhirDataError, ValidationError) as exc:
            bad(exc, patient[0], patient[1])
    conds = read_all(conditions, condition_from_resource)
    labs = read_all(observations, lab_from_observation)
    loc_ptr = patient[1] if patient is not None else where.pointer
    return PatientContext(
        id=patient_id,
        birth_date=birth,
        sex=sex,
        conditions=conds,
        labs=labs,
        source=where.at(loc_ptr),
    )


def patient_context(
    patient: Mapping[str, Any] | None,
    conditions: Iterable[Mapping[str, Any]] = (),
    observations: Iterable[Mapping[str, Any]] = (),
    *,
    patient_id: str | None = None,
    rejections: list[Rejection] | None = None,
) -> PatientContext:
    """What the alert policy needs to know about a patient.

    :param patient: the Patient resource (``id``, ``birthDate``, ``gender``), or ``None``.
    :param conditions: Condition resources (see :func:`condition_from_resource`).
    :param observations: Observation resources; only B12-related labs are kept
        (see :func:`lab_from_observation`).
    :param patient_id: the id to use; defaults to ``patient["id"]``.
    :param rejections: when given, a :class:`Rejection` is appended for each resource
        that could not be read (it is otherwise left out).
    :raises ValueError: neither ``patient_id`` nor a usable ``patient["id"]`` is given.
    """
    pid = patient_id
    if pid is None and patient is not None:
        raw = patient.get("id")
        pid = raw if isinstance(raw, str) else None
    if not pid or len(pid) > MAX_SHORT:
        raise ValueError("patient_context needs a patient id (patient_id or Patient.id)")
    cond_ptrs = [(c, f"/conditions/{i}") for i, c in enumerate(conditions)
                 if isinstance(c, Mapping)]
    obs_ptrs = [(o, f"/observations/{i}") for i, o in enumerate(observations)
                if isinstance(o, Mapping)]
    return _context(
        pid, (patient, "") if patient is not None else None, cond_ptrs, obs_ptrs, _Where(),
        rejections,
    )


# -- bundles ------------------------------------------------------------------------------
@dataclass
class _Group:
    patient: tuple[Mapping[str, Any], str] | None = None
    conditions: list[tuple[Mapping[str, Any], str]] = field(default_factory=list)
    observations: list[tuple[Mapping[str, Any], str]] = field(default_factory=list)
    orders: list[tuple[Mapping[str, Any], str]] = field(default_factory=list)


_MAX_NESTING = 3


def records_from_bundle(
    bundle: Mapping[str, Any], *, source: str = "", line: int | None = None, pointer: str = ""
) -> Iterator[Record]:
    """Records of one Bundle (transaction, batch, collection, searchset ...).

    Per patient (found through ``subject``/``patient`` references, resolved through
    the Bundle's ``fullUrl`` entries; a Bundle with exactly one Patient owns the orders
    that name no subject): a :class:`PatientContext` when a Patient, Condition or
    Observation was present, then one Order/Skip/Rejection per medication resource (each
    followed by its ``info`` notices, see :func:`order_records`), then :class:`PatientEnd`.
    Orders of no known patient come last, without PatientEnd.
    Entries that are not objects, resources without a ``resourceType`` and medication
    resources that cannot be read are Rejections located by JSON pointer
    (``/entry/3/resource``).  Other resource types (Encounter, Claim ...) are ignored:
    only medication resources count as records read.  Nested Bundles are read up to
    three levels deep.
    """
    yield from _bundle(bundle, _Where(source, line, pointer), 0)


def _bundle(bundle: Mapping[str, Any], where: _Where, depth: int) -> Iterator[Record]:
    base = where.pointer
    entries = bundle.get("entry")
    if entries is None:
        return
    if not isinstance(entries, list):
        yield Rejection(location=where.at(f"{base}/entry"),
                        reason=f"Bundle.entry must be an array, got {json_type(entries)}")
        return
    medications: dict[str, Mapping[str, Any]] = {}
    patients_by_url: dict[str, str] = {}
    all_patients: list[str] = []
    resources: list[tuple[Mapping[str, Any], str, str, str | None]] = []  # res, type, ptr, url
    problems: list[Record] = []
    for i, entry in enumerate(entries):
        eptr = f"{base}/entry/{i}"
        if not isinstance(entry, Mapping):
            problems.append(Rejection(location=where.at(eptr),
                                      reason=f"entry must be an object, got {json_type(entry)}"))
            continue
        resource = entry.get("resource")
        if resource is None:
            continue  # e.g. a DELETE in a transaction, a response entry
        rptr = f"{eptr}/resource"
        if not isinstance(resource, Mapping):
            problems.append(Rejection(location=where.at(rptr),
                                      reason=f"resource must be an object, got "
                                             f"{json_type(resource)}"))
            continue
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str):
            problems.append(Rejection(location=where.at(f"{rptr}/resourceType"),
                                      reason="resource has no resourceType string"))
            continue
        full_url = entry.get("fullUrl")
        full_url = full_url if isinstance(full_url, str) and len(full_url) <= MAX_SHORT else None
        rid = resource.get("id")
        rid = rid if isinstance(rid, str) and len(rid) <= MAX_SHORT else None
        if rtype == "Medication":
            for key in (full_url, f"Medication/{rid}" if rid else None):
                if key:
                    medications[key] = resource
        elif rtype == "Patient":
            pid = rid or (reference_id(full_url, "Patient") if full_url else None)
            if pid and full_url:
                patients_by_url[full_url] = pid
            if pid and pid not in all_patients:
                all_patients.append(pid)
        resources.append((resource, rtype, rptr, full_url))

    groups: dict[str | None, _Group] = {}

    def group(pid: str | None) -> _Group:
        g = groups.get(pid)
        if g is None:
            g = groups[pid] = _Group()
        return g

    nested: list[tuple[Mapping[str, Any], str]] = []
    for resource, rtype, rptr, full_url in resources:
        if rtype == "Patient":
            rid = resource.get("id")
            pid = rid if isinstance(rid, str) and 0 < len(rid) <= MAX_SHORT else None
            if pid is None and full_url is not None:
                pid = patients_by_url.get(full_url)
            if pid is not None:
                group(pid).patient = (resource, rptr)
            continue
        if rtype == "Bundle":
            nested.append((resource, rptr))
            continue
        if rtype not in MEDICATION_TYPES and rtype not in ("Condition", "Observation"):
            continue
        pid = _patient_of(resource, rptr, patients_by_url, all_patients)
        g = group(pid)
        if rtype in MEDICATION_TYPES:
            g.orders.append((resource, rptr))
        elif pid is not None:
            (g.conditions if rtype == "Condition" else g.observations).append((resource, rptr))

    yield from problems
    for pid, g in groups.items():
        if pid is None:
            continue
        if g.patient is not None or g.conditions or g.observations:
            rejections: list[Rejection] = []
            ctx = _context(pid, g.patient, g.conditions, g.observations, where, rejections)
            yield from rejections
            yield ctx
        for resource, rptr in g.orders:
            yield from order_records(resource, medications=medications, source=where.source,
                                     line=where.line, pointer=rptr, patient_id=pid)
        yield PatientEnd(patient_id=pid)
    orphans = groups.get(None)
    if orphans is not None:
        for resource, rptr in orphans.orders:
            yield from order_records(resource, medications=medications, source=where.source,
                                     line=where.line, pointer=rptr)
    for resource, rptr in nested:
        if depth + 1 >= _MAX_NESTING:
            yield Rejection(location=where.at(rptr),
                            reason=f"Bundle nested more than {_MAX_NESTING} levels deep")
            continue
        yield from _bundle(resource, _Where(where.source, where.line, rptr), depth + 1)


def _patient_of(
    resource: Mapping[str, Any],
    ptr: str,
    patients_by_url: Mapping[str, str],
    patient_ids: list[str],
) -> str | None:
    """The patient a resource belongs to, or ``None`` (bad references are left to the
    order conversion, which rejects them with their pointer)."""
    for key in ("subject", "patient"):
        ref = resource.get(key)
        if not isinstance(ref, Mapping):
            continue
        reference = ref.get("reference")
        if not isinstance(reference, str) or len(reference) > MAX_SHORT:
            continue
        if reference in patients_by_url:
            return patients_by_url[reference]
        pid = reference_id(reference, "Patient")
        if pid and len(pid) <= MAX_SHORT:
            return pid
        return None
    return patient_ids[0] if len(patient_ids) == 1 else None


def records_from_resource(
    resource: Mapping[str, Any], *, source: str = "", line: int | None = None, pointer: str = ""
) -> Iterator[Record]:
    """Records of one stand-alone resource (a document or an NDJSON line).

    A Bundle is read with :func:`records_from_bundle`; a medication resource gives one
    Order/Skip/Rejection and its notices (:func:`order_records`); a Patient, Condition
    or B12-related Observation gives a partial :class:`PatientContext` (the engine merges
    them by patient id); anything else gives nothing.
    """
    rtype = resource.get("resourceType")
    where = _Where(source, line, pointer)
    if rtype == "Bundle":
        yield from _bundle(resource, where, 0)
    elif rtype in MEDICATION_TYPES:
        yield from order_records(resource, source=source, line=line, pointer=pointer)
    elif rtype in ("Patient", "Condition", "Observation"):
        if rtype == "Patient":
            raw = resource.get("id")
            pid = raw if isinstance(raw, str) and 0 < len(raw) <= MAX_SHORT else None
        else:
            pid = _patient_of(resource, pointer, {}, [])
        if pid is None:
            return
        rejections: list[Rejection] = []
        item = [(resource, pointer)]
        ctx = _context(
            pid,
            item[0] if rtype == "Patient" else None,
            item if rtype == "Condition" else (),
            item if rtype == "Observation" else (),
            where,
            rejections,
        )
        yield from rejections
        if rtype == "Patient" or ctx.conditions or ctx.labs:
            yield ctx


def json_pointer(*parts: str | int) -> str:
    """Build a JSON pointer from unescaped parts."""
    return "".join(f"/{escape(str(p))}" for p in parts)

