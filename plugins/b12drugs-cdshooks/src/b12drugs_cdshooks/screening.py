"""Turn one hook call into a screening run and keep only what concerns the hook.

The FHIR resources are converted by the FHIR adapter (``b12drugs_fhir.convert``), so
the CDS service and file-based FHIR screening read MedicationRequests identically.
Every medication of the call goes into one :class:`b12drugs.engines.Screener` run:
the draft orders and the patient's current medications, because the policy weighs
them together (several B12-lowering classes at once, B12 therapy, folate).  Which
alerts are returned depends on the hook:

* ``order-select``: alerts that involve at least one *selected* order;
* ``order-sign``: alerts that involve at least one draft order;
* ``patient-view``: every alert on the active medication list.

Order ids are the FHIR references (``MedicationRequest/103``) so that they match
``context.selections``; a draft without an id gets ``MedicationRequest/#<index>``, a
prefetched medication without an id ``MedicationRequest/#prefetch-<index>``.
A selection also matches a draft by the entry's ``fullUrl`` (``urn:uuid:...``); a
selection that matches no draft MedicationRequest is reported (the "could not be
checked" card), never silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from b12drugs.engines import Screener
from b12drugs.models import Alert, Notice, Order, PatientContext, Rejection
from b12drugs.records import Record

from .hookrequest import Context, OrderSelectContext, OrderSignContext
from .outcome import Problem
from .prefetch import PatientData


def _convert() -> Any:
    """The FHIR adapter's conversion module (imported lazily: optional at import time)."""
    from b12drugs_fhir import convert

    return convert


@dataclass
class Screening:
    """What one call's screening found, restricted to the hook's scope."""

    alerts: list[Alert] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)  # labels of in-scope orders
    rejected: list[str] = field(default_factory=list)  # in-scope orders not readable
    other_unresolved: int = 0  # other medications not checked (unresolved or unreadable)
    unavailable: list[str] = field(default_factory=list)  # knowledge sources down
    patient: PatientContext | None = None
    scope: frozenset[str] = frozenset()
    labels: dict[str, str] = field(default_factory=dict)  # order ref -> display text
    context_unreadable: int = 0  # conditions / observations that could not be read
    orders_read: int = 0
    # In-scope remarks that make no card (optional detail left out, e.g. a dosage): kept
    # so that the "identity vs detail" behaviour is visible to callers and tests.
    info: list[str] = field(default_factory=list)
    # order-select selections that match no draft MedicationRequest (by id or fullUrl)
    unmatched_selections: list[str] = field(default_factory=list)
    # in-scope orders of a B12 class or context role (or not known to be free of one)
    b12_orders: frozenset[str] = frozenset()


def _b12_orders(run: Screener, scope: frozenset[str],
                drugs: dict[str, tuple[Any, str | None]]) -> frozenset[str]:
    """The in-scope orders whose drug has a class hit (alert class or context role),
    from the run's resolution cache.  A drug whose outcome cannot be found there (an
    engine without that cache, an outcome dropped because a source was unavailable)
    counts as one: the safe direction, it keeps the "screened without" card."""
    outcomes = getattr(getattr(run, "runtime", None), "outcomes", None)
    found = set()
    for ref in scope:
        key = drugs.get(ref)
        if key is None:
            continue  # not read as an order: the "could not be checked" card covers it
        outcome = outcomes.get(key) if isinstance(outcomes, dict) else None
        if outcome is None or getattr(outcome, "hits", True):
            found.add(ref)
    return frozenset(found)


def _ref(resource: dict[str, Any], index: int, prefix: str = "") -> str:
    """``MedicationRequest/<id>``, or a synthetic ``MedicationRequest/#<prefix><index>``
    (``#`` cannot occur in a FHIR id).  Drafts and prefetched medications use distinct
    prefixes so that two resources without id never share a key."""
    rid = resource.get("id")
    if isinstance(rid, str) and rid:
        return f"MedicationRequest/{rid}"
    return f"MedicationRequest/#{prefix}{index}"


_TYPED_REF = re.compile(r"^([A-Z][A-Za-z]+)/[^/]+$")


def _selected(selection: str, aliases: dict[str, str]) -> str | None:
    """The draft a selection names: ``MedicationRequest/<id>``, the entry's ``fullUrl``
    (``urn:uuid:...`` or an absolute URL), or an absolute URL ending in the reference."""
    if selection in aliases:
        return aliases[selection]
    if "://" in selection:
        tail = "/".join(selection.rstrip("/").split("/")[-2:])
        return aliases.get(tail)
    return None


def _may_be_medication(selection: str, other_drafts: set[str]) -> bool:
    """Could an unmatched selection be a medication order?  Selections of other drafts
    (a NutritionOrder) and references typed as another resource are not our business."""
    if selection in other_drafts:
        return False
    tail = "/".join(selection.rstrip("/").split("/")[-2:]) if "://" in selection else selection
    if tail in other_drafts:
        return False
    typed = _TYPED_REF.match(tail)
    return typed is None or typed.group(1) == "MedicationRequest"


def _label(order: Order) -> str:
    texts = order.texts()
    if texts:
        return texts[0]
    codes = [f"{c.system.rsplit('/', 1)[-1]} {c.code}" for c in order.codings]
    return ", ".join(codes) or order.id


def _resource_name(resource: dict[str, Any]) -> str | None:
    """The drug's name as written in a resource we could not convert (for the card)."""
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        if isinstance(concept.get("text"), str):
            return str(concept["text"])
        for coding in concept.get("coding") or []:
            if isinstance(coding, dict) and isinstance(coding.get("display"), str):
                return str(coding["display"])
    ref = resource.get("medicationReference")
    if isinstance(ref, dict) and isinstance(ref.get("display"), str):
        return str(ref["display"])
    return None


def _medication_index(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    meds: dict[str, dict[str, Any]] = {}
    for entry in bundle.get("entry") or []:
        res = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(res, dict) and res.get("resourceType") == "Medication":
            rid = res.get("id")
            if isinstance(rid, str):
                meds[f"Medication/{rid}"] = res
            full = entry.get("fullUrl")
            if isinstance(full, str):
                meds[full] = res
    return meds


class CallScreener:
    """Screens one call; ``make_screener`` builds a fresh engine run per call."""

    def __init__(self, make_screener: Callable[[], Screener], max_orders: int):
        self._make = make_screener
        self._max_orders = max_orders

    def _orders(
        self,
        resources: list[tuple[str, str, dict[str, Any]]],
        medications: dict[str, dict[str, Any]],
        patient_id: str,
        labels: dict[str, str],
        drugs: dict[str, tuple[Any, str | None]] | None = None,
    ) -> Iterator[Record]:
        convert = _convert()
        for ref, pointer, res in resources:
            source = pointer.split("/")[1] if pointer.startswith("/") else pointer
            # The order (or why it cannot be read), then ``info`` notices about optional
            # detail left out (e.g. the spec example's ``doseAndRate`` object) and invalid
            # codes dropped: the drug is still screened.  ``decide=False``: statuses are
            # left to the engine, as with ``order_from_resource``.
            for got in convert.order_records(
                res, medications=medications, source=source, pointer=pointer, decide=False
            ):
                if isinstance(got, Order):
                    order = got.model_copy(update={"id": ref, "patient_id": patient_id})
                    labels[ref] = _label(order)
                    if drugs is not None:
                        drugs[ref] = (order.codings, order.text)
                    yield order
                elif isinstance(got, Rejection):
                    where = f" at {got.location.pointer}" if got.location.pointer else ""
                    labels[ref] = f"{_resource_name(res) or ref} ({got.reason}{where})"
                    yield got.model_copy(update={"record_id": ref})
                elif isinstance(got, Notice):
                    yield got.model_copy(update={"order_id": ref, "patient_id": patient_id})

    def screen(self, hook: str, context: Context, data: PatientData) -> Screening:
        convert = _convert()
        patient_id = context.patientId
        drafts: list[tuple[str, str, dict[str, Any]]] = []
        aliases: dict[str, str] = {}  # MedicationRequest/<id>, fullUrl (urn:uuid:...) -> ref
        other_drafts: set[str] = set()  # names of drafts that are not MedicationRequests
        unmatched: list[str] = []
        meds = dict(data.medications)
        if isinstance(context, (OrderSelectContext, OrderSignContext)):
            bundle = context.draftOrders
            entries = bundle.get("entry") or []
            if len(entries) > self._max_orders:
                raise Problem(413, f"draftOrders has more than {self._max_orders} entries",
                              code="too-costly", where="/context/draftOrders/entry")
            meds.update(_medication_index(bundle))
            for i, entry in enumerate(entries):
                res = entry.get("resource") if isinstance(entry, dict) else None
                full = entry.get("fullUrl") if isinstance(entry, dict) else None
                names: set[str] = {full} if isinstance(full, str) and full else set()
                if isinstance(res, dict) and res.get("resourceType") == "MedicationRequest":
                    ref = _ref(res, i)
                    drafts.append((ref, f"/context/draftOrders/entry/{i}/resource", res))
                    for name in names | {ref}:
                        aliases[name] = ref
                elif isinstance(res, dict):
                    rtype, rid = res.get("resourceType"), res.get("id")
                    if isinstance(rtype, str) and isinstance(rid, str):
                        names.add(f"{rtype}/{rid}")
                    other_drafts.update(names)
        draft_refs = {ref for ref, _, _ in drafts}
        current: list[tuple[str, str, dict[str, Any]]] = []
        for i, res in enumerate(data.medication_requests):
            ref = _ref(res, i, "prefetch-")
            if ref not in draft_refs:
                current.append((ref, f"/prefetch/medications/entry/{i}/resource", res))
        if len(current) > self._max_orders:
            raise Problem(413, f"more than {self._max_orders} current medications",
                          code="too-costly", where="/prefetch/medications")

        if hook == "order-select":
            assert isinstance(context, OrderSelectContext)
            selected: set[str] = set()
            for sel in context.selections:
                match = _selected(sel, aliases)
                if match is not None:
                    selected.add(match)
                elif _may_be_medication(sel, other_drafts):
                    unmatched.append(sel)
            scope = frozenset(selected)
        elif hook == "order-sign":
            scope = frozenset(draft_refs)
        else:
            scope = frozenset(ref for ref, _, _ in current)

        patient_resource = data.patient or {"resourceType": "Patient", "id": patient_id}
        unreadable: list[Rejection] = []
        patient = convert.patient_context(
            patient_resource, data.conditions, data.observations, patient_id=patient_id,
            rejections=unreadable,
        )
        labels: dict[str, str] = {}
        drugs: dict[str, tuple[Any, str | None]] = {}
        run = self._make()
        run.feed([patient], "prefetch")
        run.feed(self._orders(drafts, meds, patient_id, labels, drugs), "draftOrders")
        run.feed(self._orders(current, meds, patient_id, labels, drugs), "prefetch")
        report = run.finish()
        b12_orders = _b12_orders(run, scope, drugs)

        result = Screening(patient=patient, scope=scope, labels=labels,
                           unmatched_selections=unmatched,
                           orders_read=report.counts.read,
                           context_unreadable=len(unreadable), b12_orders=b12_orders)
        result.alerts = [a for a in report.alerts if scope.intersection(a.orders)]
        seen_unavailable: set[str] = set()
        for n in report.notices:
            self._notice(n, scope, labels, result, seen_unavailable)
        return result

    @staticmethod
    def _notice(n: Notice, scope: frozenset[str], labels: dict[str, str], result: Screening,
                seen_unavailable: set[str]) -> None:
        in_scope = n.order_id in scope
        if n.kind == "unresolved":
            if in_scope:
                result.unresolved.append(labels.get(n.order_id or "", n.order_id or "?"))
            else:
                result.other_unresolved += 1
        elif n.kind == "rejected":
            if in_scope:
                result.rejected.append(labels.get(n.order_id or "", n.order_id or "?"))
            else:
                result.other_unresolved += 1
        elif n.kind == "info":
            # Optional detail left out or an invalid code dropped beside valid ones: the
            # drug was screened, so this is not worth a card (it stays in the report).
            if in_scope:
                result.info.append(n.message)
        elif n.kind == "source_unavailable":
            # The message names the source ("RxNav could not be reached: ..."); the
            # engine overwrites ``Notice.source`` with the feed name ("draftOrders").
            what = n.message or "a drug knowledge source could not be reached"
            if what not in seen_unavailable:
                seen_unavailable.add(what)
                result.unavailable.append(what)
