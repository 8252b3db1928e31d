"""Writers for the care-gap list (:class:`b12drugs.assess.gaps.GapList`).

``GAP_FORMATS`` maps a format name to its writer; every writer reads the same
:class:`~b12drugs.assess.gaps.GapList`, so a new format (an HTML page) is one more
entry here.

* ``table``: a terminal table (rich), most urgent first;
* ``json``: ``{"gaps": [...], "counts": {...}, ...}``;
* ``csv``: one row per patient, for spreadsheets and worklists;
* ``fhir``: a FHIR R4 ``Bundle`` (type ``collection``) with, per patient, a
  ``DetectedIssue`` shaped after the Da Vinci DEQM *Gaps In Care DetectedIssue* profile
  (code ``CAREGAP`` from v3 ActCode, the DEQM gap-status modifier extension with
  ``open-gap``, the patient, evidence) and the ``GuidanceResponse`` it cites as
  evidence, whose ``dataRequirement`` names the Observation that would close the gap
  (a serum B12, LOINC 2132-9).  Why these resources: README "The care-gap list".
"""

from __future__ import annotations

import csv
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from ..assess.gaps import Gap, GapList
from ..assess.monitoring import describe
from ..assess.risk import short_label
from ..labcodes import B12_LOINC
from ..models import LOINC_SYSTEM


@dataclass(frozen=True)
class GapFormat:
    name: str
    description: str
    write: Callable[[GapList, IO[str]], None]


def write_json(gaps: GapList, out: IO[str]) -> None:
    out.write(gaps.model_dump_json(indent=2))
    out.write("\n")


CSV_COLUMNS = ("priority", "patient_id", "severity", "classes", "drugs", "risk_factors",
               "last_kind", "last_value", "last_unit", "last_date", "last_interpretation",
               "due_date", "days_overdue", "recommendation")


def _csv_safe(value: str) -> str:
    """Keep spreadsheet programs from running a cell as a formula (a drug name that
    starts with ``=``, ``+``, ``-`` or ``@`` comes from the input)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def write_csv(gaps: GapList, out: IO[str]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for g in gaps.gaps:
        last = g.last_result
        row: list[object] = [
            g.priority, g.patient_id, g.severity, ";".join(g.classes), ";".join(g.drugs),
            ";".join(g.risk_factors),
            last.kind if last else "", "" if last is None or last.value is None else last.value,
            last.unit or "" if last else "", last.date if last else "",
            last.interpretation if last else "",
            g.due_date or "", "" if g.days_overdue is None else g.days_overdue,
            g.recommendation,
        ]
        writer.writerow([_csv_safe(str(v)) for v in row])


def _last(g: Gap) -> str:
    if g.last_result is None:
        return "never tested"
    return f"{describe(g.last_result)} ({g.last_result.interpretation})"


def write_table(gaps: GapList, out: IO[str]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out, width=max(110, Console(file=out).width), soft_wrap=False)
    table = Table(title=f"Due for a B12 status test on {gaps.as_of} ({len(gaps.gaps)})")
    for col in ("priority", "patient", "classes", "drugs", "risk factors", "last result",
                "due", "overdue"):
        table.add_column(col)
    for g in gaps.gaps:
        table.add_row(*(Text(str(v)) for v in (
            g.priority_label, g.patient_id, ", ".join(g.classes), ", ".join(g.drugs),
            ", ".join(short_label(f) for f in g.risk_factors) or "-", _last(g), g.due_date or "-",
            "-" if g.days_overdue is None else f"{g.days_overdue} d")))
    console.print(table)
    c = gaps.counts
    console.print(Text(
        f"{c.patients} patient(s) on B12-lowering drugs: {c.due} due ({c.never_tested} never "
        f"tested, {c.overdue} overdue, {c.borderline} borderline, {c.low} low), "
        f"{c.not_due} not due"))
    if gaps.notices:
        console.print(Text(f"{len(gaps.notices)} notice(s): run `b12drugs screen` on the same "
                           "inputs to read them (drugs not checked count there)."))


# -- FHIR ------------------------------------------------------------------------------

GAP_STATUS_URL = "http://hl7.org/fhir/us/davinci-deqm/StructureDefinition/extension-gapStatus"
GAP_STATUS_SYSTEM = "http://hl7.org/fhir/us/davinci-deqm/CodeSystem/gaps-status"
ACTCODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_SEVERITY = {"info": "low", "warning": "moderate", "critical": "high"}


_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
#: Namespace for the bundle's stable ``urn:uuid`` full URLs (same gap, same URL).
_NAMESPACE = uuid.UUID("6f1f7c1e-2b8e-5a53-9d55-0b12d0b12d00")
MODULE_URI = "urn:b12drugs:assess:monitoring"


def _patient(pid: str) -> dict[str, Any]:
    """A reference to the patient: literal when the id is a valid FHIR id, else by
    identifier (ids from CSV exports may hold spaces or other characters)."""
    if _FHIR_ID.match(pid):
        return {"reference": f"Patient/{pid}"}
    return {"identifier": {"value": pid}, "display": pid}


def _urn(*parts: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, chr(31).join(parts))}"


def gap_resources(g: Gap, n: int, as_of: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``DetectedIssue`` and ``GuidanceResponse`` of one gap (``n``: its place)."""
    rid = f"b12-gap-{n}"
    patient = _patient(g.patient_id)
    overdue = ("never tested" if g.days_overdue is None
               else f"due {g.due_date}, {g.days_overdue} day(s) overdue")
    detail = (f"Due for a vitamin B12 status test ({overdue}). On {', '.join(g.drugs)} "
              f"({', '.join(g.classes)}). Last result: {_last(g)}. "
              f"Priority: {g.priority_label}.")
    guidance: dict[str, Any] = {
        "resourceType": "GuidanceResponse",
        "id": rid + "-guidance",
        "moduleUri": MODULE_URI,
        "status": "success",
        "subject": patient,
        "occurrenceDateTime": as_of,
        "reasonCode": [{"text": f"Long-term {c.replace('_', ' ')}"} for c in g.classes],
        "note": [{"text": g.recommendation}],
        "dataRequirement": [{
            "type": "Observation",
            "codeFilter": [{"path": "code", "code": [{
                "system": LOINC_SYSTEM, "code": B12_LOINC,
                "display": "Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma"}]}],
        }],
    }
    issue: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "id": rid,
        "modifierExtension": [{
            "url": GAP_STATUS_URL,
            "valueCodeableConcept": {"coding": [
                {"system": GAP_STATUS_SYSTEM, "code": "open-gap", "display": "Open Gap"}]},
        }],
        "status": "final",
        "code": {"coding": [{"system": ACTCODE_SYSTEM, "code": "CAREGAP",
                             "display": "Care Gaps"}],
                 "text": "Vitamin B12 status test due"},
        "severity": _SEVERITY[g.severity],
        "patient": patient,
        "identifiedDateTime": as_of,
        "detail": detail,
        "evidence": [{"detail": [{"reference": _urn(g.patient_id, as_of, "guidance")}]}],
    }
    return issue, guidance


def fhir_bundle(gaps: GapList) -> dict[str, Any]:
    as_of = gaps.as_of.isoformat()
    entries = []
    for n, g in enumerate(gaps.gaps, 1):
        issue, guidance = gap_resources(g, n, as_of)
        entries.append({"fullUrl": _urn(g.patient_id, as_of, "issue"), "resource": issue})
        entries.append({"fullUrl": _urn(g.patient_id, as_of, "guidance"),
                        "resource": guidance})
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": gaps.generated_at.isoformat(),
        "entry": entries,
    }


def write_fhir(gaps: GapList, out: IO[str]) -> None:
    out.write(json.dumps(fhir_bundle(gaps), indent=2))
    out.write("\n")


def write_html(gaps: GapList, out: IO[str]) -> None:
    """The list as one self-contained HTML page (:func:`b12drugs.emit.html.write_gaps_html`)."""
    from .html import write_gaps_html

    counts = gaps.counts.model_dump(exclude={"by_class", "by_priority"})
    write_gaps_html([g.model_dump(mode="json") for g in gaps.gaps], counts, out,
                    as_of=gaps.as_of.isoformat())


GAP_FORMATS: dict[str, GapFormat] = {
    f.name: f for f in (
        GapFormat("table", "terminal table, most urgent first", write_table),
        GapFormat("json", '{"gaps": [...], "counts": {...}}', write_json),
        GapFormat("csv", "one row per patient (spreadsheets, worklists)", write_csv),
        GapFormat("fhir", "FHIR R4 Bundle of DEQM-style care-gap DetectedIssues", write_fhir),
        GapFormat("html", "one self-contained HTML page (charts, sortable list)", write_html),
    )
}
