"""Bundles, single resources and NDJSON streams: grouping, locations, bad input."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest
from b12drugs_fhir import reader
from b12drugs_fhir.convert import records_from_bundle

from b12drugs.errors import InputError
from b12drugs.models import Order, PatientContext, PatientEnd, Rejection, Skip

sys.path.insert(0, str(Path(__file__).parent))
import fhir_helpers as h


def test_sniff() -> None:
    sample = h.SAMPLE.read_bytes()
    assert reader.sniff(sample[:65536], "sample.json") >= 0.9
    assert reader.sniff(gzip.compress(sample)[:65536], "x.json.gz") >= 0.9
    assert reader.sniff(b'{"id": 1, "text": "metformin"}\n', "x.jsonl") == 0.0
    assert reader.sniff(b"MSH|^~\\&|", "x.hl7") == 0.0
    assert reader.sniff(b"", "x") == 0.0


def test_synthea_bundle_is_grouped_by_patient() -> None:
    records = list(records_from_bundle(h.load(h.synthea("Danae_Kshlerin")), source="d.json"))
    kinds = [type(r).__name__ for r in records]
    assert kinds[0] == "PatientContext" and kinds[-1] == "PatientEnd"
    ctx = records[0]
    assert isinstance(ctx, PatientContext)
    assert ctx.id == "87a339d0-8cae-418e-89c7-8651e6aab3c6"
    assert any("Neuropathy" in (c.text or "") for c in ctx.conditions)
    orders = h.of_type(records, Order)
    assert len(orders) == 5 and all(o.patient_id == ctx.id for o in orders)
    metformin = [o for o in orders if o.rxnorm_codes() == (h.METFORMIN_ER[0],)]
    assert metformin[0].status == "active"
    assert metformin[0].source.pointer == "/entry/11/resource"


def test_full_bundle_ignores_non_medication_resources() -> None:
    doc = h.load(h.SYNTHEA / "full_Alfonso_Dietrich.json.gz")
    records = list(records_from_bundle(doc))
    assert len(doc["entry"]) == 328
    assert len(h.of_type(records, Order)) == 7
    assert not h.of_type(records, Rejection)
    assert len(h.of_type(records, PatientEnd)) == 1


def test_multi_patient_bundle_with_urn_subjects_and_orphans() -> None:
    doc = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"fullUrl": "urn:uuid:aaa", "resource": h.patient("A")},
        {"fullUrl": "http://x/fhir/Patient/B", "resource": h.patient("B")},
        {"resource": h.med_request("r1", patient=None, subject={"reference": "urn:uuid:aaa"})},
        {"resource": h.med_request("r2", patient="B")},
        {"resource": h.med_request("r3", patient=None)},
        {"resource": h.condition("Crohn disease", pid="B")},
        {"resource": {"resourceType": "Encounter", "id": "e1", "status": 3}},
    ]}
    records = list(records_from_bundle(doc))
    by_patient = {o.id: o.patient_id for o in h.of_type(records, Order)}
    assert by_patient == {"MedicationRequest/r1": "A", "MedicationRequest/r2": "B",
                          "MedicationRequest/r3": None}
    assert [e.patient_id for e in h.of_type(records, PatientEnd)] == ["A", "B"]
    ctx_b = next(c for c in h.of_type(records, PatientContext) if c.id == "B")
    assert ctx_b.conditions[0].text == "Crohn disease"
    # PatientEnd of B comes after B's order, the orphan after every PatientEnd
    order_ids = [getattr(r, "id", None) or type(r).__name__ for r in records]
    assert order_ids.index("MedicationRequest/r3") > order_ids.index("MedicationRequest/r2")


def test_single_patient_bundle_owns_orders_without_subject() -> None:
    records = list(records_from_bundle(h.bundle(h.patient("solo"), h.med_request(patient=None))))
    assert h.of_type(records, Order)[0].patient_id == "solo"


def test_bad_entries_are_rejected_with_pointers() -> None:
    doc = {"resourceType": "Bundle", "type": "collection", "entry": [
        "oops", {"resource": [1]}, {"resource": {"id": "x"}}, {"request": {"method": "DELETE"}},
        {"resource": h.med_request(status=5)},
    ]}
    rejections = h.of_type(records_from_bundle(doc, source="b.json"), Rejection)
    assert [r.location.pointer for r in rejections] == [
        "/entry/0", "/entry/1/resource", "/entry/2/resource/resourceType",
        "/entry/4/resource/status"]
    assert all(r.location.file == "b.json" for r in rejections)
    bad = list(records_from_bundle({"resourceType": "Bundle", "entry": {"a": 1}}))
    assert isinstance(bad[0], Rejection) and bad[0].location.pointer == "/entry"


def test_bundled_medication_by_full_url_in_a_transaction() -> None:
    doc = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:m-1", "resource": {"resourceType": "Medication", "code": {
            "coding": [{"system": h.RXNORM, "code": h.METHOTREXATE[0],
                        "display": h.METHOTREXATE[1]}]}}},
        {"resource": h.med_request(code=None, medicationReference={"reference": "urn:uuid:m-1"})},
        {"resource": h.med_request("r2", code=None,
                                   medicationReference={"reference": "Medication/none"})},
    ]}
    o1, o2 = h.of_type(records_from_bundle(doc), Order)
    assert o1.rxnorm_codes() == (h.METHOTREXATE[0],)
    assert o2.codings == () and "could not be found" in (o2.text or "")


def test_nested_bundles_are_read_to_a_bounded_depth() -> None:
    inner = h.bundle(h.med_request("deep"))
    doc = h.bundle(h.bundle(inner))
    assert [o.id for o in h.of_type(records_from_bundle(doc), Order)] == ["MedicationRequest/deep"]
    too_deep = h.bundle(h.bundle(h.bundle(inner)))
    rej = h.of_type(records_from_bundle(too_deep), Rejection)
    assert rej and "nested" in rej[0].reason


def test_unknown_status_in_bundle_is_skipped() -> None:
    records = list(records_from_bundle(h.bundle(h.med_request(status="unknown"))))
    assert len(h.of_type(records, Skip)) == 1 and not h.of_type(records, Order)


# -- reader --------------------------------------------------------------------------------
def test_pretty_printed_document_and_single_resource() -> None:
    records = h.parse_bytes(json.dumps(h.bundle(h.med_request()), indent=2).encode())
    assert len(h.of_type(records, Order)) == 1
    single = h.parse_bytes(json.dumps(h.med_request(), indent=1).encode())
    assert [type(r) for r in single] == [Order]
    ctx = h.parse_doc(h.patient())
    assert isinstance(ctx[0], PatientContext)


def test_ndjson_lines_carry_line_numbers_and_bad_lines_are_rejected() -> None:
    data = h.ndjson([h.med_request("a")]) + b"\n{not json}\n" + h.ndjson(
        [[1, 2], {"id": "no-type"}, h.bundle(h.med_request("b", status=9)), h.med_request("c")])
    records = h.parse_bytes(data, "x.ndjson")
    assert [(o.id, o.source.line) for o in h.of_type(records, Order)] == [
        ("MedicationRequest/a", 1), ("MedicationRequest/c", 7)]
    rejections = h.of_type(records, Rejection)
    assert [(r.location.line, r.location.pointer) for r in rejections] == [
        (3, None), (4, None), (5, "/resourceType"), (6, "/entry/0/resource/status")]
    assert "invalid JSON at column 2" in rejections[0].reason


def test_ndjson_with_broken_first_line_still_reads_the_rest() -> None:
    data = b'{"resourceType": "Medi\n' + h.ndjson([h.med_request("a")])
    records = h.parse_bytes(data)
    assert [type(r) for r in records] == [Rejection, Order]
    assert records[0].location.line == 1  # type: ignore[union-attr]


def test_gzip_ndjson() -> None:
    records = h.parse_bytes(gzip.compress(h.ndjson([h.med_request("a"), h.med_request("b")])))
    assert len(h.of_type(records, Order)) == 2


@pytest.mark.parametrize(("data", "message"), [
    (b'{\n  "resourceType": "Bundle",\n  "entry": [\n', "invalid JSON at line 4"),
    (b"[\n1, 2]", "not a FHIR resource"),
    (b'{\n"a": 1}', "not a FHIR resource"),
    (b'{\n"resourceType": "Bundle"\n}\xff\xfe', "not UTF-8"),
    (gzip.compress(b'{"resourceType": "Bundle"}')[:-6], "cannot read input"),
])
def test_unreadable_documents_raise_input_error(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        h.parse_bytes(data, "bad.json")


def test_blank_input_gives_nothing() -> None:
    assert h.parse_bytes(b"\n\n  \n") == []
