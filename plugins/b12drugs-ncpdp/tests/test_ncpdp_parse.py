"""Parser tests: both SCRIPT versions, code shapes, qualifiers, patients, diagnoses."""

from __future__ import annotations

import io
import sys
from datetime import date
from pathlib import Path

import pytest
from b12drugs_ncpdp import parse, sniff
from b12drugs_ncpdp.codes import other_system

from b12drugs.errors import InputError
from b12drugs.models import (
    SNOMED_SYSTEM,
    Order,
    PatientContext,
    PatientEnd,
    Rejection,
    Skip,
)

sys.path.insert(0, str(Path(__file__).parent))  # ncpdp_helpers, whatever the rootdir
import ncpdp_helpers as h

DATA = Path(__file__).parent / "data"


def records(xml: str | bytes, source: str = "test.xml") -> list[object]:
    data = xml.encode() if isinstance(xml, str) else xml
    return list(parse(io.BytesIO(data), source))


def of(kind: type, recs: list[object]) -> list:
    return [r for r in recs if isinstance(r, kind)]


def test_sample_2017071_newrx() -> None:
    recs = records((DATA / "newrx.xml").read_bytes(), "newrx.xml")
    assert [type(r) for r in recs] == [PatientContext, Order, PatientEnd]
    patient, order, end = recs
    assert patient.id == "0000002:MRN-1001" and patient.birth_date == date(1955, 6, 1)
    assert patient.sex == "F"
    assert patient.conditions[0].system == SNOMED_SYSTEM
    assert patient.conditions[0].code == h.NEUROPATHY_SNOMED
    assert order.id == "NEWRX-0001" and order.patient_id == "0000002:MRN-1001"
    assert order.rxnorm_codes() == (h.METFORMIN_SCD,)
    assert order.ndc_codes() == (h.FAKE_NDC_11,)
    assert order.text == "metformin hydrochloride 500 MG Oral Tablet"
    assert order.days_supply == 90 and order.start_date == date(2025, 11, 3)
    assert order.dose == "Take 1 tablet by mouth twice daily with meals"
    assert order.strength == "500 C28253"
    assert order.status == "active"
    assert order.source.file == "newrx.xml" and order.source.line == 6
    assert order.source.pointer == "message 1 /Message/Body/NewRx/MedicationPrescribed"
    assert end == PatientEnd(patient_id="0000002:MRN-1001")


def test_script_106_flat_codes_no_namespace() -> None:
    recs = records(h.message_106(diagnosis=("E538", "ABF")))
    (patient,) = of(PatientContext, recs)
    (order,) = of(Order, recs)
    assert order.rxnorm_codes() == (h.OMEPRAZOLE_SCD,)
    assert order.ndc_codes() == ("99999000230",)
    assert order.dose == "Take 1 capsule daily before breakfast"
    assert order.strength == "20"
    assert patient.id == "PRESC1:MRN-2002" and patient.birth_date == date(1950, 2, 14)
    assert patient.conditions[0].system == "http://hl7.org/fhir/sid/icd-10-cm"
    assert patient.conditions[0].code == "E538"


@pytest.mark.parametrize("qualifier", ["SCD", "SBD", "GPK", "BPK", "scd"])
def test_rxnorm_qualifiers_give_rxnorm_codings(qualifier: str) -> None:
    for xml in (h.message_2017071(db_qualifier=qualifier),
                h.message_106(db_qualifier=qualifier, db_code=h.METFORMIN_SCD)):
        (order,) = of(Order, records(xml))
        assert order.rxnorm_codes() == (h.METFORMIN_SCD,)


@pytest.mark.parametrize("qualifier", ["MG", "FG", "ZZ", ""])
def test_unknown_drugdb_qualifiers_are_kept_as_other_codings(qualifier: str) -> None:
    (order,) = of(Order, records(h.message_2017071(db_qualifier=qualifier, db_code="ABC123")))
    assert order.rxnorm_codes() == ()
    others = [c for c in order.codings if c.system == other_system("DrugDBCode", qualifier)]
    assert [c.code for c in others] == ["ABC123"]


def test_unknown_product_qualifier_and_bad_ndc_are_kept() -> None:
    (order,) = of(Order, records(h.message_2017071(ndc="012345678905", ndc_qualifier="UP")))
    assert order.ndc_codes() == ()
    assert any(c.system.endswith("ProductCode:UP") for c in order.codings)
    (order,) = of(Order, records(h.message_106(ndc="12-34", db_code=None)))
    assert order.ndc_codes() == () and order.codings[0].code == "12-34"


def test_product_code_qualifier_as_attribute() -> None:
    xml = h.message_2017071(ndc=None, db_code=None).replace(
        "<DrugCoded>", f'<DrugCoded><ProductCode Qualifier="ND">{h.FAKE_NDC_11}</ProductCode>')
    (order,) = of(Order, records(xml))
    assert order.ndc_codes() == (h.FAKE_NDC_11,)


@pytest.mark.parametrize("kwargs", [{"namespace": True}, {"namespace": False},
                                    {"prefix": "ns0"}, {"prefix": "script"}])
def test_namespace_variants(kwargs: dict) -> None:
    xml = h.message_2017071(**kwargs)
    assert sniff(xml.encode(), "m.xml") >= 0.9
    (order,) = of(Order, records(xml))
    assert order.rxnorm_codes() == (h.METFORMIN_SCD,)


def test_text_only_drug() -> None:
    (order,) = of(Order, records(h.message_2017071(ndc=None, db_code=None, strength=None,
                                                   description="lisinopril 10 mg tablet")))
    assert order.codings == () and order.text == "lisinopril 10 mg tablet"


def test_no_code_and_no_description_is_rejected_with_xpath() -> None:
    xml = h.container([h.message_2017071("A"),
                       h.message_2017071("B", ndc=None, db_code=None, description=None)])
    recs = records(xml, "batch.xml")
    (rej,) = of(Rejection, recs)
    assert str(rej.location).endswith(
        "message 2 /Message/Body/NewRx/MedicationPrescribed/DrugCoded")
    assert rej.reason == "no product code or description"
    assert rej.location.file == "batch.xml"
    assert [o.id for o in of(Order, recs)] == ["A"]


@pytest.mark.parametrize(("field", "value", "xpath"), [
    ("days_supply", "ninety", "/Message/Body/NewRx/MedicationPrescribed/DaysSupply"),
    ("written", "2025-13-45", "/Message/Body/NewRx/MedicationPrescribed/WrittenDate/Date"),
    ("description", "x" * 2100, "/Message/Body/NewRx/MedicationPrescribed/DrugDescription"),
    ("db_code", "9" * 300, "/Message/Body/NewRx/MedicationPrescribed/DrugCoded/DrugDBCode/Code"),
])
def test_bad_fields_are_rejected_naming_the_xpath(field: str, value: str, xpath: str) -> None:
    recs = records(h.container([h.message_2017071("A", **{field: value}),
                                h.message_2017071("B")]))
    (rej,) = of(Rejection, recs)
    assert rej.location.pointer == f"message 1 {xpath}"
    assert value[:4] not in rej.reason  # the field is named, its value never echoed
    assert [o.id for o in of(Order, recs)] == ["B"]


def test_bad_birth_date_names_patient_xpath() -> None:
    pat = h.patient_2017071(birth_date="19X5-01-01")
    (rej,) = of(Rejection, records(h.message_2017071(patient=pat)))
    assert rej.location.pointer == (
        "message 1 /Message/Body/NewRx/Patient/HumanPatient/DateOfBirth/Date")
    assert "19X5" not in rej.reason and "not a valid date" in rej.reason


@pytest.mark.parametrize("days", ["ninety", "99999"])
def test_days_supply_rejection_does_not_echo_the_value(days: str) -> None:
    (rej,) = of(Rejection, records(h.message_2017071(days_supply=days)))
    assert days not in rej.reason and "DaysSupply" in rej.location.pointer


def test_long_sig_is_truncated_not_rejected() -> None:
    (order,) = of(Order, records(h.message_2017071(sig="take " * 200)))
    assert len(order.dose) == 256 and order.dose.endswith("…")


def test_patient_without_identification_gets_message_scoped_id() -> None:
    recs = records(h.message_2017071("MSG-77", patient=h.patient_2017071(patient_id=None)))
    (patient,) = of(PatientContext, recs)
    assert patient.id == "ncpdp-message:MSG-77"
    assert "Testpatient" not in patient.id and "1955" not in patient.id


def test_social_security_number_is_never_the_patient_id() -> None:
    pat = h.patient_2017071(patient_id=None).replace(
        "<Name>", "<Identification><SocialSecurity>000000000</SocialSecurity>"
        "<PatientAccountNumber>ACC-5</PatientAccountNumber></Identification><Name>")
    (patient,) = of(PatientContext, records(h.message_2017071(patient=pat)))
    assert patient.id == "ACC-5"


def test_diagnoses_primary_secondary_and_unknown_qualifier() -> None:
    xml = h.message_2017071(diagnoses=(("E119", "ABF", "Type 2 diabetes"),
                                       (h.NEUROPATHY_SNOMED, "LD", None),
                                       ("250.00", "DX", "old ICD-9 code")))
    (patient,) = of(PatientContext, records(xml))
    systems = [(c.system, c.code) for c in patient.conditions]
    assert systems == [("http://hl7.org/fhir/sid/icd-10-cm", "E119"),
                       (SNOMED_SYSTEM, h.NEUROPATHY_SNOMED),
                       (other_system("Diagnosis", "DX"), "250.00")]


def test_rxfill_uses_medication_dispensed() -> None:
    med = h.medication_2017071(element="MedicationDispensed", db_code=h.OMEPRAZOLE_SCD)
    (order,) = of(Order, records(h.message_2017071(transaction="RxFill", medications=(med,))))
    assert order.rxnorm_codes() == (h.OMEPRAZOLE_SCD,) and order.status == "active"


def test_rxfill_not_dispensed_is_skipped() -> None:
    med = h.medication_2017071(element="MedicationDispensed")
    xml = h.message_2017071(transaction="RxFill", medications=(med,)).replace(
        "<Patient>", "<FillStatus><NotDispensed/></FillStatus><Patient>")
    (skip,) = of(Skip, records(xml))
    assert "NotDispensed" in skip.reason and not of(Order, records(xml))


def test_rx_change_request_screens_requested_medications_as_draft() -> None:
    meds = (h.medication_2017071(),
            h.medication_2017071(element="MedicationRequested", db_code=h.OMEPRAZOLE_SCD),
            h.medication_2017071(element="MedicationRequested", db_code=None, ndc=None,
                                 description="famotidine 20 mg tablet"))
    orders = of(Order, records(h.message_2017071("CHG-1", transaction="RxChangeRequest",
                                                 medications=meds)))
    assert [(o.id, o.status) for o in orders] == [
        ("CHG-1#1", "active"), ("CHG-1#2", "draft"), ("CHG-1#3", "draft")]
    assert orders[2].source.pointer.endswith("/RxChangeRequest/MedicationRequested")


def test_renewal_request_is_screened() -> None:
    (order,) = of(Order, records(h.message_2017071(transaction="RxRenewalRequest")))
    assert order.status == "active"


def test_cancel_rx_is_skipped_with_reason() -> None:
    recs = records(h.message_2017071("CAN-1", transaction="CancelRx"))
    (skip,) = of(Skip, recs)
    assert not of(Order, recs)
    assert skip.reason.startswith("CancelRx") and skip.record_id == "CAN-1"
    assert skip.location.pointer == "message 1 /Message/Body/CancelRx"


def test_other_transactions_are_skipped() -> None:
    xml = h.message_2017071(transaction="Status", medications=(), patient="")
    (skip,) = of(Skip, records(xml))
    assert "Status" in skip.reason


def test_container_children_that_are_not_messages_are_skipped() -> None:
    xml = h.container([h.message_2017071("A")]).replace(
        "<Messages>", "<Messages><BatchHeader><Count>1</Count></BatchHeader>")
    recs = records(xml)
    (skip,) = of(Skip, recs)
    assert "BatchHeader" in skip.reason and len(of(Order, recs)) == 1


def test_patient_end_between_patients_and_grouping_within_patient() -> None:
    p1, p2 = h.patient_2017071("P1"), h.patient_2017071("P2")
    msgs = [h.message_2017071("A", patient=p1), h.message_2017071("B", patient=p1),
            h.message_2017071("C", patient=p2)]
    kinds = [(type(r).__name__, getattr(r, "patient_id", getattr(r, "id", None)))
             for r in records(h.concatenated(msgs))]
    assert kinds == [("PatientContext", "P1"), ("Order", "P1"), ("PatientContext", "P1"),
                     ("Order", "P1"), ("PatientEnd", "P1"), ("PatientContext", "P2"),
                     ("Order", "P2"), ("PatientEnd", "P2")]


@pytest.mark.parametrize("layout", ["container", "concatenated"])
def test_multi_message_layouts(layout: str) -> None:
    msgs = [h.message_2017071(f"M{i}") for i in range(5)] + [h.message_106("M5")]
    xml = h.container(msgs) if layout == "container" else h.concatenated(msgs)
    assert sniff(xml.encode(), "batch.xml") >= 0.8
    orders = of(Order, records(xml))
    assert [o.id for o in orders] == [f"M{i}" for i in range(6)]
    assert [o.source.pointer.split()[1] for o in orders] == [str(i) for i in range(1, 7)]


def test_bom_and_latin1_declaration() -> None:
    xml = h.message_2017071(description="metformine comprimé 500 mg")
    latin = xml.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"').encode("latin-1")
    (order,) = of(Order, records(latin))
    assert order.text == "metformine comprimé 500 mg"
    bom = b"\xef\xbb\xbf" + xml.encode()
    assert sniff(bom, "x.xml") == 1.0
    assert len(of(Order, records(bom))) == 1


def test_empty_and_non_xml_input_raise_input_error() -> None:
    with pytest.raises(InputError, match="empty"):
        records(b"")
    with pytest.raises(InputError, match="not well-formed"):
        records(b"this is not XML at all")


@pytest.mark.parametrize(("head", "expected"), [
    (b"", 0.0),
    (b"MSH|^~\\&|", 0.0),
    (b'{"resourceType": "Bundle"}', 0.0),
    (b"patient_id,drug_name\n1,metformin", 0.0),
    (b"<?xml version='1.0'?><Bundle xmlns='http://hl7.org/fhir'/>", 0.0),
    (b"<Message><Header/><Body/></Message>", 0.9),
    (b"<!-- c --><Batch><!-- x --><Message>", 0.8),
    (b"<!DOCTYPE Message [<!ENTITY a 'b'>]><Message/>", 0.9),
])
def test_sniff(head: bytes, expected: float) -> None:
    assert sniff(head, "x") == expected


def test_shared_payer_identifiers_never_merge_patients() -> None:
    """Processor/payer ids are shared by many patients: two different patients with
    the same ProcessorIdentificationNumber must not share a patient id."""
    def pat(born: str, sex: str) -> str:
        return h.patient_2017071(patient_id=None, birth_date=born, gender=sex).replace(
            "<Name>", "<Identification><ProcessorIdentificationNumber>PCN-RX1"
            "</ProcessorIdentificationNumber><PayerID>PAYER-9</PayerID>"
            "<MutuallyDefined>X</MutuallyDefined></Identification><Name>")
    woman = h.message_2017071("MSG-W", patient=pat("1990-05-05", "F"))
    man = h.message_2017071("MSG-M", patient=pat("1940-05-05", "M"), db_code=h.OMEPRAZOLE_SCD,
                            description="Omeprazole 20 MG Delayed Release Oral Capsule",
                            diagnoses=((h.NEUROPATHY_SNOMED, "LD", "neuropathy"),))
    recs = records(h.container([woman, man]))
    ids = [p.id for p in of(PatientContext, recs)]
    assert ids == ["ncpdp-message:MSG-W", "ncpdp-message:MSG-M"]
    assert [o.patient_id for o in of(Order, recs)] == ids


def test_record_number_is_qualified_by_the_sender() -> None:
    (patient,) = of(PatientContext, records(h.message_106(patient_id="ACC-7")))
    assert patient.id == "PRESC1:ACC-7"


def test_every_medication_of_a_newrx_is_read() -> None:
    meds = (h.medication_2017071(),
            h.medication_2017071(db_code=h.OMEPRAZOLE_SCD, ndc=None,
                                 description="Omeprazole 20 MG Delayed Release Oral Capsule"))
    recs = records(h.message_2017071("TWO", medications=meds))
    assert [(o.id, o.rxnorm_codes()) for o in of(Order, recs)] == [
        ("TWO#1", (h.METFORMIN_SCD,)), ("TWO#2", (h.OMEPRAZOLE_SCD,))]
    assert of(Rejection, recs) == []


def test_every_dispensed_medication_of_an_rxfill_is_read() -> None:
    meds = (h.medication_2017071(element="MedicationDispensed"),
            h.medication_2017071(element="MedicationDispensed", db_code=h.OMEPRAZOLE_SCD,
                                 ndc=None, description="omeprazole 20 mg capsule"))
    recs = records(h.message_2017071("FILL", transaction="RxFill", medications=meds))
    assert [o.id for o in of(Order, recs)] == ["FILL#1", "FILL#2"]


def test_a_second_transaction_in_the_body_is_reported_not_dropped() -> None:
    xml = h.message_2017071("B2").replace(
        "</NewRx></Body>", "</NewRx><NewRx><MedicationPrescribed><DrugDescription>omeprazole"
        "</DrugDescription></MedicationPrescribed></NewRx></Body>")
    recs = records(xml)
    assert [o.id for o in of(Order, recs)] == ["B2"]
    (rej,) = of(Rejection, recs)
    assert rej.location.pointer == "message 1 /Message/Body/NewRx[2]"
    assert "was not read" in rej.reason
