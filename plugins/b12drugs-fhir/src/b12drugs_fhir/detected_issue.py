"""The ``fhir-detectedissue`` output format: a report as FHIR R4 DetectedIssue resources.

One DetectedIssue per alert, in a Bundle of type ``collection``:

* ``status`` ``final``; ``severity`` critical→``high``, warning→``moderate``,
  info→``low``;
* ``code``: a text-only CodeableConcept "B12 depletion risk: <class label>" (no code
  system is invented for it);
* ``patient``: ``Patient/<id>`` when the id is a FHIR id, else an identifier;
* ``implicated``: ``MedicationRequest/<id>`` (or Dispense/Statement) for orders read
  from FHIR, an identifier for orders from other formats;
* ``detail`` the alert's detail; ``evidence`` the evidence level, the risk factors and
  the references as text; ``mitigation`` the recommendation as action text;
  ``identifiedDateTime`` the report's time; ``author`` names b12drugs.

So that "no DetectedIssue" never silently means "nothing checked", the Bundle ends
with an OperationOutcome carrying the report's notices (drugs not recognised, records
skipped or rejected, knowledge sources unavailable) and the record counts.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from functools import cache
from typing import IO, Any

from b12drugs.models import Alert, Notice, Report

SEVERITY = {"critical": "high", "warning": "moderate", "info": "low"}
_ORDER_REF = re.compile(
    r"^(MedicationRequest|MedicationDispense|MedicationStatement)/[A-Za-z0-9\-.]{1,64}$"
)
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_NOTICE_ISSUE = {
    "unresolved": ("warning", "not-found"),
    "rejected": ("error", "invalid"),
    "skipped": ("information", "informational"),
    "source_unavailable": ("warning", "exception"),
    "approximate": ("information", "informational"),
    "info": ("information", "informational"),
}


@cache
def _labels() -> Mapping[str, str]:
    try:
        from b12drugs.knowledge import load_knowledge

        return {c.class_id: c.label for c in load_knowledge().classes.values()}
    except Exception:  # knowledge unavailable: fall back to readable class ids
        return {}


def class_label(class_id: str) -> str:
    """The knowledge base's label of a class, or the id made readable."""
    return _labels().get(class_id) or class_id.replace("_", " ")


def _patient(pid: str) -> dict[str, Any]:
    if _FHIR_ID.match(pid):
        return {"reference": f"Patient/{pid}"}
    return {"identifier": {"value": pid}}


def _implicated(order_id: str) -> dict[str, Any]:
    if _ORDER_REF.match(order_id):
        return {"reference": order_id}
    return {"identifier": {"value": order_id}, "display": f"order {order_id}"}


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "b12drugs:" + "|".join(parts)))


def detected_issue(alert: Alert, report: Report) -> dict[str, Any]:
    """One alert as a DetectedIssue resource (a JSON-ready dict)."""
    when = report.generated_at.isoformat()
    issue: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "id": _uuid(when, alert.patient_id or "", alert.class_id, *alert.orders),
        "status": "final",
        "code": {"text": f"B12 depletion risk: {class_label(alert.class_id)}"},
        "severity": SEVERITY[alert.severity],
        "identifiedDateTime": when,
        "author": {"display": f"b12drugs {report.b12drugs_version}"},
    }
    if alert.patient_id:
        issue["patient"] = _patient(alert.patient_id)
    if alert.orders:
        issue["implicated"] = [_implicated(o) for o in alert.orders]
    issue["detail"] = alert.detail or alert.summary
    evidence: list[dict[str, Any]] = [{"code": [{"text": f"Evidence level: {alert.evidence}"}]}]
    if alert.drugs:
        evidence.append({"code": [{"text": f"Drug: {d}"} for d in alert.drugs]})
    if alert.risk_factors:
        evidence.append({"code": [{"text": f"Risk factor: {r}"} for r in alert.risk_factors]})
    if alert.references:
        evidence.append({"code": [{"text": "References"}],
                         "detail": [{"display": ref} for ref in alert.references]})
    issue["evidence"] = evidence
    if alert.recommendation:
        issue["mitigation"] = [{"action": {"text": alert.recommendation}}]
    return issue


def _outcome_issue(notice: Notice) -> dict[str, Any]:
    severity, code = _NOTICE_ISSUE.get(notice.kind, ("information", "informational"))
    where = notice.location or notice.source  # a location already names its file
    text = notice.message + (f" [{where}]" if where else "")
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": text}
    if notice.order_id:
        issue["details"] = {"text": f"{notice.kind}: order {notice.order_id}"}
    else:
        issue["details"] = {"text": notice.kind}
    return issue


def detected_issues(report: Report) -> dict[str, Any]:
    """The report as a FHIR Bundle (type ``collection``) of DetectedIssue resources,
    followed by an OperationOutcome with the notices and counts."""
    when = report.generated_at.isoformat()
    entries = []
    for alert in report.alerts:
        resource = detected_issue(alert, report)
        entries.append({"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource})
    c = report.counts
    issues = [
        {
            "severity": "information",
            "code": "informational",
            "diagnostics": f"b12drugs screened {c.screened} of {c.read} medication records "
                           f"({c.skipped} skipped, {c.rejected} rejected); "
                           f"{len(report.alerts)} alert(s); knowledge {report.knowledge_version}",
        }
    ]
    issues += [_outcome_issue(n) for n in report.notices]
    outcome_id = _uuid(when, "outcome")
    entries.append({
        "fullUrl": f"urn:uuid:{outcome_id}",
        "resource": {"resourceType": "OperationOutcome", "id": outcome_id, "issue": issues},
    })
    return {
        "resourceType": "Bundle",
        "id": _uuid(when, "bundle"),
        "type": "collection",
        "timestamp": when,
        "entry": entries,
    }


def write(report: Report, stream: IO[str]) -> None:
    """Output format writer: the Bundle as indented JSON."""
    json.dump(detected_issues(report), stream, indent=2, ensure_ascii=False)
    stream.write("\n")
