"""FHIR Bulk Data export folders (real files, real temporary SQLite)."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

from b12drugs_fhir import bulk

from b12drugs.models import Order, PatientContext, PatientEnd, Rejection, Skip

sys.path.insert(0, str(Path(__file__).parent))
import fhir_helpers as h


def _write(path: Path, docs: list[object], *, gz: bool = False) -> None:
    data = h.ndjson(docs)
    path.write_bytes(gzip.compress(data) if gz else data)


def _export(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    folder.mkdir()
    _write(folder / "Patient.ndjson", [h.patient("p1"), h.patient("p2", "1990-01-01", "male")])
    _write(folder / "Medication.ndjson", [{"resourceType": "Medication", "id": "mtx", "code": {
        "coding": [{"system": h.RXNORM, "code": h.METHOTREXATE[0],
                    "display": h.METHOTREXATE[1]}]}}])
    _write(folder / "MedicationRequest.000.ndjson", [
        h.med_request("r1", patient="p1"),
        h.med_request("r2", patient="p2", code=None,
                      medicationReference={"reference": "Medication/mtx"}),
    ])
    (folder / "MedicationRequest.001.ndjson").write_bytes(
        h.ndjson([h.med_request("r3", patient="p1", status="stopped")]) + b"{broken\n"
        + h.ndjson([h.med_request("r4", patient=None)]))
    _write(folder / "Condition.ndjson.gz",
           [h.condition("Neuropathy due to type 2 diabetes mellitus", "368581000119106", "p1"),
            {"resourceType": "Condition", "subject": {"reference": "Patient/p1"},
             "code": {"text": 5}}], gz=True)
    _write(folder / "Observation.ndjson", [
        {"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p1"},
         "code": {"coding": [{"system": "http://loinc.org", "code": "2132-9"}]},
         "valueQuantity": {"value": 150, "unit": "pg/mL"},
         "interpretation": [{"coding": [{"code": "L"}]}]},
        {"resourceType": "Observation", "subject": {"reference": "Patient/p1"},
         "code": {"text": "Body Height"}, "valueQuantity": {"value": 170}},
    ])
    (folder / "Encounter.ndjson").write_text("this file is never opened\n")
    (folder / "notes.txt").write_text("not part of the export\n")
    return folder


def test_sniff_dir(tmp_path: Path) -> None:
    folder = _export(tmp_path)
    assert bulk.sniff_dir(folder) >= 0.9
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.json").write_text("{}")
    assert bulk.sniff_dir(plain) == 0.0
    generic = tmp_path / "generic"
    generic.mkdir()
    _write(generic / "output-1.ndjson", [h.med_request()])
    assert bulk.sniff_dir(generic) >= 0.5


def test_declared_type() -> None:
    assert bulk.declared_type("MedicationRequest.000.ndjson") == "MedicationRequest"
    assert bulk.declared_type("1.Patient.ndjson.gz") == "Patient"
    assert bulk.declared_type("output-1.ndjson") is None


def test_export_is_screened_patient_by_patient(tmp_path: Path) -> None:
    folder = _export(tmp_path)
    records = list(bulk.parse_dir(folder, "export"))
    skips = h.of_type(records, Skip)
    assert [s.location.file for s in skips] == ["export/notes.txt"]
    rejections = h.of_type(records, Rejection)
    assert {(r.location.file, r.location.line) for r in rejections} == {
        ("export/MedicationRequest.001.ndjson", 2), ("export/Condition.ndjson.gz", 2)}
    # per patient: context, orders, end - in that order
    seq = [(type(r).__name__, getattr(r, "id", None) or getattr(r, "patient_id", None))
           for r in records if not isinstance(r, (Skip, Rejection))]
    assert seq == [
        ("PatientContext", "p1"), ("Order", "MedicationRequest/r1"),
        ("Order", "MedicationRequest/r3"), ("PatientEnd", "p1"),
        ("PatientContext", "p2"), ("Order", "MedicationRequest/r2"), ("PatientEnd", "p2"),
        ("Order", "MedicationRequest/r4"),
    ]
    p1 = h.of_type(records, PatientContext)[0]
    assert p1.birth_date is not None and p1.conditions[0].code == "368581000119106"
    assert [lab.kind for lab in p1.labs] == ["b12"]  # body height not kept
    r2 = next(o for o in h.of_type(records, Order) if o.id.endswith("r2"))
    assert r2.rxnorm_codes() == (h.METHOTREXATE[0],)
    assert r2.source.file == "export/MedicationRequest.000.ndjson" and r2.source.line == 2


def test_generic_file_names_are_routed_by_resource_type(tmp_path: Path) -> None:
    folder = tmp_path / "g"
    folder.mkdir()
    _write(folder / "part-1.ndjson", [h.med_request("r1"), h.patient("p1"),
                                      h.condition("Crohn disease")])
    records = list(bulk.parse_dir(folder, "g"))
    assert [type(r) for r in records] == [PatientContext, Order, PatientEnd]
    assert records[0].conditions[0].text == "Crohn disease"  # type: ignore[union-attr]


def test_patients_without_medications_are_passed_over(tmp_path: Path) -> None:
    folder = tmp_path / "e"
    folder.mkdir()
    _write(folder / "Patient.ndjson", [h.patient("p9")])
    assert list(bulk.parse_dir(folder, "e")) == []


def test_temporary_database_is_removed(tmp_path: Path, monkeypatch: object) -> None:
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # type: ignore[attr-defined]
    folder = _export(tmp_path)
    gen = bulk.parse_dir(folder, "x")
    while not isinstance(next(gen), Order):
        pass
    assert list(scratch.iterdir())  # the SQLite file lives there while reading
    gen.close()
    assert not list(scratch.iterdir())


def test_stored_rows_are_slim(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    narrative = {"status": "generated", "div": "<div>" + "x" * 50_000 + "</div>"}
    big = h.med_request("r1", text=narrative)
    _write(folder / "MedicationRequest.ndjson", [big])
    assert len(json.loads(bulk._slim(big, "Order")).get("text", "")) == 0
    assert [type(r) for r in bulk.parse_dir(folder, "s")] == [Order, PatientEnd]
