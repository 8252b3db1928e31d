"""End to end through the engine, the plugin manager and the CLI, on Synthea bundles."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.detectedissue import DetectedIssue

from b12drugs.cli import cli
from b12drugs.engines import screen_inputs
from b12drugs.plugins import PluginManager
from b12drugs.testing import InputFormatContract, OutputFormatContract

sys.path.insert(0, str(Path(__file__).parent))
import fhir_helpers as h


class TestFhirInputContract(InputFormatContract):
    format_name = "fhir"
    sample_path = h.SAMPLE


class TestDetectedIssueOutputContract(OutputFormatContract):
    format_name = "fhir-detectedissue"

    def check_output(self, text: str, report: object) -> None:
        doc = json.loads(text)
        Bundle.model_validate(doc)
        issues = [e["resource"] for e in doc["entry"]
                  if e["resource"]["resourceType"] == "DetectedIssue"]
        assert len(issues) == len(report.alerts)  # type: ignore[attr-defined]
        for issue in issues:
            DetectedIssue.model_validate(issue)


def _screen(name: str):  # type: ignore[no-untyped-def]
    return screen_inputs([h.synthea(name)], config=h.config(), manager=PluginManager())


@pytest.mark.parametrize(("name", "class_id"), [
    ("Danae_Kshlerin", "metformin"),
    ("Almeda_Conn", "metformin"),
    ("Asa_Hermiston", "cytostatics"),
    ("Bambi_Murray", "cytostatics"),
    ("Courtney_Schinner", "colchicine"),
])
def test_b12_lowering_patients_alert(name: str, class_id: str) -> None:
    report = _screen(name)
    assert [a.class_id for a in report.alerts] == [class_id]
    alert = report.alerts[0]
    assert all(o.startswith("MedicationRequest/") for o in alert.orders)
    assert report.counts.rejected == 0
    assert not [n for n in report.notices if n.kind == "unresolved"]


@pytest.mark.parametrize("name", ["Babara_Rice", "Bonnie_Marvin", "Chauncey_Johnston",
                                  "Zachary_Kutch", "full_Alfonso_Dietrich"])
def test_other_patients_do_not_alert(name: str) -> None:
    report = _screen(name)
    assert report.alerts == ()
    assert report.counts.screened >= 1
    assert not [n for n in report.notices if n.kind in ("unresolved", "rejected")]


def test_neuropathy_escalates_and_b12_injection_lowers() -> None:
    escalated = _screen("Danae_Kshlerin").alerts[0]  # neuropathy + anemia, no B12 therapy
    lowered = _screen("Almeda_Conn").alerts[0]  # neuropathy, on B12 injections (2001499)
    assert escalated.severity == "warning"
    assert "peripheral_neuropathy" in escalated.risk_factors
    assert lowered.severity == "info"
    assert "on_b12_therapy" in lowered.risk_factors
    assert "peripheral_neuropathy" in lowered.risk_factors


def test_missing_medication_reference_becomes_unresolved_notice(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps(h.bundle(
        h.patient(), h.med_request(code=None, medicationReference={"reference": "Medication/x"}))))
    report = screen_inputs([path], config=h.config(), manager=PluginManager())
    unresolved = [n for n in report.notices if n.kind == "unresolved"]
    assert len(unresolved) == 1 and "Medication/x" in unresolved[0].message
    assert unresolved[0].order_id == "MedicationRequest/rx1"


def test_several_files_and_a_bulk_folder_in_one_run(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "MedicationRequest.ndjson").write_bytes(h.ndjson([h.med_request("r1")]))
    (export / "Patient.ndjson").write_bytes(h.ndjson([h.patient()]))
    report = screen_inputs([h.synthea("Courtney_Schinner"), export], config=h.config(),
                           manager=PluginManager())
    assert sorted(a.class_id for a in report.alerts) == ["colchicine", "metformin"]
    assert str(export) in report.sources


def test_cli_round_trip_to_detected_issues(tmp_path: Path) -> None:
    out = tmp_path / "issues.json"
    result = CliRunner().invoke(cli, ["screen", str(h.SAMPLE), "--format", "fhir-detectedissue",
                                      "--as-of", "2026-01-01", "--output", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    Bundle.model_validate(doc)
    issue = doc["entry"][0]["resource"]
    DetectedIssue.model_validate(issue)
    assert issue["severity"] == "high"  # known deficiency (low serum B12) -> critical
    assert issue["code"]["text"].startswith("B12 depletion risk: Metformin")
    assert issue["patient"] == {"reference": "Patient/87a339d0-8cae-418e-89c7-8651e6aab3c6"}
    assert issue["implicated"] == [
        {"reference": "MedicationRequest/b83cf849-96da-4b59-912e-93b9bfed7d2b"}]
    assert issue["mitigation"][0]["action"]["text"]
    outcome = doc["entry"][-1]["resource"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert any("stopped" in i["diagnostics"] for i in outcome["issue"])


def test_formats_are_listed_with_their_provider() -> None:
    hooks = PluginManager().hooks
    fhir = hooks.format_for("fhir")
    assert fhir is not None and fhir.sniff_dir is not None and "fhir" in fhir.provider
    assert hooks.output_for("fhir-detectedissue") is not None


def _bad_detail_metformin(rid: str, patient: str = "p1") -> dict:
    """Metformin with the CDS Hooks spec example's dosage shape (``doseAndRate`` an
    object), an impossible date and a bad NDC next to the valid RxNorm code."""
    res = h.med_request(rid, patient=patient, authoredOn="2019-02-30", dosageInstruction=[
        {"text": "500 mg twice daily",
         "doseAndRate": {"doseQuantity": {"value": 500, "unit": "mg"}}}])
    res["medicationCodeableConcept"]["coding"].append({"system": h.NDC, "code": "0093-72"})
    return res


def _info(report: object) -> list[str]:
    return sorted(n.message.split(":")[0] for n in report.notices  # type: ignore[attr-defined]
                  if n.kind == "info")


def test_bad_detail_and_codes_are_screened_with_info_notices(tmp_path: Path) -> None:
    doc = tmp_path / "bundle.json"
    doc.write_text(json.dumps(h.bundle(h.patient(), _bad_detail_metformin("rx1"))))
    lines = tmp_path / "orders.ndjson"
    lines.write_bytes(h.ndjson([h.patient("p2"), _bad_detail_metformin("rx2", "p2")]))
    export = tmp_path / "export"
    export.mkdir()
    (export / "Patient.ndjson").write_bytes(h.ndjson([h.patient("p3")]))
    (export / "MedicationRequest.ndjson").write_bytes(
        h.ndjson([_bad_detail_metformin("rx3", "p3")]))
    for path, base, line in [(doc, "/entry/1/resource", None), (lines, "", 2),
                             (export, "", 1)]:
        report = screen_inputs([path], config=h.config(), manager=PluginManager())
        assert (report.counts.read, report.counts.screened, report.counts.rejected) == (1, 1, 0)
        assert [a.class_id for a in report.alerts] == ["metformin"]
        assert _info(report) == [f"{base}/authoredOn",
                                 f"{base}/dosageInstruction/0/doseAndRate",
                                 f"{base}/medicationCodeableConcept/coding/1"], path
        for n in report.notices:
            assert "2019-02-30" not in n.message and n.order_id is not None
            if line is not None:
                assert f":{line} " in (n.location or ""), n.location
