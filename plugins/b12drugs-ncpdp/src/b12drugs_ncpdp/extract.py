"""Translate one SCRIPT ``Message`` tree into b12drugs records.

Both SCRIPT 10.6 and 2017071 shapes are read by the same code: where the versions
differ (flat ``ProductCode`` + ``ProductCodeQualifier`` versus nested
``ProductCode/Code`` + ``ProductCode/Qualifier``; ``Patient`` versus
``Patient/HumanPatient``; ``Directions`` versus ``Sig/SigText``; diagnosis ``Value``
versus ``Code``) each accessor tries both.  A field that cannot be read raises
:class:`FieldError` with the XPath of the field, which the reader turns into a
rejection of that message; the rest of the input goes on.

Transactions and what they become:

=================  =====================================================  ==========
transaction        medication element(s)                                  status
=================  =====================================================  ==========
NewRx              MedicationPrescribed                                   active
RxFill             MedicationDispensed (else MedicationPrescribed)        active
RxRenewalRequest   MedicationDispensed (else MedicationPrescribed)        active
RxChangeRequest    MedicationPrescribed, and each MedicationRequested      active /
                                                                          draft
CancelRx           -- a :class:`Skip` with the reason                     --
other              -- a :class:`Skip` ("carries no prescription")         --
=================  =====================================================  ==========

An RxFill whose ``FillStatus`` is ``NotDispensed`` is skipped with that reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from b12drugs.models import (
    MAX_TEXT,
    NDC_SYSTEM,
    RXNORM_SYSTEM,
    Coding,
    Condition,
    Order,
    PatientContext,
    Rejection,
    Skip,
    SourceLocation,
    normalize_ndc,
)

from .codes import DIAGNOSIS_SYSTEMS, NDC_QUALIFIER, RXNORM_QUALIFIERS, other_system
from .tree import Node

SHORT = 256
_RXCUI = re.compile(r"^\d{1,10}$")
_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})")
#: Rejection reasons name the field (its XPath is the pointer), never its value:
#: values are patient data and reports travel further than the input.
_NOT_A_DATE = "not a valid date (expected YYYY-MM-DD); the value is not shown"

#: Identification elements used as the patient id, most specific first.  Only
#: identifiers unique to one patient are listed: payer/processor ids (PayerID,
#: ProcessorIdentificationNumber, ...) are shared by many patients and would merge
#: their contexts and orders, and any element not listed here is ignored for the same
#: reason.  The social security number is never used.
PATIENT_ID_ELEMENTS = (
    "MedicalRecordIdentificationNumberEHR",
    "PatientAccountNumber",
    "MedicareNumber",
    "MedicaidNumber",
)
NEVER_ID = frozenset({"SocialSecurity"})


class FieldError(Exception):
    """A field of a message cannot be read; ``xpath`` names it."""

    def __init__(self, xpath: str, reason: str) -> None:
        super().__init__(f"{xpath}: {reason}")
        self.xpath = xpath
        self.reason = reason


@dataclass
class MessageRecords:
    """What one message yields: the patient context and the orders or skips."""

    message_id: str
    patient: PatientContext | None
    records: list[Order | Skip | Rejection] = field(default_factory=list)


def _text(node: Node | None, xpath: str, limit: int = SHORT) -> str | None:
    if node is None:
        return None
    value = node.text
    if node.overlong or len(value) > limit:
        raise FieldError(xpath, f"value longer than {limit} characters")
    return value or None


def _date(node: Node | None, xpath: str) -> date | None:
    """``Date``/``DateTime`` children or the element's own text, as a date."""
    if node is None:
        return None
    inner = node.child("Date") or node.child("DateTime")
    if inner is not None:
        node, xpath = inner, f"{xpath}/{inner.name}"
    raw = _text(node, xpath, 64)
    if raw is None:
        return None
    m = _DATE.match(raw)
    if m is None:
        raise FieldError(xpath, _NOT_A_DATE)
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise FieldError(xpath, _NOT_A_DATE) from None


def _code_and_qualifier(
    parent: Node, name: str, flat_qualifier: str, xpath: str
) -> tuple[str, str, str] | None:
    """(code, qualifier, xpath of the code) for ``ProductCode``/``DrugDBCode`` in
    either version's shape, or ``None`` when absent or empty."""
    node = parent.child(name)
    if node is None:
        return None
    path = f"{xpath}/{name}"
    code_node = node.child("Code")
    if code_node is not None:  # 2017071: <ProductCode><Code/><Qualifier/></ProductCode>
        code = _text(code_node, f"{path}/Code")
        qualifier = _text(node.child("Qualifier"), f"{path}/Qualifier") or ""
        path = f"{path}/Code"
    else:  # 10.6: <ProductCode/> + sibling <ProductCodeQualifier/> (or an attribute)
        code = _text(node, path)
        qualifier = (
            _text(parent.child(flat_qualifier), f"{xpath}/{flat_qualifier}")
            or node.attrib.get("Qualifier", "").strip()
        )
    if not code:
        return None
    return code, qualifier.upper(), path


def _codings(med: Node, xpath: str) -> list[Coding]:
    drug = med.child("DrugCoded")
    if drug is None:
        return []
    dpath = f"{xpath}/DrugCoded"
    out: list[Coding] = []
    product = _code_and_qualifier(drug, "ProductCode", "ProductCodeQualifier", dpath)
    if product is not None:
        code, qual, _ = product
        ndc: str | None = None
        if qual == NDC_QUALIFIER:
            try:
                ndc = normalize_ndc(code)
            except ValueError:
                ndc = None
        if ndc is not None:
            out.append(Coding(system=NDC_SYSTEM, code=ndc))
        else:
            out.append(Coding(system=other_system("ProductCode", qual), code=code))
    dbcode = _code_and_qualifier(drug, "DrugDBCode", "DrugDBCodeQualifier", dpath)
    if dbcode is not None:
        code, qual, _ = dbcode
        if qual in RXNORM_QUALIFIERS and _RXCUI.match(code):
            out.append(Coding(system=RXNORM_SYSTEM, code=code))
        else:
            out.append(Coding(system=other_system("DrugDBCode", qual), code=code))
    return out


def _strength(med: Node, xpath: str) -> str | None:
    node = med.find("DrugCoded/Strength")
    if node is None:
        return None
    path = f"{xpath}/DrugCoded/Strength"
    value_node = node.child("StrengthValue")
    if value_node is None:  # 10.6: the strength is the element's text
        return _text(node, path)
    value = _text(value_node, f"{path}/StrengthValue") or ""
    unit_node = node.child("StrengthUnitOfMeasure")
    unit = ""
    if unit_node is not None:
        unit = _text(unit_node.child("Code") or unit_node, f"{path}/StrengthUnitOfMeasure") or ""
    out = f"{value} {unit}".strip()
    return out[:SHORT] or None


def _dose(med: Node, xpath: str) -> str | None:
    """Sig text, kept for display only: truncated rather than rejected when long."""
    node = med.find("Sig/SigText") or med.child("Directions")
    if node is None:
        return None
    text = " ".join(node.text.split())
    if len(text) > SHORT:
        text = text[: SHORT - 1] + "…"
    return text or None


def _days_supply(med: Node, xpath: str) -> int | None:
    raw = _text(med.child("DaysSupply"), f"{xpath}/DaysSupply", 16)
    if raw is None:
        return None
    try:
        days = int(raw)
    except ValueError:
        raise FieldError(f"{xpath}/DaysSupply", "not a whole number of days") from None
    if not 0 <= days <= 36500:
        raise FieldError(f"{xpath}/DaysSupply", "out of range (0-36500 days)")
    return days


def _diagnoses(med: Node, xpath: str) -> list[Condition]:
    out: list[Condition] = []
    for diag in med.children_named("Diagnosis"):
        for kind in ("Primary", "Secondary"):
            for entry in diag.children_named(kind):
                path = f"{xpath}/Diagnosis/{kind}"
                code = _text(entry.child("Code") or entry.child("Value"), f"{path}/Code")
                qual = (_text(entry.child("Qualifier"), f"{path}/Qualifier") or "").upper()
                desc = _text(entry.child("Description"), f"{path}/Description", MAX_TEXT)
                if not code and not desc:
                    continue
                system = None
                if code:
                    system = DIAGNOSIS_SYSTEMS.get(qual) or other_system("Diagnosis", qual)
                out.append(Condition(system=system, code=code, text=desc))
    return out


def _patient(
    tx: Node, txpath: str, message_id: str, sender: str | None = None
) -> tuple[str, PatientContext | None]:
    """(patient id, context).  The id is a patient-unique identifier
    (:data:`PATIENT_ID_ELEMENTS`), qualified by the sender (``Header/From``) when the
    message names one -- record numbers are only unique within their sender -- as
    ``<From>:<identifier>``.  Without such an identifier the id is composed from the
    message id (``ncpdp-message:<MessageID>``): no name or birth date goes into it."""
    fallback = f"ncpdp-message:{message_id}"[:SHORT]
    outer = tx.child("Patient")
    if outer is None:
        return fallback, None
    patient = outer.child("HumanPatient") or outer.child("AnimalPatient") or outer
    ppath = f"{txpath}/Patient" + ("" if patient is outer else f"/{patient.name}")
    pid = None
    ident = patient.child("Identification")
    if ident is not None:
        by_name = {c.name: c for c in ident.children if c.name not in NEVER_ID}
        for name in PATIENT_ID_ELEMENTS:
            if name in by_name:
                pid = _text(by_name[name], f"{ppath}/Identification/{name}")
                if pid:
                    break
    if pid and sender:
        pid = f"{sender}:{pid}"[:SHORT]
    pid = pid or fallback
    birth = _date(patient.child("DateOfBirth"), f"{ppath}/DateOfBirth")
    sex = _text(patient.child("Gender"), f"{ppath}/Gender", 32)
    return pid, PatientContext(id=pid, birth_date=birth, sex=sex)


def _medications(tx: Node) -> list[tuple[Node, str]]:
    """(medication element, status) pairs for a transaction with a prescription."""
    name = tx.name
    # Every medication element is read: a message carrying more than one must not have
    # the others dropped silently.
    if name == "NewRx":
        return [(m, "active") for m in tx.children_named("MedicationPrescribed")]
    if name in ("RxFill", "RxRenewalRequest"):
        meds = list(tx.children_named("MedicationDispensed")) or list(
            tx.children_named("MedicationPrescribed"))
        return [(m, "active") for m in meds]
    if name == "RxChangeRequest":
        out = [(m, "active") for m in tx.children_named("MedicationPrescribed")]
        out += [(m, "draft") for m in tx.children_named("MedicationRequested")]
        return out
    return []


def read_message(node: Node, index: int, location: SourceLocation) -> MessageRecords:
    """Records of one ``Message``; raises :class:`FieldError` for unreadable fields."""
    message_id = _text(node.find("Header/MessageID"), "/Message/Header/MessageID") or (
        f"message-{index}"
    )
    body = node.child("Body")
    if body is None:
        raise FieldError("/Message/Body", "no Body element")
    if not body.children:
        raise FieldError("/Message/Body", "the Body holds no transaction")
    tx = body.children[0]
    txpath = f"/Message/Body/{tx.name}"
    here = location.model_copy(update={"pointer": f"message {index} {txpath}"})
    # A Body holds one transaction; any further one is reported, never dropped silently.
    extra: list[Rejection] = [
        Rejection(
            location=location.model_copy(update={
                "pointer": f"message {index} /Message/Body/{other.name}[{k}]"[:256]}),
            reason=f"a Body holds one transaction: this further <{other.name}> "
                   f"(child {k} of Body) was not read",
            record_id=message_id,
        )
        for k, other in enumerate(body.children[1:], start=2)
    ]
    meds = _medications(tx)
    if not meds:
        if tx.name == "CancelRx":
            drug = _text(tx.find("MedicationPrescribed/DrugDescription"),
                         f"{txpath}/MedicationPrescribed/DrugDescription", MAX_TEXT)
            what = f" of {drug!r}" if drug else ""
            reason = f"CancelRx: the prescriber cancelled the prescription{what}; not screened"
        elif tx.name in ("NewRx", "RxFill", "RxChangeRequest", "RxRenewalRequest"):
            raise FieldError(txpath, "no medication element (MedicationPrescribed/...)")
        else:
            reason = f"{tx.name}: this transaction carries no prescription to screen"
        return MessageRecords(message_id, None, [Skip(location=here, reason=reason,
                                                      record_id=message_id), *extra])
    sender = _text(node.find("Header/From"), "/Message/Header/From")
    patient_id, context = _patient(tx, txpath, message_id, sender)
    if tx.name == "RxFill":
        status_node = tx.child("FillStatus")
        if status_node is not None and status_node.child("NotDispensed") is not None:
            reason = "RxFill: the pharmacy reports the prescription NotDispensed; not screened"
            return MessageRecords(message_id, context, [Skip(location=here, reason=reason,
                                                             record_id=message_id), *extra])
    records: list[Order | Skip | Rejection] = []
    conditions: list[Condition] = []
    for n, (med, status) in enumerate(meds):
        mpath = f"{txpath}/{med.name}"
        text = _text(med.child("DrugDescription"), f"{mpath}/DrugDescription", MAX_TEXT)
        codings = _codings(med, mpath)
        if not codings and not text:
            raise FieldError(f"{mpath}/DrugCoded", "no product code or description")
        for cond in _diagnoses(med, mpath):
            if cond not in conditions:
                conditions.append(cond)
        order_id = message_id if len(meds) == 1 else f"{message_id}#{n + 1}"
        records.append(
            Order(
                id=order_id[:SHORT],
                patient_id=patient_id,
                codings=tuple(codings),
                text=text,
                dose=_dose(med, mpath),
                strength=_strength(med, mpath),
                start_date=_date(med.child("WrittenDate"), f"{mpath}/WrittenDate"),
                days_supply=_days_supply(med, mpath),
                status=status,
                source=location.model_copy(update={"pointer": f"message {index} {mpath}"}),
            )
        )
    if context is not None and conditions:
        context = context.model_copy(update={"conditions": tuple(conditions)})
    elif context is None and conditions:
        context = PatientContext(id=patient_id, conditions=tuple(conditions))
    return MessageRecords(message_id, context, [*records, *extra])
