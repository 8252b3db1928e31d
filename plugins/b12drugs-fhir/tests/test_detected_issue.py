"""DetectedIssue output: mapping and FHIR validity (validated with fhir.resources R4B)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from b12drugs_fhir.detected_issue import detected_issues
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.detectedissue import DetectedIssue
from fhir.resources.R4B.operationoutcome import OperationOutcome

from b12drugs.models import Alert, Counts, Notice, Report


def _report(*alerts: Alert, notices: tuple[Notice, ...] = ()) -> Report:
    return Report(generated_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
                  b12drugs_version="0.1.0", knowledge_version="kb1", alerts=alerts,
                  notices=notices, counts=Counts(read=3, screened=2, skipped=1))


def _alert(severity: str, orders: tuple[str, ...], patient: str | None = "p-1") -> Alert:
    return Alert(patient_id=patient, class_id="proton_pump_inhibitors", severity=severity,
                 summary="PPI: monitor B12", detail="Long-term PPI use.", orders=orders,
                 drugs=("omeprazole",), risk_factors=("older_age",),
                 recommendation="Measure serum B12.", evidence="moderate",
                 references=("Lam JR et al. JAMA 2013",), rule="default-policy")


@pytest.mark.parametrize(("severity", "fhir"), [("critical", "high"), ("warning", "moderate"),
                                                ("info", "low")])
def test_severity_mapping(severity: str, fhir: str) -> None:
    doc = detected_issues(_report(_alert(severity, ("MedicationRequest/1",))))
    assert doc["entry"][0]["resource"]["severity"] == fhir


def test_resources_validate_and_references_are_typed() -> None:
    notices = (Notice(kind="unresolved", message="drug not recognised", order_id="rx 9",
                      location="a.csv:3"),
               Notice(kind="rejected", message="bad line", location="a.csv:4"))
    doc = detected_issues(_report(
        _alert("warning", ("MedicationDispense/d-1", "rx 9")),
        _alert("info", ("MedicationRequest/2",), patient="not a fhir id!"),
        notices=notices))
    Bundle.model_validate(doc)
    assert doc["type"] == "collection"
    first, second, outcome = (e["resource"] for e in doc["entry"])
    for issue in (first, second):
        DetectedIssue.model_validate(issue)
        assert issue["status"] == "final"
        assert issue["identifiedDateTime"] == "2026-01-02T03:04:05+00:00"
    assert first["implicated"] == [{"reference": "MedicationDispense/d-1"},
                                   {"identifier": {"value": "rx 9"}, "display": "order rx 9"}]
    assert first["patient"] == {"reference": "Patient/p-1"}
    assert second["patient"] == {"identifier": {"value": "not a fhir id!"}}
    assert first["mitigation"] == [{"action": {"text": "Measure serum B12."}}]
    assert {"detail": [{"display": "Lam JR et al. JAMA 2013"}],
            "code": [{"text": "References"}]} in first["evidence"]
    assert "proton pump" in first["code"]["text"].lower()
    assert "coding" not in first["code"]  # no invented code system
    OperationOutcome.model_validate(outcome)
    assert [i["code"] for i in outcome["issue"]] == ["informational", "not-found", "invalid"]
    assert outcome["issue"][1]["diagnostics"] == "drug not recognised [a.csv:3]"


def test_ids_are_stable_and_distinct() -> None:
    report = _report(_alert("info", ("MedicationRequest/1",)),
                     _alert("info", ("MedicationRequest/2",)))
    a, b = detected_issues(report), detected_issues(report)
    assert a == b
    ids = [e["resource"]["id"] for e in a["entry"]]
    assert len(set(ids)) == len(ids)


def test_empty_report_still_says_what_was_checked() -> None:
    doc = detected_issues(_report())
    Bundle.model_validate(doc)
    (entry,) = doc["entry"]
    assert "screened 2 of 3" in entry["resource"]["issue"][0]["diagnostics"]
